"""One error policy for every per-object path: a failure of the loader's own code on
one object is that object's PARSE_ERROR, in a run and in a scan alike, and the
shard goes on with the others."""

from __future__ import annotations

import os
from typing import Any

import pyarrow.parquet as pq
import pydicom

from loader.dicom.value_store import ValueStore
from loader.jobs.scan import ScanSettings, scan_shard
from loader.jobs.shard import ShardSettings, process_shard
from loader.sources.listing import ObjectRef, Shard
from tests.conftest import loadable_real_files

MODALITY = 0x00080060


class _BrokenLookup(dict):
    """The decoder's value lookup, broken for one value: decoding an MR object's
    Modality raises what no ObjectError names (a bug in the decoder, as it would
    surface)."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key[0] == MODALITY and bytes(key[2]).strip(b" \x00") == b"MR":
            raise RuntimeError("a decoder bug")
        return super().get(key, default)


def _broken_store() -> ValueStore:
    store = ValueStore()
    store.found = _BrokenLookup()
    return store


def _objects() -> list[ObjectRef]:
    return [ObjectRef(p, os.path.getsize(p), None) for p in loadable_real_files()[:60]]


def _mr_objects(refs: list[ObjectRef]) -> set[str]:
    found = set()
    for ref in refs:
        try:
            ds = pydicom.dcmread(ref.url, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # noqa: BLE001 - pydicom refuses it: not an MR object here
            continue
        if str(ds.get("Modality", "")).strip() == "MR":
            found.add(ref.url)
    return found


def test_a_bug_on_one_object_is_its_error_in_run_and_scan_alike(tmp_path):
    refs = _objects()
    mr = _mr_objects(refs)
    assert mr and len(mr) < len(refs)
    shard = Shard("policy", tuple(refs))
    record = process_shard(
        ShardSettings(out=str(tmp_path), run_id="r", source="real"), shard, _broken_store()
    )
    errors = pq.read_table(tmp_path / record.files["dicom_ingestion_errors"]).to_pylist()
    unexpected = {e["file_path"] for e in errors if "unexpected RuntimeError" in e["error_message"]}
    assert unexpected == mr
    assert all(
        e["error_category"] == "PARSE_ERROR"
        for e in errors
        if "unexpected RuntimeError" in e["error_message"]
    )
    assert record.listed == len(refs)  # the shard went on
    clean = scan_shard(ScanSettings(), shard, ValueStore()).counters["errors"]
    profile = scan_shard(ScanSettings(), shard, _broken_store())
    assert profile.objects == len(refs)
    assert profile.counters["errors"].get("PARSE_ERROR", 0) == (
        clean.get("PARSE_ERROR", 0) + len(mr)
    )
    assert record.errors.get("PARSE_ERROR", 0) == profile.counters["errors"]["PARSE_ERROR"]
