"""`make bench-rebuild`: what `dicom-loader rebuild` costs against the load it replaces.

1. `synth` writes an archive of BENCH_REBUILD_OBJECTS objects (default 20,000, tiny
   pixels), and `run` loads it into DuckDB (2 workers, 2,000-object shards).
2. `rebuild --all` derives every table again from the stored headers into the same
   warehouse, with the archive moved away (so nothing can be read).
3. In this one invocation: each one's extraction files/s per core, whole-command
   seconds, bytes read per object and peak memory (driver, worker), and the ratio of
   the rebuild's extraction rate to the run's.

Results go to benchmarks/results/<date>-rebuild.md and are printed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

from loader.jobs.pipeline import run
from loader.jobs.rebuild import rebuild
from loader.jobs.settings import RunSettings, Target
from loader.synth import synthesize

OBJECTS = int(os.environ.get("BENCH_REBUILD_OBJECTS", "20000"))
WORKERS = 2
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    try:
        archive = root / "archive"
        synthesize(archive, patients=int(OBJECTS / 10.3) + 1, seed=11)
        target = Target.parse(f"duckdb:///{root / 'w.duckdb'}")
        loaded = run(
            RunSettings(
                source=str(archive),
                out=root / "pq",
                target=target,
                workers=WORKERS,
                cluster_min_objects=0,
            )
        )
        archive.rename(root / "moved-away")
        rebuilt = rebuild(target, str(root / "rebuilt"), from_run=None, workers=WORKERS)
        # What the comparison relies on: the rebuild read nothing (the archive is gone)
        # and derived the same objects, and both warehouses validate.
        assert rebuilt["bytes_read"] == 0, rebuilt["bytes_read"]
        assert rebuilt["loaded"] == loaded["loaded"], (rebuilt["loaded"], loaded["loaded"])
        assert not loaded["validation_failed"] and not rebuilt["validation_failed"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for name, report in (("run", loaded), ("rebuild --all", rebuilt)):
        per_core = report["files_per_second"] / WORKERS
        rows.append(
            f"| {name} | {report['listed']:,} | {per_core:,.0f} | {report['seconds']:.1f} | "
            f"{report['bytes_read_per_object']:,.0f} | "
            f"{report['peak_rss_bytes']['driver'] / 1e6:,.0f} | "
            f"{report['peak_rss_bytes']['worker'] / 1e6:,.0f} |"
        )
    ratio = rebuilt["files_per_second"] / loaded["files_per_second"]
    text = (
        f"# rebuild against run, {dt.date.today().isoformat()}\n\n"
        f"{OBJECTS:,} synthesized objects, DuckDB, {WORKERS} workers "
        "(`make bench-rebuild`).\n\n"
        "| command | objects | files/s per core (extraction) | seconds | bytes read / object "
        "| driver peak MB | worker peak MB |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        + "\n".join(rows)
        + f"\n\nRebuild extraction rate / run extraction rate: **{ratio:.2f}**.\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{dt.date.today().isoformat()}-rebuild.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
