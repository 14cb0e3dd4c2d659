"""One error policy for every per-object path: a failure of the loader's own code on
one object is that object's PARSE_ERROR, in a run and in a scan alike, and the
shard goes on with the others."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path
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


def _export(path: Path, sources: list[str], padding: int = 0) -> Path:
    """A DICOM JSON export of `sources` (pydicom writes it), new SOP Instance UIDs,
    `padding` spaces after it (an export that large, the same instances)."""
    instances = []
    for n, source in enumerate(sources):
        ds = pydicom.dcmread(source, stop_before_pixels=True)
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77{n}"
        instances.append(ds.to_json_dict())
    path.write_bytes(json.dumps(instances).encode() + b" " * padding)
    return path


def test_a_scan_reads_each_object_as_a_run_does(tmp_path):
    """The same limits make the same errors: a tar member over the member limit (a
    DICOM file or a DICOM JSON export), a nested container and a zip listed as itself
    are the same categories in a run's error rows and a scan's counts, and what both
    read of the rest (loose and tarred exports included) is the same."""
    files = loadable_real_files()[:6]
    small = min(files, key=os.path.getsize)
    limit = os.path.getsize(small) + 1  # members larger than the smallest file are refused
    fits = _export(tmp_path / "fits.json", [small])
    over = _export(tmp_path / "over.json", [small], padding=limit)
    loose = _export(tmp_path / "loose.json", files[:3])
    assert fits.stat().st_size <= limit < over.stat().st_size
    with tarfile.open(tmp_path / "members.tar", "w") as tar:
        for index, path in enumerate(files):
            tar.add(path, arcname=f"m{index}.dcm")
        tar.add(fits, arcname="fits.json")
        tar.add(over, arcname="over.json")
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(small, "a.dcm")
    with tarfile.open(tmp_path / "nested.tar", "w") as tar:
        tar.add(inner, arcname="inner.zip")
        tar.add(small, arcname="ok.dcm")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not a zip directory")
    refs = [
        ObjectRef(str(p), os.path.getsize(p), None)
        for p in (tmp_path / "members.tar", tmp_path / "nested.tar", tmp_path / "broken.zip", loose)
    ]
    shard = Shard("same-reads", tuple(refs))
    settings = ShardSettings(
        out=str(tmp_path / "out"), run_id="r", source=str(tmp_path), member_limit=limit
    )
    record = process_shard(settings, shard, ValueStore())
    profile = scan_shard(ScanSettings(member_limit=limit), shard, ValueStore())
    run_errors = {k: v for k, v in record.errors.items() if k != "PARSE_WARNING"}
    scan_errors = {k: v for k, v in profile.counters["errors"].items() if k != "PARSE_WARNING"}
    oversized = sum(os.path.getsize(p) > limit for p in files)
    assert oversized >= 3
    # Each oversized member (the export too), the nested zip and the unreadable zip:
    # one CONTAINER_ERROR each.
    assert run_errors == scan_errors == {"CONTAINER_ERROR": oversized + 3}
    assert record.bytes_read == profile.bytes_read
    # What loaded is what was counted: the fitting members, the tarred export's one
    # instance, the nested tar's loose member and the loose export's three.
    loaded = len(files) - oversized + 1 + 1 + 3
    assert record.parsed == loaded
    assert sum(profile.counters["modality"].values()) == loaded
