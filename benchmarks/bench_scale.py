"""Scale: two workers against one, and a driver whose memory does not grow with the listing.

Each run is the real command in its own process (so its peak RSS is the driver's
own), on a LocalCluster of worker processes, writing Parquet only (`--target none`):
loading is measured elsewhere. Sizes come from the environment so a quick look
and a full run use the same code: BENCH_PATIENTS (10 objects each, default 2,000
≈ 20,000 objects) and BENCH_MANIFEST_OBJECTS (default 1,000,000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loader.synth import synthesize

PATIENTS = int(os.environ.get("BENCH_PATIENTS", "2000"))
MANIFEST_OBJECTS = int(os.environ.get("BENCH_MANIFEST_OBJECTS", "1000000"))
DRIVER_LIMIT = 500 * 2**20


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale") / "archive"
    synthesize(root, patients=PATIENTS, seed=3, duplicate_fraction=0, bad_fraction=0)
    return root


def _run(source: Path, out: Path, workers: int) -> dict[str, Any]:
    report = out.with_suffix(".json")
    command = ["run", str(source), "--out", str(out), "--target", "none"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "loader",
            *command,
            "--workers",
            str(workers),
            "--report",
            str(report),
        ],
        check=True,
        capture_output=True,
    )
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def _manifest(archive: Path, objects: int, path: Path) -> Path:
    """A Parquet manifest of `objects` entries (the archive's files, repeated), with
    sizes and times, as an inventory export of a large bucket would give."""
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    repeat = -(-objects // len(files))
    table = pa.table(
        {
            "path": [str(p) for p in files] * repeat,
            "size": [s.st_size for s in stats] * repeat,
            "modified": [s.st_mtime for s in stats] * repeat,
        }
    ).slice(0, objects)
    pq.write_table(table, path)
    return path


def test_two_workers_against_one(benchmark: Any, archive: Path, tmp_path: Path) -> None:
    one = _run(archive, tmp_path / "one", 1)
    two = benchmark.pedantic(_run, (archive, tmp_path / "two", 2), rounds=1, iterations=1)
    ratio = two["files_per_second"] / one["files_per_second"]
    benchmark.extra_info.update(
        objects=two["listed"],
        one_worker_files_per_s=one["files_per_second"],
        two_workers_files_per_s=two["files_per_second"],
        speedup=ratio,
        worker_peak_rss_mb=two["peak_rss_bytes"]["worker"] / 2**20,
    )
    assert two["listed"] == one["listed"] > 0
    assert ratio >= 1.7


def test_driver_memory_is_flat_over_a_large_manifest(
    benchmark: Any, archive: Path, tmp_path: Path
) -> None:
    small_objects = MANIFEST_OBJECTS // 10
    small = _run(_manifest(archive, small_objects, tmp_path / "small.parquet"), tmp_path / "s", 2)
    big_manifest = _manifest(archive, MANIFEST_OBJECTS, tmp_path / "big.parquet")
    big = benchmark.pedantic(_run, (big_manifest, tmp_path / "b", 2), rounds=1, iterations=1)
    small_driver, big_driver = (r["peak_rss_bytes"]["driver"] for r in (small, big))
    benchmark.extra_info.update(
        objects=big["listed"],
        files_per_s=big["files_per_second"],
        driver_peak_rss_mb=big_driver / 2**20,
        driver_peak_rss_mb_at_tenth=small_driver / 2**20,
        worker_peak_rss_mb=big["peak_rss_bytes"]["worker"] / 2**20,
    )
    assert (small["listed"], big["listed"]) == (small_objects, MANIFEST_OBJECTS)
    assert big["validation"]["accounting"]["balanced"]
    assert big_driver < DRIVER_LIMIT
    assert big_driver < 1.15 * small_driver  # ten times the objects, the same memory
