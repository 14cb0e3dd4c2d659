"""The byte walker must give exactly what pydicom's reader gives, or step aside."""

import os
import warnings
from io import BytesIO

import pydicom
import pytest

from loader.dicom.decode import decode_elements, decode_header
from loader.headers.dataset_bytes import HeaderIncomplete, from_pydicom, parse_part10
from loader.headers.reader import HeaderReader, parse_header
from tests.conftest import real_file, real_files


def _both(data: bytes, path: str):
    """(walker's decoded header and where it stopped, pydicom's and where it stopped)
    for a whole object; the walker's half is None when it stepped aside."""
    raw = parse_part10(data, whole=True)
    if raw is None:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp = BytesIO(data)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    ours = decode_elements(raw.elements, path, implicit=raw.implicit, little=raw.little)
    implicit, little = ds.original_encoding
    theirs = decode_elements(from_pydicom(ds._dict, path), path, implicit=implicit, little=little)
    assert set(raw.meta) == {int(tag) for tag in ds.file_meta._dict}
    assert raw.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert (raw.implicit, raw.little) == ds.original_encoding
    return (ours, raw.end), (theirs, fp.tell())


def _readable_real_files() -> list[str]:
    found = []
    for path in real_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - files pydicom cannot read are not compared
            continue
        found.append(path)
    return found


@pytest.mark.parametrize("path", _readable_real_files(), ids=os.path.basename)
def test_walker_equals_pydicom_on_real_files(path):
    with open(path, "rb") as fh:
        data = fh.read()
    ours, theirs = _both(data, path)
    if ours is None:
        return  # deflated, no preamble
    assert ours[0].root == theirs[0].root
    assert ours[0].cast_errors == theirs[0].cast_errors
    assert ours[1] == theirs[1]


def test_walker_takes_the_common_case():
    """Stepping aside costs 2.5× the parse: it must be for the unusual files only."""
    taken = []
    for path in _readable_real_files():
        with open(path, "rb") as fh:
            data = fh.read()
        if _both(data, path)[0] is not None:
            taken.append(os.path.basename(path))
    assert {"CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm"} <= set(taken)
    assert len(taken) >= 100, len(taken)


@pytest.mark.parametrize(
    "name",
    ["CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "no_meta.dcm", "rtplan.dcm"],
)
def test_walker_steps_aside_when_cut_or_unusual(name):
    with open(real_file(name), "rb") as fh:
        data = fh.read()
    raw = parse_part10(data, whole=True)
    if name == "MR_small_bigendian.dcm":  # retired, still in old exports: walked
        assert raw is not None and not raw.little and not raw.implicit
    elif name in ("CT_small.dcm", "rtplan.dcm"):
        assert raw is not None
        for cut in (140, 300, raw.end // 2, raw.end - 1):
            assert parse_part10(data[:cut], whole=True) is None, cut
            with pytest.raises(HeaderIncomplete):  # not the whole object: read on
                parse_part10(data[:cut], whole=False)
        if name == "rtplan.dcm":  # no Pixel Data: the object's end ends its header
            assert raw.end == len(data)
    else:
        assert raw is None


def test_walker_equals_pydicom_on_generated_archive(synth_archive):
    """Every transfer syntax, character set and nesting the generator writes."""
    root, _ = synth_archive
    walked = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "bad" not in p.parts):
        data = path.read_bytes()
        ours, theirs = _both(data, str(path))
        if ours is None:
            continue
        walked += 1
        assert ours[0].root == theirs[0].root, path
        assert ours[1] == theirs[1], path
    assert walked > 0.9 * sum(1 for p in root.rglob("*") if p.is_file() and "bad" not in p.parts)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "examples_ybr_color.dcm", "waveform_ecg.dcm", "rtplan.dcm"]
)
def test_headers_longer_than_the_first_read_are_walked_on(name):
    """A first read that ends inside the header: the walker reads on, by what the
    element that ran past needs, and gives what one read of everything gives."""
    path = real_file(name)
    with open(path, "rb") as fh:
        data = fh.read()
    whole = parse_header(path, HeaderReader(lambda s, e: data[s:e], len(data)))
    walker_steps_in = []
    for first in (200, 1000, 16384):
        reader = HeaderReader(lambda s, e: data[s:e], len(data), first_bytes=first)
        raw = parse_header(path, reader)
        walker_steps_in.append(reader.requests)
        assert decode_header(raw, path).root == (decode_header(whole, path).root)
        assert raw.pixel_data_offset == whole.pixel_data_offset
        assert raw.checksum == whole.checksum
        assert raw.bytes_read <= max(first, int(1.25 * whole.header_bytes) + 16 * 1024)
    assert max(walker_steps_in) > 1
