"""A run loaded into DuckDB in batches of shards (warehouse/batches.py) holds exactly
what one transaction would, accounts for every object across batches, and a load
that dies between batches is completed by loading the run again."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import fsspec
import pyarrow.parquet as pq
import pydicom
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from loader.core.errors import LoadError, WarehouseMemoryError
from loader.core.faults import InjectedFault
from loader.jobs.pipeline import run
from loader.jobs.settings import DuckDBOptions, RunSettings, Target
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.warehouse.duckdb import DuckDBWarehouse
from tests.test_pipeline import snapshot

COUNTED = ("listed", "loaded", "duplicates", "error_files", "new_instances", "errors", "rows")


def _settings(
    root: Path, tmp_path: Path, name: str, batch: int | None = None, parquet_only: bool = False
) -> RunSettings:
    options = DuckDBOptions(load_batch_objects=batch) if batch else None
    target = "none" if parquet_only else f"duckdb:///{tmp_path / name}.duckdb"
    return RunSettings(
        source=str(root),
        out=tmp_path / f"{name}-pq",
        target=Target.parse(target, duckdb=options),
        workers=0,
        shard_size=20,
        run_id=name,
    )


@pytest.fixture(scope="module")
def whole(synth_archive, tmp_path_factory):
    """The synth archive loaded in one batch (the default batch outsizes it): its
    report, its tables, and the run's Parquet."""
    tmp = tmp_path_factory.mktemp("whole")
    root, _ = synth_archive
    report = run(_settings(root, tmp, "whole"))
    assert report["load_batches"] == 1
    return report, snapshot(tmp / "whole.duckdb"), OutputRoot.of(tmp / "whole-pq")


def test_batches_hold_what_one_transaction_holds(synth_archive, whole, tmp_path):
    root, summary = synth_archive
    one, tables, _ = whole
    report = run(_settings(root, tmp_path, "batched", batch=30))
    assert report["load_batches"] >= 5
    # The archive's copies sit in their own folder, listed apart from their originals:
    # a copy and its original fall in different batches, and still count once.
    assert report["duplicates"] == summary.duplicates > 0
    assert {k: report[k] for k in COUNTED} == {k: one[k] for k in COUNTED}
    assert report["validation_passed"], report["validation_failed"]
    assert snapshot(tmp_path / "batched.duckdb") == tables


@pytest.mark.slow  # over 4 s: make test only
def test_a_load_dying_in_its_third_batch_is_completed_by_loading_again(
    synth_archive, whole, tmp_path
):
    root, _ = synth_archive
    _, tables, _ = whole
    run(_settings(root, tmp_path, "crash", parquet_only=True))
    command = [
        *(sys.executable, "-m", "loader", "load", "--run-id", "crash"),
        *("--out", str(tmp_path / "crash-pq"), "--load-batch-objects", "40"),
        *("--target", f"duckdb:///{tmp_path / 'crash.duckdb'}"),
    ]
    died = subprocess.run(
        command,
        env={**os.environ, "DICOM_LOADER_FAIL_AT": "mid-merge#3:crash"},
        capture_output=True,
        check=False,
    )
    assert died.returncode == 70, died.stderr
    # Exactly two batches committed, not three. The load takes the run's committed
    # shards in the ledger's order, a batch closing once it holds 40 listed objects
    # (whole shards): the warehouse holds exactly the objects the first two batches'
    # shards wrote, and the instances pydicom reads in them.
    records = list(ledger.committed_shards(OutputRoot.of(tmp_path / "crash-pq"), "crash"))
    batches, held = [[]], 0
    for record in records:
        batches[-1].append(record)
        held += record.listed
        if held >= 40:
            batches, held = [*batches, []], 0
    assert len(batches) > 3
    # A shard whose objects all ended as error rows wrote no location file. Shard ids
    # hash the objects' paths, so which shards come first changes with the temporary
    # folder: the first two batches hold one such shard in some runs, none in others.
    written = {
        uri
        for record in batches[0] + batches[1]
        if "dicom_file_location" in record.files
        for uri in pq.read_table(
            tmp_path / "crash-pq" / record.files["dicom_file_location"], columns=["storage_uri"]
        )
        .column(0)
        .to_pylist()
    }
    with duckdb.connect(str(tmp_path / "crash.duckdb"), read_only=True) as con:
        located = {u for (u,) in con.sql("SELECT storage_uri FROM dicom_file_location").fetchall()}
        instances = {
            u for (u,) in con.sql("SELECT sop_instance_uid FROM dicom_instance").fetchall()
        }
    assert located == written
    read = {str(pydicom.dcmread(uri, stop_before_pixels=True).SOPInstanceUID) for uri in written}
    assert instances == read and len(instances) < len(tables["dicom_instance"])
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(tmp_path / "crash.duckdb") == tables


def _row_counts(warehouse: DuckDBWarehouse, tables: dict[str, list]) -> dict[str, int]:
    """Each table's rows as the warehouse counts them, for `tables`' names."""
    return {name: warehouse.query(f"SELECT count(*) FROM {name}")[0][0] for name in tables}


def test_a_connection_keeps_no_staged_view_after_a_load_or_a_failed_one(whole, monkeypatch):
    """The staging views read the run's Parquet: a connection that goes on (the same
    process loading another run, rebuilding, validating) must not keep them."""
    _, tables, out = whole
    shards = list(ledger.committed_shards(out, "whole"))
    warehouse = DuckDBWarehouse(":memory:")
    staged = "SELECT view_name FROM duckdb_views() WHERE view_name LIKE 'dl_stage_%'"
    try:
        started = time.time()
        result = warehouse.load_run(out, "whole", shards)
        assert 0 < result.seconds <= time.time() - started  # the load's own time
        assert warehouse.query(staged) == []
        monkeypatch.setenv("DICOM_LOADER_FAIL_AT", "mid-merge")
        with pytest.raises(InjectedFault):
            warehouse.load_run(out, "whole", shards)
        assert warehouse.query(staged) == []
        counts = _row_counts(warehouse, tables)
    finally:
        warehouse.close()
    assert counts == {name: len(rows) for name, rows in tables.items()}


def test_a_new_database_gets_its_folder_and_one_opened_read_only_none(tmp_path):
    created = tmp_path / "new" / "deeper" / "w.duckdb"
    DuckDBWarehouse(str(created)).close()
    assert created.is_file()
    missing = tmp_path / "missing" / "w.duckdb"  # reading a warehouse never makes one
    with pytest.raises(LoadError, match=rf"^cannot open DuckDB database {missing}: "):
        DuckDBWarehouse(str(missing), read_only=True)
    assert not missing.parent.exists()


def test_a_file_that_is_not_a_duckdb_database_is_one_line(tmp_path):
    path = tmp_path / "w.duckdb"
    path.write_bytes(b"not a database" * 1000)
    with pytest.raises(LoadError, match=rf"^cannot open DuckDB database {path}: "):
        DuckDBWarehouse(str(path))


def test_duckdb_gets_its_memory_limit_and_spill_folder(tmp_path):
    options = DuckDBOptions(memory_limit="300MB", temp_directory=str(tmp_path / "spill"))
    warehouse = DuckDBWarehouse(str(tmp_path / "w.duckdb"), options=options)
    try:
        limit, spill = warehouse.query(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        )[0]
    finally:
        warehouse.close()
    assert limit in ("286.1 MiB", "300.0 MB")  # DuckDB prints the limit in its own unit
    assert spill == str(tmp_path / "spill")


class TwoNamedMemory(MemoryFileSystem):
    """fsspec's in-memory filesystem known by two names, as s3fs is (s3, s3a), gcsfs
    (gs, gcs) and adlfs (abfs, az, abfss), its paths `bucket/key` as theirs are: a
    run in an object store that loads in seconds (on moto's S3 it takes minutes)."""

    protocol = ("memtwo", "memtwo-alias")
    root_marker = ""

    @classmethod
    def _strip_protocol(cls, path):
        for name in cls.protocol:  # the parent strips only memory://
            path = str(path).removeprefix(f"{name}://")
        return path.strip("/")


def test_a_run_written_to_an_object_store_loads_from_it(whole):
    """DuckDB reads the run's Parquet through the run's own fsspec filesystem,
    registered once per connection however many times it stages."""
    _, tables, out = whole
    fsspec.register_implementation("memtwo", TwoNamedMemory, clobber=True)
    folder = f"run-{uuid.uuid4().hex[:8]}"
    store = fsspec.filesystem("memtwo")
    store.put(f"{out.url}/", f"{folder}/", recursive=True)
    remote = OutputRoot.of(f"memtwo://{folder}")
    shards = list(ledger.committed_shards(remote, "whole"))
    warehouse = DuckDBWarehouse(":memory:")
    try:
        warehouse.load_run(remote, "whole", shards)
        warehouse.load_run(remote, "whole", shards)  # the same connection, again
        counts = _row_counts(warehouse, tables)
    finally:
        warehouse.close()
        store.rm(folder, recursive=True)
    assert counts == {name: len(rows) for name, rows in tables.items()}


@pytest.mark.parametrize(
    ("path", "spill", "spilled_to"),
    [
        ("w.duckdb", None, "{tmp}/w.duckdb.tmp"),  # beside the database, by default
        ("w.duckdb", "spill", "{tmp}/spill"),
        (":memory:", None, "nowhere"),  # an in-memory database has no folder to spill to
    ],
)
def test_running_out_of_memory_names_the_limit_and_the_spill_folder(
    tmp_path, path, spill, spilled_to
):
    options = DuckDBOptions(
        memory_limit="2MB", temp_directory=str(tmp_path / spill) if spill else None
    )
    where = path if path == ":memory:" else str(tmp_path / path)
    warehouse = DuckDBWarehouse(where, options=options)
    try:
        with pytest.raises(WarehouseMemoryError) as failure:  # a list cannot spill
            warehouse.query("SELECT list(i) FROM range(5000000) t(i)")
    finally:
        warehouse.close()
    assert str(failure.value) == (
        "DuckDB ran out of memory within --duckdb-memory-limit 2MB (spilling to "
        f"{spilled_to.format(tmp=tmp_path)}): raise --duckdb-memory-limit "
        "(DICOM_LOADER_DUCKDB_MEMORY_LIMIT)"
    )


def test_a_memory_limit_duckdb_cannot_read_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loader", "run", str(tmp_path), "--duckdb-memory-limit", "lots"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --duckdb-memory-limit 'lots': give a size such as 512MB or 2GB"
    ]
