"""What dicom_raw stores of a header is enough to rebuild every row unread: the
stored document and VR notes give back the decoded tree, and extraction gives the
same rows, on every real file."""

import datetime as dt
import json
import os

import pytest

from loader.decode import decode_header
from loader.errors import FILE_ERROR_CATEGORIES, ObjectError
from loader.extract import extract_object
from loader.extract.context import ObjectFacts
from loader.headers import read_local
from loader.raw_json import metadata_json
from loader.stored_headers import decoded_from_stored
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
