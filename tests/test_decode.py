"""Raw element bytes decoded directly must equal what pydicom's value classes give."""

import os
import re

import orjson
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue

from loader.core.errors import ObjectError
from loader.dicom.decode import EXTRACTED_SEQUENCES, Binary, Element, Omitted, decode_header
from loader.dicom.pseudonymize import Pseudonymizer
from loader.dicom.raw_json import metadata_json
from loader.dicom.value_store import ValueStore
from loader.extract import extract_object
from loader.headers.reader import read_local
from tests.conftest import (
    REAL_FILES_AT_LEAST,
    REJECTED_REAL_FILES,
    REPO,
    loadable_real_files,
    real_file,
    real_files,
)
from tests.test_extract import facts


def _decoded(path: str, store: ValueStore | None = None):
    parsed = read_local(path, os.path.getsize(path))
    return decode_header(parsed, path, store=store)


def _normal(value):
    if value is None:
        return None
    if isinstance(value, (list, MultiValue)):
        items = [_normal(v) for v in value]
        return items[0] if len(items) == 1 else (items or None)
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return text or None


def _parseable() -> list[str]:
    """Real files the loader must read (a refused one fails the test below)."""
    return loadable_real_files()


def test_real_files_come_installed_and_only_the_known_bad_ones_are_refused():
    """pydicom's extra test files come from the installed pydicom-data package (no
    download), and the loader refuses exactly the files known to be bad, as said."""
    from pydicom.data.data_manager import external_data_sources
    from pydicom.errors import InvalidDicomError

    assert "pydicom-data" in external_data_sources()
    paths = real_files()
    assert len(paths) >= REAL_FILES_AT_LEAST
    refused = {}
    for path in paths:
        try:
            _decoded(path)
        except ObjectError as exc:
            refused[os.path.basename(path)] = str(exc.category)
    assert refused == {name: category for name, (category, _) in REJECTED_REAL_FILES.items()}
    for path in paths:
        name = os.path.basename(path)
        if REJECTED_REAL_FILES.get(name, ("",))[0] == "NOT_DICOM":
            with pytest.raises(InvalidDicomError):  # pydicom, without force, agrees
                pydicom.dcmread(path)
    truncated, whole = real_file("rtplan_truncated.dcm"), real_file("rtplan.dcm")
    with open(truncated, "rb") as cut, open(whole, "rb") as full:
        data = cut.read()
        assert full.read(len(data)) == data and os.path.getsize(whole) > len(data)


@pytest.mark.parametrize("path", _parseable(), ids=os.path.basename)
def test_values_equal_pydicom(path):
    decoded = _decoded(path)
    reference = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    compared = 0
    for tag, element in decoded.root.items():
        if element.vr == "SQ" or isinstance(element.value, Binary):
            continue
        theirs = reference[tag].value
        if isinstance(theirs, bytes):
            continue
        ours = _normal(element.value)
        expected = _normal(theirs)
        if isinstance(expected, list):
            expected = [e.strip() if isinstance(e, str) else e for e in expected]
        if ours is None and expected is not None and decoded.cast_errors:
            assert f"{tag:08X}" in {t for t, _ in decoded.cast_errors}
            continue
        assert ours == expected, (hex(tag), ours, expected)
        compared += 1
    assert compared > 0 or all(
        e.vr == "SQ" or isinstance(e.value, Binary) for e in decoded.root.values()
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("chrFren.dcm", "Buc^Jérôme"),
        ("chrGerm.dcm", "Äneas^Rüdiger"),
        ("chrRuss.dcm", "Люкceмбypг"),
        ("chrX1.dcm", "Wang^XiaoDong=王^小東"),
    ],
)
def test_character_sets_decode_to_unicode(name, expected):
    decoded = _decoded(real_file(name))
    assert decoded.root[0x00100010].value == expected


def test_private_and_nested_sequences_in_json():
    doc = orjson.loads(metadata_json(_decoded(real_file("nested_priv_SQ.dcm")).root))
    reference = pydicom.dcmread(real_file("nested_priv_SQ.dcm"), force=True)
    private_sq_tag = next(e.tag for e in reference if e.tag.is_private and e.VR == "SQ")
    key = f"{int(private_sq_tag):08X}"
    assert isinstance(doc[key], list) and isinstance(doc[key][0], dict)


def test_binary_values_are_length_only():
    decoded = _decoded(real_file("CT_small.dcm"))
    text = metadata_json(decoded.root)
    doc = orjson.loads(text)
    binaries = [v for v in doc.values() if isinstance(v, dict) and "length" in v]
    assert binaries and all(set(b) == {"vr", "length"} for b in binaries)


def test_keyword_keys_and_types():
    doc = orjson.loads(metadata_json(_decoded(real_file("CT_small.dcm")).root))
    reference = pydicom.dcmread(real_file("CT_small.dcm"))
    assert doc["StudyInstanceUID"] == reference.StudyInstanceUID
    assert doc["ImageType"] == list(reference.ImageType)
    assert doc["Rows"] == reference.Rows
    assert doc["PixelSpacing"] == [float(v) for v in reference.PixelSpacing]
    assert doc["PatientName"] == str(reference.PatientName)
    assert "PixelData" not in doc


def test_repeating_group_elements_are_keyed_by_tag_each():
    path = real_file("examples_overlay.dcm")
    doc = orjson.loads(metadata_json(_decoded(path).root))
    reference = pydicom.dcmread(path, stop_before_pixels=True)
    overlay = [e for e in reference if e.tag.group == 0x6000]
    assert overlay and "OverlayRows" not in doc
    assert doc["60000010"] == reference[0x60000010].value
    assert {f"{int(e.tag):08X}" for e in overlay} <= set(doc)


def test_bad_integer_string_is_a_cast_error():
    decoded = _decoded(real_file("badVR.dcm"))
    assert ("00280008", "IS value '1A' is not a number") in decoded.cast_errors
    assert decoded.root[0x00280008].value is None


def test_equal_bytes_decode_once_and_warnings_stay_per_object():
    """A series repeats most of its header: the second object's equal bytes give the
    first object's (shared) elements, and a value that does not decode is decoded,
    and warned about, in every object."""
    store = ValueStore()
    first = _decoded(real_file("badVR.dcm"), store)
    misses = store.counts.misses
    second = _decoded(real_file("badVR.dcm"), store)
    plain = [tag for tag, e in first.root.items() if e.vr != "SQ" and tag != 0x00280008]
    assert len(plain) > 20
    assert all(second.root[tag] is first.root[tag] for tag in plain)
    assert store.counts.hits >= len(plain) and store.counts.misses - misses == 1  # the bad IS
    # Without a shared store, nothing is shared.
    alone = _decoded(real_file("badVR.dcm"))
    assert not any(alone.root[tag] is first.root[tag] for tag in plain)
    assert second.root[0x00280008] is not first.root[0x00280008]
    assert ("00280008", "IS value '1A' is not a number") in second.cast_errors


def test_remembered_elements_stay_within_their_bounds():
    store = ValueStore(entries=10, value_bytes=600)
    remembered = 0
    for path in real_files()[:8]:
        try:
            _decoded(path, store)
        except ObjectError:
            continue
        remembered += len(store.found)
        assert len(store.found) <= 10
        assert store.bytes == sum(len(key[2]) for key in store.found) <= 600
    assert remembered > 0 and store.counts.evictions > 0


def _pydicom_tree(ds) -> dict:
    """pydicom's view of a dataset, nested, in the decoder's shape."""
    tree = {}
    for element in ds:
        if element.VR == "SQ":
            tree[int(element.tag)] = [_pydicom_tree(item) for item in element.value]
        elif isinstance(element.value, bytes) or element.VR in ("OB", "OW", "UN"):
            tree[int(element.tag)] = "<binary>"
        else:
            tree[int(element.tag)] = _normal(element.value)
    return tree


def _our_tree(item) -> dict:
    tree = {}
    for tag, element in item.items():
        if element.vr == "SQ":
            tree[tag] = [_our_tree(child) for child in element.value]
        elif isinstance(element.value, Binary) or element.vr in ("OB", "OW", "UN"):
            tree[tag] = "<binary>"
        else:
            tree[tag] = _normal(element.value)
    return tree


def _with_sequences() -> list[str]:
    found = []
    for path in _parseable():
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if any(e.VR == "SQ" for e in ds):
            found.append(path)
    return found


@pytest.mark.parametrize("path", _with_sequences(), ids=os.path.basename)
def test_nested_sequences_equal_pydicom(path):
    decoded = _decoded(path)
    cast = {int(tag, 16) for tag, _ in decoded.cast_errors}
    ours = _without(_our_tree(decoded.root), cast)
    theirs = _without(
        _pydicom_tree(pydicom.dcmread(path, stop_before_pixels=True, force=True)), cast
    )
    assert ours == theirs


def _without(tree, tags: set[int]):
    """The tree without values the decoder reported as cast errors (pydicom keeps text)."""
    if isinstance(tree, dict):
        return {k: _without(v, tags) for k, v in tree.items() if k not in tags}
    if isinstance(tree, list):
        return [_without(v, tags) for v in tree]
    return tree


def test_generated_archive_decodes_like_pydicom(synth_archive):
    """Every transfer syntax, character set and nesting the generator writes."""
    root, _ = synth_archive
    checked = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "bad" not in p.parts):
        reference = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        kind = (reference.file_meta.TransferSyntaxUID, reference.SOPClassUID)
        if kind in checked:
            continue
        checked.add(kind)
        decoded = _decoded(str(path))
        cast = {int(tag, 16) for tag, _ in decoded.cast_errors}
        ours = _without(_our_tree(decoded.root), cast)
        theirs = _without(_pydicom_tree(reference), cast)
        for tag, value in theirs.items():
            # In implicit VR, pydicom leaves an unknown private sequence as UN bytes;
            # the decoder recognises its item framing and decodes the items.
            if value == "<binary>" and tag >> 16 & 1 and isinstance(ours.get(tag), list):
                ours[tag] = value
        assert ours == theirs
    assert len(checked) > 15


def test_the_vr_table_covers_every_vr_once():
    """One table groups every VR of PS3.5 6.2 by how its value decodes; no VR is in
    two groups, and the JSON decoder's text VRs are the binary decoder's."""
    from loader.dicom import vr

    every = {
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FL",
        "FD",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    }
    groups = [
        set(vr.NUMERIC_FORMATS),
        vr.BINARY,
        vr.ASCII_MULTI,
        vr.CHARSET_MULTI,
        vr.CHARSET_SINGLE,
        vr.ASCII_SINGLE,
        {"PN", "SQ", "AT"},
    ]
    assert sum(len(g) for g in groups) == len(set().union(*groups)) == len(every)
    assert set().union(*groups) == every
    assert "UR" in vr.SINGLE_TEXT and vr.TEXT == vr.MULTI_TEXT | vr.SINGLE_TEXT


@pytest.mark.parametrize(
    ("tag", "private", "data"),
    [
        (0x00100010, False, False),
        (0x00090010, True, False),
        (0x00091001, True, True),
        (0x000910FF, True, True),
        (0x00290FFF, True, False),
        (0x7FE00010, False, False),
    ],
)
def test_one_private_tag_test(tag, private, data):
    """Odd groups are private; their elements from 0x1000 are data, below are creators."""
    from loader.dicom.vr import is_private, is_private_data

    assert (is_private(tag), is_private_data(tag)) == (private, data)


def _frozen(value):
    """An element's decoded content as plain, comparable data (derived caches aside)."""
    if isinstance(value, Element):
        return (value.vr, value.vm, _frozen(value.value))
    if isinstance(value, dict):
        return tuple(sorted((tag, _frozen(element)) for tag, element in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def test_no_stage_changes_an_element_other_objects_share():
    """Shared elements are immutable by rule (see value_store): decoding every real file
    again through the same store, pseudonymising it (dates shifted) and extracting
    every table from it leaves each remembered element exactly as it was decoded."""
    store = ValueStore()
    parseable = _parseable()
    for path in parseable:
        _decoded(path, store)
    assert store.counts.evictions == 0 and len(store.found) > 1000
    before = {key: _frozen(element) for key, element in store.found.items()}
    hits = store.counts.hits
    pseudonymizer = Pseudonymizer(b"0123456789abcdef-test-key", shift_dates=True, uids=False)
    changed = 0
    for path in parseable:
        decoded = _decoded(path, store)
        plain = dict(decoded.root)
        pseudonymizer.apply(decoded)
        changed += sum(decoded.root[tag] is not plain[tag] for tag in plain)
        extract_object(decoded, facts(path, os.path.getsize(path)))
    assert store.counts.hits - hits > 1000 and changed > 100  # shared, and rewritten
    assert {key: _frozen(element) for key, element in store.found.items()} == before


def test_public_values_over_the_element_limit_are_left_out_but_binary_keep_lengths():
    """With a 256-byte limit, every top-level value pydicom reads as longer is
    omitted (public binary values keep their length, as all binary values do), the
    sequences the model reads are decoded whole, and every shorter value is kept."""
    limit = 256
    checked = omitted = 0
    for path in _parseable():
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        decoded = decode_header(read_local(path, os.path.getsize(path)), path, limit)
        for tag in list(ds.keys()):
            raw = ds.get_item(tag)
            ours = decoded.root.get(int(tag))
            if not isinstance(raw, RawDataElement) or ours is None or raw.length == 0xFFFFFFFF:
                continue  # converted on reading (its length unknown here), or undefined
            checked += 1
            if int(tag) in EXTRACTED_SEQUENCES or raw.length <= limit:
                assert not isinstance(ours.value, Omitted), (path, tag)
            elif ours.vr in ("OB", "OW", "OD", "OF", "OL", "OV") and not tag.is_private:
                assert ours.value == Binary(ours.vr, raw.length), (path, tag)
            else:
                assert ours.value == Omitted(ours.vr, raw.length), (path, tag)
                assert f"{int(tag):08X}" in {t for t, _ in decoded.cast_errors}
                omitted += 1
    assert checked > 5000 and omitted > 30


def test_every_sequence_the_extraction_reads_is_never_omitted():
    """A sequence extract/ names (as "…Sequence") must be in EXTRACTED_SEQUENCES, or a
    large object would lose the rows built from it, unless it is declared SIZE_GUARDED
    (read within the element limit only, and its rows say so)."""
    from pydicom.datadict import tag_for_keyword

    from loader.headers.extracted_sequences import SIZE_GUARDED

    named = set()
    for module in (REPO / "loader" / "extract").glob("*.py"):
        named |= set(re.findall(r'"([A-Za-z]+Sequence)"', module.read_text()))
    assert len(named) > 20
    missing = sorted(
        k for k in named if tag_for_keyword(k) not in EXTRACTED_SEQUENCES | SIZE_GUARDED
    )
    assert not missing
    assert not SIZE_GUARDED & EXTRACTED_SEQUENCES
