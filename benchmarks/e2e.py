"""`make bench-e2e`: dicom-loader end to end against what users would run instead,
on the same archive, in one invocation.

1. `dicom-loader synth` writes a realistic archive (real image sizes; the synthetic
   pixels are zeros written as holes, so 50 GB fit in the space of the headers).
2. Every object's first 64 KiB is read once, untimed, so that every pipeline finds
   the headers in the page cache. Otherwise the first one timed pays the disk for
   the others: the bare parse ran at 2,474 files/s first and 3,219 right after.
3. On its objects, each in its own process: a bare single-core
   `pydicom.dcmread(stop_before_pixels=True)` loop (twice its files/s is the parse
   ceiling of 2 cores), `dicom-loader run` into DuckDB with two workers (the full
   model), the naive whole-file pydicom → CSV loop and a dlt pipeline into DuckDB
   (see baselines.py). The bare loop and dicom-loader, whose ratio is the closest
   target, run BENCH_REPEATS times (default 3) and report their median run.
4. The cost curve: `dicom-loader run` into DuckDB on 10k, 50k and 200k distinct
   objects of a second archive (small pixels: header reads do not depend on them),
   warmed the same way. Whole-run files/s include the fixed start-up (cluster,
   imports); files/s between two points is the cost of each further object.

Results go to benchmarks/results/<date>.json, .md and .png (each pipeline's files/s
and peak memory side by side, and the cost curve) and are printed;
`python benchmarks/e2e.py --plot results/<date>.json` draws a saved record again. dicom-loader
is timed from its command's start to its end (cluster start-up, listing, load and
validation included); baselines from after their imports.
Sizes: BENCH_OBJECTS (default 20,000), BENCH_CURVE (default 10000,50000,200000),
BENCH_WORK (archives kept between runs, default ./bench-work), BENCH_REPEATS,
BENCH_SKIP (any of naive,dlt,curve).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from loader.synth import synthesize

HERE = Path(__file__).resolve().parent
OBJECTS_PER_PATIENT = 10.3  # what synth writes on average
WARM_BYTES = 64 * 1024  # the most any pipeline reads of a header here
TARGETS = {
    "dlt": ("dicom-loader ÷ dlt", 10.0),
    "naive": ("dicom-loader ÷ naive full read", 2.0),
    "ceiling": ("dicom-loader ÷ parse ceiling (2 × bare)", 0.6),
}


def _synth_part(args: tuple[str, int, int, str]) -> None:
    root, patients, seed, pixels = args
    synthesize(Path(root), patients=patients, seed=seed, pixels=pixels, duplicate_fraction=0)


def archive(work: Path, objects: int, pixels: str) -> list[str]:
    """Sorted paths of an archive of at least `objects` objects, built once (two
    processes, distinct seeds) and kept in `work`."""
    patients = int(objects / OBJECTS_PER_PATIENT / 2 * 1.05) + 1
    root = work / f"archive-{pixels}-{patients * 2}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        parts = [(str(root / f"part{i}"), patients, 100 + i, pixels) for i in range(2)]
        started = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_synth_part, parts))
        print(f"synthesized {root} in {time.perf_counter() - started:.0f} s", flush=True)
        done.touch()
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.name != done.name)
    if len(paths) < objects:
        raise SystemExit(f"{root} holds {len(paths)} objects, fewer than {objects}")
    return paths[:objects]


def manifest(paths: list[str], where: Path) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text("\n".join(paths) + "\n")
    return where


def warm(paths: list[str]) -> None:
    """Read every header once, so no timed pipeline pays the disk for the others."""
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as fh:
            fh.read(WARM_BYTES)
    print(f"warmed {len(paths):,} headers in {time.perf_counter() - started:.1f} s", flush=True)


def median_run(measure: Callable[[], dict[str, Any]], repeats: int) -> dict[str, Any]:
    """The median run by files/s, with every run's files/s beside it: one run on a
    shared machine can be off by a tenth."""
    runs = sorted((measure() for _ in range(repeats)), key=lambda r: r["files_per_second"])
    chosen = runs[(len(runs) - 1) // 2]
    return {**chosen, "runs_files_per_second": [r["files_per_second"] for r in runs]}


def baseline(kind: str, source: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result = out / "result.json"
    command = [sys.executable, str(HERE / "baselines.py"), kind, str(source), str(out), str(result)]
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    measured: dict[str, Any] = json.loads(result.read_text())
    print(f"{kind}: {measured['files_per_second']:,.1f} files/s", flush=True)
    return measured


def dicom_loader(source: Path, out: Path, workers: int) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    report_path = out / "report.json"
    command = [
        *(sys.executable, "-m", "loader", "run", str(source)),
        *("--out", str(out / "parquet"), "--target", f"duckdb:///{out / 'imaging.duckdb'}"),
        *("--workers", str(workers), "--run-id", "bench", "--report", str(report_path)),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    report = json.loads(report_path.read_text())
    measured = {
        "objects": report["listed"],
        "seconds": round(seconds, 3),
        "files_per_second": round(report["listed"] / seconds, 1),
        "processing_files_per_second": report["files_per_second"],
        "bytes_read_per_object": report["bytes_read_per_object"],
        "peak_rss_bytes": report["peak_rss_bytes"],
        "rows": sum(report["rows"].values()),
        "loaded": report["loaded"],
    }
    print(f"dicom-loader ({source.name}): {measured['files_per_second']:,.1f} files/s", flush=True)
    return measured


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
    }


def ratios(results: dict[str, Any]) -> dict[str, float]:
    ours = results["dicom_loader"]["files_per_second"]
    found = {}
    if "dlt" in results:
        found["dlt"] = ours / results["dlt"]["files_per_second"]
    if "naive" in results:
        found["naive"] = ours / results["naive"]["files_per_second"]
    found["ceiling"] = ours / (2 * results["bare"]["files_per_second"])
    return {k: round(v, 2) for k, v in found.items()}


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [
        f"# End-to-end benchmark, {record['date']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}.",
        f"Archive: {record['objects']:,} synthesized objects with real image sizes "
        f"({record['archive_gb']:.1f} GB).",
        "",
        "| pipeline | files/s | files/s per core | bytes read per object | peak RSS driver | "
        "peak RSS worker | what it produces |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    produces = {
        "dicom_loader": "every table of the model + raw JSON, loaded into DuckDB",
        "bare": "nothing (parse only)",
        "naive": "4 CSV files, a few columns each",
        "dlt": "one DuckDB table of top-level text/number elements",
    }
    cores = {"dicom_loader": record["workers"], "bare": 1, "naive": 1, "dlt": 1}
    for name, result in record["results"].items():
        peak = result["peak_rss_bytes"]
        lines.append(
            f"| {name.replace('_', '-')} | {result['files_per_second']:,.1f} | "
            f"{result['files_per_second'] / cores[name]:,.1f} | "
            f"{result['bytes_read_per_object']:,.0f} | {peak['driver'] / 2**20:,.0f} MB | "
            f"{peak['worker'] / 2**20:,.0f} MB | {produces[name]} |"
        )
    for name, result in record["results"].items():
        runs = result.get("runs_files_per_second", [])
        if len(runs) > 1:
            lines.append(
                f"\n{name.replace('_', '-')}: the median of {len(runs)} runs "
                f"({', '.join(f'{r:,.1f}' for r in runs)} files/s)."
            )
    lines += ["", "| ratio | value | target |", "| --- | ---: | ---: |"]
    for key, value in record["ratios"].items():
        label, target = TARGETS[key]
        verdict = "met" if value >= target else "NOT met"
        lines.append(f"| {label} | {value:.2f} | ≥ {target} ({verdict}) |")
    if record.get("curve"):
        lines += [
            "",
            "| objects (distinct, small pixels) | seconds | files/s | files/s since the "
            "previous point |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for point in record["curve"]:
            marginal = point.get("marginal_files_per_second")
            lines.append(
                f"| {point['objects']:,} | {point['seconds']:,.1f} | "
                f"{point['files_per_second']:,.1f} | "
                f"{f'{marginal:,.1f}' if marginal else '–'} |"
            )
        for label, key in (
            ("whole runs", "curve_spread"),
            ("since the previous point", "curve_marginal_spread"),
        ):
            spread = record[key]
            if spread:
                verdict = "met" if spread <= 1.15 else "NOT met"
                lines.append(
                    f"\nFastest ÷ slowest files/s, {label}: {spread:.2f} "
                    f"(target ≤ 1.15, {verdict})."
                )
    if record.get("plot"):
        lines += ["", f"![files/s, memory and cost curve]({record['plot']})"]
    return "\n".join(lines) + "\n"


def plot(record: dict[str, Any], path: Path) -> str | None:
    """Files/s and peak RSS of each pipeline side by side, and dicom-loader's cost
    curve: files/s against objects, whole runs and between points."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", flush=True)
        return None
    results = record["results"]
    names = list(results)
    labels = [n.replace("_", "-") for n in names]
    fig, (rate, memory, curve) = plt.subplots(1, 3, figsize=(15, 4.2))
    bars = rate.bar(labels, [results[n]["files_per_second"] for n in names])
    rate.bar_label(bars, fmt="{:,.0f}")
    rate.set(ylabel="files/s", title=f"{record['objects']:,} objects, real image sizes")
    peaks = [max(results[n]["peak_rss_bytes"].values()) / 2**20 for n in names]
    bars = memory.bar(labels, peaks, color="tab:orange")
    memory.bar_label(bars, fmt="{:,.0f}")
    memory.set(ylabel="peak RSS of its largest process (MB)", title="Memory")
    points = record.get("curve") or []
    if points:
        sizes = [p["objects"] for p in points]
        curve.plot(sizes, [p["files_per_second"] for p in points], "o-", label="whole run")
        marginal = [p for p in points if p.get("marginal_files_per_second")]
        curve.plot(
            [p["objects"] for p in marginal],
            [p["marginal_files_per_second"] for p in marginal],
            "s--",
            label="since the previous point",
        )
        curve.set(xscale="log", xlabel="objects", ylabel="files/s", title="dicom-loader cost curve")
        curve.set_ylim(bottom=0)
        curve.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _spread(rates: list[float]) -> float | None:
    """Fastest ÷ slowest; the cost is linear when it stays near 1."""
    return round(max(rates) / min(rates), 3) if len(rates) > 1 else None


def main() -> None:
    if sys.argv[1:2] == ["--plot"]:
        saved = Path(sys.argv[2])
        print(plot(json.loads(saved.read_text()), saved.with_suffix(".png")))
        return
    objects = int(os.environ.get("BENCH_OBJECTS", "20000"))
    curve = [int(n) for n in os.environ.get("BENCH_CURVE", "10000,50000,200000").split(",")]
    skip = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
    work = Path(os.environ.get("BENCH_WORK", "bench-work")).resolve()
    repeats = max(1, int(os.environ.get("BENCH_REPEATS", "3")))
    workers = 2
    paths = archive(work, objects, "realistic")
    source = manifest(paths, work / "runs" / "archive.txt")
    warm(paths)
    results: dict[str, Any] = {
        "bare": median_run(lambda: baseline("bare", source, work / "runs" / "bare"), repeats),
        "dicom_loader": median_run(
            lambda: dicom_loader(source, work / "runs" / "dicom-loader", workers), repeats
        ),
    }
    for kind in ("naive", "dlt"):
        if kind not in skip:
            results[kind] = baseline(kind, source, work / "runs" / kind)
    points = []
    if "curve" not in skip:
        curve_paths = archive(work, max(curve), "tiny")
        warm(curve_paths)
        for size in curve:
            listed = manifest(curve_paths[:size], work / "runs" / f"curve-{size}.txt")
            point = dicom_loader(listed, work / "runs" / f"curve-{size}", workers)
            points.append({k: point[k] for k in ("objects", "files_per_second", "seconds")})
        for before, after in itertools.pairwise(points):
            extra = (after["objects"] - before["objects"]) / (after["seconds"] - before["seconds"])
            after["marginal_files_per_second"] = round(extra, 1)
    today = dt.date.today().isoformat()
    record = {
        "date": today,
        "machine": machine(),
        "objects": len(paths),
        "archive_gb": sum(os.path.getsize(p) for p in paths) / 1e9,
        "workers": workers,
        "repeats": repeats,
        "results": results,
        "ratios": ratios(results),
        "curve": points,
        "curve_spread": _spread([p["files_per_second"] for p in points]),
        "curve_marginal_spread": _spread(
            [p["marginal_files_per_second"] for p in points if "marginal_files_per_second" in p]
        ),
    }
    target = HERE / "results"
    target.mkdir(exist_ok=True)
    (target / f"{today}.json").write_text(json.dumps(record, indent=2) + "\n")
    record["plot"] = plot(record, target / f"{today}.png")
    text = markdown(record)
    (target / f"{today}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
