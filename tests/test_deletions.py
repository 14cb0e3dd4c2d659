"""--incremental records what the archive no longer holds: locations and instances
stamped `deleted_at`, instances re-pointed to a copy that remains, counts recomputed
from live instances, and nothing deleted when the listing cannot be trusted.

Expectations come from pydicom reading the files left in the archive."""

import datetime as dt
import json
import os
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
import s3fs

from loader.core.errors import ConfigError, ListingError
from loader.core.faults import InjectedFault
from loader.core.model import BY_NAME, EXTRACTED
from loader.jobs.deleted_objects import (
    Deletions,
    DeletionScope,
    holder_of,
    record_deletions,
    scope_of,
)
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.jobs.targets import open_warehouse
from loader.sources.repeats import SeenKeys
from loader.synth import synthesize
from loader.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import real_file


def _run(source, tmp_path: Path, name: str = "sync", options=None, target=None, **kw):
    return run(
        RunSettings(
            source=str(source),
            out=tmp_path / f"{name}-pq",
            target=Target.parse(target or f"duckdb:///{tmp_path / name}.duckdb"),
            workers=kw.pop("workers", 0),
            storage_options=options or {},
            **kw,
        )
    )


@pytest.fixture(params=["duckdb", pytest.param("snowflake", marks=pytest.mark.server)])
def target(request, tmp_path) -> str:
    """Both warehouses: DuckDB, and Snowflake through its connector and fakesnow."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'sync.duckdb'}"
    return request.getfixturevalue("snowflake_target")


def _ask(target: str, sql: str, params=None) -> list[tuple]:
    """Rows of `sql` (marks written `?`) from the warehouse `target` names."""
    warehouse = open_warehouse(Target.parse(target))
    try:
        return warehouse.query(sql.replace("?", warehouse.placeholder), params or [])
    finally:
        warehouse.close()


def _instances(paths: list[Path]) -> dict[str, list[Path]]:
    """SOP Instance UID → the files holding it, as pydicom reads them."""
    found: dict[str, list[Path]] = {}
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            uid = str(ds.SOPInstanceUID)
        except Exception:  # noqa: BLE001 - synth's bad objects: error rows, not instances
            continue
        found.setdefault(uid, []).append(path)
    return found


def _series_counts(paths: list[Path]) -> Counter:
    """Live instances per Series Instance UID, as pydicom reads the files left."""
    counts: Counter = Counter()
    for files in _instances(paths).values():
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        counts[str(ds.SeriesInstanceUID)] += 1
    return counts


@pytest.fixture
def archive(tmp_path) -> Path:
    root = tmp_path / "archive"
    synthesize(root, patients=4, seed=33, bad_fraction=0.03, duplicate_fraction=0.1)
    return root


def _located(target: str, where: str = "") -> set[Path]:
    rows = _ask(target, f"SELECT storage_uri FROM dicom_file_location {where}")
    return {Path(uri) for (uri,) in rows}


def test_deleted_objects_are_stamped_and_instances_follow_their_copies(archive, tmp_path, target):
    files = sorted(p.resolve() for p in archive.rglob("*") if p.is_file())
    first = _run(archive, tmp_path, target=target, incremental=True)
    assert first["deleted"]["checked"] and first["deleted"]["objects"] == 0
    located_before = _located(target)
    by_uid = _instances(files)
    # Three kinds of going: a whole series, the loaded copy of a duplicated instance
    # (its other copy remains), and one file of an instance on its own.
    copies = next(paths for paths in by_uid.values() if len(paths) > 1)
    series_dir = next(
        p.parent for p in files[len(files) // 2 :] if p.parent not in {c.parent for c in copies}
    )
    whole_series = [p for p in files if p.parent == series_dir]
    uid = str(pydicom.dcmread(copies[0], stop_before_pixels=True).SOPInstanceUID)
    ((loaded_copy,),) = _ask(
        target, "SELECT file_path FROM dicom_instance WHERE sop_instance_uid = ?", [uid]
    )
    lone = next(
        paths[0]
        for paths in by_uid.values()
        if len(paths) == 1 and paths[0].parent != series_dir and paths[0] not in copies
    )
    lone_bytes, lone_stat = lone.read_bytes(), lone.stat()
    gone = {*whole_series, Path(loaded_copy), lone}
    for path in gone:
        path.unlink()
    left = [p for p in files if p not in gone]
    left_uids = set(_instances(left))

    second = _run(archive, tmp_path, target=target, incremental=True)
    assert second["deleted"] == {
        "checked": True,
        "reason": f"{archive.resolve()}/",
        "objects": len(gone & located_before),
        "instances": len(set(by_uid) - left_uids),
    }
    assert second["loaded"] == 0 and second["unchanged"] == len(left) - first["error_files"]
    assert second["validation_passed"], second["validation_failed"]
    assert second["validation"]["total_records"] == len(left_uids)
    assert second["validation"]["deleted_instances"] == len(set(by_uid) - left_uids)
    stamped = _located(target, "WHERE deleted_at IS NOT NULL")
    assert stamped == gone & located_before
    raw = {
        Path(p)
        for (p,) in _ask(target, "SELECT file_path FROM dicom_raw WHERE deleted_at IS NOT NULL")
    }
    assert raw == stamped
    deleted_uids = {
        u
        for (u,) in _ask(
            target, "SELECT sop_instance_uid FROM dicom_instance WHERE deleted_at IS NOT NULL"
        )
    }
    assert deleted_uids == set(by_uid) - left_uids
    # The duplicated instance lives on in its remaining copy, now its loaded file and
    # no longer a duplicate; the deleted copy is no duplicate either.
    ((path, deleted_at),) = _ask(
        target, "SELECT file_path, deleted_at FROM dicom_instance WHERE sop_instance_uid = ?", [uid]
    )
    assert Path(path) in set(copies) - gone and deleted_at is None
    # Its child rows name the copy it follows now, as its raw row does: a rebuild
    # finds the object's rows by that (as a fresh load of the copies left gives).
    ((order,),) = _ask(
        target, "SELECT _source_order FROM dicom_raw WHERE file_path = ?", [str(path)]
    )
    children = _ask(
        target,
        "SELECT DISTINCT e._source_order FROM dicom_element e JOIN dicom_instance i "
        "ON i.instance_key = e.instance_key WHERE i.sop_instance_uid = ?",
        [uid],
    )
    assert children == [(order,)]
    duplicates = {
        Path(p)
        for (p,) in _ask(
            target,
            "SELECT file_path FROM dicom_ingestion_errors WHERE error_category = 'DUPLICATE'",
        )
    }
    assert not duplicates & (gone | {Path(path)})
    # Series counts are those of the files left, as pydicom reads them.
    counts = dict(_ask(target, "SELECT series_instance_uid, number_of_instances FROM dicom_series"))
    expected = _series_counts(left)
    assert {s: n for s, n in counts.items() if n} == dict(expected)
    ((study_instances,),) = _ask(target, "SELECT sum(number_of_instances) FROM dicom_study")
    assert study_instances == len(left_uids)

    # The lone file comes back as it was: it is read again and lives again.
    lone.write_bytes(lone_bytes)
    os.utime(lone, (lone_stat.st_atime, lone_stat.st_mtime))
    third = _run(archive, tmp_path, target=target, incremental=True)
    assert third["loaded"] == 1 and third["deleted"]["objects"] == 0
    assert third["validation_passed"], third["validation_failed"]
    assert lone not in _located(target, "WHERE deleted_at IS NOT NULL")
    lone_uid = str(pydicom.dcmread(lone, stop_before_pixels=True).SOPInstanceUID)
    assert _ask(
        target, "SELECT deleted_at FROM dicom_instance WHERE sop_instance_uid = ?", [lone_uid]
    ) == [(None,)]
    ((study_instances,),) = _ask(target, "SELECT sum(number_of_instances) FROM dicom_study")
    assert study_instances == len(left_uids) + 1


def test_a_copy_gone_while_another_lives_stamps_no_instance(archive, tmp_path):
    """One of two copies of an instance deleted: one location stamped, no instance
    (its other copy still holds it), and the instance stays live."""
    target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    files = sorted(p.resolve() for p in archive.rglob("*") if p.is_file())
    _run(archive, tmp_path, target=target, incremental=True)
    uid, copies = next((u, paths) for u, paths in _instances(files).items() if len(paths) > 1)
    ((loaded,),) = _ask(
        target, "SELECT file_path FROM dicom_instance WHERE sop_instance_uid = ?", [uid]
    )
    other = next(p for p in copies if p != Path(loaded))
    other.unlink()
    after = _run(archive, tmp_path, target=target, incremental=True)
    assert after["deleted"]["objects"] == 1 and after["deleted"]["instances"] == 0, after
    live = _ask(target, "SELECT deleted_at FROM dicom_instance WHERE sop_instance_uid = ?", [uid])
    assert live == [(None,)]


def test_a_deletion_that_fails_midway_leaves_nothing_stamped(archive, tmp_path, target):
    """Stamping is one transaction: when the keys stop coming halfway (the listing's
    comparison failed), the stamps already made are rolled back, and the same
    connection goes on with no transaction left open."""
    _run(archive, tmp_path, target=target)
    keys = [k for (k,) in _ask(target, "SELECT location_key FROM dicom_file_location")]

    def batches():
        yield [int(k) for k in keys[:3]]
        raise RuntimeError("the listing broke")

    warehouse = open_warehouse(Target.parse(target))
    try:
        at = dt.datetime(2030, 1, 1)
        with pytest.raises(RuntimeError, match="listing broke"):
            warehouse.record_deletions(batches(), at, "test-run")
        stamped = "SELECT count(*) FROM dicom_file_location WHERE deleted_at IS NOT NULL"
        assert warehouse.query(stamped) == [(0,)]
        found = warehouse.record_deletions([[int(keys[0])]], at, "test-run")  # and it goes on
        assert (found.objects, warehouse.query(stamped)) == (1, [(1,)])
    finally:
        warehouse.close()


def _tables(target: str) -> dict[str, list[tuple]]:
    """Every table the loader writes, every column, sorted."""
    warehouse = open_warehouse(Target.parse(target))
    try:
        return {
            name: sorted((tuple(r) for r in warehouse.query(f"SELECT * FROM {name}")), key=repr)
            for name in EXTRACTED
        }
    finally:
        warehouse.close()


def test_deletions_failing_inside_their_transaction_change_nothing(
    archive, tmp_path, target, monkeypatch
):
    """A failure after the stamps, the re-pointing and the duplicates' marks, before
    the counts: every table is exactly as it was, and the next run records the
    deletions whole."""
    _run(archive, tmp_path, target=target, incremental=True)
    files = sorted(p for p in archive.rglob("*.dcm"))
    gone = files[: len(files) // 4]
    located = _located(target)
    keys = [
        int(key)
        for uri, key in _ask(target, "SELECT storage_uri, location_key FROM dicom_file_location")
        if Path(uri) in {p.resolve() for p in gone}
    ]
    before = _tables(target)
    monkeypatch.setenv("DICOM_LOADER_FAIL_AT", "mid-deletions")
    warehouse = open_warehouse(Target.parse(target))
    try:
        with pytest.raises(InjectedFault):
            warehouse.record_deletions([keys], dt.datetime(2030, 1, 1), "test-run")
    finally:
        warehouse.close()
    assert _tables(target) == before
    monkeypatch.delenv("DICOM_LOADER_FAIL_AT")
    for path in gone:
        path.unlink()
    again = _run(archive, tmp_path, target=target, incremental=True)
    stamped = {p.resolve() for p in gone} & located
    assert stamped and again["deleted"]["objects"] == len(stamped)
    assert _located(target, "WHERE deleted_at IS NOT NULL") == stamped
    assert again["validation_passed"], again["validation_failed"]


def test_a_listing_that_finds_nothing_deletes_nothing(archive, tmp_path):
    """An unmounted volume is an empty folder: the run stops with one line and stamps
    nothing (record_deletions refuses an empty listing too, below)."""
    _run(archive, tmp_path, incremental=True)
    for path in [p for p in archive.rglob("*") if p.is_file()]:
        path.unlink()
    with pytest.raises(ConfigError, match="no committed shards"):
        _run(archive, tmp_path, incremental=True)
    assert (
        _located(f"duckdb:///{tmp_path / 'sync.duckdb'}", "WHERE deleted_at IS NOT NULL") == set()
    )


def test_a_folder_that_could_not_be_read_deletes_nothing(tmp_path):
    """Objects the target holds that the listing did not name are kept live when a
    folder of the listing could not be read."""
    archive = tmp_path / "archive"
    synthesize(archive, patients=1, seed=5)
    _run(archive, tmp_path)
    warehouse = DuckDBWarehouse(str(tmp_path / "sync.duckdb"))
    try:
        scope = scope_of(str(archive))
        listed = SeenKeys()  # the listing named nothing it held...
        listed.add(np.array([1], dtype=np.uint64))
        unreadable = [f"{archive}/unreadable", f"{archive}/also"]
        found = record_deletions(warehouse, scope, listed, unreadable, "test-run")
        assert found == Deletions(False, f"2 folders could not be listed (first: {unreadable[0]})")
        (n,) = warehouse.query(
            "SELECT count(*) FROM dicom_file_location WHERE deleted_at IS NOT NULL"
        )[0]
        assert n == 0
        nothing = record_deletions(warehouse, scope, SeenKeys(), [], "test-run")
        assert nothing == Deletions(False, f"the listing of {scope.prefix} found no objects")
        assert (nothing.objects, nothing.instances) == (0, 0)
        not_a_prefix = DeletionScope(None, "a manifest")
        assert record_deletions(warehouse, not_a_prefix, listed, [], "r") == Deletions(
            False, "a manifest", 0, 0
        )
        # Every location listed: checked, nothing gone.
        every = SeenKeys()
        every.add(
            np.array(
                [
                    int(k)
                    for (k,) in warehouse.query("SELECT location_key FROM dicom_file_location")
                ],
                dtype=np.uint64,
            )
        )
        assert record_deletions(warehouse, scope, every, [], "r") == Deletions(
            True, scope.prefix, 0, 0
        )
        # ...and with every folder read, the same listing deletes them all.
        everything = record_deletions(warehouse, scope, listed, [], "test-run")
        (held,) = warehouse.query("SELECT count(*) FROM dicom_file_location")[0]
        (instances,) = warehouse.query("SELECT count(*) FROM dicom_instance")[0]
        assert everything == Deletions(True, scope.prefix, held, instances) and held > 0
    finally:
        warehouse.close()


@pytest.mark.parametrize(
    ("uri", "holder"),
    [
        ("/a/day.json#3", "/a/day.json"),  # an export's instance: the export
        ("zip://day.ndjson::/a/x.zip#0", "zip://day.ndjson::/a/x.zip"),  # listed in the zip
        ("tar://day.json.gz::/a/x.tar#2", "/a/x.tar"),  # held by the tar
        ("tar://m.dcm::/a/x.tar", "/a/x.tar"),
        ("zip://m.dcm::/a/x.zip", ""),  # a zip's members are listed one by one
        ("/a/scan#2", ""),  # a '#' in a name that is no export
        ("/a/day.json#notes", ""),  # an export's name and no instance index
        ("/a/m.dcm", ""),
    ],
)
def test_what_holds_an_object_the_listing_does_not_name(uri, holder):
    """The listing names an export and not its instances (`<export>#<index>`), a tar
    and not its members; a zip's members and every other object it names itself."""
    assert holder_of(uri) == holder


def test_sources_that_are_not_a_prefix_delete_nothing(tmp_path):
    manifest = tmp_path / "objects.txt"
    manifest.write_text("a.dcm\n")
    assert scope_of(str(manifest)) == DeletionScope(
        None, "a manifest or a single file names objects, not a prefix"
    )
    assert scope_of("dicomweb+http://127.0.0.1:1/dicom-web").prefix is None
    assert scope_of("s3://bucket/archive/") == DeletionScope("s3://bucket/archive/")


def test_deletions_on_the_s3_server_and_a_listing_that_fails(s3, tmp_path):
    options, traffic = s3
    local = tmp_path / "archive"
    synthesize(local, patients=2, seed=8)
    bucket = f"del-{uuid.uuid4().hex[:8]}"
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    fs.put(str(local) + "/", f"{bucket}/archive/", recursive=True)
    url = f"s3://{bucket}/archive"
    first = _run(url, tmp_path, "s3sync", options, incremental=True)
    db = f"duckdb:///{tmp_path / 's3sync.duckdb'}"
    keys = sorted(fs.find(f"{bucket}/archive"))
    victim = keys[len(keys) // 2]
    fs.rm(victim)
    # A listing the server fails does not delete: the run stops before its load.
    traffic.fail_lists = True
    with pytest.raises(ListingError):
        _run(url, tmp_path, "s3sync", options, incremental=True)
    traffic.fail_lists = False
    assert _ask(db, "SELECT count(*) FROM dicom_file_location WHERE deleted_at IS NOT NULL") == [
        (0,)
    ]
    second = _run(url, tmp_path, "s3sync", options, incremental=True)
    assert second["deleted"]["objects"] == 1 and second["deleted"]["reason"] == f"{url}/"
    stamped = _ask(db, "SELECT storage_uri FROM dicom_file_location WHERE deleted_at IS NOT NULL")
    assert stamped == [(f"s3://{victim}",)]
    assert second["validation_passed"], second["validation_failed"]
    assert second["unchanged"] == first["loaded"] + first["duplicates"] - 1


def test_the_dynamic_tables_leave_deleted_objects_out_as_the_loader_does(archive, tmp_path):
    """The dynamic-table pattern's instance logic (run on DuckDB) over dicom_raw after
    deletions: the live instances the loader keeps, each from the copy it points to."""
    from loader.warehouse.patterns.dialects import DUCKDB
    from loader.warehouse.patterns.dynamic_tables import instance_select

    target = f"duckdb:///{tmp_path / 'sync.duckdb'}"
    _run(archive, tmp_path, target=target, incremental=True)
    files = sorted(p.resolve() for p in archive.rglob("*") if p.is_file())
    by_uid = _instances(files)
    copies = next(paths for paths in by_uid.values() if len(paths) > 1)
    uid = str(pydicom.dcmread(copies[0], stop_before_pixels=True).SOPInstanceUID)
    ((loaded_copy,),) = _ask(
        target, "SELECT file_path FROM dicom_instance WHERE sop_instance_uid = ?", [uid]
    )
    lone = next(paths[0] for paths in by_uid.values() if len(paths) == 1)
    for path in (Path(loaded_copy), lone):
        path.unlink()
    report = _run(archive, tmp_path, target=target, incremental=True)
    assert report["deleted"]["objects"] == 2 and report["deleted"]["instances"] == 1
    dynamic = _ask(
        target, f"SELECT instance_key, file_path FROM ({instance_select(DUCKDB, 'dicom_raw')})"
    )
    live = _ask(
        target, "SELECT instance_key, file_path FROM dicom_instance WHERE deleted_at IS NULL"
    )
    assert sorted(dynamic) == sorted(live)
    assert len(live) == len(_instances([p for p in files if p.exists()]))


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("snowflake", marks=pytest.mark.server)])
def test_a_warehouse_made_before_deletions_gains_their_columns(kind, tmp_path, request):
    """A table an earlier version created lacks `deleted_at`: opening the warehouse
    adds it, and keeps the rows already there."""
    from loader.core.model import DIALECT_TYPES, ColumnType

    target = (
        f"duckdb:///{tmp_path / 'old.duckdb'}"
        if kind == "duckdb"
        else request.getfixturevalue("snowflake_target")
    )
    warehouse = open_warehouse(Target.parse(target))
    try:
        text = DIALECT_TYPES[kind][ColumnType.TEXT]
        warehouse.query(f"CREATE TABLE dicom_raw (file_path {text}, sop_instance_uid {text})")
        warehouse.query("INSERT INTO dicom_raw VALUES ('/a.dcm', '1.2.3')")
        warehouse.create_model()
        rows = warehouse.query("SELECT file_path, sop_instance_uid, deleted_at FROM dicom_raw")
        assert [tuple(r) for r in rows] == [("/a.dcm", "1.2.3", None)]
        warehouse.create_model()  # and once there, nothing more to add
    finally:
        warehouse.close()


def test_the_instances_of_an_export_live_while_the_export_is_listed(tmp_path):
    """A DICOM JSON export's instances are located at `export#index`: listed with it,
    deleted with it."""
    import json

    archive = tmp_path / "archive"
    synthesize(archive / "files", patients=1, seed=2)
    export = archive / "study.ndjson"
    export.write_text(
        "".join(
            json.dumps(pydicom.dcmread(p, stop_before_pixels=True).to_json_dict()) + "\n"
            for p in (real_file("CT_small.dcm"), real_file("MR_small.dcm"))
        )
    )
    target = f"duckdb:///{tmp_path / 'sync.duckdb'}"
    first = _run(archive, tmp_path, target=target, incremental=True)
    assert first["loaded"] > 0
    again = _run(archive, tmp_path, target=target, incremental=True)
    assert again["deleted"]["objects"] == 0, again["deleted"]
    exported = _ask(
        target,
        "SELECT count(*) FROM dicom_file_location WHERE storage_uri LIKE ?",
        [f"{export.resolve()}#%"],
    )[0][0]
    assert exported > 0
    export.unlink()
    gone = _run(archive, tmp_path, target=target, incremental=True)
    assert gone["deleted"]["objects"] == exported


def test_a_file_rewritten_with_an_older_time_replaces_what_it_gave(tmp_path, target):
    """A file rewritten in place, or restored from a backup, may carry an older
    modification time than the bytes it replaces. Read again, it replaces what it gave
    before (its location, its instance's values), and the next reload reads nothing:
    its new size and time are what the target holds."""
    archive = tmp_path / "archive"
    synthesize(archive, patients=1, seed=8, duplicate_fraction=0)
    first = _run(archive, tmp_path, target=target, incremental=True)
    victim = sorted(p for p in archive.rglob("*.dcm") if p.is_file())[0]
    before = victim.stat().st_mtime
    ds = pydicom.dcmread(victim)
    ds.SeriesDescription = "restored from backup"
    ds.StudyDescription = "restored from backup"
    ds.save_as(victim, enforce_file_format=True)
    os.utime(victim, (before - 86400 * 365, before - 86400 * 365))  # a year older
    again = _run(archive, tmp_path, target=target, incremental=True)
    assert again["listed"] - again["unchanged"] == 1
    ((size, loaded_from),) = _ask(
        target,
        "SELECT l.file_size_bytes, i.file_path FROM dicom_file_location l JOIN dicom_instance i "
        "ON i.instance_key = l.instance_key WHERE l.storage_uri = ?",
        [str(victim)],
    )
    assert size == victim.stat().st_size and loaded_from == str(victim)
    ((raw,),) = _ask(target, "SELECT metadata FROM dicom_raw WHERE file_path = ?", [str(victim)])
    assert "restored from backup" in str(raw)
    quiet = _run(archive, tmp_path, target=target, incremental=True)
    assert quiet["unchanged"] == quiet["listed"] == first["listed"]
    assert quiet["bytes_read"] == 0


_DOSE = ("CTDIvol", "KVP", "ExposureTime", "XRayTubeCurrent", "Exposure")
_SHARED = (
    "dicom_patient",
    "dicom_study",
    "dicom_series",
    "dicom_equipment",
    "dicom_procedure_step",
    "dicom_dose_summary",
)


def _rewrite(path: Path, mtime: float, **values) -> pydicom.Dataset:
    """`path` with `values` set (None: removed), written at `mtime`; as pydicom reads it."""
    ds = pydicom.dcmread(path)
    for name, value in values.items():
        if value is None:
            if name in ds:
                delattr(ds, name)
        else:
            setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)
    os.utime(path, (mtime, mtime))
    return pydicom.dcmread(path, stop_before_pixels=True)


def _shared_rows(target: str) -> dict[str, list[tuple]]:
    """The entity tables an object's deletion can pass on, load columns aside, sorted;
    arrays and documents read (Snowflake gives them as JSON text, DuckDB as lists)."""

    def read(value):
        try:
            return json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:  # text, not a document
            return value

    found = {}
    for name in _SHARED:
        columns = [c for c in BY_NAME[name].column_names if c not in ("_run_id", "_loaded_at")]
        rows = _ask(target, f"SELECT {', '.join(columns)} FROM {name}")
        found[name] = sorted((tuple(read(v) for v in r) for r in rows), key=repr)
    return found


def _series_rows(target: str, uid: str) -> dict[str, list[tuple]]:
    """A series' rows in the tables keyed by series, its counts aside."""
    found = {}
    for name in ("dicom_series", "dicom_equipment", "dicom_dose_summary"):
        columns = [c for c in BY_NAME[name].column_names if c != "number_of_instances"]
        found[name] = _ask(
            target,
            f"SELECT {', '.join(columns)} FROM {name} WHERE series_key = "
            "(SELECT series_key FROM dicom_series WHERE series_instance_uid = ?)",
            [uid],
        )
    return found


def test_an_entity_row_passes_to_the_newest_live_object_as_a_fresh_load_gives(tmp_path, target):
    """The newest object of a series gives its series, study, patient, equipment and
    dose rows. Deleted, they come from the newest object left that gives each: the
    next image for the series (which names no dose), the fourth newest left for the
    dose summary. A series whose image left names no dose loses its dose row; a series
    deleted whole keeps its rows, counted 0. Values as pydicom reads the files; every
    entity table as a fresh load of what is left (but the series deleted whole)."""
    archive = tmp_path / "archive"
    synthesize(archive, patients=3, seed=5, duplicate_fraction=0)
    files = sorted(p.resolve() for p in archive.rglob("*.dcm"))
    series: dict[str, list[Path]] = {}  # series with dose values → their files
    studies: dict[str, set[str]] = {}  # study → its series
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        studies.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SeriesInstanceUID))
        if "KVP" in ds:
            series.setdefault(str(ds.SeriesInstanceUID), []).append(path)
    first, second, third = sorted(series.values(), key=len, reverse=True)[:3]
    assert len(first) >= 5 and len(second) >= 2
    # A series deleted whole, in a study that lives on: its rows stay as they were.
    whole = str(pydicom.dcmread(third[0], stop_before_pixels=True).SeriesInstanceUID)
    assert any(whole in s and len(s) > 1 for s in studies.values())
    newest = max(p.stat().st_mtime for p in files) + 1000
    # The first series, newest first: gone, before and two more with no dose, older.
    older, *undosed, before, gone = first[:5]
    old = _rewrite(older, newest + 1, KVP=100, CTDIvol=5.5)
    for rank, path in enumerate(undosed):
        _rewrite(path, newest + 1.2 + rank / 10, **dict.fromkeys(_DOSE))
    kept = _rewrite(
        before, newest + 2, SeriesDescription="kept", StationName="KEPT", StudyDescription="kept",
        **dict.fromkeys(_DOSE),
    )  # fmt: skip
    _rewrite(gone, newest + 3, SeriesDescription="gone", StationName="GONE", KVP=140, CTDIvol=20)
    # The second series: two images, the newer alone with a dose.
    for path in second[2:]:
        path.unlink()
    _rewrite(second[1], second[1].stat().st_mtime, **dict.fromkeys(_DOSE))
    dosed = _rewrite(second[0], newest + 4, KVP=80)
    _run(archive, tmp_path, target=target, incremental=True)
    ((order,),) = _ask(
        target, "SELECT _source_order FROM dicom_series WHERE series_instance_uid = ?",
        [str(kept.SeriesInstanceUID)],
    )  # fmt: skip
    assert order.endswith(f"\\{gone}")  # the deleted object gave the series row
    assert _ask(
        target, "SELECT count(*) FROM dicom_dose_summary d JOIN dicom_series s "
        "ON s.series_key = d.series_key WHERE s.series_instance_uid = ?",
        [str(dosed.SeriesInstanceUID)],
    ) == [(1,)]  # fmt: skip

    whole_rows = _series_rows(target, whole)
    assert all(whole_rows.values())

    for path in (gone, second[0], *series[whole]):
        path.unlink()
    after = _run(archive, tmp_path, target=target, incremental=True)
    assert after["deleted"]["objects"] == 2 + len(series[whole]) and after["validation_passed"]
    assert _series_rows(target, whole) == whole_rows
    assert _ask(
        target, "SELECT number_of_instances FROM dicom_series WHERE series_instance_uid = ?",
        [whole],
    ) == [(0,)]  # fmt: skip
    by_series = (
        "SELECT s.series_description, s._source_order, e.station_name, st.study_description, "
        "d.kvp, d.ctdi_vol, d._source_order FROM dicom_series s "
        "JOIN dicom_study st ON st.study_key = s.study_key "
        "LEFT JOIN dicom_equipment e ON e.series_key = s.series_key "
        "LEFT JOIN dicom_dose_summary d ON d.series_key = s.series_key "
        "WHERE s.series_instance_uid = ?"
    )
    ((description, order, station, study, kvp, ctdi, dose_order),) = _ask(
        target, by_series, [str(kept.SeriesInstanceUID)]
    )
    assert (description, station, study) == (
        kept.SeriesDescription, kept.StationName, kept.StudyDescription,
    )  # fmt: skip
    assert order.endswith(f"\\{before}")
    assert (kvp, ctdi) == (float(old.KVP), float(old.CTDIvol))
    assert dose_order.endswith(f"\\{older}")
    ((*_, kvp, ctdi, dose_order),) = _ask(target, by_series, [str(dosed.SeriesInstanceUID)])
    assert (kvp, ctdi, dose_order) == (None, None, None)  # no image left names a dose

    fresh = f"duckdb:///{tmp_path / 'fresh.duckdb'}"
    _run(archive, tmp_path, name="fresh", target=fresh)
    ours, theirs = _shared_rows(target), _shared_rows(fresh)
    ((whole_key,),) = _ask(
        target, "SELECT series_key FROM dicom_series WHERE series_instance_uid = ?", [whole]
    )
    for name in ("dicom_series", "dicom_equipment", "dicom_dose_summary"):
        ours[name] = [row for row in ours[name] if row[0] != whole_key]  # keyed by series
    assert ours == theirs
