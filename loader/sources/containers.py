"""Archives packed in containers: `.zip`, `.tar`, `.tar.gz` / `.tgz`, on disk or in a bucket.

PACS exports, research downloads and vendor hand-overs arrive as bundles. Each
member is an object of its own, addressed with fsspec's chained-URL convention
(`zip://dir/1.dcm::s3://bucket/bundle.zip`, `tar://dir/1.dcm::/data/bundle.tgz`) in
`storage_uri`, `file_path` and error rows; pixel offsets are within the member.

- A zip has a central directory: the listing reads it with ranged reads and lists
  every member; a worker reads each member's header through it (a stored member's
  first bytes, a deflated one's first bytes inflated), so a 10 GB zip in a bucket
  costs its directory and its members' headers, never the whole object.
- A tar has no directory, and a compressed one can only be read from its start:
  the listing lists the tar itself and one worker reads it once, as a stream,
  taking each member's header as it passes (an uncompressed tar is read by seeking
  from member header to member header). Nothing is written to disk or held whole.

What cannot be loaded ends as rows: a member that is not DICOM is NOT_DICOM as any
object; a corrupt container, a member whose declared size is over `member_limit`
(a zip bomb inflates far beyond what it stores), and a container inside a container
(not opened) are CONTAINER_ERROR, one row per member or one for a container whose
members cannot be known. Reads go through `RangedFile`, which counts the bytes and
requests the store served.
"""

from __future__ import annotations

import calendar
import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from loader.core.errors import ContainerError, ObjectReadError
from loader.sources.storage import filesystem, is_remote, with_retries

ZIP, TAR = "zip", "tar"
_SUFFIXES = ((".zip", ZIP), (".tar", TAR), (".tar.gz", TAR), (".tgz", TAR))
_ANY_SUFFIX = tuple(suffix for suffix, _ in _SUFFIXES)
DEFAULT_MEMBER_LIMIT = 4 << 30  # bytes a member may declare: over it, CONTAINER_ERROR
READ_BLOCK = 64 * 1024  # reads ahead of what a zip reader asks for
STREAM_BLOCK = 4 << 20  # reads ahead while a compressed tar is streamed


# DICOM JSON exports (dicom/from_json.py reads them), known by their names.
EXPORT_SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")


def object_name(url: str) -> str:
    """The object's own name, lower case: a container member's
    (`zip://dir/a.json::s3://b/x.zip`) is the part before `::`, the container's URL
    after it."""
    return url.split("::", 1)[0].lower()


def is_export(url: str) -> bool:
    """Whether an object is a DICOM JSON export (by its name: loose, or a member of
    a zip or tar): the listing lists it, the shard reads its instances."""
    return object_name(url).endswith(EXPORT_SUFFIXES)


def container_kind(url: str) -> str | None:
    """ZIP or TAR when `url` names a container by its name (not a member of one)."""
    name = url.lower()
    if not name.endswith(_ANY_SUFFIX):  # nearly every object: one check per listed name
        return None
    if split_member(url) is not None:
        return None
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix):
            return kind
    return None


def member_url(kind: str, name: str, container: str) -> str:
    return f"{kind}://{name}::{container}"


@dataclass(frozen=True)
class Member:
    """Where a member lives: its container's kind and URL, and its name in it."""

    kind: str
    name: str
    container: str


def split_member(url: str) -> Member | None:
    """The parts of a member's chained URL; None for any other URL."""
    for kind in (ZIP, TAR):
        prefix = f"{kind}://"
        if url.startswith(prefix) and "::" in url:
            name, _, container = url[len(prefix) :].partition("::")
            return Member(kind, name, container)
    return None


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads of one object, reading `block`
    bytes ahead and counting the bytes and requests the store served."""

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        block: int,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._fetch = fetch
        self._release = release  # what closing lets go of (a local file's handle)
        self.size = size
        self._block = block
        self._pos = 0
        self._start = 0
        self._held = b""
        self.bytes_read = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if self._release is not None and not self.closed:
            self._release()
        super().close()

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self._pos + n)
        if end <= self._pos:
            return b""
        held_end = self._start + len(self._held)
        if not (self._start <= self._pos and end <= held_end):
            upto = min(self.size, max(end, self._pos + self._block))
            self._held = self._fetch(self._pos, upto)
            self._start = self._pos
            self.bytes_read += len(self._held)
            self.requests += 1
        data = self._held[self._pos - self._start : end - self._start]
        self._pos += len(data)
        return data


def open_container(url: str, size: int, options: dict[str, Any], block: int) -> RangedFile:
    """A container object as a RangedFile: ranged reads that retry on a store, file
    reads locally."""
    if is_remote(url):
        fs, path = filesystem(url, options)

        def fetch(start: int, end: int) -> bytes:
            return bytes(with_retries(url, lambda: fs.cat_file(path, start=start, end=end)))

        if size <= 0:
            size = int(with_retries(url, lambda: fs.size(path)))
        return RangedFile(fetch, size, block)
    local = url.removeprefix("file://")
    try:
        handle = open(local, "rb")  # noqa: SIM115 - the RangedFile closes it
    except OSError as exc:
        raise ObjectReadError(url, f"cannot open: {exc.strerror or exc}") from exc

    def read_local(start: int, end: int) -> bytes:
        try:
            handle.seek(start)
            return handle.read(end - start)
        except OSError as exc:
            raise ObjectReadError(url, f"read failed: {exc.strerror or exc}") from exc

    if size <= 0:
        size = handle.seek(0, 2)
    return RangedFile(read_local, size, block, handle.close)


@dataclass(frozen=True)
class ZipMember:
    """One zip member as the listing saw it."""

    name: str
    size: int  # its inflated size, as the directory declares it
    crc: int
    modified: float  # POSIX seconds: the entry's date and time, taken as UTC (zip has no zone)


def zip_members(url: str, size: int, options: dict[str, Any]) -> tuple[list[ZipMember], int]:
    """The file members of the zip at `url` (directories left out), and the bytes the
    directory took to read; ContainerError when it is no zip or a corrupt one."""
    ranged = open_container(url, size, options, READ_BLOCK)
    try:
        with zipfile.ZipFile(ranged) as archive:  # type: ignore[arg-type]
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ContainerError(url, f"not a readable zip: {exc}") from None
    finally:
        ranged.close()
    members = [
        ZipMember(i.filename, i.file_size, i.CRC, float(calendar.timegm((*i.date_time, 0, 0, 0))))
        for i in infos
        if not i.is_dir()
    ]
    return members, ranged.bytes_read


class OpenZips:
    """The zips a shard reads members of, each opened once (its directory read once)
    and closed when the shard ends: a shard's members of one zip come together."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._open: dict[str, tuple[RangedFile, zipfile.ZipFile]] = {}

    def served(self, container: str) -> int:
        """Bytes the store served for `container` so far (0 before it is opened)."""
        held = self._open.get(container)
        return held[0].bytes_read if held else 0

    def requests(self, container: str) -> int:
        held = self._open.get(container)
        return held[0].requests if held else 0

    def member(self, member: Member) -> tuple[RangedFile, BinaryIO, int]:
        """The container's RangedFile, the member open for reading, and its size."""
        if member.container not in self._open:
            self.close()  # one at a time: the listing keeps a zip's members together
            ranged = open_container(member.container, 0, self._options, READ_BLOCK)
            try:
                archive = zipfile.ZipFile(ranged)  # type: ignore[arg-type]
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
                ranged.close()
                raise ContainerError(member.container, f"not a readable zip: {exc}") from None
            self._open[member.container] = (ranged, archive)
        ranged, archive = self._open[member.container]
        try:
            info = archive.getinfo(member.name)
            return ranged, archive.open(info), info.file_size  # type: ignore[return-value]
        except KeyError:
            raise ObjectReadError(
                member_url(ZIP, member.name, member.container), "no such member any more"
            ) from None
        # zipfile's own refusals: a bad header (BadZipFile), a compression method it
        # does not implement (NotImplementedError), an encrypted member (RuntimeError).
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError) as exc:
            raise ContainerError(
                member_url(ZIP, member.name, member.container), f"member cannot be read: {exc}"
            ) from None

    def close(self) -> None:
        for ranged, archive in self._open.values():
            archive.close()
            ranged.close()
        self._open.clear()


@dataclass
class TarMember:
    """A tar member as the stream passes it: its URL, declared size, and its data
    (None for what is not a regular file's)."""

    url: str
    size: int
    modified: float  # POSIX seconds, from its tar header
    data: BinaryIO | None


def tar_members(
    url: str, size: int, options: dict[str, Any]
) -> tuple[RangedFile, Iterator[TarMember]]:
    """The container's RangedFile and its regular-file members in order. A
    compressed tar is streamed once; an uncompressed one is read by seeking past
    members' data. A corrupt tar raises ContainerError as the stream meets it."""
    compressed = not url.lower().endswith(".tar")
    ranged = open_container(url, size, options, STREAM_BLOCK if compressed else READ_BLOCK)

    def members() -> Iterator[TarMember]:
        try:
            mode = "r|*" if compressed else "r:"
            with tarfile.open(fileobj=ranged, mode=mode) as archive:  # type: ignore[call-overload]
                for info in archive:
                    if info.isfile():
                        data = archive.extractfile(info)
                        name = member_url(TAR, info.name, url)
                        yield TarMember(name, info.size, float(info.mtime), data)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise ContainerError(url, f"not a readable tar: {exc}") from None
        finally:
            ranged.close()

    return ranged, members()
