"""What users would run instead of dicom-loader, each timed in its own process.

`python benchmarks/baselines.py KIND MANIFEST OUT RESULT_JSON` runs one over the
paths of MANIFEST (one a line) and writes its numbers to RESULT_JSON:

- `bare`: `pydicom.dcmread(stop_before_pixels=True)` of every object, nothing kept.
  One core; twice its files/s is the parse ceiling of a 2-core machine.
- `naive`: the serial whole-file approach of published reference scripts: read each
  object whole with pydicom, write patients, studies, series and instances (a few
  columns each, keyed by their UIDs) to one CSV per table.
- `dlt`: a dlt pipeline with a pydicom resource yielding every top-level text and
  number element of each header, loaded into DuckDB by dlt.

Timing starts after imports and ends when the output is complete. Bytes read come
from the kernel's count for the process (/proc/self/io `rchar`), peak memory from
VmHWM.
"""

from __future__ import annotations

import csv
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom

from loader.core.memory import peak_rss_bytes

TABLES = {
    "patient": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"),
    "study": ("StudyInstanceUID", "PatientID", "StudyDate", "StudyDescription", "AccessionNumber"),
    "series": ("SeriesInstanceUID", "StudyInstanceUID", "Modality", "SeriesNumber"),
    "instance": ("SOPInstanceUID", "SeriesInstanceUID", "SOPClassUID", "InstanceNumber"),
}
_SKIPPED_VRS = frozenset({"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"})


def bytes_read_by_this_process() -> int:
    with open("/proc/self/io", encoding="ascii") as io:
        for line in io:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def bare(paths: list[str], out: Path) -> int:
    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
    return len(paths)


def naive(paths: list[str], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    files = {table: (out / f"{table}.csv").open("w", newline="") for table in TABLES}
    writers = {table: csv.writer(fh) for table, fh in files.items()}
    for table, columns in TABLES.items():
        writers[table].writerow([*columns, "path"] if table == "instance" else columns)
    seen: dict[str, set[str]] = {table: set() for table in TABLES}
    try:
        for path in paths:
            ds = pydicom.dcmread(path)
            for table, columns in TABLES.items():
                key = str(ds.get(columns[0], ""))
                if table != "instance" and key in seen[table]:
                    continue
                seen[table].add(key)
                row = [str(ds.get(column, "")) for column in columns]
                writers[table].writerow([*row, path] if table == "instance" else row)
    finally:
        for fh in files.values():
            fh.close()
    return len(paths)


def _headers(paths: list[str]) -> Iterator[dict[str, Any]]:
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        row: dict[str, Any] = {"path": path}
        for element in ds:
            if element.VR in _SKIPPED_VRS:
                continue
            value = element.value
            name = element.keyword or f"x{element.tag:08x}"
            if isinstance(value, float):  # DSfloat and IS are subclasses JSON does not know
                row[name] = float(value)
            elif isinstance(value, int):
                row[name] = int(value)
            else:
                row[name] = str(value)
        yield row


def dlt_pipeline(paths: list[str], out: Path) -> int:
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name="dicom_headers",
        pipelines_dir=str(out / "pipelines"),
        destination=dlt.destinations.duckdb(str(out / "dlt.duckdb")),
        dataset_name="dicom",
    )
    resource = dlt.resource(_headers(paths), name="instances", write_disposition="append")
    pipeline.run(resource)
    return len(paths)


KINDS: dict[str, Callable[[list[str], Path], int]] = {
    "bare": bare,
    "naive": naive,
    "dlt": dlt_pipeline,
}


def main(argv: list[str]) -> None:
    kind, manifest, out, result = argv
    paths = Path(manifest).read_text().split("\n")
    paths = [p for p in paths if p]
    warnings.simplefilter("ignore")
    read_before = bytes_read_by_this_process()
    started = time.perf_counter()
    objects = KINDS[kind](paths, Path(out))
    seconds = time.perf_counter() - started
    read = bytes_read_by_this_process() - read_before
    Path(result).write_text(
        json.dumps(
            {
                "objects": objects,
                "seconds": round(seconds, 3),
                "files_per_second": round(objects / seconds, 1),
                "bytes_read_per_object": round(read / objects, 1),
                "peak_rss_bytes": {"driver": peak_rss_bytes(), "worker": 0},
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
