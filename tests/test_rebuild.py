"""`dicom-loader rebuild`: tables derived again from the stored headers equal those
a load made, without one archive read; a change to the extraction reaches them."""

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from loader.core.errors import FILE_ERROR_CATEGORIES, ConfigError
from loader.core.model import AUDIT, BY_NAME, EXTRACTED
from loader.jobs.pipeline import run
from loader.jobs.rebuild import rebuild
from loader.jobs.settings import RunSettings, Target
from loader.jobs.targets import open_warehouse
from loader.synth import synthesize
from tests.conftest import real_file
from tests.highdicom_objects import build

PER_RUN = {"_shard_id", "detected_at"}  # a DUPLICATE row is detected by each load


def _snapshot(target: str) -> dict[str, list[tuple]]:
    """Every extracted table, sorted, without the columns a run stamps."""
    warehouse = open_warehouse(Target.parse(target))
    try:
        tables = {}
        for name in EXTRACTED:
            columns = [
                c
                for c in BY_NAME[name].column_names
                if c not in PER_RUN and c not in {a.name for a in AUDIT}
            ]
            rows = warehouse.query(f"SELECT {', '.join(columns)} FROM {name}")
            tables[name] = sorted((tuple(r) for r in rows), key=repr)
        return tables
    finally:
        warehouse.close()


@pytest.fixture
def archive(tmp_path) -> Path:
    root = tmp_path / "archive"
    synthesize(root, patients=3, seed=17, bad_fraction=0.05, duplicate_fraction=0.1)
    real = root / "real"
    real.mkdir()
    names = ("CT_small.dcm", "MR_small_RLE.dcm", "rtplan.dcm", "rtstruct.dcm", "JPEG2000.dcm")
    for name in (*names, "badVR.dcm"):
        shutil.copy(real_file(name), real / name)
    (root / "derived").mkdir()
    build(root / "derived")  # a segmentation and a measurement report (highdicom)
    return root


@pytest.fixture(params=["duckdb", pytest.param("snowflake", marks=pytest.mark.server)])
def target(request, tmp_path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'rebuild.duckdb'}"
    return request.getfixturevalue("snowflake_target")


def _load(archive: Path, tmp_path: Path, target: str, **kw):
    return run(
        RunSettings(
            source=str(archive),
            out=tmp_path / "pq",
            target=Target.parse(target),
            workers=kw.pop("workers", 0),
            **kw,
        )
    )


@pytest.mark.parametrize("frame_offsets", [False, True], ids=["", "frame-offsets"])
def test_a_rebuild_equals_the_load_and_reads_nothing(archive, tmp_path, target, frame_offsets):
    """With --frame-offsets too: the frames the load located from offset tables it
    read are located again, though the rebuild reads nothing."""
    loaded = _load(archive, tmp_path, target, frame_offsets=frame_offsets)
    before = _snapshot(target)
    sources = {row[-3] for row in before["dicom_frame"]}  # frame_offset_source
    assert ({"basic offset table", "single frame"} <= sources) is frame_offsets
    shutil.rmtree(archive)  # not one object can be read now
    report = rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run=None, workers=2)
    assert report["bytes_read"] == 0 and report["read_requests"] == 0
    assert report["listed"] == len(before["dicom_raw"])
    assert report["loaded"] == loaded["loaded"] and report["duplicates"] == loaded["duplicates"]
    assert report["validation_passed"], report["validation_failed"]
    assert _snapshot(target) == before
    located = sum(1 for row in before["dicom_frame"] if row[-5] is not None)  # frame_offset
    assert 0 < located <= report["frame_offsets"]["frames_located"]


def test_a_change_to_the_extraction_reaches_every_rebuilt_row(archive, tmp_path, monkeypatch):
    """A deliberate change (series descriptions upper-cased) carried by a rebuild in
    this process, with the archive gone: every series shows it, as pydicom reads the
    description the object held."""
    from loader.extract import hierarchy

    target = f"duckdb:///{tmp_path / 'rebuild.duckdb'}"
    _load(archive, tmp_path, target)
    descriptions = {}
    for path in archive.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            descriptions[str(ds.SeriesInstanceUID)] = str(ds.get("SeriesDescription", "")) or None
        except Exception:  # noqa: BLE001 - the archive's bad objects
            continue
    shutil.rmtree(archive)
    series = hierarchy.series

    def shouting(ex):
        row = series(ex)
        if row.get("series_description"):
            row["series_description"] = row["series_description"].upper()
        return row

    monkeypatch.setattr(hierarchy, "series", shouting)
    report = rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run=None)
    assert report["bytes_read"] == 0 and report["validation_passed"]
    warehouse = open_warehouse(Target.parse(target))
    try:
        rows = dict(
            warehouse.query("SELECT series_instance_uid, series_description FROM dicom_series")
        )
    finally:
        warehouse.close()
    expected = {uid: d.upper() if d else None for uid, d in descriptions.items()}
    assert {uid: rows[uid] for uid in expected} == expected
    assert any(d and d != d.lower() for d in rows.values())


def test_a_rebuild_of_one_run_takes_only_its_headers(archive, tmp_path):
    target = f"duckdb:///{tmp_path / 'rebuild.duckdb'}"
    first = _load(archive, tmp_path, target, run_id="first")
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(real_file("CT_small.dcm"), extra / "ct.dcm")
    _load(extra, tmp_path, target, run_id="second")
    report = rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run="second")
    assert report["listed"] == 1 and report["loaded"] == 1
    assert report["source"] == f"the headers {Target.parse(target)} stores of run second"
    with pytest.raises(ConfigError, match="no headers loaded by run nothing"):
        rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run="nothing")
    assert first["loaded"] > 1


def test_a_warehouse_made_by_an_earlier_version_is_upgraded_before_a_rebuild(tmp_path):
    """The stored headers are read with every column the model has now: a column an
    earlier version's warehouse lacks is added first (empty, as an upgrade before a
    run adds it), so the rebuild reads and loads, never fails on the missing name."""
    import duckdb

    target = f"duckdb:///{tmp_path / 'old.duckdb'}"
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(real_file("CT_small.dcm"), extra / "ct.dcm")
    _load(extra, tmp_path, target)
    with duckdb.connect(str(tmp_path / "old.duckdb")) as con:  # as an earlier version left it
        con.execute("ALTER TABLE dicom_file_location DROP COLUMN pixel_data_length")
    report = rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run=None)
    assert report["loaded"] == 1 and report["validation_passed"]
    assert report["bytes_listed"] == (extra / "ct.dcm").stat().st_size  # as stored, not read
    expected = pydicom.dcmread(real_file("CT_small.dcm")).InstanceNumber
    with duckdb.connect(str(tmp_path / "old.duckdb"), read_only=True) as con:
        assert con.sql("SELECT instance_number FROM dicom_instance").fetchall() == [(expected,)]
        assert con.sql("SELECT pixel_data_length FROM dicom_file_location").fetchall() == [
            (None,)  # lost with the column; the next run of the object fills it
        ]


def test_rebuild_from_the_command_line(archive, tmp_path):
    import json

    from tests.test_cli import dicom_loader

    target = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    dicom_loader("run", str(archive), "--out", str(tmp_path / "pq"), "--target", target)
    neither = dicom_loader("rebuild", "--target", target, check=False)
    assert neither.returncode == 1 and neither.stderr.strip().count("\n") == 0
    assert "give --run-id ID or --all" in neither.stderr
    report = tmp_path / "rebuild.json"
    done = dicom_loader(
        "rebuild",
        "--all",
        "--target",
        target,
        "--out",
        str(tmp_path / "rebuilt"),
        "--workers",
        "0",
        "--report",
        str(report),
    )
    assert "bytes read" in done.stdout
    written = json.loads(report.read_text())
    assert written["bytes_read"] == 0 and written["validation_passed"]
    assert written["run_id"].startswith("rebuild-")


# Tables the archive gives no row: none, so a rebuild that drops any one is seen.
EMPTY_IN_THE_ARCHIVE: frozenset[str] = frozenset()


def test_a_rebuild_from_a_runs_parquet_fills_a_fresh_warehouse(archive, tmp_path, target):
    """The run's own Parquet holds the stored headers too: rebuilt from it into a
    fresh warehouse of either dialect, with the archive gone, every table equals the
    load's, table by table (but for the error rows of objects that had no header to
    store: nothing rebuilds them)."""
    loaded_into = f"duckdb:///{tmp_path / 'first.duckdb'}"
    _load(archive, tmp_path, loaded_into, run_id="written")
    shutil.rmtree(archive)
    report = rebuild(
        Target.parse(target),
        str(tmp_path / "rebuilt"),
        from_run="written",
        from_parquet=str(tmp_path / "pq"),
    )
    assert report["bytes_read"] == 0 and report["validation_passed"]
    ours, theirs = _snapshot(target), _snapshot(loaded_into)
    no_header = {c.value for c in FILE_ERROR_CATEGORIES} - {"VALIDATION_ERROR"}
    theirs["dicom_ingestion_errors"] = [
        row for row in theirs["dicom_ingestion_errors"] if row[1] not in no_header
    ]
    assert {name for name, rows in theirs.items() if not rows} == EMPTY_IN_THE_ARCHIVE
    for name in EXTRACTED:
        assert _documents_read(ours[name]) == _documents_read(theirs[name]), name


def _documents_read(rows: list[tuple]) -> list[tuple]:
    """Rows with each JSON document read: a warehouse spells a number its own way
    (DuckDB keeps `1e-6` as written, a Snowflake VARIANT gives it back `0.000001`)."""

    def read(value):
        try:
            return json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:  # text, not a document
            return value

    return sorted((tuple(read(v) for v in row) for row in rows), key=repr)


def test_rebuild_settings_never_show_storage_credentials():
    from loader.jobs.rebuild import RebuildSettings

    assert "Ss-rebuild" not in repr(RebuildSettings("s3://b/out", "r", {"secret": "Ss-rebuild"}))


def test_a_rebuild_into_a_folder_it_cannot_write_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    target = Target.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with pytest.raises(
        ConfigError, match=r"--out .*a-file/out: cannot write there \(Not a directory\)$"
    ):
        rebuild(target, str(tmp_path / "a-file" / "out"), from_run=None)


@pytest.mark.slow
def test_a_rebuild_failing_while_it_publishes_leaves_no_spooled_file(tmp_path, monkeypatch):
    """A part that fails with one of its files published and the others spooled
    (a full disk, an interrupt) leaves no spooled file behind and commits nothing;
    the rebuild run again equals the load."""
    from loader.core.faults import InjectedFault
    from loader.output import ledger
    from loader.output.location import OutputRoot

    extra = tmp_path / "extra"
    extra.mkdir()
    for name in ("CT_small.dcm", "rtstruct.dcm"):
        shutil.copy(real_file(name), extra / name)
    target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _load(extra, tmp_path, target)
    before = _snapshot(target)
    monkeypatch.setenv("DICOM_LOADER_FAIL_AT", "mid-publish")
    with pytest.raises(InjectedFault):
        rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run=None)
    written = [p for p in (tmp_path / "rebuilt").rglob("*") if p.is_file()]
    assert [p for p in written if p.name.endswith(".tmp")] == []
    assert sum(p.name.endswith(".parquet") and "dicom_" in p.parent.parent.name for p in written)
    (run_folder,) = (tmp_path / "rebuilt" / "_ledger").iterdir()
    run_id = run_folder.name.removeprefix("run_id=")
    assert list(ledger.committed_shards(OutputRoot.of(str(tmp_path / "rebuilt")), run_id)) == []
    monkeypatch.delenv("DICOM_LOADER_FAIL_AT")
    report = rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run=None)
    assert report["validation_passed"] and _snapshot(target) == before


def test_a_stored_header_that_cannot_be_derived_is_an_error_row_of_no_bytes(tmp_path):
    """A document damaged in the warehouse ends as a PARSE_ERROR row of the rebuild,
    which read nothing: its bytes read are 0, as the report's are."""
    import duckdb

    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(real_file("CT_small.dcm"), extra / "ct.dcm")
    target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _load(extra, tmp_path, target)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("UPDATE dicom_raw SET metadata = '[1, 2]'")
    report = rebuild(Target.parse(target), str(tmp_path / "rebuilt"), from_run=None)
    assert report["bytes_read"] == 0 and report["errors"] == {"PARSE_ERROR": 1}
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT error_category, bytes_read, error_message FROM dicom_ingestion_errors "
            "WHERE _run_id = ?",
            [report["run_id"]],
        ).fetchall()
    assert [(category, read) for category, read, _ in rows] == [("PARSE_ERROR", 0)]
    assert rows[0][2].startswith("stored header cannot be rebuilt")


def test_a_rebuild_writes_its_parts_to_an_object_store_with_its_options(tmp_path, s3):
    """--out on a bucket: the parts and the run's ledger go there through the storage
    options given (the moto server's endpoint and keys), and the load reads them back."""
    import uuid

    import s3fs

    options, _ = s3
    bucket = f"rebuild-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(real_file("CT_small.dcm"), extra / "ct.dcm")
    target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _load(extra, tmp_path, target)
    before = _snapshot(target)
    report = rebuild(
        Target.parse(target), f"s3://{bucket}/out", from_run=None, storage_options=options
    )
    assert report["loaded"] == 1 and report["bytes_read"] == 0 and report["validation_passed"]
    assert _snapshot(target) == before
    written = s3fs.S3FileSystem(**options).find(f"{bucket}/out")
    assert any(path.endswith("run.json") for path in written), written
    assert any(path.endswith(".parquet") for path in written), written
