"""Parquet writing and DuckDB loading, per 10,000 objects.

The rows of 10,000 synthesized objects (every object type) are extracted once;
the benchmarks then time what follows extraction: writing them as the shard
writer does (zstd Parquet, one file per table per shard of 2,000 objects), and
loading the written run into an empty DuckDB warehouse (COPY → stage → MERGE,
validation excluded). Size: BENCH_WRITE_OBJECTS (default 10,000).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from loader.extract.context import Row, Rows
from loader.jobs.gc_pause import gc_paused
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.jobs.shard import ShardSettings, process_object
from loader.jobs.targets import open_warehouse
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.output.parquet import ShardWriter
from loader.sources.listing import list_source
from loader.synth import synthesize

OBJECTS = int(os.environ.get("BENCH_WRITE_OBJECTS", "10000"))
SHARD = 2000


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("write-load") / "archive"
    synthesize(root, patients=int(OBJECTS / 10.3) + 1, seed=5, duplicate_fraction=0)
    return root


@pytest.fixture(scope="module")
def extracted(archive: Path) -> list[tuple[Rows, list[Row]]]:
    settings = ShardSettings(out="unused", run_id="bench", source=str(archive))
    refs = list(list_source(str(archive)))[:OBJECTS]
    return [outcome[:2] for ref in refs for outcome in process_object(ref, settings)]


def _write(extracted: list[tuple[Rows, list[Row]]], out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    root = OutputRoot.of(out)
    with gc_paused():  # as in a shard
        _write_shards(extracted, root)


def _write_shards(extracted: list[tuple[Rows, list[Row]]], root: OutputRoot) -> None:
    for start in range(0, len(extracted), SHARD):
        writer = ShardWriter(root, "bench", f"shard{start:06d}")
        for index, (rows, errors) in enumerate(extracted[start : start + SHARD]):
            order = f"{start + index:012d}"
            for table, table_rows in rows.items():
                writer.add(table, table_rows, order)
            writer.add("dicom_ingestion_errors", errors, None)
        writer.close()


def test_parquet_writing_per_10k_objects(benchmark: Any, extracted: list, tmp_path: Path) -> None:
    benchmark.group = "after extraction, per 10,000 objects"
    benchmark.pedantic(_write, (extracted, tmp_path / "out"), rounds=3, iterations=1)
    per_10k = benchmark.stats.stats.mean * 10_000 / len(extracted)
    benchmark.extra_info.update(objects=len(extracted), seconds_per_10k_objects=per_10k)


def test_duckdb_load_per_10k_objects(benchmark: Any, archive: Path, tmp_path: Path) -> None:
    benchmark.group = "after extraction, per 10,000 objects"
    out = tmp_path / "parquet"
    report = run(RunSettings(source=str(archive), out=out, target=Target.parse("none"), workers=0))
    root = OutputRoot.of(out)
    shards = list(ledger.committed_shards(root, report["run_id"]))
    rounds = iter(range(1000))

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        target = Target.parse(f"duckdb:///{tmp_path / f'w{next(rounds)}.duckdb'}")
        return (target,), {}

    def load(target: Target) -> None:
        warehouse = open_warehouse(target)
        try:
            warehouse.load_run(root, report["run_id"], shards)
        finally:
            warehouse.close()

    benchmark.pedantic(load, setup=fresh, rounds=3, iterations=1)
    per_10k = benchmark.stats.stats.mean * 10_000 / report["listed"]
    benchmark.extra_info.update(
        objects=report["listed"], rows=sum(report["rows"].values()), seconds_per_10k_objects=per_10k
    )
