"""An archive built from pydicom's own test files, in the mix of a hospital export:
60 % CT, 20 % MR, 20 % RT plan and structure set, SR and multi-frame (RT dose, SEG).

synth's mix is wider (enhanced CT/MR, SEG, US, MG, dose SR…), and its expensive types
weigh more against a bare parse, which skips the sequences they are made of: the two
archives give different ratios to the parse ceiling, and the benchmarks report both.

Every object is a template with fresh UIDs (grouped: 200 objects per study, two
studies per patient, series per kind). Pixels are 8 × 8 per frame (`tiny`: header
reads do not depend on pixel size) or, for CT and MR, the sizes of real images
(`realistic`: 512 × 512 and 256 × 256), which the naive whole-file baseline must read.
"""

from __future__ import annotations

import hashlib
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

STUDY_SIZE = 200
CT, MR = "CT_small.dcm", "MR_small.dcm"
OTHERS = ("rtplan.dcm", "rtstruct.dcm", "reportsi.dcm", "test-SR.dcm", "rtdose.dcm")
OTHERS += ("liver_1frame.dcm",)
CHUNK = 10_000


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:15], 'big')}"


REALISTIC = {CT: 512, MR: 256}  # rows and columns of a real image of the kind


def _template(name: str, pixels: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    if path is None:
        raise SystemExit(f"pydicom's test file {name} is missing")
    ds = pydicom.dcmread(path, force=True)
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "PixelData" in ds:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
        side = REALISTIC.get(name, 8) if pixels == "realistic" else 8
        ds.Rows = ds.Columns = side
        ds.PixelData = bytes(side * side * frames * samples * max(bits // 8, 1))
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ds


def _kind(position: int) -> tuple[str, int]:
    """The template and series number of the object at `position` in its study."""
    if position < 120:
        return CT, position // 60  # two CT series of 60
    if position < 160:
        return MR, 2
    other = (position - 160) % len(OTHERS)
    return OTHERS[other], 3 + other


def _write_chunk(args: tuple[str, int, int, int, str]) -> int:
    root, start, stop, seed, pixels = args
    warnings.simplefilter("ignore")  # rtplan's UIDs are longer than DICOM allows
    templates = {name: _template(name, pixels) for name in (CT, MR, *OTHERS)}
    for index in range(start, stop):
        study, position = divmod(index, STUDY_SIZE)
        name, series = _kind(position)
        ds = templates[name]
        ds.PatientID = f"MIX{seed:02d}{study // 2:07d}"
        ds.PatientName = f"Mix^Patient{study // 2}"
        ds.StudyInstanceUID = _uid(seed, "study", study)
        ds.SeriesInstanceUID = _uid(seed, "series", study, series)
        ds.SeriesNumber = series + 1
        ds.InstanceNumber = position + 1
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(seed, "sop", index)
        folder = Path(root) / f"p{study // 2:07d}" / f"s{study % 2}" / f"se{series}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"{position:03d}.dcm", enforce_file_format=True)
    return stop - start


def build(root: Path, objects: int, seed: int = 1, pixels: str = "tiny") -> list[str]:
    """Sorted paths of an archive of `objects` objects at `root`, built once (two
    processes) and kept: a `.complete` marker says it is whole."""
    done = root / ".complete"
    if not done.exists():
        chunks = [
            (str(root), start, min(start + CHUNK, objects), seed, pixels)
            for start in range(0, objects, CHUNK)
        ]
        with ProcessPoolExecutor(2) as pool:
            written = sum(pool.map(_write_chunk, chunks))
        print(f"wrote {written:,} objects from pydicom's test files to {root}", flush=True)
        done.touch()
    return sorted(str(p) for p in root.rglob("*.dcm"))
