"""One shard, inside one Dask task: read headers → extract rows → write → commit.

The task takes only picklable settings and a shard, builds everything it needs
itself, and returns the small ledger record it committed. Whatever one object
does, the shard goes on: each object ends as rows, or as an error row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import orjson

from loader.core.errors import (
    FILE_ERROR_CATEGORIES,
    Category,
    ContainerError,
    ObjectReadError,
    object_failure,
)
from loader.core.memory import peak_rss_bytes
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT, decode_header
from loader.dicom.from_json import decode_json, instances_in, transfer_syntax_of
from loader.dicom.pseudonymize import Pseudonymizer, read_key
from loader.dicom.value_store import ValueStore
from loader.extract import error_row, extract_object
from loader.extract.context import ObjectFacts, Row, Rows
from loader.headers.reader import (
    ParsedHeader,
    first_read_bytes,
    read_local,
    read_remote,
    read_stream,
)
from loader.jobs.gc_pause import gc_paused
from loader.jobs.library_warnings import Collected, captured, summary
from loader.jobs.settings import RunSettings
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.output.parquet import ShardWriter
from loader.sources.containers import (
    DEFAULT_MEMBER_LIMIT,
    TAR,
    ZIP,
    OpenZips,
    TarMember,
    container_kind,
    is_export,
    split_member,
    tar_members,
    zip_members,
)
from loader.sources.dicomweb import Server, StudyContents, is_dicomweb, study_instances
from loader.sources.listing import ObjectRef, Shard
from loader.sources.read_ahead import (
    AHEAD_WHOLE,
    DEFAULT_READ_AHEAD_BYTES,
    Ahead,
    ReadAhead,
)
from loader.sources.storage import (
    DEFAULT_READ_CONCURRENCY,
    container_and_key,
    filesystem,
    is_remote,
    path_of,
    provider_of,
    with_retries,
)


@dataclass(frozen=True)
class ShardSettings:
    """The shard's slice of a run's settings (`of`): the fields it shares with
    RunSettings, copied by name, and what the run resolved for it."""

    out: str  # the output root: a local folder or an object-store URL
    run_id: str
    source: str
    header_bytes: int | None = None  # None: the default of the object's location
    element_limit: int = DEFAULT_ELEMENT_LIMIT
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    pseudonymize_key: bytes | None = field(default=None, repr=False)
    shift_dates: bool = False
    pseudonymize_uids: bool = False
    read_concurrency: int = DEFAULT_READ_CONCURRENCY  # first reads in flight (read_ahead)
    read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES  # first reads held at most
    member_limit: int = DEFAULT_MEMBER_LIMIT  # bytes a zip or tar member may declare
    # A dicom_frame row for every frame, located in its object; encapsulated frames
    # cost their Basic Offset Table, at most one small read (frame_offsets).
    frame_offsets: bool = False

    @classmethod
    def of(cls, settings: RunSettings, out: str, run_id: str) -> ShardSettings:
        """The slice of `settings` a shard reads, with the run's resolved output root
        and id, and the pseudonymisation key's bytes (read once, in the driver)."""
        shared = {name: getattr(settings, name) for name in SHARED_WITH_RUN}
        key_file = settings.pseudonymize_key_file
        key = read_key(key_file) if key_file else None
        return cls(out=out, run_id=run_id, pseudonymize_key=key, **shared)

    def pseudonymizer(self) -> Pseudonymizer | None:
        if self.pseudonymize_key is None:
            return None
        return Pseudonymizer(self.pseudonymize_key, self.shift_dates, self.pseudonymize_uids)


# Every ShardSettings field a run's settings also have, by name (the rest, RESOLVED,
# the run works out for its shards).
RESOLVED = frozenset({"out", "run_id", "pseudonymize_key"})
SHARED_WITH_RUN = tuple(f.name for f in fields(ShardSettings) if f.name not in RESOLVED)


def _facts(
    ref: ObjectRef, settings: ShardSettings, parsed: ParsedHeader | None, now: dt.datetime
) -> ObjectFacts:
    container, key = container_and_key(ref.url)
    return ObjectFacts(
        uri=ref.url,
        size=ref.size,
        modified_at=ref.modified_at,
        ingestion_source=settings.source,
        storage_provider=provider_of(ref.url),
        storage_container=container,
        object_key=key,
        transfer_syntax_uid=parsed.transfer_syntax_uid if parsed else None,
        header_bytes=parsed.header_bytes if parsed else 0,
        bytes_read=parsed.bytes_read if parsed else 0,
        pixel_data_offset=parsed.pixel_data_offset if parsed else None,
        pixel_data_length=parsed.pixel_data_length if parsed else None,
        checksum=ref.etag or (parsed.checksum if parsed else ""),
        ingested_at=now,
        frame_offsets=settings.frame_offsets,
        offset_tables=parsed.offset_tables if parsed else None,
    )


def process_object(
    ref: ObjectRef,
    settings: ShardSettings,
    fs: Any = None,
    prefetched: bytes | None = None,
    store: ValueStore | None = None,
    zips: OpenZips | None = None,
    read: Callable[[], ParsedHeader] | None = None,
    collected: Collected | None = None,
) -> tuple[Rows, list[Row], ParsedHeader | None]:
    """Rows, error rows and the read facts of one object; never raises for bad input.

    `fs` is the object store's filesystem (None for local files); `prefetched` the
    object's first read when it was fetched together with others; `store` the
    worker's decoded elements (none: this object shares nothing); `zips` the zips
    the shard reads members of; `read` how to read the header, when not as `ref`
    says (a tar member passing by); `collected` what libraries say while the shard
    reads its objects (none: this object collects its own).
    """
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    parsed = None
    with captured(collected) as warned:
        try:
            parsed = (
                read() if read is not None else read_object(ref, settings, fs, prefetched, zips)
            )
            decoded = decode_header(parsed, ref.url, settings.element_limit, store)
            if pseudonymizer := settings.pseudonymizer():
                pseudonymizer.apply(decoded)
            rows, errors = extract_object(decoded, _facts(ref, settings, parsed, now))
        except Exception as exc:  # noqa: BLE001 - one object must never stop the run
            rows, errors = {}, [failure_row(_facts(ref, settings, parsed, now), exc)]
    return rows, errors + warning_rows(_facts(ref, settings, parsed, now), warned), parsed


def failure_row(facts: ObjectFacts, exc: Exception) -> Row:
    """The error row of one object's failure, by the one error policy."""
    return error_row(facts, *object_failure(exc))


def warning_rows(facts: ObjectFacts, warned: list[str]) -> list[Row]:
    """The object's PARSE_WARNING row, when a library warned while reading it."""
    message = summary(warned)
    return [] if message is None else [error_row(facts, Category.PARSE_WARNING, message)]


class Reading(Protocol):
    """How every per-object path reads a header: a run's shard (ShardSettings), a
    scan, init's sample and doctor (scan.ScanSettings)."""

    @property
    def header_bytes(self) -> int | None: ...
    @property
    def element_limit(self) -> int: ...
    @property
    def member_limit(self) -> int: ...
    @property
    def frame_offsets(self) -> bool: ...
    @property
    def storage_options(self) -> dict[str, Any]: ...


def read_object(
    ref: ObjectRef,
    reading: Reading,
    fs: Any = None,
    prefetched: bytes | None = None,
    zips: OpenZips | None = None,
) -> ParsedHeader:
    """The header of one listed object, a zip member included; a zip listed as itself
    is one whose directory could not be read: its ContainerError."""
    if container_kind(ref.url) == ZIP:
        zip_members(ref.url, ref.size, reading.storage_options)  # the reason, if it says
        raise ContainerError(ref.url, "its directory could not be read when listed")
    return read_header(
        ref,
        reading.header_bytes,
        fs,
        prefetched,
        reading.element_limit,
        zips,
        reading.member_limit,
        reading.frame_offsets,
    )


def read_tar_member(member: TarMember, reading: Reading, first: int) -> ParsedHeader:
    """The header of a tar's member as the stream passes it: within the member
    limit, never a container inside it."""
    check_member_size(member.url, member.size, reading.member_limit)
    if container_kind(member.url.partition("::")[0]):
        raise ContainerError(member.url, "a container inside a container is not opened")
    if member.data is None:  # tar_members yields regular files, whose data tarfile gives
        raise ContainerError(member.url, "not a regular file")
    return read_stream(member.url, member.data, member.size, first, None, reading.frame_offsets)


def check_member_size(url: str, size: int, limit: int) -> None:
    """A member declaring more than `limit` bytes is not read (a zip bomb inflates a
    few KB into terabytes; a real DICOM header never needs that much)."""
    if size > limit:
        raise ContainerError(
            url, f"member declares {size:,} bytes, over the {limit:,}-byte member limit"
        )


def process_tar_members(
    ref: ObjectRef,
    settings: ShardSettings,
    store: ValueStore | None = None,
    collected: Collected | None = None,
) -> Iterator[tuple[Rows, list[Row], int, int, str]]:
    """Rows and error rows of every member of a tar (read once, as a stream), with
    the bytes and requests the store served while it passed and the member's source
    order (its own modification time); a tar that cannot be read ends with one error
    row for what was left of it."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    first = first_read_bytes(settings.header_bytes, remote=is_remote(ref.url))
    served = requests = 0
    try:
        ranged, members = tar_members(ref.url, ref.size, settings.storage_options)
        for member in members:
            member_ref = ObjectRef(member.url, member.size, member.modified)
            stream = member.data
            if is_export(member.url) and stream is not None:
                outcomes = _tar_export(member_ref, stream, settings, collected)
                for rows, errors, _ in outcomes:
                    now_served, now_requests = (
                        ranged.bytes_read - served,
                        ranged.requests - requests,
                    )
                    yield rows, errors, now_served, now_requests, member_ref.source_order
                    served, requests = ranged.bytes_read, ranged.requests
                continue

            def read(member: TarMember = member) -> ParsedHeader:
                return read_tar_member(member, settings, first)

            rows, errors, _ = process_object(
                member_ref, settings, store=store, read=read, collected=collected
            )
            now_served, now_requests = ranged.bytes_read - served, ranged.requests - requests
            yield rows, errors, now_served, now_requests, member_ref.source_order
            served, requests = ranged.bytes_read, ranged.requests
    except Exception as exc:  # noqa: BLE001 - what is left of the tar is one error row
        yield {}, [failure_row(_facts(ref, settings, None, now), exc)], 0, 0, ref.source_order


def _tar_export(
    ref: ObjectRef, data: Any, settings: ShardSettings, collected: Collected | None
) -> Iterator[tuple[Rows, list[Row], int]]:
    """The instances of a DICOM JSON export passing by in a tar, as a loose one's."""
    try:
        check_member_size(ref.url, ref.size, settings.member_limit)
        contents: StudyContents | BaseException = export_contents(ref.url, data.read(), 0)
    except Exception as exc:  # noqa: BLE001 - the export is one error row, as a loose one
        contents = exc
    yield from process_json_instances(ref, settings, fetched=contents, collected=collected)


def holds_instances(ref: ObjectRef) -> bool:
    """Whether a listed object holds DICOM JSON instances: an export, or a study on
    a DICOMweb server."""
    return is_export(ref.url) or is_dicomweb(ref.url)


def json_instances(
    ref: ObjectRef, storage_options: dict[str, Any], fs: Any = None
) -> StudyContents:
    """The instances a listed object holds (with their URLs: `export#index`, or the
    WADO-RS URL), the bytes read to get them, and what could not be read."""
    if is_dicomweb(ref.url):
        return study_instances(ref.url, storage_options)
    data, served = read_whole(ref, fs, storage_options)
    return export_contents(ref.url, data, served)


def export_contents(url: str, data: bytes, served: int) -> StudyContents:
    """The instances of the export at `url` (its bytes `data`, `served` by the store),
    each addressed `export#index`."""
    found = [(f"{url}#{i}", instance) for i, instance in enumerate(instances_in(data, url))]
    return StudyContents(found, served, [])


def instances_fetched(
    ref: ObjectRef, storage_options: dict[str, Any], fs: Any = None, fetched: Any = None
) -> StudyContents:
    """`json_instances` of `ref`, as fetching it ahead gave them (`fetched`: the
    contents, or the exception raised again here), or fetched now (None)."""
    if isinstance(fetched, BaseException):
        raise fetched
    return fetched if fetched is not None else json_instances(ref, storage_options, fs)


def process_json_instances(
    ref: ObjectRef,
    settings: ShardSettings,
    fs: Any = None,
    fetched: Any = None,
    counted: Counter[str] | None = None,
    collected: Collected | None = None,
) -> Iterator[tuple[Rows, list[Row], int]]:
    """Rows and error rows of every DICOM JSON instance a listed object holds, with
    the bytes read for each (all counted on the first); an object whose instances
    cannot be fetched or parsed is one error row. `fetched` is what fetching it
    ahead gave (its contents, or the exception), None to fetch it here; `counted`
    counts the instances a DICOMweb server served only one by one."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    pseudonymizer = settings.pseudonymizer()
    try:
        contents = instances_fetched(ref, settings.storage_options, fs, fetched)
    except Exception as exc:  # noqa: BLE001 - the object that holds them is one error row
        yield {}, [failure_row(_facts(ref, settings, None, now), exc)], 0
        return
    instances, read = contents.instances, contents.read
    if counted is not None:
        counted["instance_fallbacks"] += contents.fallbacks
    for url, reason in contents.unread:  # one READ_ERROR row per object not served
        facts = replace(_facts(replace(ref, url=url), settings, None, now), bytes_read=0)
        yield {}, [error_row(facts, Category.READ_ERROR, reason)], 0
    for index, (url, instance) in enumerate(instances):
        text = orjson.dumps(instance)
        facts = replace(
            _facts(replace(ref, url=url), settings, None, now),
            size=len(text),
            storage_provider=provider_of(ref.url),  # where the export or study is
            transfer_syntax_uid=transfer_syntax_of(instance),
            header_bytes=len(text),
            bytes_read=read if index == 0 else 0,
            checksum=hashlib.md5(text, usedforsecurity=False).hexdigest(),
        )
        with captured(collected) as warned:
            try:
                decoded = decode_json(instance, url, settings.element_limit)
                if pseudonymizer:
                    pseudonymizer.apply(decoded)
                rows, errors = extract_object(decoded, facts)
            except Exception as exc:  # noqa: BLE001 - one instance must never stop the run
                rows, errors = {}, [failure_row(facts, exc)]
        yield rows, errors + warning_rows(facts, warned), facts.bytes_read


def read_whole(
    ref: ObjectRef, fs: Any = None, options: dict[str, Any] | None = None
) -> tuple[bytes, int]:
    """All of an object's bytes (DICOM JSON exports are read whole), and the bytes the
    store served for them: a zip member's count its container's directory too."""
    member = split_member(ref.url)
    if member is not None and member.kind == ZIP:
        zips = OpenZips(options or {})
        try:
            ranged, stream, size = zips.member(member)
            with stream:
                check_member_size(ref.url, size, DEFAULT_MEMBER_LIMIT)
                data = stream.read()
            return data, ranged.bytes_read
        finally:
            zips.close()
    if fs is None:
        try:
            with open(ref.url, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ObjectReadError(ref.url, f"cannot read: {exc.strerror or exc}") from exc
        return data, len(data)
    data = with_retries(ref.url, lambda: fs.cat_file(path_of(ref.url)))
    return data, len(data)


def read_header(
    ref: ObjectRef,
    header_bytes: int | None,
    fs: Any = None,
    prefetched: bytes | None = None,
    skip_over: int | None = None,
    zips: OpenZips | None = None,
    member_limit: int = DEFAULT_MEMBER_LIMIT,
    offset_tables: bool = False,
) -> ParsedHeader:
    """The parsed header of one object, local, on an object store or in a zip;
    values longer than `skip_over` (the element limit) are skipped, not read."""
    member = split_member(ref.url)
    if member is not None:
        if container_kind(member.name):
            raise ContainerError(ref.url, "a container inside a container is not opened")
        zips = zips if zips is not None else OpenZips({})
        # Counted from before the zip is opened: its directory, for its first member.
        served, requests = zips.served(member.container), zips.requests(member.container)
        ranged, stream, size = zips.member(member)
        with stream:
            check_member_size(ref.url, size, member_limit)
            first = first_read_bytes(header_bytes, remote=is_remote(member.container))
            parsed = read_stream(ref.url, stream, size, first, skip_over, offset_tables)
        return replace(
            parsed,
            bytes_read=ranged.bytes_read - served,
            read_requests=ranged.requests - requests,
        )
    if fs is None:
        first = first_read_bytes(header_bytes, remote=False)
        return read_local(ref.url, ref.size, first, skip_over, offset_tables)
    first = first_read_bytes(header_bytes, remote=True)
    return read_remote(
        fs, ref.url, path_of(ref.url), ref.size, first, prefetched, skip_over, offset_tables
    )


def reads_ahead(
    objects: Sequence[ObjectRef],
    header_bytes: int | None,
    options: dict[str, Any],
    concurrency: int = DEFAULT_READ_CONCURRENCY,
    max_bytes: int = DEFAULT_READ_AHEAD_BYTES,
) -> ReadAhead:
    """A shard's objects with their first reads fetched ahead of parsing on object
    stores (see read_ahead), and DICOM JSON exports and DICOMweb studies fetched
    whole a few ahead."""
    systems: dict[str, Any] = {}

    def filesystem_of(ref: ObjectRef) -> Any:
        if not is_remote(ref.url) or is_dicomweb(ref.url):
            return None
        if split_member(ref.url) or container_kind(ref.url):
            return None  # read through its container (containers.py), nothing ahead
        protocol = ref.url.split("://", 1)[0]
        if protocol not in systems:
            systems[protocol] = filesystem(ref.url, options, concurrency)[0]
        return systems[protocol]

    def fetch_whole(ref: ObjectRef, fs: Any) -> StudyContents:
        return json_instances(ref, options, fs)

    dicomweb = next((ref.url for ref in objects if is_dicomweb(ref.url)), None)
    return ReadAhead(
        objects,
        filesystem_of,
        first_read_bytes(header_bytes, remote=True),  # only remote objects are read ahead
        holds_instances,
        fetch_whole,
        concurrency=concurrency,
        max_bytes=max_bytes,
        ahead_whole=Server.of(dicomweb, options).studies_ahead if dicomweb else AHEAD_WHOLE,
    )


def _outcomes(
    ahead: Ahead,
    settings: ShardSettings,
    store: ValueStore,
    zips: OpenZips,
    frames: Counter[str],
    collected: Collected,
) -> Iterator[tuple[Rows, list[Row], int, int, float, str]]:
    """(rows, error rows, bytes read, requests, seconds spent reading, source order)
    of each object a listed one holds: itself, every instance of a DICOM JSON export
    or a DICOMweb study (in its order), or every member of a tar (in each one's).
    `frames` counts what locating frames cost (reads of offset tables, within the
    bytes and requests) and found, and the instances a DICOMweb server served only
    one by one; `collected` what libraries say while the shard reads."""
    ref = ahead.ref
    if holds_instances(ref):
        found = process_json_instances(ref, settings, ahead.fs, ahead.whole, frames, collected)
        for rows, errors, read in found:
            yield rows, errors, read, 1 if read else 0, 0.0, ref.source_order
        return
    if container_kind(ref.url) == TAR:
        members = process_tar_members(ref, settings, store, collected)
        for rows, errors, read, requests, order in members:
            yield rows, errors, read, requests, 0.0, order
        return
    rows, errors, parsed = process_object(
        ref, settings, ahead.fs, ahead.first, store, zips, collected=collected
    )
    if parsed is None:
        yield rows, errors, 0, 0, 0.0, ref.source_order
    else:
        served, requests, seconds = parsed.bytes_read, parsed.read_requests, parsed.read_seconds
        frames["offset_table_reads"] += parsed.offset_table_requests
        frames["offset_table_bytes"] += parsed.offset_table_bytes
        yield rows, errors, served, requests, seconds, ref.source_order


def count_frames(rows: Rows, frames: Counter[str]) -> None:
    """Frames located in their objects, and not (the row says why)."""
    for row in rows.get("dicom_frame", ()):
        located = isinstance(row, dict) and row.get("frame_offset") is not None
        frames["frames_located" if located else "frames_unlocated"] += 1


FRAME_COUNTS = ("offset_table_reads", "offset_table_bytes", "frames_located", "frames_unlocated")


class ShardOutput:
    """One shard's Parquet writer and its tally of objects and error rows, and the
    ledger record they end in: a run's shard and a rebuild's part keep them alike."""

    def __init__(self, out: OutputRoot, run_id: str, shard_id: str) -> None:
        self.out = out
        self.run_id = run_id
        self.shard_id = shard_id
        self.writer = ShardWriter(out, run_id, shard_id)
        self.errors: Counter[str] = Counter()  # error rows by category, as in the table
        self.error_files = self.parsed = 0
        self.files: list[Any] = []

    def add(self, rows: Rows, errors: list[Row], order: str) -> None:
        """One object's rows (ordered by `order`, its _source_order) and error rows."""
        for table, table_rows in rows.items():
            self.writer.add(table, table_rows, order)
        self.writer.add("dicom_ingestion_errors", errors, None)
        categories = [str(e["error_category"]) for e in errors]
        self.errors.update(categories)
        if FILE_ERROR_CATEGORIES.intersection(categories):
            self.error_files += 1
        else:
            self.parsed += 1

    def close(self) -> None:
        """Publish the files (the shard's work is done)."""
        self.files = self.writer.close()

    def abort(self) -> None:
        """Publish none of the files: the shard failed."""
        self.writer.abort()

    def record(self, started: float, **reading: Any) -> ledger.ShardRecord:
        """Commit the shard's record (`reading`: its bytes and reads) and return it."""
        finished = time.time()
        files = self.files
        record = ledger.ShardRecord(
            run_id=self.run_id,
            shard_id=self.shard_id,
            status="committed",
            listed=self.parsed + self.error_files,  # an export counts once per instance
            parsed=self.parsed,
            error_files=self.error_files,
            errors={str(k): v for k, v in self.errors.items()},
            rows={f.table: f.rows for f in files},
            files={f.table: f.path for f in files},
            parquet_bytes=sum(f.bytes for f in files),
            seconds=finished - started,
            started_at=_iso(started),
            finished_at=_iso(finished),
            worker_pid=os.getpid(),
            worker_peak_rss_bytes=peak_rss_bytes(),
            **reading,
        )
        ledger.commit_shard(self.out, self.run_id, record)
        return record


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None).isoformat()


def process_shard(
    settings: ShardSettings, shard: Shard, store: ValueStore | None = None
) -> ledger.ShardRecord:
    """Process one shard and commit its ledger record; return that record.

    `store` holds the decoded elements this shard shares with the worker's other
    shards: by default the Dask worker's own (ValueStore.of_worker)."""
    started = time.time()
    store = store if store is not None else ValueStore.of_worker()
    counted_from = store.snapshot()
    out = OutputRoot.of(settings.out, settings.storage_options)
    output = ShardOutput(out, settings.run_id, shard.shard_id)
    bytes_read = read_requests = 0
    read_seconds = 0.0  # reads the worker waited for itself (longer headers, retries)
    frames: Counter[str] = Counter()
    zips = OpenZips(settings.storage_options)
    reads = reads_ahead(
        shard.objects,
        settings.header_bytes,
        settings.storage_options,
        settings.read_concurrency,
        settings.read_ahead_bytes,
    )
    try:
        # What pydicom says about an object is that object's row (library_warnings),
        # collected once for the shard; what is said between objects is no one's.
        with Collected() as collected, gc_paused():
            for ahead in reads:
                outcomes = _outcomes(ahead, settings, store, zips, frames, collected)
                for rows, errors, read, requests, seconds, order in outcomes:
                    bytes_read += read
                    read_requests += requests
                    read_seconds += seconds
                    count_frames(rows, frames)
                    output.add(rows, errors, order)
        output.close()
    except BaseException:
        output.abort()
        raise
    finally:
        zips.close()
    record = output.record(
        started,
        bytes_listed=sum(r.size for r in shard.objects),
        bytes_read=bytes_read,
        read_requests=read_requests,
        value_store=store.counted_since(counted_from).as_dict(),
        read_wait_seconds=round(reads.wait_seconds + read_seconds, 6),
        throttled_reads=reads.window.throttled,
        lowest_read_window=reads.window.lowest,
        **{name: frames[name] for name in FRAME_COUNTS},
        instance_fallbacks=frames["instance_fallbacks"],
    )
    return record
