"""Deterministic, realistic test archives: `dicom-loader synth`.

The same (patients, seed, pixels, bad fraction) always gives the same files,
bytes and modification times, and the summary says what a correct load of the
archive must report: instances, duplicates and bad files by category.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import random
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from loader.core.errors import Category
from loader.synth import content as content_trees
from loader.synth import iods
from loader.synth.codes import uid
from loader.synth.iods import SOP_CLASSES, Person

CHARSETS: list[tuple[list[str], str]] = [
    ([""], "{last}^{first}"),
    (["ISO_IR 100"], "Müller^Jürgen"),
    (["ISO_IR 192"], "Иванова^Анна"),
    (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
]
LAST = ["Smith", "Jones", "Garcia", "Chen", "Okafor", "Novak", "Silva", "Kim", "Haddad"]
FIRST = ["Alex", "Sam", "Maria", "Wei", "Ada", "Jan", "Lucia", "Min", "Omar"]
BAD_FILE_MTIME = 1_700_000_000.0
PROTOCOLS = {
    "ct_chest": "CT CHEST W CONTRAST",
    "mr_brain": "MRI BRAIN WO CONTRAST",
    "xr": "XR CHEST 2 VIEWS",
    "mammo": "MAMMO SCREENING BILATERAL",
    "us": "US ABDOMEN COMPLETE",
    "pet_ct": "PET/CT FDG WHOLE BODY",
    "nm": "NM BONE SCAN WHOLE BODY",
    "rt": "RT PLANNING PELVIS",
    "ct_enhanced": "CT CARDIAC ANGIO",
}


@dataclass
class SynthSummary:
    root: str
    files: int = 0
    instances: int = 0
    duplicates: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    type_cast_objects: int = 0
    patients: int = 0
    studies: int = 0
    series: int = 0
    bytes: int = 0
    modalities: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Writer:
    def __init__(self, root: Path, rng: random.Random, pixels: str) -> None:
        self.root = root
        self.rng = rng
        self.pixels = pixels
        self.summary = SynthSummary(str(root))
        self.modalities: Counter[str] = Counter()
        self.written: list[tuple[Path, float]] = []

    def save(self, ds: Dataset, path: Path, syntax: str, mtime: float) -> None:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = UID(syntax)
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "DICOMLOADER1"
        ds.file_meta = meta
        if syntax == JPEG2000Lossless and "PixelData" in ds:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(200)] * frames)
            ds["PixelData"].VR = "OB"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        _write_sparse(path, data)
        os.utime(path, (mtime, mtime))
        self.written.append((path, mtime))
        self.summary.files += 1
        self.summary.instances += 1
        self.summary.bytes += len(data)
        self.modalities[str(ds.Modality)] += 1


def _write_sparse(path: Path, data: bytes) -> None:
    """Write `data` with its trailing zeros (the synthetic pixels) as a hole: the file
    reads back byte for byte, but a 20,000-object archive of real image sizes (50 GB)
    takes the disk space of its headers."""
    body = data.rstrip(b"\0")
    with open(path, "wb") as fh:
        fh.write(body)
        fh.truncate(len(data))


def _person(index: int, seed: int, rng: random.Random) -> Person:
    charset, template = CHARSETS[index % len(CHARSETS)] if index % 3 == 0 else CHARSETS[0]
    name = template.format(last=rng.choice(LAST), first=rng.choice(FIRST))
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randint(0, 30000))
    return Person(
        patient_id=f"PAT{seed:03d}{index:06d}",
        issuer="SPRINGFIELD_GENERAL" if index % 4 else "ST_MARY",
        name=name,
        charset=charset,
        birth_date=birth.strftime("%Y%m%d"),
        sex=rng.choice(["F", "M", "O"]),
    )


def _time_of_day(rng: random.Random) -> str:
    clock = dt.time(
        rng.randint(7, 19), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999999)
    )
    return clock.strftime("%H%M%S.%f")


def _study(person: Person, p: int, s: int, seed: int, rng: random.Random) -> dict[str, Any]:
    day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 3600))
    age = day.year - int(person.birth_date[:4])
    protocol = list(PROTOCOLS)[(p * 2 + s + seed) % len(PROTOCOLS)]
    return {
        "uid": uid("study", seed, p, s),
        "date": day.strftime("%Y%m%d"),
        "time": _time_of_day(rng),
        "accession": f"ACC{seed:02d}{p:06d}{s:02d}",
        "study_id": f"{s + 1}",
        "age": f"{age:03d}Y",
        "referring": rng.choice(["House^Gregory", "Grey^Meredith", "Kildare^James"]),
        "diagnosis": rng.choice(["Cough", "Headache", "Screening", "Follow-up", "Trauma"]),
        "protocol": protocol,
        "description": PROTOCOLS[protocol],
    }


def _series(
    study: dict[str, Any],
    n: int,
    modality: str,
    rng: random.Random,
    description: str,
    body_part: str,
) -> dict[str, Any]:
    return {
        "uid": uid(study["uid"], "series", n),
        "number": n + 1,
        "modality": modality,
        "description": description,
        "date": study["date"],
        "time": study["time"],
        "body_part": body_part,
        "protocol": f"{body_part.title()} {modality} routine",
        "frame_of_reference": uid(study["uid"], "for"),
        "laterality": None,
        "serial": f"SN{rng.randint(10000, 99999)}",
        "institution": "Springfield General Hospital",
        "station": f"{modality}STATION{rng.randint(1, 4)}",
    }


def _syntax(rng: random.Random, allow_deflate: bool = False) -> str:
    roll = rng.random()
    if roll < 0.70:
        return ExplicitVRLittleEndian
    if roll < 0.88:
        return ImplicitVRLittleEndian
    if roll < 0.94:
        return ExplicitVRBigEndian
    return DeflatedExplicitVRLittleEndian if allow_deflate else ExplicitVRLittleEndian


class _StudyWriter:
    """Writes the series of one study according to its protocol."""

    def __init__(
        self, w: _Writer, person: Person, study: dict[str, Any], folder: Path, mtime: float
    ) -> None:
        self.w = w
        self.rng = w.rng
        self.person = person
        self.study = study
        self.folder = folder
        self.mtime = mtime
        self.series_count = 0
        self.evidence: list[tuple[str, str, str]] = []

    def _new_series(self, modality: str, description: str, body_part: str) -> dict[str, Any]:
        series = _series(self.study, self.series_count, modality, self.rng, description, body_part)
        self.series_count += 1
        self.w.summary.series += 1
        return series

    def _base(self, kind: str, series: dict[str, Any], index: int) -> Dataset:
        ds = Dataset()
        sop_uid = uid(series["uid"], "sop", index)
        iods.patient_study(ds, self.person, self.study)
        iods.series_equipment(ds, series, kind)
        iods.instance_base(ds, SOP_CLASSES[kind], sop_uid, index + 1, series)
        iods.private_block(ds, self.rng)
        self.evidence.append((series["uid"], SOP_CLASSES[kind], sop_uid))
        return ds

    def _path(self, series: dict[str, Any], index: int) -> Path:
        name = f"{index + 1:04d}.dcm" if series["number"] % 3 else f"IM{index + 1:05d}"
        return self.folder / f"series {series['number']:03d}" / name

    def images(
        self,
        kind: str,
        modality: str,
        count: int,
        description: str,
        body_part: str,
        syntax: str | None = None,
        frames: int = 1,
        laterality: list[str] | None = None,
    ) -> dict[str, Any]:
        series = self._new_series(modality, description, body_part)
        series_syntax = syntax or _syntax(self.rng)
        for index in range(count):
            ds = self._base(kind, series, index)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.PatientPosition = "HFS"
            if laterality:
                ds.ImageLaterality = laterality[index % len(laterality)]
            if kind in ("CT", "MR", "PT", "NM"):
                iods.image_plane(ds, index, 2.5 if kind != "MR" else 5.0)
                ds.WindowCenter = [40, 400] if kind == "CT" else 600
                ds.WindowWidth = [400, 1500] if kind == "CT" else 1200
            if kind in ("CT", "PT"):
                ds.RescaleIntercept = -1024 if kind == "CT" else 0
                ds.RescaleSlope = 1
            if kind == "CT":
                iods.ct_dose(ds, self.rng)
            iods.image_pixel(ds, kind, self.w.pixels, frames)
            self.w.save(ds, self._path(series, index), series_syntax, self.mtime + index)
        return series

    def enhanced(self, kind: str, frames: int) -> None:
        modality = "CT" if kind == "ENHANCED_CT" else "MR"
        series = self._new_series(modality, f"Enhanced {modality} volume", "CHEST")
        ds = self._base(kind, series, 0)
        iods.enhanced_functional_groups(ds, frames, series, mr=modality == "MR")
        iods.image_pixel(ds, kind, self.w.pixels, frames)
        self.w.save(ds, self._path(series, 0), ExplicitVRLittleEndian, self.mtime)

    def seg(self, referenced: dict[str, Any], referenced_sops: list[str]) -> None:
        """A segmentation of `referenced` and the AI's measurement report on it."""
        series = self._new_series("SEG", "AI organ segmentation", referenced["body_part"])
        ds = self._base("SEG", series, 0)
        segments = iods.segmentation(ds, referenced["uid"], referenced_sops)
        iods.image_pixel(ds, "SEG", self.w.pixels, frames=3)
        self.w.save(ds, self._path(series, 0), ExplicitVRLittleEndian, self.mtime)
        report_series = self._new_series("SR", "AI organ measurements", referenced["body_part"])
        report = self._base("MEASUREMENT_SR", report_series, 0)
        report.CompletionFlag = "COMPLETE"
        report.VerificationFlag = "UNVERIFIED"
        content_trees.measurement_report(
            report,
            self.study["referring"],  # the radiologist who checked the AI's results
            (ds.SOPClassUID, ds.SOPInstanceUID),
            referenced["uid"],
            segments,
            random.Random(ds.SOPInstanceUID),  # the archive's other values stay put
        )
        iods.references(
            report,
            self.study["uid"],
            [(referenced["uid"], SOP_CLASSES["CT"], sop) for sop in referenced_sops]
            + [(series["uid"], ds.SOPClassUID, ds.SOPInstanceUID)],
        )
        self.w.save(report, self._path(report_series, 0), ExplicitVRLittleEndian, self.mtime)

    def report(self, dose: bool) -> None:
        kind = "DOSE_SR" if dose else "SR"
        series = self._new_series("SR", "Dose report" if dose else "Radiology report", "CHEST")
        evidence = list(self.evidence)
        ds = self._base(kind, series, 0)
        iods.structured_report(ds, self.study, evidence, dose, self.rng)
        self.w.save(ds, self._path(series, 0), _syntax(self.rng, allow_deflate=True), self.mtime)

    def rt(self) -> None:
        ct = self.images("CT", "CT", 6, "Planning CT", "PELVIS")
        for kind, modality, build in (
            (
                "RTSTRUCT",
                "RTSTRUCT",
                lambda d: iods.rt_structure_set(
                    d, ct["frame_of_reference"], 5, self.study["uid"], ct["uid"]
                ),
            ),
            ("RTPLAN", "RTPLAN", lambda d: iods.rt_plan(d, 2)),
        ):
            series = self._new_series(modality, f"{modality} for planning CT", "PELVIS")
            ds = self._base(kind, series, 0)
            build(ds)
            self.w.save(ds, self._path(series, 0), ExplicitVRLittleEndian, self.mtime)
        series = self._new_series("RTDOSE", "Planned dose", "PELVIS")
        ds = self._base("RTDOSE", series, 0)
        iods.image_plane(ds, 0, 2.5)
        iods.image_pixel(ds, "RTDOSE", self.w.pixels, frames=8)
        iods.rt_dose(ds, 8)
        self.w.save(ds, self._path(series, 0), ExplicitVRLittleEndian, self.mtime)

    def write(self) -> None:
        protocol = self.study["protocol"]
        rng = self.rng
        if protocol == "ct_chest":
            ct = self.images("CT", "CT", rng.randint(8, 16), "Chest with contrast", "CHEST")
            self.seg(ct, [sop for _, _, sop in self.evidence])
            self.report(dose=True)
        elif protocol == "mr_brain":
            self.images("MR", "MR", rng.randint(6, 12), "T1 axial", "HEAD")
            self.images("MR", "MR", rng.randint(6, 12), "T2 FLAIR", "HEAD")
            self.enhanced("ENHANCED_MR", 12)
            self.report(dose=False)
        elif protocol == "xr":
            kind = rng.choice(["CR", "DX"])
            self.images(kind, kind, 2, "Chest PA and lateral", "CHEST")
        elif protocol == "mammo":
            syntax = JPEG2000Lossless if rng.random() < 0.5 else ExplicitVRLittleEndian
            self.images(
                "MG",
                "MG",
                4,
                "Screening mammogram",
                "BREAST",
                syntax=syntax,
                laterality=["L", "L", "R", "R"],
            )
            self.report(dose=False)
        elif protocol == "us":
            self.images("US", "US", 2, "Abdominal ultrasound", "ABDOMEN", frames=10)
        elif protocol == "pet_ct":
            self.images("CT", "CT", rng.randint(6, 10), "CT for attenuation", "WHOLEBODY")
            self.images("PT", "PT", rng.randint(6, 10), "FDG PET", "WHOLEBODY")
        elif protocol == "nm":
            self.images("NM", "NM", 1, "Bone scan", "WHOLEBODY", frames=4)
        elif protocol == "rt":
            self.rt()
        else:
            self.enhanced("ENHANCED_CT", 16)
            self.report(dose=True)


def _add_duplicates(w: _Writer, root: Path, fraction: float) -> None:
    candidates = [p for p, _ in w.written]
    count = round(len(candidates) * fraction)
    for index, source in enumerate(w.rng.sample(candidates, min(count, len(candidates)))):
        target = root / "duplicates" / f"copy {index:05d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        w.summary.files += 1
        w.summary.duplicates += 1


def _bad_files(w: _Writer, root: Path, count: int, seed: int) -> None:
    """Every kind of object a real archive holds that is not a loadable instance."""
    folder = root / "bad"
    folder.mkdir(parents=True, exist_ok=True)
    sources = [p for p, _ in w.written if p.stat().st_size < 4_000_000] or [p for p, _ in w.written]
    for index in range(count):
        kind = index % 6
        path = folder / f"bad_{index:05d}.dcm"
        category = Category.NOT_DICOM
        if kind == 0:
            path.write_bytes(b"")
        elif kind == 1:
            path = path.with_name(f"notes {index}.txt")
            path.write_text("Exported by PACS on 2021-03-04. Not an image.\n" * 5)
        elif kind == 2:
            path = path.with_name(f"thumb_{index}.png")
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        elif kind == 3:
            data = sources[index % len(sources)].read_bytes()
            cut = data.find(b"\x10\x00\x10\x00")  # cut inside the patient module
            path.write_bytes(data[: max(cut + 12, 200)])
            category = Category.TRUNCATED
        elif kind == 4:
            preamble = sources[index % len(sources)].read_bytes()[:132]
            # A meta element declaring more bytes than the file has.
            path.write_bytes(preamble + b"\x02\x00\x10\x00UI\xff\x7f" + b"1.2.3")
            category = Category.TRUNCATED
        else:
            ds = Dataset()
            ds.SOPClassUID = SOP_CLASSES["CT"]
            ds.SOPInstanceUID = uid("orphan", seed, index)
            ds.StudyInstanceUID = uid("orphan-study", seed, index)
            ds.Modality = "CT"
            ds.PatientID = "NOSERIES"
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(path, enforce_file_format=True)
            category = Category.VALIDATION_ERROR
        os.utime(path, (BAD_FILE_MTIME, BAD_FILE_MTIME))
        w.summary.files += 1
        w.summary.bad[category] = w.summary.bad.get(category, 0) + 1


def _bad_values(w: _Writer, fraction: float) -> None:
    """Loadable objects with one value that will not type (TYPE_CAST_ERROR)."""
    small = [(p, m) for p, m in w.written if p.stat().st_size < 4_000_000]
    for path, mtime in small[: round(len(small) * fraction)]:
        ds = dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom rightly warns about the bad date
            ds.AcquisitionDate = "20231399"
            ds.save_as(path, enforce_file_format=True)
        os.utime(path, (mtime, mtime))
        w.summary.type_cast_objects += 1


def synthesize(
    out: str | Path,
    patients: int,
    seed: int = 0,
    pixels: str = "tiny",
    bad_fraction: float = 0.0,
    duplicate_fraction: float = 0.02,
) -> SynthSummary:
    """Write a deterministic archive of `patients` patients under `out`."""
    if pixels not in ("tiny", "realistic"):
        raise ValueError("pixels must be 'tiny' or 'realistic'")
    # The bad values are written on purpose: pydicom's log line for each is noise.
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.ERROR)
    try:
        return _synthesize(Path(out), patients, seed, pixels, bad_fraction, duplicate_fraction)
    finally:
        pydicom_log.setLevel(level)


def _synthesize(
    out: Path,
    patients: int,
    seed: int,
    pixels: str,
    bad_fraction: float,
    duplicate_fraction: float,
) -> SynthSummary:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    w = _Writer(root, rng, pixels)
    epoch = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    for p in range(patients):
        person = _person(p, seed, rng)
        w.summary.patients += 1
        folder_name = person.patient_id if p % 5 else f"{person.patient_id} (export)"
        for s in range(1 + (p % 3 == 1)):
            study = _study(person, p, s, seed, rng)
            w.summary.studies += 1
            mtime = epoch + p * 86_400 + s * 3_600
            _StudyWriter(w, person, study, root / folder_name / f"study {s + 1}", mtime).write()
    _bad_values(w, bad_fraction / 2)
    _add_duplicates(w, root, duplicate_fraction)
    _bad_files(w, root, round(w.summary.instances * bad_fraction), seed)
    w.summary.modalities = dict(sorted(w.modalities.items()))
    return w.summary
