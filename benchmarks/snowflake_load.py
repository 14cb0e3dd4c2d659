"""`make bench-snowflake`: what a Snowflake load stages, and how long it takes on the
emulator, per 100,000 objects.

1. `dicom-loader synth` writes an archive of BENCH_SNOWFLAKE_OBJECTS objects (default
   20,000; tiny pixels: staging does not depend on them), and `dicom-loader run
   --target none` writes its Parquet (2 workers, 2,000-object shards).
2. Before compaction (the shards' files as they are) and after it (files of
   --stage-file-mb), per table: files, bytes and the COPY statements they take
   (FILES lists of at most 1,000), scaled to 100,000 objects.
3. The same run loaded into a fakesnow server (the real connector, the production
   statements; the test harness supplies what fakesnow lacks) and into DuckDB, in
   this invocation: seconds per 100,000 objects and their ratio. fakesnow is DuckDB
   behind an HTTP API, so its absolute time says nothing about Snowflake's: the
   figure is for catching regressions of the load path.

Results go to benchmarks/results/<date>-snowflake.json and .md and are printed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the fakesnow harness

from loader.core.model import BY_NAME, EXTRACTED  # noqa: E402
from loader.jobs.load import load  # noqa: E402
from loader.jobs.pipeline import run  # noqa: E402
from loader.jobs.settings import DEFAULT_STAGE_FILE_MB, RunSettings, Target  # noqa: E402
from loader.output import ledger  # noqa: E402
from loader.output.location import OutputRoot  # noqa: E402
from loader.synth import synthesize  # noqa: E402
from loader.warehouse.snowflake import FILES_PER_COPY  # noqa: E402
from loader.warehouse.stage_files import compact_table  # noqa: E402

OBJECTS_PER_PATIENT = 10.3  # what synth writes on average
PER = 100_000


def _archive(work: Path, objects: int) -> Path:
    root = work / f"archive-{objects}"
    if not (root / ".done").exists():
        synthesize(
            root,
            patients=max(1, round(objects / OBJECTS_PER_PATIENT)),
            seed=3,
            duplicate_fraction=0,
        )
        (root / ".done").write_text("")
    return root


def _staging(out: OutputRoot, run_id: str, listed: int) -> dict[str, Any]:
    """Files, bytes and COPY statements per table, before and after compaction."""
    records = list(ledger.committed_shards(out, run_id))
    before: dict[str, dict[str, int]] = {}
    after: dict[str, dict[str, int]] = {}
    for name in EXTRACTED:
        sources = [r.files[name] for r in records if name in r.files]
        size = sum(Path(out.location(s)).stat().st_size for s in sources)
        before[name] = {"files": len(sources), "bytes": size}
        files = compact_table(
            out, BY_NAME[name], sources, f"_bench_stage/{name}", DEFAULT_STAGE_FILE_MB << 20
        )
        after[name] = {"files": len(files), "bytes": sum(f.bytes for f in files)}
    out.remove_folder("_bench_stage")
    scale = PER / listed

    def totals(per_table: dict[str, dict[str, int]]) -> dict[str, float]:
        files = sum(t["files"] for t in per_table.values())
        return {
            "files": round(files * scale),
            "bytes": round(sum(t["bytes"] for t in per_table.values()) * scale),
            # At 100,000 objects each table's files are scaled first, then listed in
            # FILES lists of at most 1,000.
            "copy_statements": sum(
                max(1, math.ceil(t["files"] * scale / FILES_PER_COPY)) if t["files"] else 0
                for t in per_table.values()
            ),
        }

    return {
        "per_table_before": before,
        "per_table_after": after,
        "per_100k_before": totals(before),
        "per_100k_after": {
            # Compacted files grow with the bytes, not with the shards.
            "files": sum(
                max(1, math.ceil(t["bytes"] * scale / (DEFAULT_STAGE_FILE_MB << 20)))
                for t in after.values()
                if t["files"]
            ),
            "bytes": round(sum(t["bytes"] for t in after.values()) * scale),
            "copy_statements": sum(1 for t in after.values() if t["files"]),
        },
    }


def main() -> None:
    import fakesnow
    import fakesnow_gaps
    import snowflake.connector

    objects = int(os.environ.get("BENCH_SNOWFLAKE_OBJECTS", "20000"))
    work = Path(os.environ.get("BENCH_WORK", "bench-work")).resolve() / "snowflake"
    work.mkdir(parents=True, exist_ok=True)
    source = _archive(work, objects)
    out = work / "parquet"
    written = run(
        RunSettings(
            source=str(source), out=out, workers=2, run_id="bench", target=Target.parse("none")
        )
    )
    listed = written["listed"]
    staging = _staging(OutputRoot.of(out), "bench", listed)

    serve = fakesnow.server
    fakesnow_gaps.install()
    timings: dict[str, float] = {}
    with serve() as params:
        params = {k: v for k, v in params.items() if k != "session_parameters"}
        with snowflake.connector.connect(**params) as con:
            con.cursor().execute("CREATE DATABASE IF NOT EXISTS BENCH")
            con.cursor().execute("CREATE OR REPLACE SCHEMA BENCH.LOAD")
        target = Target.parse(
            f"snowflake://{params['user']}:{params['password']}@{params['account']}/BENCH/LOAD"
            f"?host={params['host']}&port={params['port']}&protocol=http"
        )
        started = time.perf_counter()
        snow = load(out, "bench", target)
        timings["snowflake_emulator"] = time.perf_counter() - started
    duck_path = work / "bench.duckdb"
    duck_path.unlink(missing_ok=True)
    started = time.perf_counter()
    duck = load(out, "bench", Target.parse(f"duckdb:///{duck_path}"))
    timings["duckdb"] = time.perf_counter() - started
    assert snow["loaded"] == duck["loaded"] and snow["validation_passed"]

    record = {
        "date": dt.date.today().isoformat(),
        "objects": listed,
        "stage_file_mb": DEFAULT_STAGE_FILE_MB,
        "staging": staging,
        "staged_files_reported": snow["staged_files"],
        "load_seconds": {k: round(v, 2) for k, v in timings.items()},
        "load_seconds_per_100k": {k: round(v * PER / listed, 1) for k, v in timings.items()},
        "emulator_over_duckdb": round(timings["snowflake_emulator"] / timings["duckdb"], 2),
    }
    stem = HERE / "results" / f"{record['date']}-snowflake"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    b, a = staging["per_100k_before"], staging["per_100k_after"]
    lines = [
        f"# Snowflake staging and load, {record['date']}",
        "",
        f"{listed:,} objects (synth, tiny pixels), 2,000-object shards, "
        f"--stage-file-mb {DEFAULT_STAGE_FILE_MB}; figures per 100,000 objects.",
        "",
        "| | files staged | COPY statements | bytes staged |",
        "| --- | ---: | ---: | ---: |",
        f"| before compaction (a file per table per shard) | {b['files']:,} | "
        f"{b['copy_statements']} | {b['bytes']:,} |",
        f"| after compaction | {a['files']:,} | {a['copy_statements']} | {a['bytes']:,} |",
        "",
        f"Load of this run: fakesnow {timings['snowflake_emulator']:.1f} s "
        f"({record['load_seconds_per_100k']['snowflake_emulator']} s per 100k), "
        f"DuckDB {timings['duckdb']:.1f} s "
        f"({record['load_seconds_per_100k']['duckdb']} s per 100k): "
        f"ratio {record['emulator_over_duckdb']} (relative; for regressions).",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
