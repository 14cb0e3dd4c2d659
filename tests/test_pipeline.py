"""End to end on real engines: listing, Dask, Parquet, ledger, DuckDB, validation."""

import os
from pathlib import Path

import duckdb
import pydicom
import pytest
from pydicom.dataset import Dataset

from loader.core.errors import ObjectError
from loader.core.model import BY_NAME, EXTRACTED
from loader.dicom.decode import decode_header
from loader.dicom.from_json import instances_in
from loader.extract.values import text
from loader.headers.reader import read_local
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.sources.containers import is_export
from loader.sources.listing import ObjectRef, make_shards

AUDIT = {"_run_id", "_loaded_at", "ingested_at", "detected_at"}


def settings(source, tmp_path: Path, name: str = "w", target_none=False, **kw) -> RunSettings:
    kw.setdefault("workers", 0)
    return RunSettings(
        source=str(source),
        out=tmp_path / f"{name}-parquet",
        target=Target.parse("none" if target_none else f"duckdb:///{tmp_path / name}.duckdb"),
        **kw,
    )


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every loaded table, sorted, without audit columns."""
    con = duckdb.connect(str(db), read_only=True)
    tables = {}
    for name in EXTRACTED:
        cols = [c for c in BY_NAME[name].column_names if c not in AUDIT]
        tables[name] = sorted(
            con.execute(f"SELECT {', '.join(cols)} FROM {name}").fetchall(), key=repr
        )
    con.close()
    return tables


@pytest.fixture(scope="module")
def real_run(real_archive, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-run")
    report = run(settings(real_archive, tmp, shard_size=40, run_id="real"))
    return report, tmp / "w.duckdb", real_archive


def test_every_pydicom_file_is_accounted_for(real_run):
    report, db, archive = real_run
    files = sorted(str(p) for p in archive.rglob("*") if p.is_file())
    assert report["validation"]["accounting"]["balanced"]
    con = duckdb.connect(str(db), read_only=True)
    loaded = {r[0] for r in con.execute("SELECT file_path FROM dicom_instance").fetchall()}
    errors = dict(
        con.execute(
            "SELECT file_path, min(error_category) FROM dicom_ingestion_errors "
            "WHERE error_category <> 'TYPE_CAST_ERROR' GROUP BY 1"
        ).fetchall()
    )
    exports = [path for path in files if is_export(path)]
    assert exports  # pydicom ships DICOM JSON too: each instance is one object
    instances = 0
    for path in exports:
        found = {p for p in loaded | set(errors) if p.startswith(f"{path}#")}
        assert found or path in errors, path
        instances += len(found) or 1
    assert report["listed"] == len(files) - len(exports) + instances
    for path in files:
        if path in exports:
            continue
        outcomes = (path in loaded) + (path in errors)
        assert outcomes == 1, path
        try:
            parsed = read_local(path, os.path.getsize(path))
        except ObjectError as exc:
            assert errors[path] == exc.category, path
            continue
        root = decode_header(parsed, path).root
        if path in errors and errors[path] == "DUPLICATE":
            assert text(root, "SOPInstanceUID")
        elif path in errors:
            assert errors[path] == "VALIDATION_ERROR"
            assert not all(
                text(root, k) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
            )


def _reference(path: str) -> Dataset:
    """pydicom's reading of a loaded object: a file, or an instance of a DICOM JSON
    export (`export#index`)."""
    if "#" in path:
        export, index = path.rsplit("#", 1)
        instance = instances_in(Path(export).read_bytes(), export)[int(index)]
        return Dataset.from_json(instance)
    return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def test_loaded_values_equal_pydicom(real_run):
    _, db, _ = real_run
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT i.file_path, i.sop_instance_uid, st.study_instance_uid,"
        " se.modality, px.image_rows, px.image_columns, px.number_of_frames, st.study_date,"
        " i.sop_class_uid, i.transfer_syntax_uid "
        "FROM dicom_instance i JOIN dicom_series se USING (series_key) "
        "JOIN dicom_study st ON st.study_key = se.study_key "
        "LEFT JOIN dicom_image_pixel px ON px.instance_key = i.instance_key"
    ).fetchall()
    assert len(rows) > 100
    study_dates: dict[str, set] = {}
    loaded_dates = {}
    for path, sop, study, modality, nrows, ncols, frames, date, sop_class, syntax in rows:
        ds = _reference(path)
        assert syntax == (ds.get("file_meta", Dataset()).get("TransferSyntaxUID") or None)
        assert sop == ds.SOPInstanceUID
        assert study == ds.StudyInstanceUID
        assert sop_class == (ds.get("SOPClassUID") or None)
        assert (modality or None) == (ds.get("Modality") or None)
        if "Rows" in ds:
            assert (nrows, ncols) == (ds.Rows, ds.Columns)
            assert frames == int(ds.get("NumberOfFrames") or 1)
        study_dates.setdefault(study, set()).add((ds.get("StudyDate") or "").replace(".", ""))
        loaded_dates[study] = date
    # A study's date comes from one of its instances (the most recent file wins).
    for study, date in loaded_dates.items():
        if date is not None:
            assert date.strftime("%Y%m%d") in study_dates[study]


def test_loaded_names_equal_pydicom(real_run):
    _, db, _ = real_run
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT i.file_path, p.patient_key, p.patient_name FROM dicom_instance i "
        "JOIN dicom_series se USING (series_key) "
        "JOIN dicom_study st ON st.study_key = se.study_key "
        "JOIN dicom_patient p ON p.patient_key = st.patient_key"
    ).fetchall()
    decoded: dict[int, set] = {}
    loaded = {}
    for path, patient_key, name in rows:
        ds = _reference(path)
        decoded.setdefault(patient_key, set()).add(str(ds.get("PatientName", "")) or None)
        loaded[patient_key] = name
    # A patient's name is the name pydicom decodes from one of its instances.
    for patient_key, name in loaded.items():
        assert name in decoded[patient_key], (name, decoded[patient_key])
    assert sum(1 for n in loaded.values() if n) > 10


def test_japanese_name_loads_as_unicode(real_run):
    _, db, _ = real_run
    con = duckdb.connect(str(db), read_only=True)
    names = {r[0] for r in con.execute("SELECT patient_name FROM dicom_patient").fetchall()}
    assert "Yamada^Tarou=山田^太郎=やまだ^たろう" in names
    (json_name,) = con.execute(
        "SELECT metadata->>'$.PatientName' FROM dicom_raw WHERE file_path LIKE '%chrH31.dcm'"
    ).fetchone()
    assert json_name == "Yamada^Tarou=山田^太郎=やまだ^たろう"


def test_synth_archive_on_dask_cluster(synth_archive, tmp_path):
    root, summary = synth_archive
    report = run(
        settings(root, tmp_path, workers=2, cluster_min_objects=0, shard_size=60, run_id="dask")
    )
    assert report["listed"] == summary.files
    assert report["loaded"] == summary.instances
    assert report["duplicates"] == summary.duplicates
    assert report["error_files"] == sum(summary.bad.values())
    expected_errors = dict(summary.bad)
    expected_errors["DUPLICATE"] = summary.duplicates
    expected_errors["TYPE_CAST_ERROR"] = summary.type_cast_objects
    assert report["errors"] == dict(sorted(expected_errors.items()))
    checks = report["validation"]
    assert checks["orphan_series"] == checks["orphan_instances"] == 0
    assert checks["unique_patients"] == summary.patients
    assert checks["unique_studies"] == summary.studies
    assert checks["unique_series"] == summary.series
    assert report["validation_passed"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    # Counts are computed from what was loaded.
    bad = con.execute(
        "SELECT count(*) FROM dicom_study st WHERE number_of_instances <> "
        "(SELECT count(*) FROM dicom_instance i JOIN dicom_series se USING (series_key) "
        "WHERE se.study_key = st.study_key)"
    ).fetchone()[0]
    assert bad == 0
    workers = {
        r[0] for r in con.execute("SELECT DISTINCT _run_id FROM dicom_load_history").fetchall()
    }
    assert workers == {"dask"}
    # Each worker's value store is its own, kept across its shards, and counted.
    records = list(ledger.committed_shards(OutputRoot.of(tmp_path / "w-parquet"), "dask"))
    counts = [r.value_store for r in records]
    assert len(records) > 2 and all(c["hits"] + c["misses"] > 0 for c in counts)
    assert sum(c["hits"] for c in counts) > sum(c["misses"] for c in counts)
    by_worker: dict[int, list[int]] = {}
    for r in sorted(records, key=lambda r: r.started_at):
        by_worker.setdefault(r.worker_pid, []).append(r.value_store["misses"])
    assert len(by_worker) == 2
    for misses in by_worker.values():  # a worker's later shards find its first's elements
        if len(misses) > 1:
            assert sum(misses[1:]) / len(misses[1:]) < misses[0]


def test_rerun_leaves_identical_tables(synth_archive, tmp_path):
    root, _ = synth_archive
    first = run(settings(root, tmp_path, shard_size=50, run_id="one"))
    before = snapshot(tmp_path / "w.duckdb")
    second = run(settings(root, tmp_path, shard_size=50, run_id="two"))
    after = snapshot(tmp_path / "w.duckdb")
    assert before == after
    assert second["new_instances"] == 0
    assert second["loaded"] == first["loaded"]


def test_same_instance_twice_is_one_instance_two_locations(tmp_path):
    from tests.conftest import real_file

    archive = tmp_path / "archive"
    (archive / "a").mkdir(parents=True)
    (archive / "b").mkdir()
    data = Path(real_file("CT_small.dcm")).read_bytes()
    (archive / "a" / "ct.dcm").write_bytes(data)
    (archive / "b" / "ct copy.dcm").write_bytes(data)
    os.utime(archive / "a" / "ct.dcm", (1_600_000_000, 1_600_000_000))
    os.utime(archive / "b" / "ct copy.dcm", (1_700_000_000, 1_700_000_000))
    report = run(settings(archive, tmp_path))
    assert (report["listed"], report["loaded"], report["duplicates"]) == (2, 1, 1)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM dicom_instance").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM dicom_file_location").fetchone()[0] == 2
    # Most recent file wins; the other is the one DUPLICATE row.
    (winner,) = con.execute("SELECT file_path FROM dicom_instance").fetchone()
    assert winner.endswith("ct copy.dcm")
    dups = con.execute(
        "SELECT file_path FROM dicom_ingestion_errors WHERE error_category = 'DUPLICATE'"
    ).fetchall()
    assert [d[0] for d in dups] == [str(archive / "a" / "ct.dcm")]


def test_winner_does_not_depend_on_load_order(tmp_path):
    from tests.conftest import real_file

    data = Path(real_file("MR_small.dcm")).read_bytes()
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, stamp in ((old, 1_500_000_000), (new, 1_600_000_000)):
        folder.mkdir()
        (folder / "mr.dcm").write_bytes(data)
        os.utime(folder / "mr.dcm", (stamp, stamp))
    orders = {}
    for name, sources in (("newfirst", (new, old)), ("oldfirst", (old, new))):
        for index, source in enumerate(sources):
            run(settings(source, tmp_path, name=name, run_id=f"r{index}"))
        orders[name] = snapshot(tmp_path / f"{name}.duckdb")
    assert orders["newfirst"] == orders["oldfirst"]
    assert orders["newfirst"]["dicom_instance"][0][
        BY_NAME["dicom_instance"].column_names.index("file_path")
    ] == str(new / "mr.dcm")


@pytest.mark.slow
def test_a_shard_failing_while_it_publishes_leaves_no_spooled_file(
    synth_archive, tmp_path, monkeypatch
):
    """A shard that fails with one file published and the others spooled commits no
    record and leaves no spooled file; the run again loads what a clean run loads."""
    from loader.core.faults import InjectedFault

    root, _ = synth_archive
    failing = settings(root, tmp_path, "failing", run_id="half")
    monkeypatch.setenv("DICOM_LOADER_FAIL_AT", "mid-publish")
    with pytest.raises(InjectedFault):
        run(failing)
    written = [p for p in failing.out.rglob("*") if p.is_file()]
    assert [p for p in written if p.name.endswith(".tmp")] == []
    assert any(p.name.endswith(".parquet") for p in written)  # one was published
    assert list(ledger.committed_shards(OutputRoot.of(str(failing.out)), "half")) == []
    monkeypatch.delenv("DICOM_LOADER_FAIL_AT")
    run(failing)
    run(settings(root, tmp_path, "clean"))
    assert snapshot(tmp_path / "failing.duckdb") == snapshot(tmp_path / "clean.duckdb")


@pytest.mark.slow
def test_resume_skips_committed_shards(synth_archive, tmp_path):
    root, _ = synth_archive
    clean = run(settings(root, tmp_path, name="clean", shard_size=40, run_id="r"))
    out = tmp_path / "resumed-parquet"
    first = run(settings(root, tmp_path, name="resumed", shard_size=40, run_id="r"))
    ledger_dir = out / "_ledger" / "run_id=r"
    records = sorted(ledger_dir.glob("shard-*.json"))
    assert len(records) == first["shards"] > 2
    lost = records[1]
    lost.unlink()  # as if the run died before committing this shard
    resumed = run(settings(root, tmp_path, name="resumed", shard_size=40, run_id="r", resume=True))
    assert resumed["resumed_shards"] == len(records) - 1
    assert lost.exists()
    assert snapshot(tmp_path / "clean.duckdb") == snapshot(tmp_path / "resumed.duckdb")
    assert resumed["listed"] == clean["listed"]


def test_parquet_only_target(synth_archive, tmp_path):
    root, summary = synth_archive
    report = run(
        RunSettings(
            source=str(root),
            out=tmp_path / "pq",
            target=Target.parse("none"),
            workers=0,
            run_id="pq",
        )
    )
    assert report["loaded"] == summary.instances
    assert report["duplicates"] == summary.duplicates
    parts = list((tmp_path / "pq" / "dicom_instance" / "run_id=pq").glob("part-*.parquet"))
    assert parts
    count = (
        duckdb.connect()
        .execute("SELECT count(*) FROM read_parquet(?)", [[str(p) for p in parts]])
        .fetchone()[0]
    )
    assert count == summary.instances + summary.duplicates


def test_manifest_source(tmp_path):
    from tests.conftest import real_file

    manifest = tmp_path / "manifest.txt"
    names = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"]
    manifest.write_text("\n".join(real_file(n) for n in names) + "\n")
    report = run(settings(manifest, tmp_path))
    assert (report["listed"], report["loaded"]) == (3, 3)


def test_unreadable_objects_are_read_errors(tmp_path):
    from tests.conftest import real_file

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "ct.dcm").write_bytes(Path(real_file("CT_small.dcm")).read_bytes())
    (archive / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    (archive / "loop").symlink_to(archive)  # a folder link that would loop: not followed
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(f"{archive / 'ct.dcm'}\n{tmp_path / 'vanished.dcm'}\n")
    for name, source in (("folder", archive), ("manifest", manifest)):
        report = run(settings(source, tmp_path, name=name))
        assert (report["listed"], report["loaded"], report["errors"]) == (
            2,
            1,
            {"READ_ERROR": 1},
        ), name


def test_bad_phi_value_is_not_quoted(tmp_path):
    from io import BytesIO

    from tests.conftest import real_file

    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    ds.PatientBirthDate = "19711399"
    buffer = BytesIO()
    ds.save_as(buffer)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ct.dcm").write_bytes(buffer.getvalue())
    report = run(settings(tmp_path / "in", tmp_path))
    assert report["errors"] == {"TYPE_CAST_ERROR": 1}
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    (message,) = con.execute("SELECT error_message FROM dicom_ingestion_errors").fetchone()
    assert "PatientBirthDate" in message and "19711399" not in message


@pytest.mark.slow  # over 4 s: make test only
def test_killed_run_resumes_to_identical_tables(tmp_path):
    """A driver killed mid-run, then resumed, ends with a clean run's tables."""
    import signal
    import subprocess
    import sys
    import time

    from loader.synth import synthesize

    archive = tmp_path / "archive"
    synthesize(archive, patients=30, seed=8, bad_fraction=0.03)
    clean = run(settings(archive, tmp_path, name="clean", shard_size=25, run_id="k"))
    out = tmp_path / "killed-parquet"
    command = [
        sys.executable,
        "-m",
        "loader",
        "run",
        str(archive),
        "--out",
        str(out),
        "--target",
        f"duckdb:///{tmp_path / 'killed.duckdb'}",
        "--workers",
        "0",
        "--shard-size",
        "25",
        "--run-id",
        "k",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger_dir = out / "_ledger" / "run_id=k"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(ledger_dir.glob("shard-*.json"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = len(list(ledger_dir.glob("shard-*.json")))
    assert 3 <= committed < clean["shards"], "the kill landed outside the extraction phase"
    resumed = run(
        settings(archive, tmp_path, name="killed", shard_size=25, run_id="k", resume=True)
    )
    assert resumed["resumed_shards"] >= committed
    assert resumed["listed"] == clean["listed"]
    assert snapshot(tmp_path / "clean.duckdb") == snapshot(tmp_path / "killed.duckdb")


def test_incremental_reload_reads_only_new_and_changed_objects(tmp_path):
    from loader.synth import synthesize
    from tests.conftest import real_file

    archive = tmp_path / "archive"
    summary = synthesize(archive, patients=5, seed=21, bad_fraction=0.05)
    first = run(settings(archive, tmp_path, name="inc", shard_size=30))
    assert first["unchanged"] == 0 and first["listed"] == summary.files

    (archive / "new").mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (archive / "new" / name).write_bytes(Path(real_file(name)).read_bytes())
    changed = sorted(archive.glob("PAT021000001/**/*.dcm"))[0]
    ds = pydicom.dcmread(changed)
    ds.InstanceNumber = 999
    ds.save_as(changed)
    os.utime(changed, (changed.stat().st_atime, changed.stat().st_mtime + 10))

    second = run(settings(archive, tmp_path, name="inc", shard_size=30, incremental=True))
    assert second["unchanged"] == first["loaded"] + first["duplicates"] - 1
    assert second["listed"] == first["listed"] + 2
    assert second["listed"] - second["unchanged"] == 2 + 1 + first["error_files"]
    assert second["validation_passed"], second["validation"]

    fresh = run(settings(archive, tmp_path, name="fresh", shard_size=30))
    assert fresh["listed"] == second["listed"]
    per_run = {"_shard_id"}
    incremental, full = snapshot(tmp_path / "inc.duckdb"), snapshot(tmp_path / "fresh.duckdb")
    for table in EXTRACTED:
        drop = [i for i, c in enumerate(_columns(table)) if c in per_run]
        strip = [tuple(v for i, v in enumerate(r) if i not in drop) for r in incremental[table]]
        want = [tuple(v for i, v in enumerate(r) if i not in drop) for r in full[table]]
        assert sorted(strip, key=repr) == sorted(want, key=repr), table
    con = duckdb.connect(str(tmp_path / "inc.duckdb"), read_only=True)
    (number,) = con.execute(
        "SELECT instance_number FROM dicom_instance WHERE sop_instance_uid = ?",
        [str(ds.SOPInstanceUID)],
    ).fetchone()
    con.close()
    assert number == 999

    third = run(settings(archive, tmp_path, name="inc", shard_size=30, incremental=True))
    assert third["unchanged"] == second["listed"] - first["error_files"]
    assert third["listed"] - third["unchanged"] == first["error_files"]  # only they are retried
    retried = [ObjectRef(f"/{i}", 1, None) for i in range(first["error_files"])]
    assert third["shards"] == len(list(make_shards(retried, 30)))
    assert third["validation_passed"], third["validation"]


def _columns(table: str) -> list[str]:
    return [c for c in BY_NAME[table].column_names if c not in AUDIT]


def test_parquet_manifest_with_sizes_is_not_looked_up(tmp_path):
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import real_file

    names = ["CT_small.dcm", "MR_small.dcm"]
    stamp = dt.datetime(2020, 5, 17, 8, 30, 1, 250000)
    manifest = tmp_path / "objects.parquet"
    pq.write_table(
        pa.table(
            {
                "path": [real_file(n) for n in names],
                "size": [os.path.getsize(real_file(n)) for n in names],
                "modified": [stamp, stamp],
                "etag": ["e1", None],
            }
        ),
        manifest,
    )
    report = run(settings(manifest, tmp_path))
    assert (report["listed"], report["loaded"]) == (2, 2)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT modified_at, checksum FROM dicom_file_location ORDER BY storage_uri"
    ).fetchall()
    assert [r[0] for r in rows] == [stamp, stamp]  # from the manifest, not the file system
    assert rows[0][1] == "e1" and len(rows[1][1]) == 32


def test_conflicting_study_attributes_resolve_by_rule_and_are_counted(tmp_path):
    from tests.conftest import real_file

    archive = tmp_path / "archive"
    archive.mkdir()
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    for name, description, series_number, stamp in (
        ("old.dcm", "CT HEAD (first read)", 1, 1_500_000_000),
        ("new.dcm", "CT HEAD (amended)", 1, 1_600_000_000),
        ("other.dcm", None, 2, 1_550_000_000),  # missing: not a disagreement
    ):
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[name])
        if description is None:
            del ds.StudyDescription
        else:
            ds.StudyDescription = description
        ds.SeriesNumber = series_number
        ds.save_as(archive / name)
        os.utime(archive / name, (stamp, stamp))
    first = run(settings(archive, tmp_path, run_id="a"))
    conflicts = first["validation"]["conflicts"]
    assert conflicts["dicom_study"] == {"keys": 1, "columns": {"study_description": 1}}
    assert conflicts["dicom_series"] == {"keys": 1, "columns": {"series_number": 1}}
    assert conflicts["dicom_patient"] == {"keys": 0, "columns": {}}
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT study_description FROM dicom_study").fetchall() == [
        ("CT HEAD (amended)",)
    ]
    con.close()
    # A later run that agrees with what is loaded adds no conflict; one that disagrees does.
    ds.StudyDescription = "CT HEAD (amended)"
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["later"])
    (tmp_path / "later").mkdir()
    ds.save_as(tmp_path / "later" / "x.dcm")
    assert (
        run(settings(tmp_path / "later", tmp_path, run_id="b"))["validation"]["conflicts"][
            "dicom_study"
        ]["keys"]
        == 0
    )
    ds.StudyDescription = "CT HEAD (third opinion)"
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["third"])
    ds.save_as(tmp_path / "later" / "x.dcm")
    third = run(settings(tmp_path / "later", tmp_path, run_id="c"))
    assert third["validation"]["conflicts"]["dicom_study"]["columns"] == {"study_description": 1}


@pytest.mark.slow
def test_driver_dying_mid_merge_leaves_duckdb_as_before(synth_archive, tmp_path):
    """The driver process ends halfway through the MERGE step (its connection gone
    with it): DuckDB keeps the last committed state, and the rerun completes it."""
    import subprocess
    import sys

    root, _ = synth_archive
    first = run(settings(root, tmp_path, name="crash", shard_size=40, run_id="one"))
    before = snapshot(tmp_path / "crash.duckdb")
    (tmp_path / "more").mkdir()
    from tests.conftest import real_file

    (tmp_path / "more" / "ct.dcm").write_bytes(Path(real_file("CT_small.dcm")).read_bytes())
    run(settings(tmp_path / "more", tmp_path, name="crash", run_id="two", target_none=True))
    command = ["load", "--run-id", "two", "--out", str(tmp_path / "crash-parquet")]
    target = ["--target", f"duckdb:///{tmp_path / 'crash.duckdb'}"]
    for point in ("mid-copy", "mid-merge"):
        died = subprocess.run(
            [sys.executable, "-m", "loader", *command, *target],
            env={**os.environ, "DICOM_LOADER_FAIL_AT": f"{point}:crash"},
            capture_output=True,
            check=False,
        )
        assert died.returncode == 70, died.stderr
        assert snapshot(tmp_path / "crash.duckdb") == before, point
    second = run(settings(tmp_path / "more", tmp_path, name="crash", run_id="two"))
    assert second["new_instances"] == 1 and second["validation_passed"]
    assert first["loaded"] + 1 == sum(
        1 for _ in snapshot(tmp_path / "crash.duckdb")["dicom_instance"]
    )


def test_the_report_has_exactly_the_typed_keys(synth_archive, tmp_path):
    """The JSON report a run writes and loader.jobs.report.RunReport name the same keys."""
    from typing import get_type_hints

    from loader.jobs.report import RunReport

    root, _ = synth_archive
    report = run(settings(root, tmp_path, name="typed"))
    assert set(report) == set(get_type_hints(RunReport))
    assert set(report["peak_rss_bytes"]) == {"driver", "worker"}
