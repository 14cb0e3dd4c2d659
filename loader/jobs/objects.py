"""Every object a listed one holds, read and decoded: the one per-object path of a
run's shard, a scan, `init`'s sample and `doctor`.

A listed object holds one object (a DICOM file, loose or a zip member), every
member of a tar (read once, as a stream), or the instances of a DICOM JSON export
or a DICOMweb study. `held_objects` reads each, decodes its header and hands it to
the caller's `use` (a run extracts rows, a scan counts values); whatever fails on
one object, and whatever a library warned meanwhile, is kept with that object
(`Held`) for the caller to record by the one error policy (errors.object_failure).
Nothing one object does ends the shard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

import orjson

from loader.core.errors import ContainerError, ObjectError, ObjectReadError
from loader.dicom.decode import Decoded, decode_header
from loader.dicom.from_json import decode_json, instances_in, transfer_syntax_of
from loader.dicom.value_store import ValueStore
from loader.extract.context import ObjectFacts
from loader.headers.reader import (
    ParsedHeader,
    first_read_bytes,
    read_local,
    read_remote,
    read_stream,
)
from loader.jobs.library_warnings import Collected, captured
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
from loader.sources.listing import ObjectRef
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

T = TypeVar("T")

# What the caller makes of one decoded header, with the facts of its object.
Use = Callable[[Decoded, ObjectFacts], T]


class Reading(Protocol):
    """How every per-object path reads: a run's shard (shard.ShardSettings), a
    scan, init's sample and doctor (scan.ScanSettings)."""

    @property
    def source(self) -> str: ...
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


@dataclass(frozen=True, slots=True)
class Held(Generic[T]):
    """One object a listed one holds, once read: what `use` made of it (None when
    it failed), or its failure; what libraries warned while it was read; and what
    reading it cost."""

    facts: ObjectFacts
    made: T | None
    failure: Exception | None
    warned: list[str]
    order: str  # its _source_order (a tar's member: its own)
    served: int = 0  # bytes the store served for it (a tar's member: since the one before)
    requests: int = 0
    seconds: float = 0.0  # reads it waited for itself (a longer header, retries)
    offset_table_reads: int = 0  # reads of Basic Offset Tables (frame_offsets), within these
    offset_table_bytes: int = 0


def held_objects(
    ahead: Ahead,
    reading: Reading,
    use: Use[T],
    store: ValueStore,
    zips: OpenZips,
    collected: Collected,
    counted: Counter[str],
) -> Iterator[Held[T]]:
    """Each object the listed `ahead.ref` holds: itself, every instance of a DICOM
    JSON export or a DICOMweb study (in its order), or every member of a tar (in
    each one's). `store` holds the worker's decoded elements, `zips` the zips the
    shard reads members of, `collected` what libraries say while the shard reads;
    `counted` counts the instances a DICOMweb server served only one by one."""
    ref, now = ahead.ref, _now()
    if holds_instances(ref):
        yield from _instances(ref, reading, use, now, collected, ahead.fs, ahead.whole, counted)
    elif container_kind(ref.url) == TAR:
        yield from _tar_members(ref, reading, use, now, store, collected)
    else:

        def read() -> ParsedHeader:
            return read_object(ref, reading, ahead.fs, ahead.first, zips)

        facts, made, failure, warned, parsed = _read(ref, reading, use, now, read, store, collected)
        if parsed is None:  # what reading cost before it failed (ObjectError.spent)
            served, requests = _spent(failure)
            yield Held(facts, made, failure, warned, ref.source_order, served, requests)
        else:
            yield Held(
                facts,
                made,
                failure,
                warned,
                ref.source_order,
                parsed.bytes_read,
                parsed.read_requests,
                parsed.read_seconds,
                parsed.offset_table_requests,
                parsed.offset_table_bytes,
            )


def _spent(failure: Exception | None) -> tuple[int, int]:
    """The bytes and requests reading an object cost before it failed."""
    if isinstance(failure, ObjectError):
        return failure.bytes_read, failure.read_requests
    return 0, 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _read(
    ref: ObjectRef,
    reading: Reading,
    use: Use[T],
    now: dt.datetime,
    read: Callable[[], ParsedHeader],
    store: ValueStore,
    collected: Collected,
) -> tuple[ObjectFacts, T | None, Exception | None, list[str], ParsedHeader | None]:
    """One object's header read (`read`), decoded and used; its facts carry what
    was read even when decoding it failed."""
    facts = parsed = made = failure = None
    with captured(collected) as warned:
        try:
            parsed = read()
            facts = object_facts(ref, reading, parsed, now)
            made = use(decode_header(parsed, ref.url, reading.element_limit, store), facts)
        except Exception as exc:  # noqa: BLE001 - one object must never stop the shard
            failure = exc
    if facts is None:
        facts = object_facts(ref, reading, None, now)
    return facts, made, failure, warned, parsed


def object_facts(
    ref: ObjectRef, reading: Reading, parsed: ParsedHeader | None, now: dt.datetime
) -> ObjectFacts:
    """What is known of an object besides its header: where it is, what reading it
    found and cost (nothing, when it could not be read)."""
    container, key = container_and_key(ref.url)
    return ObjectFacts(
        uri=ref.url,
        size=ref.size,
        modified_at=ref.modified_at,
        ingestion_source=reading.source,
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
        frame_offsets=reading.frame_offsets,
        offset_tables=parsed.offset_tables if parsed else None,
    )


def _tar_members(
    ref: ObjectRef,
    reading: Reading,
    use: Use[T],
    now: dt.datetime,
    store: ValueStore,
    collected: Collected,
) -> Iterator[Held[T]]:
    """Every member of a tar, read once as the stream passes it, each with the bytes
    and requests the store served since the member before (on its first object); a
    tar that cannot be read ends as one failure for what was left of it."""
    first = first_read_bytes(reading.header_bytes, remote=is_remote(ref.url))
    served = requests = 0
    try:
        ranged, members = tar_members(ref.url, ref.size, reading.storage_options)
        for member in members:
            member_ref = ObjectRef(member.url, member.size, member.modified)
            found: Iterable[Held[T]]
            if is_export(member.url) and member.data is not None:
                contents = _export_passing(member_ref, member.data, reading)
                found = _instances(member_ref, reading, use, now, collected, fetched=contents)
            else:
                found = (_member(member, reading, use, now, first, store, collected),)
            for held in found:
                yield replace(
                    held,
                    served=ranged.bytes_read - served,
                    requests=ranged.requests - requests,
                )
                served, requests = ranged.bytes_read, ranged.requests
    except Exception as exc:  # noqa: BLE001 - what is left of the tar is one failure
        yield Held(object_facts(ref, reading, None, now), None, exc, [], ref.source_order)


def _member(
    member: TarMember,
    reading: Reading,
    use: Use[T],
    now: dt.datetime,
    first: int,
    store: ValueStore,
    collected: Collected,
) -> Held[T]:
    """One member of a tar, read as the stream passes it."""
    ref = ObjectRef(member.url, member.size, member.modified)

    def read() -> ParsedHeader:
        return read_tar_member(member, reading, first)

    facts, made, failure, warned, _ = _read(ref, reading, use, now, read, store, collected)
    return Held(facts, made, failure, warned, ref.source_order)


def _export_passing(ref: ObjectRef, data: Any, reading: Reading) -> StudyContents | Exception:
    """The instances of a DICOM JSON export passing by in a tar, or why they cannot
    be had: read as a loose export is, within the member limit."""
    try:
        check_member_size(ref.url, ref.size, reading.member_limit)
        return export_contents(ref.url, data.read(), 0)
    except Exception as exc:  # noqa: BLE001 - the export's one failure, as a loose one's
        return exc


def _instances(
    ref: ObjectRef,
    reading: Reading,
    use: Use[T],
    now: dt.datetime,
    collected: Collected,
    fs: Any = None,
    fetched: Any = None,
    counted: Counter[str] | None = None,
) -> Iterator[Held[T]]:
    """Every DICOM JSON instance a listed object holds, the bytes read for them all
    counted on the first; one failure when they cannot be fetched or parsed, and one
    READ_ERROR per instance a server did not serve. `fetched`: what fetching them
    ahead gave (the contents, or the exception), None to fetch them here."""
    try:
        contents = instances_fetched(ref, reading.storage_options, fs, fetched)
    except Exception as exc:  # noqa: BLE001 - the object that holds them is one failure
        facts = object_facts(ref, reading, None, now)
        yield Held(facts, None, exc, [], ref.source_order, *_spent(exc))
        return
    if counted is not None:
        counted["instance_fallbacks"] += contents.fallbacks
    for url, reason in contents.unread:
        facts = object_facts(replace(ref, url=url), reading, None, now)
        yield Held(facts, None, ObjectReadError(url, reason), [], ref.source_order)
    for index, (url, instance) in enumerate(contents.instances):
        text = orjson.dumps(instance)
        read = contents.read if index == 0 else 0
        facts = replace(
            object_facts(replace(ref, url=url), reading, None, now),
            size=len(text),
            storage_provider=provider_of(ref.url),  # where the export or study is
            transfer_syntax_uid=transfer_syntax_of(instance),
            header_bytes=len(text),
            bytes_read=read,
            checksum=hashlib.md5(text, usedforsecurity=False).hexdigest(),
        )
        made = failure = None
        with captured(collected) as warned:
            try:
                made = use(decode_json(instance, url, reading.element_limit), facts)
            except Exception as exc:  # noqa: BLE001 - one instance must never stop the shard
                failure = exc
        yield Held(facts, made, failure, warned, ref.source_order, read, 1 if read else 0)


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
    try:
        return export_contents(ref.url, data, served)
    except ObjectError as exc:  # read, but holds no instance: the read counts
        exc.spent(served, 1)
        raise


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
        # Counted from before the zip is opened: its directory, for its first member;
        # what the store served, whether the member is read whole or fails.
        served, requests = zips.served(member.container), zips.requests(member.container)
        try:
            ranged, stream, size = zips.member(member)
            with stream:
                check_member_size(ref.url, size, member_limit)
                first = first_read_bytes(header_bytes, remote=is_remote(member.container))
                parsed = read_stream(ref.url, stream, size, first, skip_over, offset_tables)
        except ObjectError as exc:
            exc.spent(
                zips.served(member.container) - served, zips.requests(member.container) - requests
            )
            raise
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
