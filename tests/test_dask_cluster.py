"""A real Dask cluster started as separate processes: `dask scheduler`, `dask worker`."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client

from loader.jobs.pipeline import run
from loader.jobs.settings import DuckDBOptions, RunSettings, Target
from loader.output.ledger import ShardRecord
from tests.test_pipeline import snapshot


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers on 127.0.0.1."""
    scheduler_file = tmp_path / "scheduler.json"
    processes = [
        _start(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            tmp_path / "scheduler.log",
        )
    ]
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    for name in ("w1", "w2"):
        processes.append(
            _start(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--name",
                    name,
                ],
                tmp_path / f"{name}.log",
            )
        )
    with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        address = client.scheduler.address
    try:
        yield address, scheduler_file, processes
    finally:
        for process in reversed(processes):
            process.kill()
            process.wait()


@pytest.mark.slow  # over 4 s: make test only
def test_run_on_an_existing_cluster_survives_a_killed_worker(synth_archive, cluster, tmp_path):
    root, summary = synth_archive
    address, _, processes = cluster
    clean = run(
        RunSettings(
            source=str(root),
            out=tmp_path / "clean-pq",
            workers=0,
            shard_size=20,
            run_id="c",
            target=Target.parse(f"duckdb:///{tmp_path / 'clean.duckdb'}"),
        )
    )
    killed = []

    def kill_a_worker(record: ShardRecord) -> None:
        if not killed:
            processes[1].kill()  # worker w1 dies with shards in flight
            killed.append(record.shard_id)

    report = run(
        RunSettings(
            source=str(root),
            out=tmp_path / "dask-pq",
            workers=0,
            shard_size=20,
            run_id="d",
            scheduler=address,
            # Batches of two shards load while the others are extracted and rescheduled.
            target=Target.parse(
                f"duckdb:///{tmp_path / 'dask.duckdb'}",
                duckdb=DuckDBOptions(load_batch_objects=40),
            ),
        ),
        kill_a_worker,
    )
    assert killed
    assert report["load_batches_during_extraction"] >= 1
    assert report["listed"] == summary.files == clean["listed"]
    assert report["shards"] == clean["shards"]
    assert snapshot(tmp_path / "dask.duckdb") == snapshot(tmp_path / "clean.duckdb")


def test_scheduler_file_is_accepted(synth_archive, cluster, tmp_path):
    root, summary = synth_archive
    _, scheduler_file, _ = cluster
    report = run(
        RunSettings(
            source=str(root),
            out=tmp_path / "pq",
            workers=0,
            shard_size=50,
            scheduler=str(scheduler_file),
            target=Target.parse(f"duckdb:///{tmp_path / 'w.duckdb'}"),
        )
    )
    assert report["loaded"] == summary.instances
