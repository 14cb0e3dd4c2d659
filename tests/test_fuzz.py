"""Property-based hostile inputs: real files (and their DICOM JSON) mutated by
hypothesis, one object at a time.

Whatever the bytes, `process_object` returns rows or exactly one error row of a
known category, never an exception and never an error of our own code; it never
reads more than the object holds. `make test` runs a fixed, derandomised set;
`make fuzz` runs FUZZ_EXAMPLES (default here 600) with fresh randomness and prints
the outcomes it saw.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loader.core.errors import FILE_ERROR_CATEGORIES
from loader.jobs.shard import ShardSettings, process_object
from loader.sources.listing import ObjectRef
from tests.conftest import real_file, real_files

KNOWN = FILE_ERROR_CATEGORIES | {"TYPE_CAST_ERROR", "PARSE_WARNING"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "600"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
SOURCES = sorted(
    {
        p
        for p in real_files()
        if 132 < os.path.getsize(p) < 200_000 and Path(p).read_bytes()[128:132] == b"DICM"
    }
)
LENGTHS = [b"\xff\xff\xff\xff", b"\xfe\xff\xff\xff", b"\x00\x00\x00\x80", b"\xff\xff\x00\x00"]
CHARSETS = [b"ISO_IR 999", b"\x1b$B\x1b(B", b"GB18030\\ISO 2022 IR 87", b"\xff\xfe", b"ISO_IR 192"]


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    """A real file with one or more of the faults peers trip over."""
    data = bytearray(Path(draw(st.sampled_from(SOURCES))).read_bytes())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["truncate", "flip", "length", "vr", "delimiter", "charset", "insert", "delete"]
            )
        )
        if len(data) < 140:
            break
        # A position as a fraction: hypothesis favours the bounds of integer ranges,
        # which would cut most files right after the preamble.
        at = 128 + int(draw(st.floats(0, 1)) * (len(data) - 133))
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "length":  # a declared length of 4 GB, or past the end
            data[at : at + 4] = draw(st.sampled_from(LENGTHS))
        elif kind == "vr":  # a wrong or invented VR where a VR may sit
            data[at : at + 2] = draw(st.sampled_from([b"SQ", b"UN", b"OB", b"ZZ", b"\x00\x00"]))
        elif kind == "delimiter":  # undefined-length framing without its delimiters
            data[at : at + 8] = draw(
                st.sampled_from([b"\xfe\xff\x00\xe0\xff\xff\xff\xff", b"\xfe\xff\xdd\xe0\0\0\0\0"])
            )
        elif kind == "charset":
            position = data.find(b"\x08\x00\x05\x00")
            if position > 0:
                value = draw(st.sampled_from(CHARSETS))
                data[position + 8 : position + 8 + len(value)] = value
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def _deflated_body_corrupted(cut: int, junk: bytes) -> bytes:
    """The deflated transfer syntax file with a deflate stream that does not inflate."""
    data = Path(real_file("image_dfl.dcm")).read_bytes()
    meta_end = data.find(b"1.2.840.10008.1.2.1.99") + 24
    body = bytearray(data[meta_end:])
    body[cut % len(body) :] = junk
    return data[:meta_end] + bytes(body)


def _outcome(data: bytes) -> tuple[list, list, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "object.dcm"
        path.write_bytes(data)
        ref = ObjectRef(str(path), len(data), 0.0)
        [(rows, errors, read)] = process_object(ref, ShardSettings(folder, "fuzz", folder))
    return rows, errors, read


def _check(data: bytes) -> None:
    rows, errors, bytes_read = _outcome(data)
    categories = {e["error_category"] for e in errors}
    event(", ".join(sorted(categories)) or "loaded cleanly")
    assert categories <= KNOWN, categories
    assert not [e for e in errors if str(e["error_message"]).startswith("unexpected")], errors
    failed = categories & FILE_ERROR_CATEGORIES
    if failed:
        # One error row says why the object failed; what pydicom warned before it
        # failed may stand beside it, as its PARSE_WARNING row.
        assert [e["error_category"] for e in errors if e["error_category"] != "PARSE_WARNING"] == [
            next(iter(failed))
        ]
        assert len(failed) == 1
        assert set(rows) <= {"dicom_raw"}  # (an object without its UIDs keeps its raw row)
    else:
        assert len(rows["dicom_raw"]) == 1  # loaded: its header is in dicom_raw
    assert bytes_read <= len(data)  # a huge declared length never reads (or allocates) it


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@FUZZ
@given(hostile())
def test_mutated_real_files(data: bytes) -> None:
    _check(data)


@pytest.mark.slow
@FUZZ
@given(st.integers(0, 10_000), st.binary(min_size=0, max_size=64))
def test_deflate_streams_that_do_not_inflate(cut: int, junk: bytes) -> None:
    _check(_deflated_body_corrupted(cut, junk))


def test_a_deflated_body_that_is_not_deflate_is_a_parse_error() -> None:
    data = _deflated_body_corrupted(0, zlib.compress(b"\x00" * 4096)[:7] + b"not deflate")
    _, errors, _ = _outcome(data)
    assert [e["error_category"] for e in errors] in (["PARSE_ERROR"], ["TRUNCATED"])


JSON_SOURCES = ("CT_small.dcm", "rtplan.dcm", "chrH31.dcm", "MR_small.dcm")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=9), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def hostile_json(draw: st.DrawFn) -> bytes:
    """pydicom's DICOM JSON of a real file with attributes broken the ways exports
    break: wrong or unknown VRs, values of any JSON type, bad base64, bad keys."""
    path = real_file(draw(st.sampled_from(JSON_SOURCES)))
    instance = pydicom.dcmread(path, stop_before_pixels=True, force=True).to_json_dict()
    keys = sorted(instance)
    for _ in range(draw(st.integers(1, 4))):
        key = keys[int(draw(st.floats(0, 1)) * (len(keys) - 1))]
        kind = draw(st.sampled_from(["vr", "value", "binary", "key", "drop", "entry"]))
        entry = instance.get(key)
        if kind == "vr" and isinstance(entry, dict):
            entry["vr"] = draw(st.sampled_from(["XX", "SQ", "US", "PN", "", "AT", "FL"]))
        elif kind == "value" and isinstance(entry, dict):
            entry["Value"] = draw(JSON_VALUES)
        elif kind == "binary":
            instance[key] = {"vr": "OB", "InlineBinary": draw(st.text(max_size=9))}
        elif kind == "key":
            instance[draw(st.text(min_size=8, max_size=8))] = {"vr": "LO", "Value": ["x"]}
        elif kind == "drop":
            instance.pop(key, None)
        else:
            instance[key] = draw(JSON_VALUES)
    return json.dumps(instance).encode()  # big integers too, as a hand-written export may hold


@pytest.mark.slow
@FUZZ
@given(hostile_json())
def test_mutated_dicom_json(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.json"
        path.write_bytes(data)
        ref = ObjectRef(str(path), len(data), 0.0)
        settings = ShardSettings(folder, "fuzz", folder)
        outcomes = process_object(ref, settings)
    assert len(outcomes) == 1  # one instance, or the export's one error row
    rows, errors, _ = outcomes[0]
    categories = {e["error_category"] for e in errors}
    event(", ".join(sorted(categories)) or "loaded cleanly")
    assert categories <= KNOWN, categories
    assert not [e for e in errors if str(e["error_message"]).startswith("unexpected")], errors
    if categories & FILE_ERROR_CATEGORIES:
        assert len(errors) == 1 and set(rows) <= {"dicom_raw"}
    else:
        assert len(rows["dicom_raw"]) == 1
