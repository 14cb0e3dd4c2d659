"""Header bytes → raw elements, without pydicom Datasets.

pydicom's reader builds a Dataset per dataset and sequence item and costs about
2.5× what walking the bytes costs; on the hot path that is most of the parse.
This reader walks the element and item framing (PS3.5 7.1, 7.5) itself and
yields RawDataElements the decoder already converts. It handles what archives
mostly hold: a Part 10 file in explicit or implicit VR little endian, whose header
ends at Pixel Data (or at the object's end). Anything else, or anything it does
not understand, is left to pydicom: `parse_part10` returns None and sequence
parsing raises SequenceFormatError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom.dataelem import RawDataElement

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# Transfer syntaxes whose dataset is not plain little endian: pydicom reads them.
_LEFT_TO_PYDICOM = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_STRUCTS = {
    (little, fmt): struct.Struct(("<" if little else ">") + fmt)
    for little in (True, False)
    for fmt in ("HHL", "HH", "H", "L")
}
_META_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"


class SequenceFormatError(ValueError):
    """The bytes are not framing this reader understands."""


class HeaderIncomplete(Exception):
    """The bytes end before the header does; `needed` is how many would hold at
    least the element that ran past them."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"{needed} bytes needed")
        self.needed = needed


class ParsedSequence:
    """An undefined-length sequence met inside a dataset, already split into items."""

    __slots__ = ("items", "length")

    def __init__(self, items: list[RawItem], length: int) -> None:
        self.items = items
        self.length = length  # bytes of its value, delimiters included


RawItem = dict[int, "RawDataElement | ParsedSequence"]


@dataclass(frozen=True, slots=True)
class RawHeader:
    meta: RawItem  # the File Meta Information (group 0002)
    elements: RawItem  # the dataset, up to Pixel Data
    end: int  # where the dataset stopped: Pixel Data's element header or the object's end
    implicit: bool
    transfer_syntax_uid: str


def parse_part10(data: bytes, whole: bool) -> RawHeader | None:
    """The header of a Part 10 object from its first bytes `data`, or None when it
    is not the common case (no preamble, big endian or deflated, odd framing).
    `whole` says `data` is the whole object, so a header without Pixel Data may end
    where the object ends; otherwise a header that goes on past `data` raises
    HeaderIncomplete."""
    try:
        return _part10(data, whole)
    except HeaderIncomplete:
        if whole:
            return None  # cut short: pydicom's path says where
        raise


def _part10(data: bytes, whole: bool) -> RawHeader | None:
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
        if pos != meta_end or not isinstance(syntax_element, RawDataElement):
            return None
        syntax = (syntax_element.value or b"").decode("ascii").strip(" \x00")
        if syntax in _LEFT_TO_PYDICOM:
            return None
        implicit = syntax == IMPLICIT_VR_LITTLE_ENDIAN
        elements, end = _dataset(
            data, meta_end, len(data), implicit, True, delimited=False, top_level=True
        )
    except (SequenceFormatError, UnicodeDecodeError):
        return None
    # Pixel Data's element header whole, so its value's offset and length are known.
    at_pixels = end + 12 <= len(data) and _tag_at(data, end) in PIXEL_DATA_TAGS
    if not at_pixels and not whole:
        raise HeaderIncomplete(len(data) + 1)
    if not elements or not (at_pixels or end == len(data)):
        return None
    return RawHeader(meta, elements, end, implicit, syntax)


def _tag_at(data: bytes, pos: int) -> int:
    group, number = _STRUCTS[True, "HH"].unpack_from(data, pos)
    return int(group << 16 | number)


def parse_sequence(data: bytes, implicit: bool, little: bool) -> list[RawItem]:
    """Items of a defined-length sequence value."""
    try:
        items, _ = _items(data, 0, len(data), implicit, little, delimited=False)
    except HeaderIncomplete as exc:
        raise SequenceFormatError("an element runs past its sequence") from exc
    return items


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


def _dataset(
    data: bytes,
    pos: int,
    end: int,
    implicit: bool,
    little: bool,
    delimited: bool,
    top_level: bool = False,
) -> tuple[RawItem, int]:
    """Elements from `pos` until `end`, an item delimiter (`delimited`) or, at the
    top level, Pixel Data; returns them and where reading stopped."""
    tag_struct = _STRUCTS[little, "HH"]
    short_length = _STRUCTS[little, "H"]
    long_length = _STRUCTS[little, "L"]
    elements: RawItem = {}
    while pos + 8 <= end:
        group, number = tag_struct.unpack_from(data, pos)
        tag = group << 16 | number
        if tag == ITEM_DELIMITER:
            return elements, pos + 8
        if top_level and tag in PIXEL_DATA_TAGS:
            return elements, pos
        vr: str | None
        if implicit:
            (length,) = long_length.unpack_from(data, pos + 4)
            vr, value_pos = None, pos + 8
        else:
            vr_bytes = data[pos + 4 : pos + 6]
            if not (vr_bytes.isalpha() and vr_bytes.isupper()):
                raise SequenceFormatError(f"no explicit VR for ({group:04X},{number:04X})")
            if vr_bytes in _LONG_VRS:
                if pos + 12 > end:
                    if end == len(data):
                        raise HeaderIncomplete(pos + 12)
                    break
                (length,) = long_length.unpack_from(data, pos + 8)
                value_pos = pos + 12
            else:
                (length,) = short_length.unpack_from(data, pos + 6)
                value_pos = pos + 8
            vr = vr_bytes.decode("ascii")
        if length == UNDEFINED:
            if vr not in (None, "SQ", "UN"):
                raise SequenceFormatError(f"undefined length {vr} inside an item")
            nested_implicit = implicit or vr == "UN"  # UN sequences are implicit VR LE
            items, pos = _items(
                data, value_pos, end, nested_implicit, little or vr == "UN", delimited=True
            )
            elements[tag] = ParsedSequence(items, pos - value_pos)
            continue
        if value_pos + length > end:
            if end == len(data):
                raise HeaderIncomplete(value_pos + length + 8)
            raise SequenceFormatError(f"({group:04X},{number:04X}) runs past its dataset")
        elements[tag] = RawDataElement(
            tag,
            vr,  # type: ignore[arg-type]  # an int tag: only the decoder reads these
            length,
            data[value_pos : value_pos + length],
            value_pos,
            implicit,
            little,
        )
        pos = value_pos + length
    if delimited:
        if end == len(data):
            raise HeaderIncomplete(len(data) + 1)
        raise SequenceFormatError("an undefined-length item has no delimiter")
    return elements, pos
