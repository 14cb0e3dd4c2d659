"""`make bench-scale`: the whole `dicom-loader run` into DuckDB at 10k, 100k, 200k and
1M objects on this machine, and what it costs as the archive grows.

1. An archive of at least BENCH_SCALE_MAX objects (default 1,000,000) of synth's
   mix with tiny pixels (header reads do not depend on pixel size), built once by two
   processes with distinct seeds and kept in BENCH_WORK (default ./bench-work),
   about 6.5 GB and 25 minutes the first time.
2. Every object's header is read once, untimed, so every run finds it in the page
   cache (see e2e.py).
3. For each size in BENCH_SCALE_SIZES (default 10000,100000,200000,1000000): one run
   over a manifest of the archive's first N objects, two workers, into a fresh
   DuckDB file, timed from the command's start to its end; its report gives the
   phases (start-up, extraction, load left after the extraction, validation), the
   load's own work and the driver's and workers' peak RSS.
4. At BENCH_SCALE_CEILING objects (default 200,000): a bare single-core
   `dcmread(stop_before_pixels=True)` loop over the same manifest; twice its files/s
   is the two-core parse ceiling the whole run is measured against.

5. The same ceiling ratio on an archive of the mix the issue was measured on, built
   from pydicom's test files (pydicom_mix.py: 60 % CT, 20 % MR, 20 % RT, SR and
   multi-frame), and small runs of it with real CT and MR image sizes (BENCH_SMALL,
   default 3000,20000): dicom-loader (median of BENCH_REPEATS runs, default 3)
   against the naive whole-file loop and dlt (baselines.py) on the same objects.

Results: benchmarks/results/<date>-scale.json, .md and .png (files/s and peak RSS
against objects, and each run's time split into its phases).
BENCH_SKIP: any of curve, mix, small.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pydicom_mix  # run as a script: its folder is on the path
from e2e import archive, baseline, machine, manifest, median_run, warm

HERE = Path(__file__).resolve().parent
DRIVER_LIMIT_MB = 1024  # the driver's peak RSS, DuckDB included, at 1M objects
DRIVER_GROWTH = 1.2  # peak at the largest size ÷ peak at 100k
CEILING_TARGET = 0.7  # whole run ÷ two-core parse ceiling
DEFAULT_SIZES = "10000,100000,200000,1000000"


def run_loader(source: Path, out: Path) -> dict[str, Any]:
    """One whole run, in its own process, into a fresh DuckDB file."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    report_path = out / "report.json"
    database = out / "imaging.duckdb"
    command = [
        *(sys.executable, "-m", "loader", "run", str(source), "--workers", "2"),
        *("--out", str(out / "parquet"), "--target", f"duckdb:///{database}"),
        *("--run-id", "scale", "--report", str(report_path)),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    report = json.loads(report_path.read_text())
    phases = report["phases"]
    measured = {
        "objects": report["listed"],
        "seconds": round(seconds, 2),
        "files_per_second": round(report["listed"] / seconds, 1),
        "files_per_second_per_core": round(report["listed"] / seconds / 2, 1),
        "extraction_files_per_second": report["files_per_second"],
        # Interpreter start and imports come before the report's clock starts.
        "before_run_seconds": round(seconds - report["seconds"], 2),
        "phases": phases,
        "load_seconds": report["load_seconds"],
        "load_batches": report["load_batches"],
        "load_batches_during_extraction": report["load_batches_during_extraction"],
        "rows": sum(report["rows"].values()),
        "bytes_read_per_object": report["bytes_read_per_object"],
        "driver_peak_rss_mb": round(report["peak_rss_bytes"]["driver"] / 2**20, 1),
        "worker_peak_rss_mb": round(report["peak_rss_bytes"]["worker"] / 2**20, 1),
        "database_mb": round(database.stat().st_size / 2**20, 1),
        "validation_passed": report["validation_passed"],
    }
    print(
        f"{measured['objects']:,} objects: {seconds:,.1f} s, "
        f"{measured['files_per_second']:,.0f} files/s, driver "
        f"{measured['driver_peak_rss_mb']:,.0f} MB",
        flush=True,
    )
    shutil.rmtree(out / "parquet", ignore_errors=True)  # 1M objects' Parquet: gigabytes
    return measured


def verdicts(points: list[dict[str, Any]], ceilings: dict[str, dict[str, Any]] | None) -> list[str]:
    by_size = {p["objects"]: p for p in points}
    largest = max(points, key=lambda p: p["objects"])
    lines = [
        f"- Driver peak RSS at {largest['objects']:,} objects: "
        f"{largest['driver_peak_rss_mb']:,.0f} MB (target < {DRIVER_LIMIT_MB} MB: "
        f"{'met' if largest['driver_peak_rss_mb'] < DRIVER_LIMIT_MB else 'NOT met'})."
    ]
    hundred_k = next((p for n, p in sorted(by_size.items()) if n >= 100_000), None)
    if hundred_k and hundred_k is not largest:
        growth = largest["driver_peak_rss_mb"] / hundred_k["driver_peak_rss_mb"]
        lines.append(
            f"- Driver peak RSS, {largest['objects']:,} ÷ {hundred_k['objects']:,} objects: "
            f"{growth:.2f} (target ≤ {DRIVER_GROWTH}: "
            f"{'met' if growth <= DRIVER_GROWTH else 'NOT met'})."
        )
    for name, found in (ceilings or {}).items():
        point = found["point"]
        ratio = point["files_per_second"] / (2 * found["bare_files_per_second"])
        extraction = point["extraction_files_per_second"] / (2 * found["bare_files_per_second"])
        lines.append(
            f"- {name}: whole run at {point['objects']:,} objects ÷ two-core parse ceiling "
            f"(2 × {found['bare_files_per_second']:,.0f} files/s): {ratio:.2f}, "
            f"extraction alone {extraction:.2f} (target ≥ {CEILING_TARGET}: "
            f"{'met' if ratio >= CEILING_TARGET else 'NOT met'})."
        )
    return lines


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [
        f"# Scale benchmark, {record['date']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}.",
        "Archive: synth's mix, tiny pixels; each run reads a manifest of its first N "
        "objects, two workers, into a fresh DuckDB file, headers in the page cache.",
        "",
        "| objects | seconds | files/s | per core | extraction files/s | start-up s | "
        "extraction s | shutdown s | load after extraction s | validation s | load work s | "
        "batches (during extraction) | rows | bytes read / object | driver peak | worker peak |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | ---: |",
    ]
    for p in record["points"]:
        ph = p["phases"]
        startup = p["before_run_seconds"] + ph["startup"]
        lines.append(
            f"| {p['objects']:,} | {p['seconds']:,.1f} | {p['files_per_second']:,.0f} | "
            f"{p['files_per_second_per_core']:,.0f} | {p['extraction_files_per_second']:,.0f} | "
            f"{startup:.2f} | {ph['extraction']:,.1f} | {ph['shutdown']:.2f} | "
            f"{ph['load_after_extraction']:,.1f} | "
            f"{ph['validation']:,.1f} | {p['load_seconds']:,.1f} | {p['load_batches']} "
            f"({p['load_batches_during_extraction']}) | {p['rows']:,} | "
            f"{p['bytes_read_per_object']:,.0f} | {p['driver_peak_rss_mb']:,.0f} MB | "
            f"{p['worker_peak_rss_mb']:,.0f} MB |"
        )
    lines += [
        "",
        "Start-up counts the interpreter, imports, listing's first page and the cluster "
        "(everything before the first shard is submitted); shutdown is the cluster's. "
        "The load's work of the batches "
        "finished during the extraction overlaps it; *load after extraction* is what is "
        "left when the last shard is done, the run's accounting included.",
        "",
        *verdicts(record["points"], record.get("ceilings")),
    ]
    if record.get("small"):
        lines += [
            "",
            "Small runs (pydicom-test-file mix, real CT and MR image sizes), each pipeline in "
            "its own process; "
            "dicom-loader timed from its command's start, the baselines after their imports:",
            "",
            "| objects | dicom-loader files/s | naive files/s | dlt files/s | ÷ naive "
            "(target ≥ 1.0) | ÷ dlt (target ≥ 5) | dicom-loader fixed s (all but extraction "
            "and load) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in record["small"]:
            ours = row["dicom_loader"]
            lines.append(
                f"| {row['objects']:,} | {ours['files_per_second']:,.0f} | "
                f"{row['naive']['files_per_second']:,.0f} | "
                f"{row['dlt']['files_per_second']:,.0f} | "
                f"{row['versus_naive']:.2f} | {row['versus_dlt']:.2f} | "
                f"{ours['fixed_seconds']:.2f} |"
            )
    if record.get("plot"):
        lines += ["", f"![files/s, memory and phases against objects]({record['plot']})"]
    return "\n".join(lines) + "\n"


def plot(points: list[dict[str, Any]], path: Path) -> str | None:
    """Files/s and peak RSS against objects, and each run's time split in phases."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", flush=True)
        return None
    sizes = [p["objects"] for p in points]
    fig, (rate, memory, split) = plt.subplots(1, 3, figsize=(15, 4.2))
    rate.plot(sizes, [p["files_per_second"] for p in points], "o-", label="whole run")
    rate.plot(sizes, [p["extraction_files_per_second"] for p in points], "s--", label="extraction")
    rate.set(xscale="log", xlabel="objects", ylabel="files/s (2 workers)", title="Throughput")
    rate.set_ylim(bottom=0)
    rate.legend()
    memory.plot(sizes, [p["driver_peak_rss_mb"] for p in points], "o-", label="driver + DuckDB")
    memory.plot(sizes, [p["worker_peak_rss_mb"] for p in points], "s--", label="worker")
    memory.axhline(DRIVER_LIMIT_MB, color="grey", linestyle=":", label="1 GB target")
    memory.set(xscale="log", xlabel="objects", ylabel="peak RSS (MB)", title="Memory")
    memory.set_ylim(bottom=0)
    memory.legend()
    labels = [f"{n:,}" for n in sizes]
    bottom = [0.0] * len(points)
    for phase, name in (
        ("startup", "start-up"),
        ("extraction", "extraction (+ overlapped load)"),
        ("shutdown", "cluster shutdown"),
        ("load_after_extraction", "load after extraction"),
        ("validation", "validation"),
    ):
        share = []
        for p in points:
            seconds = p["phases"][phase] + (p["before_run_seconds"] if phase == "startup" else 0)
            share.append(100 * seconds / p["seconds"])
        split.bar(labels, share, bottom=bottom, label=name)
        bottom = [b + s for b, s in zip(bottom, share, strict=True)]
    split.set(xlabel="objects", ylabel="% of the run's wall time", title="Where the time goes")
    split.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def small_runs(paths: list[str], sizes: list[int], runs: Path, repeats: int) -> list[Any]:
    """dicom-loader against the naive loop and dlt on the first N objects."""
    rows = []
    for size in sizes:
        listed = manifest(paths[:size], runs / f"small-{size}.txt")
        ours = median_run(lambda: run_loader(listed, runs / f"small-{size}"), repeats)  # noqa: B023
        phases = ours["phases"]
        ours["fixed_seconds"] = round(
            ours["seconds"] - phases["extraction"] - phases["load_after_extraction"], 2
        )
        naive = baseline("naive", listed, runs / "small-naive")
        dlt = baseline("dlt", listed, runs / "small-dlt")
        rows.append(
            {
                "objects": size,
                "dicom_loader": ours,
                "naive": naive,
                "dlt": dlt,
                "versus_naive": round(ours["files_per_second"] / naive["files_per_second"], 2),
                "versus_dlt": round(ours["files_per_second"] / dlt["files_per_second"], 2),
            }
        )
    return rows


def ceiling_at(listed: Path, runs: Path, name: str) -> dict[str, Any]:
    point = run_loader(listed, runs / f"ceiling-{name}")
    bare = baseline("bare", listed, runs / f"ceiling-{name}-bare")
    return {"point": point, "bare_files_per_second": bare["files_per_second"]}


def main() -> None:
    work = Path(os.environ.get("BENCH_WORK", "bench-work")).resolve()
    sizes = [int(n) for n in os.environ.get("BENCH_SCALE_SIZES", DEFAULT_SIZES).split(",")]
    ceiling_size = int(os.environ.get("BENCH_SCALE_CEILING", "200000"))
    small = [int(n) for n in os.environ.get("BENCH_SMALL", "3000,20000").split(",")]
    repeats = max(1, int(os.environ.get("BENCH_REPEATS", "3")))
    skip = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
    runs = work / "runs"
    points: list[dict[str, Any]] = []
    ceilings: dict[str, dict[str, Any]] = {}
    small_rows: list[Any] = []
    if "curve" not in skip:
        paths = archive(work, max(sizes), "tiny")
        warm(paths[: max(sizes)])
        for size in sizes:
            listed = manifest(paths[:size], runs / f"scale-{size}.txt")
            if size == ceiling_size:
                ceilings["synth mix"] = ceiling_at(listed, runs, "synth")
                points.append(ceilings["synth mix"]["point"])
            else:
                points.append(run_loader(listed, runs / f"scale-{size}"))
    if "mix" not in skip:
        mix = pydicom_mix.build(work / f"pydicom-mix-{ceiling_size}", ceiling_size)
        warm(mix)
        listed = manifest(mix, runs / f"mix-{ceiling_size}.txt")
        ceilings["pydicom-test-file mix"] = ceiling_at(listed, runs, "mix")
    if "small" not in skip:
        real = pydicom_mix.build(
            work / f"pydicom-mix-real-{max(small)}", max(small), 2, "realistic"
        )
        warm(real)
        small_rows = small_runs(real, small, runs, repeats)
    today = dt.date.today().isoformat()
    target = HERE / "results"
    target.mkdir(exist_ok=True)
    record = {
        "date": today,
        "machine": machine(),
        "points": points,
        "ceilings": ceilings,
        "small": small_rows,
        "plot": plot(points, target / f"{today}-scale.png") if points else None,
    }
    (target / f"{today}-scale.json").write_text(json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    (target / f"{today}-scale.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
