"""List a source → a stream of ObjectRefs → shards with content-derived ids.

Listing streams: directories are walked lazily (object-store folders listed a few
ahead, concurrently) and shards are cut as objects arrive, so the driver holds two
shards of references at a time, not the archive.
Sorting happens per directory, so the same tree always yields the same shards
(and the same shard ids, which makes reruns overwrite instead of duplicate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from loader.core.credentials import refuse_url_password
from loader.core.errors import ConfigError, ListingError, ObjectError, ObjectReadError
from loader.sources.containers import ZIP, container_kind, is_export, member_url, zip_members
from loader.sources.dicomweb import is_dicomweb, study_urls
from loader.sources.storage import filesystem, is_remote, with_retries

DEFAULT_SHARD_SIZE = 2000
_NAME = attrgetter("name")
LISTING_THREADS = 8  # object-store folders listed ahead, concurrently
TAIL_PARTS = 4  # how much finer the listing's last shards are cut (see make_shards)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Identity of one listed object: where it is, how big, when written."""

    url: str
    size: int
    modified: float | None  # POSIX seconds; None when the source does not say
    etag: str | None = None

    @property
    def modified_at(self) -> dt.datetime | None:
        if self.modified is None:
            return None
        return dt.datetime.fromtimestamp(self.modified, dt.UTC).replace(tzinfo=None)

    @property
    def source_order(self) -> str:
        """Orders objects for conflict resolution: most recently written wins,
        ties broken by URL (docs/MODEL.md "Uniqueness and conflicts"; stored as `_source_order`)."""
        stamp = self.modified_at.isoformat(timespec="microseconds") if self.modified_at else ""
        return f"{stamp}\\{self.url}"


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    objects: tuple[ObjectRef, ...]


def walk(root: str, unreadable: list[str]) -> Iterator[ObjectRef]:
    """Files under `root`, depth first, names sorted; symlinked directories skipped
    (they can loop); unreadable directories skipped (nothing in them is listed) and
    added to `unreadable`, so that nothing under them is taken for deleted.

    One loop over a stack of open folders, not a generator per folder: a million
    files in 300,000 folders passed each name up through five nested generators, a
    fifth of a nightly reload's listing."""
    stack = [sorted_entries(root, unreadable)]
    while stack:
        for entry in stack[-1]:
            listed = entry_listed(entry)
            if type(listed) is str:
                stack.append(sorted_entries(listed, unreadable))
                break  # its folder first, then the rest of this one
            if listed is not None:
                yield listed  # type: ignore[misc]
        else:
            stack.pop()


def entry_listed(entry: os.DirEntry[str]) -> ObjectRef | str | None:
    """A folder's entry as the walk lists it: a folder to descend into (its path), an
    object, or nothing (a link to a folder: links can loop)."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return entry.path
        if entry.is_file():
            st = entry.stat()
            return ObjectRef(entry.path, st.st_size, st.st_mtime)
        if entry.is_symlink() and not entry.is_dir():
            return ObjectRef(entry.path, 0, None)  # dangling link: READ_ERROR later
    except OSError:
        return ObjectRef(entry.path, 0, None)  # vanished or unreadable: READ_ERROR later
    return None


def sorted_entries(folder: str, unreadable: list[str]) -> Iterator[os.DirEntry[str]]:
    """A folder's entries by name (none, and the folder noted, when it cannot be read)."""
    try:
        with os.scandir(folder) as found:
            return iter(sorted(found, key=_NAME))
    except OSError:
        unreadable.append(folder)
        return iter(())


def _stat(path: str) -> ObjectRef:
    try:
        st = os.stat(path)
    except OSError:
        return ObjectRef(path, 0, None)
    return ObjectRef(path, st.st_size, st.st_mtime)


def _seconds(value: Any) -> float | None:
    """A manifest's modification time (timestamp, or POSIX seconds) → POSIX seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


def _manifest_entries(manifest: Path) -> Iterator[str | ObjectRef]:
    """A manifest's lines: a path to look up, or (Parquet with `size`) a whole ObjectRef,
    so a manifest of millions of object-store URLs costs no request per object."""
    base = manifest.parent

    def absolute(path: str) -> str:
        return path if is_remote(path) or os.path.isabs(path) else str(base / path)

    if manifest.suffix == ".parquet":
        parquet = pq.ParquetFile(manifest)
        names = parquet.schema_arrow.names
        if "path" not in names:
            raise ConfigError(f"manifest {manifest} has no 'path' column")
        wanted = [c for c in ("path", "size", "modified", "etag") if c in names]
        for batch in parquet.iter_batches(columns=wanted, batch_size=10_000):
            columns = {name: batch.column(name).to_pylist() for name in wanted}
            for index, path in enumerate(columns["path"]):
                if not path:
                    continue
                size = columns["size"][index] if "size" in columns else None
                if size is None:
                    yield absolute(path)
                    continue
                etag = columns["etag"][index] if "etag" in columns else None
                modified = columns["modified"][index] if "modified" in columns else None
                yield ObjectRef(absolute(path), int(size), _seconds(modified), etag or None)
        return
    with manifest.open(encoding="utf-8") as lines:
        for line in lines:
            path = line.rstrip("\n")
            if path.strip() and not path.startswith("#"):
                yield absolute(path)


def _is_dicom_file(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _folder(fs: Any, path: str, protocol: str) -> list[dict[str, Any]]:
    """One "folder" of an object store, names sorted ([] when it does not exist)."""
    try:
        listed = with_retries(f"{protocol}://{path}", lambda: fs.ls(path, detail=True))
    except ObjectReadError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return []
        raise ListingError(f"cannot list {protocol}://{path}: {exc.reason}") from None
    return sorted(listed, key=lambda e: e["name"])


def _remote_ref(entry: dict[str, Any], protocol: str) -> ObjectRef:
    modified = entry.get("LastModified") or entry.get("mtime") or entry.get("last_modified")
    stamp = modified.timestamp() if isinstance(modified, dt.datetime) else modified
    etag = entry.get("ETag") or entry.get("etag") or entry.get("md5Hash")
    return ObjectRef(
        f"{protocol}://{entry['name']}",
        int(entry.get("size") or 0),
        float(stamp) if stamp is not None else None,
        str(etag).strip('"') if etag else None,
    )


def _walk_remote(fs: Any, path: str, protocol: str) -> Iterator[ObjectRef]:
    """Objects under a prefix, names sorted, one listing call per "folder".

    The listings of the next sub-folders are fetched ahead, LISTING_THREADS at a time,
    so a bucket of many prefixes lists in parallel while objects still come out in one
    deterministic order; memory holds a few folders' listings, not the bucket's.
    """
    with ThreadPoolExecutor(LISTING_THREADS, thread_name_prefix="listing") as pool:
        yield from _walk_entries(pool, fs, _folder(fs, path, protocol), protocol)


def _walk_entries(
    pool: ThreadPoolExecutor, fs: Any, entries: list[dict[str, Any]], protocol: str
) -> Iterator[ObjectRef]:
    folders = [e["name"] for e in entries if e.get("type") == "directory"]
    ahead: deque[Future[list[dict[str, Any]]]] = deque(
        pool.submit(_folder, fs, name, protocol) for name in folders[:LISTING_THREADS]
    )
    following = len(ahead)
    for entry in entries:
        if entry.get("type") == "directory":
            listing = ahead.popleft()
            if following < len(folders):
                ahead.append(pool.submit(_folder, fs, folders[following], protocol))
                following += 1
            yield from _walk_entries(pool, fs, listing.result(), protocol)
        elif entry.get("type") == "file":
            yield _remote_ref(entry, protocol)


def list_source(
    source: str,
    storage_options: dict[str, Any] | None = None,
    unreadable: list[str] | None = None,
) -> Iterator[ObjectRef]:
    """Every object of a source: a folder or prefix (recursive), a manifest, or one file.
    Local folders that cannot be read are added to `unreadable`.

    A DICOMweb root (`dicomweb+http(s)://`) lists its studies (see `dicomweb`).
    A manifest is a Parquet file with a `path` column (and optionally `size`,
    `modified`, `etag`: then nothing is looked up) or a text file of one path a
    line; relative paths resolve against the manifest's folder.
    """
    refuse_url_password(source, "the source")
    if is_dicomweb(source):
        for url in study_urls(source, storage_options):
            yield ObjectRef(url, 0, None)
        return
    yield from zips_opened(_objects(source, storage_options, unreadable), storage_options or {})


def zips_opened(refs: Iterable[ObjectRef], options: dict[str, Any]) -> Iterator[ObjectRef]:
    """`refs`, each zip among them replaced by its members (`_zip_opened`)."""
    for ref in refs:
        if container_kind(ref.url) == ZIP:  # checked here, not in a generator per object
            yield from _zip_opened(ref, options)
        else:
            yield ref


def _zip_opened(ref: ObjectRef, options: dict[str, Any]) -> Iterator[ObjectRef]:
    """The members of a zip: each one listed object (containers.py), modified when
    its entry says (so the newest copy of an instance wins, as for files). A zip
    whose directory cannot be read is listed itself: its worker says why, in a
    CONTAINER_ERROR row. A tar is listed itself: its worker reads it as a stream."""
    try:
        members, _ = zip_members(ref.url, ref.size, options)
    except ObjectError:
        yield ref
        return
    # On a store, a member's CRC stands where an object's ETag does (its checksum).
    remote = is_remote(ref.url)
    for member in members:
        url = member_url(ZIP, member.name, ref.url)
        crc = f"crc32:{member.crc:08x}" if remote else None
        yield ObjectRef(url, member.size, member.modified, crc)


def _objects(
    source: str, storage_options: dict[str, Any] | None, unreadable: list[str] | None
) -> Iterator[ObjectRef]:
    """The objects of a source that is not a DICOMweb server, containers unopened."""
    if is_remote(source):
        fs, root = filesystem(source, storage_options)
        fs.invalidate_cache()  # a listing cached by an earlier run would hide changes
        yield from _walk_remote(fs, root.rstrip("/"), source.split("://", 1)[0])
        return
    path = Path(source.removeprefix("file://"))
    if path.is_dir():
        yield from walk(str(path.resolve()), [] if unreadable is None else unreadable)
    elif path.is_file():
        if _is_dicom_file(path) or is_export(path.name) or container_kind(path.name):
            yield _stat(str(path.resolve()))
        else:
            for listed in _manifest_entries(path):
                if isinstance(listed, ObjectRef):
                    yield listed
                elif is_remote(listed):
                    fs, key = filesystem(listed, storage_options)
                    yield from _walk_remote(fs, key, listed.split("://", 1)[0])
                else:
                    yield _stat(listed)
    else:
        raise ConfigError(f"source {source} is neither a folder nor a manifest file")


def shard_id_of(objects: Iterable[ObjectRef]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for ref in objects:
        digest.update(f"{ref.url}\t{ref.size}\t{ref.modified}\t{ref.etag}\n".encode())
    return digest.hexdigest()[:16]


def make_shards(
    objects: Iterable[ObjectRef], shard_size: int = DEFAULT_SHARD_SIZE
) -> Iterator[Shard]:
    """Cut a stream of objects into shards of `shard_size`, lazily, and the last
    `shard_size` to `2 × shard_size - 1` objects of the listing into shards of a
    `TAIL_PARTS`th of it.

    With whole shards to the end, the workers left without one wait for the last
    to finish: a 10,000-object run on two workers had one core idle for the last
    0.95 s of its 3.1 s of extraction (2.7 s with the finer tail). The cut depends
    on the listing alone, not on the cluster, so `--resume` with other workers
    finds the same shards.
    """
    if shard_size < 1:
        raise ConfigError("shard size must be at least 1")
    held: list[ObjectRef] = []  # a shard's worth ahead, to know where the tail starts
    for ref in objects:
        held.append(ref)
        if len(held) == 2 * shard_size:
            yield _shard(held[:shard_size])
            del held[:shard_size]
    tail_size = -(-shard_size // TAIL_PARTS)
    for start in range(0, len(held), tail_size):
        yield _shard(held[start : start + tail_size])


def _shard(objects: list[ObjectRef]) -> Shard:
    return Shard(shard_id_of(objects), tuple(objects))
