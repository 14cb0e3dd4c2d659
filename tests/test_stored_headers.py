"""What dicom_raw stores of a header is enough to rebuild every row unread: the
stored document and VR notes give back the decoded tree, and extraction gives the
same rows, on every real file."""

import datetime as dt
import json
import os

import pytest

from loader.core.errors import FILE_ERROR_CATEGORIES, ObjectError
from loader.dicom.decode import decode_header
from loader.dicom.raw_json import metadata_json
from loader.dicom.stored_headers import decoded_from_stored
from loader.extract import extract_object
from loader.extract.context import ObjectFacts
from loader.headers.reader import read_local
from tests.conftest import loadable_real_files


def _facts(path: str) -> ObjectFacts:
    return ObjectFacts(
        uri=path,
        size=os.path.getsize(path),
        modified_at=None,
        ingestion_source="test",
        storage_provider="file",
        storage_container=None,
        object_key=path,
        transfer_syntax_uid=None,
        header_bytes=0,
        bytes_read=0,
        pixel_data_offset=None,
        pixel_data_length=None,
        checksum="",
        ingested_at=dt.datetime(2026, 1, 1),
    )


def _plain(item):
    """A decoded item as comparable values (Element equality, nested)."""
    return {
        tag: (
            e.vr,
            [_plain(i) for i in e.value] if e.vr == "SQ" and type(e.value) is list else e.value,
            e.vm,
        )
        for tag, e in item.items()
    }


@pytest.mark.parametrize("path", loadable_real_files(), ids=os.path.basename)
def test_a_stored_header_gives_back_the_tree_and_the_rows(path):
    try:
        parsed = read_local(path, os.path.getsize(path))
    except ObjectError as exc:  # an object that ends as an error row stores no header
        assert exc.category in FILE_ERROR_CATEGORIES
        return
    decoded = decode_header(parsed, path, 1 << 20)
    rows, errors = extract_object(decoded, _facts(path))
    (raw,) = rows["dicom_raw"]
    again = decoded_from_stored(raw["metadata"], raw["metadata_vr"], decoded.cast_errors)
    if "dicom_element" in rows:  # an object with element rows: its whole tree comes back
        assert _plain(again.root) == _plain(decoded.root)
    assert metadata_json(again.root) == raw["metadata"]
    rebuilt_rows, rebuilt_errors = extract_object(again, _facts(path))
    assert rebuilt_rows == rows
    assert rebuilt_errors == errors
    # A warehouse need not keep a document's key order (Snowflake's VARIANT sorts
    # them): stored with its keys sorted by name, everywhere, it gives the same rows.
    # (A sequence whose VR the document cannot say stays an opaque JSON value: its
    # text then keeps the order it was stored in, the same JSON value.)
    resorted = json.dumps(json.loads(raw["metadata"]), sort_keys=True)
    shuffled = decoded_from_stored(resorted, raw["metadata_vr"], decoded.cast_errors)
    shuffled_rows, shuffled_errors = extract_object(shuffled, _facts(path))
    (shuffled_raw,) = shuffled_rows.pop("dicom_raw")
    assert json.loads(shuffled_raw.pop("metadata")) == json.loads(raw["metadata"])
    assert shuffled_raw == {k: v for k, v in raw.items() if k != "metadata"}
    assert shuffled_rows == {k: v for k, v in rows.items() if k != "dicom_raw"}
    assert shuffled_errors == errors


def _stored(path: str, element_limit: int = 1 << 20):
    decoded = decode_header(read_local(path, os.path.getsize(path)), path, element_limit)
    rows, _ = extract_object(decoded, _facts(path))
    (raw,) = rows["dicom_raw"]
    return decoded, raw


def test_notes_are_kept_only_where_the_tag_does_not_say():
    """metadata_vr notes an element only when its VR or VM is not what its tag (and
    the Pixel Representation) implies: a public element that pydicom reads with its
    dictionary's one VR and a single value is never noted."""
    import pydicom
    from pydicom.datadict import dictionary_VR

    checked = 0
    for path in loadable_real_files():
        try:
            decoded, raw = _stored(path)
        except ObjectError:
            continue
        notes = json.loads(raw["metadata_vr"] or "{}")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        uncast = {tag.upper() for tag, _ in decoded.cast_errors}
        for elem in ds:
            if elem.tag.is_private or elem.VR == "SQ" or elem.VM > 1:
                continue
            if f"{int(elem.tag):08X}" in uncast:
                continue  # a value that could not be typed is stored as its text
            try:
                implied = dictionary_VR(elem.tag)
            except KeyError:
                continue
            if implied == elem.VR:
                assert f"{int(elem.tag):08X}" not in notes, (path, elem.keyword, notes)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("representation", "vr", "value"), [(1, "SS", -5), (None, "US", 5), (0, "US", 5)]
)
def test_a_us_or_ss_value_follows_the_pixel_representation(tmp_path, representation, vr, value):
    """SmallestImagePixelValue is US or SS by the Pixel Representation (0 when
    absent): as implied it is not noted, and the stored header gives it back."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    if representation is not None:
        ds.PixelRepresentation = representation
    ds.add_new(0x00280106, vr, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "pr.dcm"
    ds.save_as(path, enforce_file_format=True)
    decoded, raw = _stored(str(path))
    assert "00280106" not in json.loads(raw["metadata_vr"] or "{}")
    again = decoded_from_stored(raw["metadata"], raw["metadata_vr"], decoded.cast_errors)
    assert again.root[0x00280106].vr == vr and _plain(again.root) == _plain(decoded.root)


def test_values_left_out_come_back_as_left_out():
    """Values over the element limit are stored as their VR and length: the tree
    they give back has them left out as the decoder left them (VM 0)."""
    checked = 0
    for path in loadable_real_files():
        try:
            decoded, raw = _stored(path, element_limit=64)
        except ObjectError:
            continue
        if '"omitted"' not in raw["metadata"]:
            continue
        again = decoded_from_stored(raw["metadata"], raw["metadata_vr"], decoded.cast_errors)
        assert _plain(again.root) == _plain(decoded.root), path
        checked += 1
    assert checked > 20


def test_a_private_tag_is_implied_by_its_own_creator(tmp_path):
    """The same private tag under two creators whose dictionaries give it two VRs
    (pydicom's private dictionary: (0019,xx11) is SL for GEMS_PETD_01, US for
    ADAC_IMG): each, at its own VR, is not noted, whichever object came first."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for creator, vr in (("GEMS_PETD_01", "SL"), ("ADAC_IMG", "US")):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.add_new(0x00190010, "LO", creator)
        ds.add_new(0x00191011, vr, 7)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = tmp_path / f"{vr}.dcm"
        ds.save_as(path, enforce_file_format=True)
        _, raw = _stored(str(path))
        assert "00191011" not in json.loads(raw["metadata_vr"] or "{}"), (creator, raw)
