"""`make bench-frames`: what `--frame-offsets` costs a run.

1. `synth` writes BENCH_FRAMES_OBJECTS objects (default 20,000, native pixels); a tenth
   as many encapsulated 10-frame objects with a Basic Offset Table are added, each
   with its own UIDs.
2. The archive is loaded into a fresh DuckDB twice, without and with
   `--frame-offsets` (2 workers, 2,000-object shards), in this one invocation.
3. Per run: extraction files/s per core, whole-run seconds, load seconds, bytes and
   requests read per object, offset-table reads, frames located, dicom_frame rows,
   peak memory (driver, worker), and the ratio of the two extraction rates.

Results go to benchmarks/results/<date>-frame-offsets.md and are printed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.synth import synthesize

OBJECTS = int(os.environ.get("BENCH_FRAMES_OBJECTS", "20000"))
WORKERS = 2
RESULTS = Path(__file__).resolve().parent / "results"


def _encapsulated(folder: Path, count: int) -> None:
    """`count` JPEG 2000 objects of 10 frames (opaque bytes) with a Basic Offset Table."""
    template = pydicom.dcmread(pydicom.data.get_testdata_file("emri_small_jpeg_2k_lossless.dcm"))
    folder.mkdir(parents=True)
    frames = [bytes([n]) * 4000 for n in range(10)]
    template.PixelData = encapsulate(frames, has_bot=True)
    template["PixelData"].is_undefined_length = True
    template.NumberOfFrames = 10
    template.file_meta.TransferSyntaxUID = JPEG2000Lossless
    for number in range(count):
        uid = generate_uid(entropy_srcs=["bench-frames", str(number)])
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = uid
        template.SeriesInstanceUID = generate_uid(entropy_srcs=["series", str(number // 50)])
        out = BytesIO()
        template.save_as(out, enforce_file_format=True)
        (folder / f"enc-{number:06d}.dcm").write_bytes(out.getvalue())


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-frames-"))
    reports = {}
    try:
        archive = root / "archive"
        synthesize(archive, patients=int(OBJECTS / 10.3) + 1, seed=11)
        _encapsulated(archive / "encapsulated", OBJECTS // 10)
        for name, on in (("run", False), ("run --frame-offsets", True)):
            reports[name] = run(
                RunSettings(
                    source=str(archive),
                    out=root / f"pq-{on}",
                    target=Target.parse(f"duckdb:///{root / f'w-{on}.duckdb'}"),
                    workers=WORKERS,
                    cluster_min_objects=0,
                    frame_offsets=on,
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for name, report in reports.items():
        listed = max(1, report["listed"])
        frames = report["frame_offsets"]
        table_bytes = frames["offset_table_bytes"] / listed
        rows.append(
            f"| {name} | {report['listed']:,} | {report['files_per_second'] / WORKERS:,.0f} | "
            f"{report['seconds']:.1f} | {report['load_seconds']:.1f} | "
            f"{report['bytes_read_per_object']:,.0f} | {report['read_requests_per_object']:.3f} | "
            f"{frames['offset_table_reads']:,} ({table_bytes:.1f} B/obj) | "
            f"{frames['frames_located']:,} / {frames['frames_unlocated']:,} | "
            f"{report['rows'].get('dicom_frame', 0):,} | "
            f"{report['peak_rss_bytes']['driver'] / 1e6:,.0f} / "
            f"{report['peak_rss_bytes']['worker'] / 1e6:,.0f} |"
        )
    off, on = reports["run"], reports["run --frame-offsets"]
    ratio = on["files_per_second"] / off["files_per_second"]
    text = (
        f"# --frame-offsets against a plain run, {dt.date.today().isoformat()}\n\n"
        f"{OBJECTS:,} synthesized objects and {OBJECTS // 10:,} encapsulated 10-frame "
        f"objects, local disk, DuckDB, {WORKERS} workers (`make bench-frames`).\n\n"
        "| command | objects | files/s per core (extraction) | seconds | load seconds "
        "| bytes read / object | requests / object | offset-table reads | frames located / "
        "not | dicom_frame rows | driver / worker peak MB |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        + "\n".join(rows)
        + f"\n\nExtraction rate with / without: **{ratio:.2f}**.\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{dt.date.today().isoformat()}-frame-offsets.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
