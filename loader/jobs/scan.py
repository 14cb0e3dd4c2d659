"""Profile an archive without loading it: `dicom-loader scan`.

Each shard is profiled where it is read (same header reader and decoder as a
run) and returns counters; the driver only merges counters. Studies and series
are counted by their 64-bit keys, not their UID strings, to keep merging light.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypedDict, TypeVar

from loader.core.errors import Category, object_failure
from loader.core.keys import key_of
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT, Item, decode_header
from loader.dicom.from_json import decode_json, transfer_syntax_of
from loader.dicom.value_store import ValueStore
from loader.extract import REQUIRED_UIDS
from loader.extract.values import text
from loader.headers.reader import ParsedHeader, first_read_bytes
from loader.jobs.engine import execute
from loader.jobs.library_warnings import Collected, captured
from loader.jobs.shard import (
    export_contents,
    holds_instances,
    instances_fetched,
    read_object,
    read_tar_member,
    reads_ahead,
)
from loader.sources.containers import (
    DEFAULT_MEMBER_LIMIT,
    TAR,
    OpenZips,
    TarMember,
    container_kind,
    is_export,
    tar_members,
)
from loader.sources.listing import ObjectRef, Shard, list_source, make_shards
from loader.sources.read_ahead import Ahead
from loader.sources.storage import is_remote

_T = TypeVar("_T")
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
    """How a scan reads (shard.Reading): as a run does with its defaults, and no
    frame offsets (a profile does not locate frames)."""

    header_bytes: int | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    element_limit: int = DEFAULT_ELEMENT_LIMIT
    member_limit: int = DEFAULT_MEMBER_LIMIT
    frame_offsets: bool = False


def _headers(
    ahead: Ahead,
    settings: ScanSettings,
    errors: Counter[str],
    store: ValueStore,
    zips: OpenZips,
    collected: Collected,
) -> Iterator[tuple[Item | None, str | None, int]]:
    """(decoded root, transfer syntax, bytes read) of each header a listed object
    holds: its own, every instance of a DICOM JSON export or a DICOMweb study, or
    every member of a tar. Failures and library warnings are counted by the one
    error policy of a run (errors.object_failure): an object a run would record as
    an error row is counted here, and never ends the shard. The bytes are counted
    as a run counts them: a header read but not decoded (root None) cost its read."""
    ref, fs = ahead.ref, ahead.fs
    if container_kind(ref.url) == TAR:
        yield from _tar_headers(ref, settings, errors, store, collected)
        return
    if holds_instances(ref):
        try:
            contents = instances_fetched(ref, settings.storage_options, fs, ahead.whole)
        except Exception as exc:  # noqa: BLE001 - counted as a run records it
            errors[object_failure(exc)[0]] += 1
            return
        instances, read = contents.instances, contents.read
        if contents.unread:
            errors[Category.READ_ERROR] += len(contents.unread)
        for index, (url, instance) in enumerate(instances):
            decoded = _guarded(errors, partial(decode_json, instance, url), collected)
            syntax = transfer_syntax_of(instance) if decoded is not None else None
            root = decoded.root if decoded is not None else None
            yield root, syntax, read if index == 0 else 0
        return
    read_first: list[ParsedHeader] = []  # the header, once read, whether it decodes or not

    def header() -> Item:
        read_first.append(read_object(ref, settings, fs, ahead.first, zips))
        return decode_header(read_first[0], ref.url, settings.element_limit, store).root

    root = _guarded(errors, header, collected)
    if read_first:
        yield root, read_first[0].transfer_syntax_uid, read_first[0].bytes_read


def _guarded(errors: Counter[str], read: Callable[[], _T], collected: Collected) -> _T | None:
    """What `read` returns for one object, or None with its failure counted; what a
    library warned meanwhile is counted as the object's PARSE_WARNING."""
    with captured(collected) as warned:
        try:
            found: _T | None = read()
        except Exception as exc:  # noqa: BLE001 - one object must never stop the scan
            errors[object_failure(exc)[0]] += 1
            found = None
    if warned:
        errors[Category.PARSE_WARNING] += 1
    return found


def _tar_headers(
    ref: ObjectRef,
    settings: ScanSettings,
    errors: Counter[str],
    store: ValueStore,
    collected: Collected,
) -> Iterator[tuple[Item | None, str | None, int]]:
    """The headers of a tar's members, read as the stream passes them, each with the
    bytes the store served since the one before; a member that yields no header
    (its failure counted) still passes on what reading it cost, as in a run."""
    first = first_read_bytes(settings.header_bytes, remote=is_remote(ref.url))
    try:
        ranged, members = tar_members(ref.url, ref.size, settings.storage_options)
        served = 0
        for member in members:
            if member.data is None:
                continue
            found: list[tuple[Item, str | None]] = []
            if is_export(member.url):
                data = member.data.read()
                read = partial(export_contents, member.url, data, 0)
                found_export = _guarded(errors, read, collected)
                for url, instance in found_export.instances if found_export else ():
                    decoded = _guarded(errors, partial(decode_json, instance, url), collected)
                    if decoded is not None:
                        found.append((decoded.root, transfer_syntax_of(instance)))
            else:

                def header(member: TarMember = member) -> tuple[Item, ParsedHeader]:
                    parsed = read_tar_member(member, settings, first)
                    decoded = decode_header(parsed, member.url, settings.element_limit, store)
                    return decoded.root, parsed

                if (one := _guarded(errors, header, collected)) is not None:
                    found.append((one[0], one[1].transfer_syntax_uid))
            for index, (root, syntax) in enumerate(found or [(None, None)]):
                yield root, syntax, ranged.bytes_read - served if index == 0 else 0
            served = ranged.bytes_read
    except Exception as exc:  # noqa: BLE001 - what is left of the tar is one error
        errors[object_failure(exc)[0]] += 1


def scan_shard(
    settings: ScanSettings, shard: Shard, store: ValueStore | None = None
) -> ShardProfile:
    """Profile one shard; `store` as for process_shard (the worker's by default)."""
    store = store if store is not None else ValueStore.of_worker()
    counters: dict[str, Counter[str]] = {name: Counter() for name in COUNTED}
    studies: set[int] = set()
    series: set[int] = set()
    instances: set[int] = set()
    patients: set[int] = set()
    dates: list[str] = []
    bytes_read = 0
    reads = reads_ahead(shard.objects, settings.header_bytes, settings.storage_options)
    zips = OpenZips(settings.storage_options)
    collected = Collected()  # what libraries say: each object's, counted (library_warnings)
    headers = (
        header
        for ahead in reads
        for header in _headers(ahead, settings, counters["errors"], store, zips, collected)
    )
    with collected:
        for root, syntax, read in headers:
            bytes_read += read
            if root is None:  # read, but no header came of it
                continue
            counters["transfer_syntax"][syntax or "none"] += 1
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
            patients.add(key_of(text(root, "PatientID"), text(root, "IssuerOfPatientID")))
            study_date = text(root, "StudyDate")
            if study_date:
                dates.append(study_date)
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
    execute(scan_shard, ScanSettings(header_bytes, options), shards, workers, profile.add)
    return profile.report()
