"""Profile an archive without loading it: `dicom-loader scan`.

Each shard is profiled where it is read (same header reader and decoder as a
run) and returns counters; the driver only merges counters. Studies and series
are counted by their 64-bit keys, not their UID strings, to keep merging light.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from loader.core.errors import Category, object_failure
from loader.core.keys import key_of
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT, Decoded, Item
from loader.dicom.value_store import ValueStore
from loader.extract import REQUIRED_UIDS
from loader.extract.context import ObjectFacts
from loader.extract.values import text
from loader.jobs.engine import execute
from loader.jobs.library_warnings import Collected
from loader.jobs.objects import held_objects, reads_ahead
from loader.sources.containers import DEFAULT_MEMBER_LIMIT, OpenZips
from loader.sources.listing import Shard, list_source, make_shards

PROFILED_TAGS = (*REQUIRED_UIDS, "PatientID", "StudyDate", "Modality", "SOPClassUID")


# What a scan counts per value, in its profile's order.
COUNTED = ("errors", "manufacturer", "missing", "modality", "sop_class", "transfer_syntax")


@dataclass(frozen=True)
class ShardProfile:
    """What one shard's scan found: the worker's answer, merged by ScanProfile."""

    objects: int
    bytes_listed: int
    bytes_read: int
    counters: dict[str, dict[str, int]]  # COUNTED name → value → objects
    studies: set[int]  # 64-bit keys, light to merge
    series: set[int]
    instances: set[int]
    patients: set[int]
    first_date: str | None
    last_date: str | None


class Profile(TypedDict):
    """An archive's profile, as `dicom-loader scan` prints it."""

    objects: int
    patients: int
    studies: int
    series: int
    instances: int
    earliest_study_date: str | None
    latest_study_date: str | None
    bytes_listed: int
    bytes_read: int
    errors: dict[str, int]  # objects by error category
    manufacturer: dict[str, int]
    missing: dict[str, int]  # objects without each of PROFILED_TAGS
    modality: dict[str, int]
    sop_class: dict[str, int]
    transfer_syntax: dict[str, int]


@dataclass(frozen=True)
class ScanSettings:
    """How a scan reads (objects.Reading): as a run does with its defaults, and no
    frame offsets (a profile does not locate frames)."""

    header_bytes: int | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    element_limit: int = DEFAULT_ELEMENT_LIMIT
    member_limit: int = DEFAULT_MEMBER_LIMIT
    frame_offsets: bool = False
    source: str = ""  # what was listed, as a run's facts carry it (a scan keeps none)


def _root(decoded: Decoded, facts: ObjectFacts) -> Item:
    """What a scan makes of each decoded header: its root, whose values it counts."""
    return decoded.root


def scan_shard(
    settings: ScanSettings, shard: Shard, store: ValueStore | None = None
) -> ShardProfile:
    """Profile one shard; `store` as for process_shard (the worker's by default).
    Every object is read as a run reads it (objects.held_objects) and its failures
    and library warnings are counted as a run records them (errors.object_failure):
    an object a run would record as an error row is counted here, never the end of
    the shard, and a header read but not decoded cost its read, as in a run."""
    store = store if store is not None else ValueStore.of_worker()
    counters: dict[str, Counter[str]] = {name: Counter() for name in COUNTED}
    errors = counters["errors"]
    studies: set[int] = set()
    series: set[int] = set()
    instances: set[int] = set()
    patients: set[int] = set()
    dates: list[str] = []
    bytes_read = 0
    reads = reads_ahead(shard.objects, settings.header_bytes, settings.storage_options)
    zips = OpenZips(settings.storage_options)
    try:
        with Collected() as collected:
            for ahead in reads:
                for held in held_objects(ahead, settings, _root, store, zips, collected, Counter()):
                    bytes_read += held.served
                    if held.warned:
                        errors[Category.PARSE_WARNING] += 1
                    if held.failure is not None:
                        errors[object_failure(held.failure)[0]] += 1
                        continue
                    root = cast(Item, held.made)
                    counters["transfer_syntax"][held.facts.transfer_syntax_uid or "none"] += 1
                    counters["modality"][text(root, "Modality") or "none"] += 1
                    counters["sop_class"][text(root, "SOPClassUID") or "none"] += 1
                    counters["manufacturer"][text(root, "Manufacturer") or "none"] += 1
                    for name in PROFILED_TAGS:
                        if text(root, name) is None:
                            counters["missing"][name] += 1
                    for found, keyword in (
                        (studies, "StudyInstanceUID"),
                        (series, "SeriesInstanceUID"),
                        (instances, "SOPInstanceUID"),
                    ):
                        uid = text(root, keyword)
                        if uid:
                            found.add(key_of(uid))
                    patient = key_of(text(root, "PatientID"), text(root, "IssuerOfPatientID"))
                    patients.add(patient)
                    study_date = text(root, "StudyDate")
                    if study_date:
                        dates.append(study_date)
    finally:
        zips.close()
    return ShardProfile(
        objects=len(shard.objects),
        bytes_listed=sum(r.size for r in shard.objects),
        bytes_read=bytes_read,
        counters={k: dict(v) for k, v in counters.items()},
        studies=studies,
        series=series,
        instances=instances,
        patients=patients,
        first_date=min(dates) if dates else None,
        last_date=max(dates) if dates else None,
    )


class ScanProfile:
    """Merges shard profiles into the archive's profile."""

    def __init__(self) -> None:
        self.objects = self.bytes_listed = self.bytes_read = 0
        self.counters: dict[str, Counter[str]] = {name: Counter() for name in COUNTED}
        self.studies: set[int] = set()
        self.series: set[int] = set()
        self.instances: set[int] = set()
        self.patients: set[int] = set()
        self.dates: list[str] = []

    def add(self, part: ShardProfile) -> None:
        self.objects += part.objects
        self.bytes_listed += part.bytes_listed
        self.bytes_read += part.bytes_read
        for name, values in part.counters.items():
            self.counters[name].update(values)
        self.studies |= part.studies
        self.series |= part.series
        self.instances |= part.instances
        self.patients |= part.patients
        self.dates += [d for d in (part.first_date, part.last_date) if d]

    def report(self) -> Profile:
        counted = {name: dict(counter.most_common()) for name, counter in self.counters.items()}
        return Profile(
            objects=self.objects,
            patients=len(self.patients),
            studies=len(self.studies),
            series=len(self.series),
            instances=len(self.instances),
            earliest_study_date=min(self.dates) if self.dates else None,
            latest_study_date=max(self.dates) if self.dates else None,
            bytes_listed=self.bytes_listed,
            bytes_read=self.bytes_read,
            errors=counted["errors"],
            manufacturer=counted["manufacturer"],
            missing=counted["missing"],
            modality=counted["modality"],
            sop_class=counted["sop_class"],
            transfer_syntax=counted["transfer_syntax"],
        )


def scan(
    source: str,
    workers: int = 0,
    shard_size: int = 2000,
    header_bytes: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Profile:
    """Profile `source`: what a load of it would find, without loading it."""
    profile = ScanProfile()
    options = storage_options or {}
    shards = make_shards(list_source(source, options), shard_size)
    settings = ScanSettings(header_bytes, options, source=source)
    execute(scan_shard, settings, shards, workers, profile.add)
    return profile.report()
