"""Where each frame's pixels are in its object, so a pixel pipeline fetches one frame
with one ranged read: pure arithmetic over what reading the header found.

- Native Pixel Data: from the geometry (PS3.5 8.1.1): frame i starts at the value's
  start plus i × Rows × Columns × samples × Bits Allocated / 8, free of any read.
- Encapsulated Pixel Data (PS3.5 A.4): from the Basic Offset Table, the first item
  of the value (one small read after the header, unless the first read already held
  it), or from the Extended Offset Table in the header (PS3.3 C.7.6.3.1.8). A frame's
  range then holds its fragment items, each an 8-byte item header and its data. From
  the Basic Offset Table, the last frame's range runs to the object's end: where its
  items end, the Sequence Delimitation Item (FFFE,E0DD) follows, and may be followed
  by more (Data Set Trailing Padding, seen in real files), which only reading every
  fragment's header could tell apart.
- Otherwise the offsets are NULL and `missing` says why: many frames in fragments with
  neither table can be found only by reading every fragment, which the loader never
  does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

NATIVE = "native geometry"
BASIC = "basic offset table"
EXTENDED = "extended offset table"
SINGLE = "single frame"  # encapsulated, one frame, empty Basic Offset Table

# Frames an object may list rows for: a whole-slide image has some hundred thousand
# tiles; a NumberOfFrames beyond this is hostile or broken, and is cut here.
MAX_FRAMES = 1_000_000
NO_POSITION = (
    "no Pixel Data position in the object (DICOM JSON or DICOMweb: fetch frames with "
    "WADO-RS; deflated: the bytes are compressed whole)"
)
NOT_REQUESTED = "encapsulated: its offset table is read with --frame-offsets"
_ITEM = (0xFFFE, 0xE000)
_HEADER = 8  # an item's tag and length


@dataclass(frozen=True, slots=True)
class OffsetTables:
    """What reading found for the frames of encapsulated Pixel Data."""

    basic: bytes | None  # the value's first bytes: an item header and the offsets
    extended_offsets: bytes | None  # Extended Offset Table (7FE0,0001), little endian
    extended_lengths: bytes | None  # Extended Offset Table Lengths (7FE0,0002)
    # What an earlier read found, as dicom_frame holds it: a rebuild reads no object.
    located: tuple[FrameLocation, ...] | None = None


@dataclass(frozen=True, slots=True)
class Geometry:
    """The Image Pixel module's description of one frame."""

    rows: int | None
    columns: int | None
    samples_per_pixel: int | None
    bits_allocated: int | None
    photometric_interpretation: str | None


@dataclass(frozen=True, slots=True)
class FrameLocation:
    offset: int | None  # bytes from the object's start
    length: int | None
    source: str | None  # how it was found
    missing: str | None  # why it is NULL

    @classmethod
    def unknown(cls, why: str) -> FrameLocation:
        return cls(None, None, None, why)


@dataclass(frozen=True, slots=True)
class PixelData:
    """Where Pixel Data's value is, as the header reader found it."""

    offset: int | None  # where the value starts
    length: int | None  # None: encapsulated (undefined length)
    object_size: int


def basic_table_bytes(frames: int) -> int:
    """How many bytes of an encapsulated value hold its Basic Offset Table for
    `frames` frames: its item header and one 32-bit offset per frame."""
    return _HEADER + 4 * max(frames, 1)


def locate_frames(
    frames: int, geometry: Geometry, pixels: PixelData, tables: OffsetTables | None
) -> list[FrameLocation]:
    """One location per frame 1..frames. `tables` is None when the offset tables were
    not asked for: native frames are located all the same (it costs nothing)."""
    if pixels.offset is None:
        return [FrameLocation.unknown(NO_POSITION)] * frames
    if pixels.length is not None:
        return _native(frames, geometry, pixels.offset, pixels.length)
    if tables is None:
        return [FrameLocation.unknown(NOT_REQUESTED)] * frames
    if tables.located is not None and len(tables.located) == frames:
        return list(tables.located)
    return _encapsulated(frames, pixels, tables)


def frame_bits(geometry: Geometry) -> int | None:
    """Bits one native frame takes; YBR_FULL_422 stores two samples per pixel
    (PS3.3 C.7.6.3.1.2)."""
    g = geometry
    if not g.rows or not g.columns or not g.bits_allocated:
        return None
    samples = g.samples_per_pixel or 1
    if (g.photometric_interpretation or "").strip() == "YBR_FULL_422":
        samples = 2
    return g.rows * g.columns * samples * g.bits_allocated


def _native(frames: int, geometry: Geometry, offset: int, length: int) -> list[FrameLocation]:
    bits = frame_bits(geometry)
    if bits is None:
        return [FrameLocation.unknown("Rows, Columns or Bits Allocated is missing")] * frames
    if frames * bits > 8 * length:
        why = f"Pixel Data holds {length} bytes; {frames} frames of this geometry need more"
        return [FrameLocation.unknown(why)] * frames
    size = -(-bits // 8)
    located = []
    for index in range(frames):
        start = index * bits
        if start % 8:
            located.append(FrameLocation.unknown("a 1-bit frame that starts inside a byte"))
        else:
            located.append(FrameLocation(offset + start // 8, size, NATIVE, None))
    return located


def _encapsulated(frames: int, pixels: PixelData, tables: OffsetTables) -> list[FrameLocation]:
    assert pixels.offset is not None
    end = pixels.object_size  # the last frame's items, the delimiter, anything after
    basic = tables.basic
    table_length = 0
    if basic is not None:
        if len(basic) < _HEADER:
            return [
                FrameLocation.unknown("the object ends inside Pixel Data's first item")
            ] * frames
        group, element, table_length = struct.unpack("<HHI", basic[:_HEADER])
        if (group, element) != _ITEM:
            why = "Pixel Data does not start with an item (PS3.5 A.4)"
            return [FrameLocation.unknown(why)] * frames
    first_fragment = pixels.offset + _HEADER + table_length
    if table_length:
        return _from_basic(frames, basic or b"", table_length, first_fragment, end)
    if tables.extended_offsets is not None and tables.extended_lengths is not None:
        return _from_extended(frames, tables, first_fragment, end)
    if frames == 1:
        if first_fragment >= end:
            return [FrameLocation.unknown("Pixel Data holds no fragment")]
        return [FrameLocation(first_fragment, end - first_fragment, SINGLE, None)]
    why = f"no offset table: {frames} frames in fragments, found only by reading them all"
    return [FrameLocation.unknown(why)] * frames


def _from_basic(
    frames: int, basic: bytes, table_length: int, first_fragment: int, end: int
) -> list[FrameLocation]:
    count = table_length // 4
    if count != frames or len(basic) < _HEADER + table_length:
        why = f"the Basic Offset Table holds {count} offsets for {frames} frames"
        return [FrameLocation.unknown(why)] * frames
    offsets = [
        first_fragment + o for o in struct.unpack(f"<{count}I", basic[_HEADER:][: 4 * count])
    ]
    return _ranges(offsets, [*offsets[1:], end], BASIC)


def _from_extended(
    frames: int, tables: OffsetTables, first_fragment: int, end: int
) -> list[FrameLocation]:
    offsets_bytes, lengths_bytes = tables.extended_offsets or b"", tables.extended_lengths or b""
    count = len(offsets_bytes) // 8
    if count != frames or len(lengths_bytes) // 8 != frames:
        why = f"the Extended Offset Table holds {count} offsets for {frames} frames"
        return [FrameLocation.unknown(why)] * frames
    offsets = [first_fragment + o for o in struct.unpack(f"<{count}Q", offsets_bytes[: 8 * count])]
    lengths = struct.unpack(f"<{count}Q", lengths_bytes[: 8 * count])
    ends = [o + _HEADER + n for o, n in zip(offsets, lengths, strict=True)]
    return _ranges(offsets, ends, EXTENDED, end)


def _ranges(
    starts: list[int], ends: list[int], source: str, limit: int | None = None
) -> list[FrameLocation]:
    """Frames [start, end); refused whole when one is empty, out of order or past
    the Pixel Data (a table that does not describe this object)."""
    bound = limit if limit is not None else ends[-1]
    if any(e <= s for s, e in zip(starts, ends, strict=True)) or max(ends) > bound:
        why = f"the {source} points outside the Pixel Data"
        return [FrameLocation.unknown(why)] * len(starts)
    return [FrameLocation(s, e - s, source, None) for s, e in zip(starts, ends, strict=True)]
