"""One object → the bytes of its header (never its pixels) → its raw elements.

A prefix is read first (64 KiB by default). When the header ends inside it, as it
mostly does, `dataset_bytes` walks the bytes itself. Otherwise pydicom parses
through a file-like `HeaderReader` that fetches only the byte ranges it asks for:
growing ranges when a header is longer, and nothing past the start of Pixel Data.
Bytes and requests are counted here because this is the only place that reads.
"""

from __future__ import annotations

import hashlib
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import FileDataset
from pydicom.tag import BaseTag

from loader.core.errors import (
    ContainerError,
    HeaderParseError,
    NotDicomError,
    ObjectError,
    ObjectReadError,
    TruncatedError,
)
from loader.headers.dataset_bytes import (
    PIXEL_DATA_TAGS,
    UNDEFINED,
    HeaderIncomplete,
    HeaderSkip,
    RawHeader,
    RawItem,
    SequenceFormatError,
    encoding_of,
    from_pydicom,
    parse_part10,
)
from loader.headers.frame_offsets import MAX_FRAMES, OffsetTables, basic_table_bytes
from loader.headers.sequence_end import sequence_end
from loader.sources.storage import with_retries

# First reads: on object stores a request's latency dwarfs its bytes, so one read
# should hold nearly every header; on local and network filesystems reads are cheap
# and bytes count (a 50M-object archive on NFS: 3.2 TB at 64 KiB, 0.8 TB at 16).
DEFAULT_HEADER_BYTES = 64 * 1024
LOCAL_HEADER_BYTES = 16 * 1024


def first_read_bytes(header_bytes: int | None, remote: bool) -> int:
    """An object's first read: `--header-bytes` when given, else by where it is."""
    return header_bytes or (DEFAULT_HEADER_BYTES if remote else LOCAL_HEADER_BYTES)


_MIN_GROWTH = 16 * 1024
_PIXEL_VRS = (b"OB", b"OW", b"OF", b"OD", b"UN")  # an explicit VR Pixel Data element's
NUMBER_OF_FRAMES = 0x00280008
EXTENDED_OFFSET_TABLE = 0x7FE00001
EXTENDED_OFFSET_TABLE_LENGTHS = 0x7FE00002

Fetch = Callable[[int, int], bytes]
"""Reads bytes [start, end) of one object; may return fewer at its end."""


class HeaderReader:
    """A read-only, seekable file over one object that fetches ranges on demand.

    A read past what was fetched grows the buffer to the read's end plus a quarter
    of what is already held, so a long header costs few requests while the bytes
    read stay within ~1.25x of what the parser consumed. A huge declared length
    never allocates more than the object's size.

    A value longer than the element limit can be skipped (`skip`): the buffer then
    leaves it out, `gaps` says where it was, and reading goes on after it, so a
    500 MB document before Pixel Data costs its header, not its bytes. A sequence of
    undefined length must be walked to find its end (`sequence_length`), but through
    a window of a few MB, so a 500 MB structure set's contours are read, never held. The
    buffer's positions are then the object's less `skipped`; pydicom's path, which
    reads through the file interface, starts again without gaps (`restart`).
    """

    def __init__(
        self,
        fetch: Fetch,
        size: int,
        first_bytes: int = DEFAULT_HEADER_BYTES,
        prefetched: bytes | None = None,
    ):
        self._fetch = fetch
        self.size = size
        self.first_bytes = first_bytes
        self._buf = b""
        self._pos = 0
        self.requests = 0
        self.seconds = 0.0  # spent waiting for fetches
        self.bytes_read = 0
        self.skipped = 0  # bytes of values skipped, not read
        self.gaps: dict[int, int] | None = None  # buffer position → bytes skipped there
        self.partial_read = False  # a read that got less than it asked for
        self._file_reads = 0  # reads through the file protocol (pydicom's)
        if prefetched is not None:  # the first read, already fetched with others
            self._buf = prefetched
            self.requests = 1
            self.bytes_read = len(prefetched)
            if len(prefetched) < min(first_bytes, size):
                self.size = len(prefetched)  # the object is shorter than listed
        else:
            self.ensure(min(first_bytes, size))

    def skip(self, at: int, length: int) -> None:
        """Leave out the value whose `length` bytes start at buffer position `at`:
        the bytes of it already read are dropped, and reading goes on after it."""
        self._buf = self._buf[:at]
        self.gaps = {**(self.gaps or {}), at: length}
        self.skipped += length

    def sequence_length(self, at: int, implicit: bool, little: bool, path: str) -> int:
        """The length of the undefined-length sequence whose value starts at buffer
        position `at`, delimiter included, found by walking its framing through a
        bounded window (see sequence_end); its bytes count as read, none are kept."""

        def counted(start: int, end: int) -> bytes:
            started = time.perf_counter()
            chunk = self._fetch(start, end)
            self.seconds += time.perf_counter() - started
            self.requests += 1
            self.bytes_read += len(chunk)
            return chunk

        start = at + self.skipped
        held, self._buf = self._buf[at:], self._buf[:at]  # the window starts with them
        return sequence_end(counted, self.size, start, implicit, little, path, held) - start

    def restart(self) -> None:
        """Read again from the start without gaps (bytes and requests still count)."""
        self._buf, self._pos, self.gaps, self.skipped = b"", 0, None, 0
        self._file_reads = 0
        self.ensure(min(self.first_bytes, self.size))

    def buffer(self) -> bytes:
        return self._buf

    def peek(self, n: int) -> bytes:
        """The first `n` bytes of the object (fewer if it is shorter)."""
        self.ensure(n)
        return self._buf[:n]

    def ensure(self, end: int) -> None:
        """Hold the object's bytes up to buffer position `end` (or its end)."""
        skipped = self.skipped
        end = min(end, self.size - skipped)
        if end <= len(self._buf):
            return
        started = time.perf_counter()
        chunk = self._fetch(len(self._buf) + skipped, end + skipped)
        self.seconds += time.perf_counter() - started
        self.requests += 1
        self.bytes_read += len(chunk)
        self._buf += chunk
        if len(chunk) < end - (len(self._buf) - len(chunk)):
            self.size = len(self._buf) + skipped  # the object is shorter than listed

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else self._pos + n
        if end > len(self._buf):
            self.ensure(max(end, len(self._buf) + max(len(self._buf) // 4, _MIN_GROWTH)))
        data = self._buf[self._pos : end]
        # pydicom's first two reads look for a preamble and its DICM marker (short on
        # an object under 132 bytes, which it then reads from the start), and it ends
        # a dataset by reading 8 bytes at the end of the object and getting none; any
        # other short read means the object ends inside an element.
        self._file_reads += 1
        looking = self._file_reads <= 2
        if n is not None and len(data) < n and not (not data and n == 8) and not looking:
            self.partial_read = True
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._pos
        elif whence == 2:
            offset += self.size
        self._pos = max(0, offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._buf = b""


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    """A parsed header and the facts about reading it."""

    meta: RawItem  # the File Meta Information
    elements: RawItem  # the dataset up to Pixel Data
    implicit: bool  # how `elements` are encoded
    little: bool
    header_bytes: int  # bytes before Pixel Data (the whole object if it has none)
    bytes_read: int
    read_requests: int
    read_seconds: float  # waiting for this worker's own reads (not those read ahead)
    pixel_data_offset: int | None  # where the Pixel Data value starts
    pixel_data_length: int | None  # None when encapsulated (undefined length)
    checksum: str  # MD5 of the header bytes
    transfer_syntax_uid: str | None
    # Encapsulated Pixel Data's offset tables, when asked for (frame_offsets); the
    # bytes and requests its Basic Offset Table cost beyond the header (0 when the
    # first read held it), counted in bytes_read and read_requests too.
    offset_tables: OffsetTables | None = None
    offset_table_bytes: int = 0
    offset_table_requests: int = 0


def looks_like_dicom(prefix: bytes) -> bool:
    """True for a Part 10 file (DICM at 128) or a bare dataset without preamble."""
    if len(prefix) >= 132 and prefix[128:132] == b"DICM":
        return True
    if len(prefix) < 8:
        return False
    # File Meta Information is little endian always: a big endian dataset starts at 0008.
    group_le, group_be = struct.unpack("<H", prefix[:2])[0], struct.unpack(">H", prefix[:2])[0]
    if group_le not in (0x0002, 0x0008) and group_be != 0x0008:
        return False
    vr = prefix[4:6]
    if b"AA" <= vr <= b"ZZ":
        return True
    length = struct.unpack("<L", prefix[4:8])[0]
    return length < 1 << 20


def parse_header(
    path: str, reader: HeaderReader, skip_over: int | None = None, offset_tables: bool = False
) -> ParsedHeader:
    """Parse the header served by `reader`; raise the error matching what is wrong.
    A top-level value longer than `skip_over` that the bytes read do not hold yet is
    skipped with a ranged read past it (the decoder marks it omitted); the checksum
    then covers the header without it. With `offset_tables`, encapsulated Pixel
    Data's offset tables are read too (frame_offsets)."""
    if reader.size == 0:
        raise NotDicomError(path, "empty object (0 bytes)")
    if not looks_like_dicom(reader.peek(132)):
        raise NotDicomError(path, "no DICM marker and no DICOM data element at the start")
    meta: RawItem
    elements: RawItem
    syntax: str | None
    raw = _walk(path, reader, skip_over)
    if raw is None and reader.gaps:
        reader.restart()  # pydicom reads through the file interface: no gaps
    prefix = reader.buffer()
    checked = len(prefix)  # the header's bytes as held (skipped values left out)
    if raw is not None:
        meta, elements, syntax = raw.meta, raw.elements, raw.transfer_syntax_uid
        implicit, little = raw.implicit, raw.little
        offset, length = _pixel_data_position(prefix, raw.end, implicit, little)
        if offset is not None:
            offset += reader.skipped
            checked = raw.end
        header_bytes = raw.end + reader.skipped if offset is not None else reader.size
    else:
        ds = _parse_with_pydicom(path, reader)
        implicit, little = encoding_of(ds)
        offset, length = _pixel_data_position(reader.buffer(), reader.tell(), implicit, little)
        if reader.partial_read and offset is None:
            raise TruncatedError(path, "object ends inside a data element")
        if not ds._dict:
            raise NotDicomError(path, "no data elements after the file meta information")
        header_bytes = reader.tell() if offset is not None else reader.size
        checked = header_bytes
        meta = from_pydicom(ds.file_meta._dict, path)
        elements, syntax = from_pydicom(ds._dict, path), _transfer_syntax(ds)
    tables, table_bytes, table_requests = None, reader.bytes_read, reader.requests
    if offset_tables and offset is not None and length is None:
        tables = _offset_tables(reader, elements, offset)
    return ParsedHeader(
        meta=meta,
        elements=elements,
        implicit=implicit,
        little=little,
        header_bytes=header_bytes,
        bytes_read=reader.bytes_read,
        read_requests=reader.requests,
        read_seconds=reader.seconds,
        pixel_data_offset=offset,
        pixel_data_length=length,
        checksum=hashlib.md5(
            memoryview(reader.buffer())[:checked], usedforsecurity=False
        ).hexdigest(),
        transfer_syntax_uid=syntax,
        offset_tables=tables,
        offset_table_bytes=reader.bytes_read - table_bytes,
        offset_table_requests=reader.requests - table_requests,
    )


def parse_counted(
    path: str, reader: HeaderReader, skip_over: int | None = None, offset_tables: bool = False
) -> ParsedHeader:
    """`parse_header`; an object that fails keeps what reading it cost on its error
    (ObjectError.spent): a file that is not DICOM was still read."""
    try:
        return parse_header(path, reader, skip_over, offset_tables)
    except ObjectError as exc:
        exc.spent(reader.bytes_read, reader.requests)
        raise


def _value_bytes(element: object) -> bytes | None:
    """A raw element's bytes; None when absent or not raw. The elements read here
    (the offset tables, Number of Frames) are top-level values pydicom leaves raw,
    as the walk does: neither ever hands one over converted."""
    return element[1] if isinstance(element, tuple) else None


def _offset_tables(reader: HeaderReader, elements: RawItem, offset: int) -> OffsetTables:
    """The offset tables of encapsulated Pixel Data whose value starts at `offset`:
    the Extended Offset Table from the header, or else the Basic Offset Table, the
    value's first item, read with at most one small ranged read (none when the
    first read held it). Encapsulated syntaxes are explicit VR little endian."""
    extended = _value_bytes(elements.get(EXTENDED_OFFSET_TABLE))
    lengths = _value_bytes(elements.get(EXTENDED_OFFSET_TABLE_LENGTHS))
    if extended is not None and lengths is not None:
        return OffsetTables(None, extended, lengths)  # the basic table is then empty
    frames = _number_of_frames(elements)
    start = offset - reader.skipped
    end = start + basic_table_bytes(min(frames, MAX_FRAMES))
    reader.ensure(end)
    return OffsetTables(reader.buffer()[start:end], None, None)


def _number_of_frames(elements: RawItem) -> int:
    raw = _value_bytes(elements.get(NUMBER_OF_FRAMES))
    try:
        return max(int(raw.decode("ascii").strip(" \x00")), 1) if raw else 1
    except ValueError:
        return 1


def _walk(path: str, reader: HeaderReader, skip_over: int | None) -> RawHeader | None:
    """The header walked from the bytes read so far, reading on while it goes on
    past them (by what the element that ran past needs, at least a quarter more) or
    after a value it skips; None leaves the object to pydicom."""
    while True:
        prefix = reader.buffer()
        whole = reader.size <= len(prefix) + reader.skipped
        try:
            return parse_part10(prefix, whole, skip_over, reader.gaps)
        except HeaderSkip as exc:
            length = exc.length
            if length is None:  # a sequence of undefined length: where does it end?
                try:
                    length = reader.sequence_length(exc.at, exc.implicit, exc.little, path)
                except SequenceFormatError:
                    return None  # framing pydicom may understand, as for the walk
            elif reader.skipped + exc.at + length > reader.size:  # runs past the end:
                reader.ensure(exc.at + length)  # read to it, and find it truncated
                continue
            reader.skip(exc.at, length)
            reader.ensure(exc.at + _MIN_GROWTH)
        except HeaderIncomplete as exc:
            reader.ensure(max(exc.needed, len(prefix) + max(len(prefix) // 4, _MIN_GROWTH)))


def _parse_with_pydicom(path: str, reader: HeaderReader) -> FileDataset:
    """Whatever `dataset_bytes` leaves: big endian, deflated, no preamble, odd framing,
    headers longer than the first read, and hostile bytes."""
    try:
        return pydicom.dcmread(reader, stop_before_pixels=True, force=True)
    except ObjectError:
        raise  # the object could not be read: not a parse problem
    except Exception as exc:  # pydicom's many error types on hostile bytes
        if reader.partial_read or reader.tell() >= reader.size:
            raise TruncatedError(path, f"object ends inside its header: {exc}") from exc
        raise HeaderParseError(path, f"{type(exc).__name__}: {exc}") from exc


def _transfer_syntax(ds: FileDataset) -> str | None:
    """The Transfer Syntax UID, read from its raw bytes (pydicom's conversion is slow)."""
    element = ds.file_meta._dict.get(BaseTag(0x00020010))
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip(" \x00") or None


def _pixel_data_position(
    buf: bytes, pos: int, implicit: bool | None, little: bool | None
) -> tuple[int | None, int | None]:
    """Where Pixel Data's value starts and its length, read from the element header."""
    if implicit is None or len(buf) < pos + 8:
        return None, None
    endian = "<" if little else ">"
    group, elem = struct.unpack(f"{endian}HH", buf[pos : pos + 4])
    if (group << 16 | elem) not in PIXEL_DATA_TAGS:
        return None, None
    # The element's own bytes say how it is encoded: objects exist whose transfer
    # syntax says explicit VR but whose dataset is implicit (and the other way round).
    explicit = buf[pos + 4 : pos + 6] in _PIXEL_VRS and buf[pos + 6 : pos + 8] == b"\0\0"
    if not explicit:
        (length,) = struct.unpack(f"{endian}L", buf[pos + 4 : pos + 8])
        value_offset = pos + 8
    else:
        if len(buf) < pos + 12:
            return None, None
        (length,) = struct.unpack(f"{endian}L", buf[pos + 8 : pos + 12])
        value_offset = pos + 12
    return value_offset, None if length == UNDEFINED else length


def read_remote(
    fs: Any,
    url: str,
    path: str,
    size: int,
    first_bytes: int = DEFAULT_HEADER_BYTES,
    prefetched: bytes | None = None,
    skip_over: int | None = None,
    offset_tables: bool = False,
) -> ParsedHeader:
    """Parse the header of an object-store object with ranged reads that retry,
    skipping values longer than `skip_over` (see parse_header)."""

    def fetch(start: int, end: int) -> bytes:
        return with_retries(url, lambda: fs.cat_file(path, start=start, end=end))

    reader = HeaderReader(fetch, size, first_bytes, prefetched)
    return parse_counted(url, reader, skip_over, offset_tables)


def read_local(
    path: str,
    size: int,
    first_bytes: int = LOCAL_HEADER_BYTES,
    skip_over: int | None = None,
    offset_tables: bool = False,
) -> ParsedHeader:
    """Parse the header of a local file, reading only what the header needs (values
    longer than `skip_over` not at all, see parse_header)."""
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise ObjectReadError(path, f"cannot open: {exc.strerror or exc}") from exc
    with fh:

        def fetch(start: int, end: int) -> bytes:
            try:
                fh.seek(start)
                return fh.read(end - start)
            except OSError as exc:
                raise ObjectReadError(path, f"read failed: {exc.strerror or exc}") from exc

        reader = HeaderReader(fetch, size, first_bytes)
        return parse_counted(path, reader, skip_over, offset_tables)


def read_stream(
    url: str,
    stream: BinaryIO,
    size: int,
    first_bytes: int = DEFAULT_HEADER_BYTES,
    skip_over: int | None = None,
    offset_tables: bool = False,
) -> ParsedHeader:
    """Parse the header of an object read as a stream: a zip member (seekable,
    inflated as it is read) or a tar member passing by (forward only: give no
    `skip_over`, so nothing is skipped and read again). Bytes and requests count
    what the stream gave; containers.RangedFile counts what the store served."""

    def fetch(start: int, end: int) -> bytes:
        try:
            if stream.tell() != start:
                stream.seek(start)
            return stream.read(end - start)
        except (zlib.error, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise ContainerError(url, f"member data is corrupt: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise ObjectReadError(url, f"read failed: {exc}") from exc

    return parse_counted(url, HeaderReader(fetch, size, first_bytes), skip_over, offset_tables)
