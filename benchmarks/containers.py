"""`make bench-containers`: what reading an archive packed in a container costs.

The same objects (pydicom's test files, a text file, and two CT objects with 2 MB of
pixels each after the header) are loaded into DuckDB loose, as a zip (stored and
deflated), as a tar and as a tar.gz, on local disk, in one invocation: the container's
size, the bytes and requests the run's workers read (containers.RangedFile counts a
container's, a zip's directory included; the listing's own read of the directory is
not in them), and bytes per object. Results go to
benchmarks/results/<date>-containers.md and are printed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target

NAMES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb.dcm")
RESULTS = Path(__file__).resolve().parent / "results"


def _loose(root: Path) -> Path:
    folder = root / "loose"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(str(get_testdata_file(name)), folder / name)
    (folder / "readme.txt").write_text("not DICOM\n")
    for n in range(2):
        ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{n + 1}"
        ds.Rows = ds.Columns = 1024
        ds.PixelData = bytes(2 * 1024 * 1024)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"large{n}.dcm", enforce_file_format=True)
    return folder


def _members(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-containers-"))
    try:
        loose = _loose(root)
        sources: list[tuple[str, Path]] = [("loose files", loose)]
        for label, method in (
            ("zip, stored", zipfile.ZIP_STORED),
            ("zip, deflated", zipfile.ZIP_DEFLATED),
        ):
            path = root / f"{label.replace(', ', '-')}.zip"
            with zipfile.ZipFile(path, "w", method) as archive:
                for file in _members(loose):
                    archive.write(file, file.name)
            sources.append((label, path))
        for label, suffix, mode in (("tar", ".tar", "w"), ("tar.gz", ".tar.gz", "w:gz")):
            path = root / f"bundle{suffix}"
            with tarfile.open(path, mode) as archive:
                for file in _members(loose):
                    archive.add(file, file.name)
            sources.append((label, path))
        lines = []
        loaded: set[tuple[int, int, int]] = set()  # each form must load the same objects
        for number, (label, source) in enumerate(sources):
            size = (
                sum(p.stat().st_size for p in _members(source))
                if source.is_dir()
                else source.stat().st_size
            )
            report = run(
                RunSettings(
                    source=str(source),
                    out=root / f"pq{number}",
                    workers=0,
                    target=Target.parse(f"duckdb:///{root / f'w{number}.duckdb'}"),
                )
            )
            loaded.add((report["listed"], report["loaded"], report["error_files"]))
            lines.append(
                f"| {label} | {size:,} | {report['listed']} | {report['bytes_read']:,} | "
                f"{report['bytes_read_per_object']:,.0f} | {report['read_requests']} |"
            )
        assert len(loaded) == 1, loaded  # bytes compared only between equal loads
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = (
        f"# containers, {dt.date.today().isoformat()}\n\n"
        "The same objects loose and packed, local disk, one process (`make bench-containers`).\n\n"
        "| source | size | objects | bytes read | bytes / object | requests |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n" + "\n".join(lines) + "\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{dt.date.today().isoformat()}-containers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
