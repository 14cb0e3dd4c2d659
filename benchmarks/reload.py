"""`make bench-reload`: a nightly reload of a large archive, measured against the full
run it follows.

1. The archive of `make bench-scale` (BENCH_RELOAD_OBJECTS, default 1,000,000, of
   synth's mix with tiny pixels; built once in BENCH_WORK and reused), as a copy of
   hard links, so the night's changes never touch the archive bench-scale reads.
2. A full run of the copy, two workers, into a fresh DuckDB file (the default
   --duckdb-memory-limit, 512MB).
3. The night's changes, seeded, recorded by this script: 1 % new objects (half in new
   studies, half added to existing series), 0.5 % modified in place (new bytes, same
   path), 0.1 % deleted, a few moved (same object, new path).
4. `run --incremental`, then a second one with nothing changed, each twice: with the
   page cache emptied first (cold: a nightly run over an archive too large for the
   cache, as archives of tens of millions of objects are, stats every file from the
   disk), and again at once from the same warehouse (warm: what a small archive on a
   quiet machine sees). The full run starts cold too, as a migration does.
   Emptying the cache needs root (`/proc/sys/vm/drop_caches`); without it every run
   takes the cache as the one before left it, and the results say so.
5. A full load of the changed archive into a fresh DuckDB file: every table of the
   reloaded warehouse (its live rows) must equal it, but load times and run ids.

Figures per run: wall time and its phases (listing, known-object lookup, extraction,
load, deletions), objects and bytes read, driver and worker peak RSS, rows merged;
the ratios the issue sets (incremental ≤ 5 % of the full run, no change ≤ 2 % and 0
bytes read, driver ≤ 1 GiB), and the checks (exactly the new, modified and moved
objects read; deleted ones stamped; tables equal to the fresh load).
Results: benchmarks/results/<date>-reload.json, .md and .png.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pydicom
from e2e import archive, machine  # run as a script: its folder is on the path

from loader.synth import synthesize

HERE = Path(__file__).resolve().parent
NEW, MODIFIED, DELETED, MOVED = 0.01, 0.005, 0.001, 0.0001
INCREMENTAL_TARGET, NO_CHANGE_TARGET, DRIVER_LIMIT_MB = 0.05, 0.02, 1024
# Columns that say when and by which run a row was written, not what it holds.
LOAD_COLUMNS = frozenset({"_run_id", "_loaded_at", "ingested_at", "detected_at", "_shard_id"})
EXCEPT_ROWS = 5_000_000  # a table larger than this is compared by checksum only


def linked_copy(paths: list[str], root: Path, into: Path) -> list[Path]:
    """`paths` (under `root`) hard-linked under `into`, in the same folders."""
    shutil.rmtree(into, ignore_errors=True)
    copies = []
    for path in paths:
        copy = into / Path(path).relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, copy)
        copies.append(copy)
    return copies


def rewrite(path: Path, change: Any) -> None:
    """`path` read, changed and written to a new file renamed over it: a hard link's
    other names keep the old bytes."""
    ds = pydicom.dcmread(path)
    change(ds)
    fresh = path.with_name(path.name + ".new")
    ds.save_as(fresh, enforce_file_format=True)
    os.replace(fresh, path)


def night(copies: list[Path], root: Path, seed: int = 11) -> dict[str, list[str]]:
    """The night's changes to the archive at `root`, as the paths each concerns."""
    rng = random.Random(seed)
    chosen = rng.sample(copies, int(len(copies) * (MODIFIED + DELETED + MOVED + NEW / 2)))
    cut = [int(len(copies) * share) for share in (MODIFIED, DELETED, MOVED)]
    modified = chosen[: cut[0]]
    deleted = chosen[cut[0] : cut[0] + cut[1]]
    moved = chosen[cut[0] + cut[1] : cut[0] + cut[1] + max(1, cut[2])]
    grown = chosen[cut[0] + cut[1] + max(1, cut[2]) :]  # a new instance in each's series
    # The night comes after the archive's newest object: synth dates a patient's
    # files a day after the previous patient's, so a million objects reach far past
    # today, and a file rewritten "now" would be older than the files beside it,
    # which no archive's clock does (a rewrite is its newest file).
    night_time = max(path.stat().st_mtime for path in copies) + 86_400
    stamped = iter(range(len(copies)))

    def stamp(path: Path) -> None:
        at = night_time + next(stamped)
        os.utime(path, (at, at))

    for n, path in enumerate(modified):
        rewrite(path, lambda ds, n=n: setattr(ds, "SeriesDescription", f"amended {n}"))
        stamp(path)
    for path in deleted:
        path.unlink()
    moved_to = []
    for path in moved:
        target = root / "moved" / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved_to.append(target)
    added = []
    for n, path in enumerate(grown):
        target = path.with_name(f"added-{n:06d}.dcm")
        shutil.copyfile(path, target)
        rewrite(target, lambda ds, n=n: setattr(ds, "SOPInstanceUID", f"2.25.7{n:020d}"))
        stamp(target)
        added.append(target)
    patients = max(1, int(len(copies) * NEW / 2 / 10))
    synthesize(root / "new-studies", patients=patients, seed=seed, duplicate_fraction=0)
    added += sorted(p for p in (root / "new-studies").rglob("*") if p.is_file())
    return {
        "modified": [str(p) for p in modified],
        "deleted": [str(p) for p in deleted],
        "moved_from": [str(p) for p in moved],
        "moved_to": [str(p) for p in moved_to],
        "added": [str(p) for p in added],
    }


def emptied_cache() -> bool:
    """Dirty pages written and the page cache, dentries and inodes dropped (root
    only): whether it could be done."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def run(
    source: Path | str, work: Path, name: str, database: Path, *extra: str, cold: bool = False
) -> dict[str, Any]:
    """One `dicom-loader run` in its own process, after emptying the page cache when
    `cold`; its report and measured wall time."""
    report_path = work / f"{name}.json"
    command = [
        *(sys.executable, "-m", "loader", "run", str(source), "--workers", "2"),
        *("--out", str(work / "parquet"), "--target", f"duckdb:///{database}"),
        *("--run-id", name, "--report", str(report_path), *extra),
    ]
    # The writes before it (the last run's warehouse and Parquet, the night's files)
    # reach the disk first, as hours between a night and its reload would see to:
    # their writeback would otherwise compete with the run timed.
    os.sync()
    caches = ("emptied" if emptied_cache() else "as left: could not empty") if cold else "as left"
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    read = report["listed"] - report["unchanged"] - report["repeated_entries"]
    measured = {
        "run": name,
        "caches": caches,
        "seconds": round(seconds, 2),
        "phases": report["phases"],
        "load_seconds": report["load_seconds"],
        "listed": report["listed"],
        "unchanged": report["unchanged"],
        "objects_read": read,
        "bytes_read": report["bytes_read"],
        "rows_merged": sum(report["rows"].values()),
        "deleted": report["deleted"],
        "driver_peak_rss_mb": round(report["peak_rss_bytes"]["driver"] / 2**20, 1),
        "worker_peak_rss_mb": round(report["peak_rss_bytes"]["worker"] / 2**20, 1),
        "database_mb": round(database.stat().st_size / 2**20, 1),
        "validation_passed": report["validation_passed"],
        "validation_failed": report["validation_failed"],
    }
    shutil.rmtree(work / "parquet" / "dicom_element", ignore_errors=True)
    print(
        f"{name}: {seconds:,.1f} s, {read:,} objects read, {report['bytes_read']:,} bytes, "
        f"driver {measured['driver_peak_rss_mb']:,.0f} MB",
        flush=True,
    )
    return measured


def differences(reloaded: Path, fresh: Path) -> dict[str, int]:
    """Per table, the live rows the reloaded warehouse and a fresh load of the same
    archive do not share (both ways), load times and run ids aside."""
    con = duckdb.connect()
    con.execute("SET memory_limit = '4GB'")
    con.execute(f"ATTACH '{reloaded}' AS r (READ_ONLY)")
    con.execute(f"ATTACH '{fresh}' AS f (READ_ONLY)")
    tables = [
        t
        for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'f' "
            "AND table_name LIKE 'dicom_%' AND table_name <> 'dicom_load_history'"
        ).fetchall()
    ]
    found = {}
    for table in tables:
        columns = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'f' "
                "AND table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            if c not in LOAD_COLUMNS
        ]
        live = _live(table, columns)
        listed = ", ".join(columns)
        # An order-free checksum first: EXCEPT ALL over a million objects' element
        # rows would sort hundreds of millions of rows to find none.
        digest = "SELECT count(*), sum(hash({})) FROM {}.{} x {}"
        ours = con.execute(digest.format(listed, "r", table, live)).fetchone()
        theirs = con.execute(digest.format(listed, "f", table, "")).fetchone()
        if ours == theirs:
            found[table] = 0
            continue
        if max(int(ours[0] if ours else 0), int(theirs[0] if theirs else 0)) > EXCEPT_ROWS:
            found[table] = -1  # differs; too large to count the rows that do
            continue
        rows = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {listed} FROM r.{table} x {live} "
            f"EXCEPT ALL SELECT {listed} FROM f.{table} x)), "
            f"(SELECT count(*) FROM (SELECT {listed} FROM f.{table} x "
            f"EXCEPT ALL SELECT {listed} FROM r.{table} x {live}))"
        ).fetchone()
        found[table] = int(rows[0]) + int(rows[1]) if rows else -1
    con.close()
    return found


_LIVE_SERIES = "SELECT 1 FROM r.dicom_instance i WHERE i.deleted_at IS NULL AND i.series_key = {}"


def _live(table: str, columns: list[str]) -> str:
    """The WHERE that keeps a reloaded table's rows of objects still there: rows of
    deleted objects, and the series, studies and patients left with no live
    instance, are kept, stamped or counted 0, by design (README "Deletions")."""
    if "deleted_at" in columns:
        return "WHERE x.deleted_at IS NULL"
    if table == "dicom_ingestion_errors":
        return (
            "WHERE NOT EXISTS (SELECT 1 FROM r.dicom_file_location l WHERE "
            "l.storage_uri = x.file_path AND l.deleted_at IS NOT NULL)"
        )
    if "instance_key" in columns:
        return (
            "WHERE NOT EXISTS (SELECT 1 FROM r.dicom_instance i WHERE "
            "i.instance_key = x.instance_key AND i.deleted_at IS NOT NULL)"
        )
    if "series_key" in columns:
        return f"WHERE EXISTS ({_LIVE_SERIES.format('x.series_key')})"
    live_in = (
        "WHERE EXISTS (SELECT 1 FROM r.dicom_instance i JOIN r.dicom_series se "
        "ON se.series_key = i.series_key {} WHERE i.deleted_at IS NULL AND {})"
    )
    if "study_key" in columns:
        return live_in.format("", "se.study_key = x.study_key")
    if "patient_key" in columns:
        return live_in.format(
            "JOIN r.dicom_study st ON st.study_key = se.study_key",
            "st.patient_key = x.patient_key",
        )
    return ""


def markdown(record: dict[str, Any]) -> str:
    full = record["runs"][0]
    lines = [
        f"# Nightly reload, {record['objects']:,} objects ({record['date']})",
        "",
        f"Machine: {record['machine']}. Changes: {record['changes']}.",
        "",
        "| run | caches | wall s | ÷ full | listing s | known objects s | extraction s "
        "| load s | deletions s | objects read | bytes read | rows merged | driver MB "
        "| worker MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for r in record["runs"]:
        p = r["phases"]
        lines.append(
            f"| {r['run']} | {r.get('caches', 'as left')} | {r['seconds']:,.1f} | "
            f"{r['seconds'] / full['seconds']:.3f} | "
            f"{p['listing']:,.1f} | {p['known_objects']:,.1f} | {p['extraction']:,.1f} | "
            f"{r['load_seconds']:,.1f} | {p['deletions']:,.1f} | {r['objects_read']:,} | "
            f"{r['bytes_read']:,} | {r['rows_merged']:,} | {r['driver_peak_rss_mb']:,.0f} | "
            f"{r['worker_peak_rss_mb']:,.0f} |"
        )
    lines += ["", *[f"- {v}" for v in record["verdicts"]], ""]
    return "\n".join(lines)


def verdicts(record: dict[str, Any]) -> list[str]:
    named = {r["run"]: r for r in record["runs"]}
    full, night_run = named["full"], named["incremental"]
    changes = record["expected"]
    checks = []
    for name in ("incremental", "incremental-warm"):
        ratio = named[name]["seconds"] / full["seconds"]
        checks.append(
            (
                ratio <= INCREMENTAL_TARGET,
                f"incremental after the night, caches {named[name]['caches']}: {ratio:.3f} "
                f"of the full run (target ≤ {INCREMENTAL_TARGET})",
            )
        )
    for name in ("no-change", "no-change-warm"):
        quiet = named[name]
        ratio = quiet["seconds"] / full["seconds"]
        checks.append(
            (
                ratio <= NO_CHANGE_TARGET and quiet["bytes_read"] == 0,
                f"incremental with no change, caches {quiet['caches']}: {ratio:.3f} of the "
                f"full run, {quiet['bytes_read']:,} bytes read (target ≤ {NO_CHANGE_TARGET}, 0)",
            )
        )
    checks += [
        (
            max(r["driver_peak_rss_mb"] for r in record["runs"]) <= DRIVER_LIMIT_MB,
            f"driver peak {max(r['driver_peak_rss_mb'] for r in record['runs']):,.0f} MB "
            f"(target ≤ {DRIVER_LIMIT_MB})",
        ),
        (
            night_run["objects_read"]
            == named["incremental-warm"]["objects_read"]
            == changes["read"],
            f"objects read {night_run['objects_read']:,} (cold), "
            f"{named['incremental-warm']['objects_read']:,} (warm); new, modified and "
            f"moved: {changes['read']:,}",
        ),
        (
            night_run["deleted"]["objects"] == changes["gone"],
            f"stamped deleted {night_run['deleted']['objects']:,}; deleted and moved away: "
            f"{changes['gone']:,}",
        ),
        (
            not any(record["differences"].values()),
            "tables equal a fresh load of the changed archive"
            + ("" if not any(record["differences"].values()) else f": {record['differences']}"),
        ),
    ]
    return [("met: " if ok else "MISSED: ") + text for ok, text in checks]


def plot(record: dict[str, Any], path: Path) -> str | None:
    """Each run's wall time split into its phases, beside the full run's."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", flush=True)
        return None
    runs = record["runs"]
    fig, (wall, memory) = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = [r["run"].replace("fresh-load-of-the-changed-archive", "fresh load") for r in runs]
    bottom = [0.0] * len(runs)
    for phase, name in (
        ("startup", "start-up, listing, lookup"),
        ("extraction", "extraction (+ overlapped load)"),
        ("shutdown", "cluster shutdown"),
        ("load_after_extraction", "load, deletions"),
        ("validation", "validation"),
    ):
        seconds = [r["phases"][phase] for r in runs]
        wall.bar(labels, seconds, bottom=bottom, label=name)
        bottom = [b + s for b, s in zip(bottom, seconds, strict=True)]
    wall.set(yscale="log", ylabel="seconds (log)", title=f"{record['objects']:,} objects")
    wall.legend(fontsize="small")
    memory.bar(labels, [r["driver_peak_rss_mb"] for r in runs], label="driver + DuckDB")
    memory.axhline(DRIVER_LIMIT_MB, color="grey", linestyle=":", label="1 GiB target")
    memory.set(ylabel="peak RSS (MB)", title="Driver memory")
    memory.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def linked_archive(objects: int, name: str) -> tuple[list[Path], Path, Path]:
    """A fresh folder `BENCH_WORK/<name>` holding a hard-linked copy (in `archive/`)
    of the first `objects` objects of bench-scale's archive: the copy's files, its
    root and the folder."""
    work = Path(os.environ.get("BENCH_WORK", "bench-work")).resolve()
    paths = archive(work, objects, "tiny")
    source_root = Path(os.path.commonpath([paths[0], paths[-1]]))
    place = work / name
    shutil.rmtree(place, ignore_errors=True)
    place.mkdir(parents=True)
    started = time.perf_counter()
    copies = linked_copy(paths, source_root, place / "archive")
    print(f"linked {len(copies):,} objects in {time.perf_counter() - started:.0f} s", flush=True)
    return copies, place / "archive", place


def main() -> None:
    objects = int(os.environ.get("BENCH_RELOAD_OBJECTS", "1000000"))
    copies, copy_root, reload = linked_archive(objects, f"reload-{objects}")
    database = reload / "imaging.duckdb"
    runs = [run(copy_root, reload, "full", database, cold=True)]
    changes = night(copies, copy_root)
    before_the_night = reload / "before-the-night.duckdb"
    shutil.copyfile(database, before_the_night)
    runs.append(run(copy_root, reload, "incremental", database, "--incremental", cold=True))
    shutil.copyfile(before_the_night, database)  # the same night again, caches warm
    before_the_night.unlink()
    runs.append(run(copy_root, reload, "incremental-warm", database, "--incremental"))
    runs.append(run(copy_root, reload, "no-change", database, "--incremental", cold=True))
    runs.append(run(copy_root, reload, "no-change-warm", database, "--incremental"))
    fresh = reload / "fresh.duckdb"
    runs.append(run(copy_root, reload, "fresh-load-of-the-changed-archive", fresh))
    record: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "objects": len(copies),
        "changes": {k: len(v) for k, v in changes.items()},
        "expected": {
            "read": len(changes["added"]) + len(changes["modified"]) + len(changes["moved_to"]),
            "gone": len(changes["deleted"]) + len(changes["moved_from"]),
        },
        "runs": runs,
        "differences": differences(database, fresh),
    }
    record["verdicts"] = verdicts(record)
    target = HERE / "results"
    target.mkdir(exist_ok=True)
    stem = f"{record['date']}-reload"
    record["plot"] = plot(record, target / f"{stem}.png")
    (target / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    (target / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
