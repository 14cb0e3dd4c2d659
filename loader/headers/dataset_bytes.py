"""Header bytes → raw elements, without pydicom Datasets.

pydicom's reader builds a Dataset per dataset and sequence item and costs about
2.5× what walking the bytes costs; on the hot path that is most of the parse.
This reader walks the element and item framing (PS3.5 7.1, 7.5) itself and
yields raw elements as plain (VR, value bytes) tuples: a NamedTuple per element
would cost nearly as much as the walk. It handles what archives
mostly hold: a Part 10 file in explicit or implicit VR little endian (or the
retired explicit VR big endian, still common in old CR/DX exports), whose header
ends at Pixel Data (or at the object's end). Anything else, or anything it does
not understand, is left to pydicom: `parse_part10` returns None and sequence
parsing raises SequenceFormatError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement

from loader.core.errors import TruncatedError
from loader.headers.extracted_sequences import EXTRACTED_SEQUENCES

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
# Deflated datasets must be inflated first: pydicom reads them.
_LEFT_TO_PYDICOM = frozenset({"1.2.840.10008.1.2.1.99"})
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_STRUCTS = {
    (little, fmt): struct.Struct(("<" if little else ">") + fmt)
    for little in (True, False)
    for fmt in ("HHL", "HH2sH", "L")
}
_VR_NAMES: dict[bytes, str] = {}  # VR bytes met so far → their str
_META_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"


class SequenceFormatError(ValueError):
    """The bytes are not framing this reader understands."""


class HeaderIncomplete(Exception):
    """The bytes end before the header does; `needed` is how many would hold at
    least the element that ran past them."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"{needed} bytes needed")
        self.needed = needed


class HeaderSkip(Exception):
    """A top-level value runs past the bytes read and is longer than the element
    limit: read on after it rather than through it. `at` is where its value starts
    in the bytes read, `length` its length, or None for a sequence of undefined
    length whose end must be found first (encoded as `implicit` and `little` say)."""

    def __init__(
        self, at: int, length: int | None, implicit: bool = False, little: bool = True
    ) -> None:
        super().__init__(f"skip {length} bytes at {at}")
        self.at = at
        self.length = length
        self.implicit = implicit
        self.little = little


class SkippedValue:
    """A top-level value the reader skipped with a ranged read past it: its VR (None
    when implicit) and length only. The decoder marks it omitted."""

    __slots__ = ("length", "vr")

    def __init__(self, vr: str | None, length: int) -> None:
        self.vr = vr
        self.length = length


class ParsedSequence:
    """An undefined-length sequence met inside a dataset, already split into items."""

    __slots__ = ("implicit", "items", "length", "little")

    def __init__(self, items: list[RawItem], length: int, implicit: bool, little: bool) -> None:
        self.items = items
        self.length = length  # bytes of its value, delimiters included
        self.implicit = implicit  # how its items are encoded
        self.little = little


RawElement = tuple[str | None, bytes]
"""(VR, or None in implicit VR; the value's bytes)."""
RawItem = dict[int, "RawElement | ParsedSequence | SkippedValue | DataElement"]
"""A dataset or item: tag → raw element, an undefined-length sequence, or (from
pydicom's reader) an element it already converted."""


@dataclass(frozen=True, slots=True)
class RawHeader:
    meta: RawItem  # the File Meta Information (group 0002)
    elements: RawItem  # the dataset, up to Pixel Data
    end: int  # where the dataset stopped: Pixel Data's element header or the object's end
    implicit: bool
    little: bool
    transfer_syntax_uid: str


def parse_part10(
    data: bytes,
    whole: bool,
    skip_over: int | None = None,
    gaps: dict[int, int] | None = None,
) -> RawHeader | None:
    """The header of a Part 10 object from its first bytes `data`, or None when it
    is not the common case (no preamble, big endian or deflated, odd framing).
    `whole` says `data` is the whole object, so a header without Pixel Data may end
    where the object ends; otherwise a header that goes on past `data` raises
    HeaderIncomplete, or HeaderSkip for a top-level value longer than `skip_over`
    (of an explicit VR, or a sequence of undefined length, and not a sequence the
    model reads). `gaps` are the values skipped so far: where each one's value was
    in `data`, and its length."""
    try:
        return _part10(data, whole, skip_over, gaps)
    except (HeaderIncomplete, HeaderSkip):
        if whole:
            return None  # cut short: pydicom's path says where
        raise


def _part10(
    data: bytes, whole: bool, skip_over: int | None, gaps: dict[int, int] | None
) -> RawHeader | None:
    if len(data) < 144:
        raise HeaderIncomplete(144)
    if data[128:132] != b"DICM" or data[132:140] != _META_GROUP_LENGTH:
        return None
    meta_end = 144 + _STRUCTS[True, "L"].unpack_from(data, 140)[0]
    if meta_end > len(data):
        raise HeaderIncomplete(meta_end + 8)
    if data[meta_end : meta_end + 2] == b"\x02\x00":
        return None  # a group length that understates the group
    try:
        meta, pos = _dataset(data, 132, meta_end, False, True, delimited=False)
        syntax_element = meta.get(0x00020010)
        if pos != meta_end or not isinstance(syntax_element, tuple):
            return None
        syntax = syntax_element[1].decode("ascii").strip(" \x00")
        if syntax in _LEFT_TO_PYDICOM:
            return None
        implicit = syntax == IMPLICIT_VR_LITTLE_ENDIAN
        little = syntax != EXPLICIT_VR_BIG_ENDIAN
        elements, end = _dataset(
            data,
            meta_end,
            len(data),
            implicit,
            little,
            delimited=False,
            top_level=True,
            skip_over=skip_over,
            gaps=gaps,
        )
    except (SequenceFormatError, UnicodeDecodeError):
        return None
    # Pixel Data's element header whole, so its value's offset and length are known.
    at_pixels = end + 12 <= len(data) and _tag_at(data, end, little) in PIXEL_DATA_TAGS
    if not at_pixels and not whole:
        raise HeaderIncomplete(len(data) + 1)
    if not elements or not (at_pixels or end == len(data)):
        return None
    return RawHeader(meta, elements, end, implicit, little, syntax)


def _tag_at(data: bytes, pos: int, little: bool) -> int:
    group, number, _, _ = _STRUCTS[little, "HH2sH"].unpack_from(data, pos)
    return int(group << 16 | number)


def parse_sequence(data: bytes, implicit: bool, little: bool) -> list[RawItem]:
    """Items of a defined-length sequence value."""
    try:
        items, _ = _items(data, 0, len(data), implicit, little, delimited=False)
    except HeaderIncomplete as exc:
        raise SequenceFormatError("an element runs past its sequence") from exc
    return items


def from_pydicom(raw_dict: Any, path: str) -> RawItem:
    """A dataset pydicom's reader parsed (its `_dict`), in this module's form."""
    item: RawItem = {}
    for tag, element in raw_dict.items():
        if isinstance(element, RawDataElement):
            value = element.value or b""
            if len(value) < element.length != UNDEFINED:
                raise TruncatedError(
                    path,
                    f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) is cut short",
                    tag=f"{tag:08X}",
                )
            item[int(tag)] = (element.VR, value)
        else:
            item[int(tag)] = element
    return item


def encoding_of(ds: Any) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a dataset pydicom read; its raw elements know
    it when the dataset does not."""
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        first = next(iter(ds._dict.values()), None)
        implicit = bool(getattr(first, "is_implicit_VR", False))
        little = bool(getattr(first, "is_little_endian", True))
    return bool(implicit), bool(little)


def _items(
    data: bytes, pos: int, end: int, implicit: bool, little: bool, delimited: bool
) -> tuple[list[RawItem], int]:
    header = _STRUCTS[little, "HHL"]
    items: list[RawItem] = []
    while pos + 8 <= end:
        group, number, length = header.unpack_from(data, pos)
        tag = group << 16 | number
        pos += 8
        if tag == SEQUENCE_DELIMITER:
            return items, pos
        if tag != ITEM:
            raise SequenceFormatError(f"expected an item tag, found {tag:08X}")
        if length == UNDEFINED:
            item, pos = _dataset(data, pos, end, implicit, little, delimited=True)
        else:
            if pos + length > end:
                raise SequenceFormatError("an item runs past its sequence")
            item, _ = _dataset(data, pos, pos + length, implicit, little, delimited=False)
            pos += length
        items.append(item)
    if delimited:
        if end == len(data):
            raise HeaderIncomplete(len(data) + 1)
        raise SequenceFormatError("an undefined-length sequence has no delimiter")
    return items, pos


def _vr_name(vr_bytes: bytes, tag: int) -> str:
    if not (vr_bytes.isalpha() and vr_bytes.isupper()):
        raise SequenceFormatError(f"no explicit VR for ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    name = _VR_NAMES[vr_bytes] = vr_bytes.decode("ascii")
    return name


def _dataset(
    data: bytes,
    pos: int,
    end: int,
    implicit: bool,
    little: bool,
    delimited: bool,
    top_level: bool = False,
    skip_over: int | None = None,
    gaps: dict[int, int] | None = None,
) -> tuple[RawItem, int]:
    """Elements from `pos` until `end`, an item delimiter (`delimited`) or, at the
    top level, Pixel Data; returns them and where reading stopped. At the top level,
    a value in `gaps` was skipped (see parse_part10)."""
    implicit_header = _STRUCTS[little, "HHL"]
    explicit_header = _STRUCTS[little, "HH2sH"]
    long_length = _STRUCTS[little, "L"]
    vr_names = _VR_NAMES
    elements: RawItem = {}
    while pos + 8 <= end:
        vr: str | None
        if implicit:
            group, number, length = implicit_header.unpack_from(data, pos)
            tag = group << 16 | number
            vr, value_pos = None, pos + 8
        else:
            group, number, vr_bytes, length = explicit_header.unpack_from(data, pos)
            tag = group << 16 | number
            vr = vr_names.get(vr_bytes)
            if vr is None and tag != ITEM_DELIMITER and not (top_level and tag in PIXEL_DATA_TAGS):
                vr = _vr_name(vr_bytes, tag)
            if vr_bytes in _LONG_VRS:
                if pos + 12 > end:
                    if end == len(data):
                        raise HeaderIncomplete(pos + 12)
                    break
                (length,) = long_length.unpack_from(data, pos + 8)
                value_pos = pos + 12
            else:
                value_pos = pos + 8
        if tag == ITEM_DELIMITER:
            return elements, pos + 8
        if top_level and tag in PIXEL_DATA_TAGS:
            return elements, pos
        if gaps is not None and value_pos in gaps:
            if gaps[value_pos] != length and length != UNDEFINED:
                raise SequenceFormatError(f"({group:04X},{number:04X}) changed its length")
            elements[tag] = SkippedValue(vr, gaps[value_pos])
            pos = value_pos  # the bytes read go on after the value
            continue
        if length == UNDEFINED:
            if vr not in (None, "SQ", "UN"):
                raise SequenceFormatError(f"undefined length {vr} inside an item")
            nested_implicit = implicit or vr == "UN"  # UN sequences are implicit VR LE
            nested_little = little or vr == "UN"
            try:
                items, pos = _items(
                    data, value_pos, end, nested_implicit, nested_little, delimited=True
                )
            except HeaderIncomplete:
                # Held past the limit and still going: find its end without holding it.
                if (
                    top_level
                    and skip_over is not None
                    and end - value_pos > skip_over
                    and tag not in EXTRACTED_SEQUENCES
                ):
                    raise HeaderSkip(value_pos, None, nested_implicit, nested_little) from None
                raise
            elements[tag] = ParsedSequence(items, pos - value_pos, nested_implicit, nested_little)
            continue
        if value_pos + length > end:
            if end == len(data):
                if (
                    skip_over is not None
                    and length > skip_over
                    and vr is not None
                    and vr != "UN"
                    and tag not in EXTRACTED_SEQUENCES
                ):
                    raise HeaderSkip(value_pos, length)
                raise HeaderIncomplete(value_pos + length + 8)
            raise SequenceFormatError(f"({group:04X},{number:04X}) runs past its dataset")
        elements[tag] = (vr, data[value_pos : value_pos + length])
        pos = value_pos + length
    if delimited:
        if end == len(data):
            raise HeaderIncomplete(len(data) + 1)
        raise SequenceFormatError("an undefined-length item has no delimiter")
    return elements, pos
