"""A sequence value's bytes → its items as raw elements, without pydicom Datasets.

pydicom builds a Dataset per sequence item, which costs far more than reading
the item's bytes: an enhanced multi-frame header holds thousands of items.
This reader walks the item framing (PS3.5 7.5) itself and yields
RawDataElements the decoder already knows how to convert. Anything it does not
understand raises SequenceFormatError, and the caller falls back to pydicom.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_STRUCTS = {
    (little, fmt): struct.Struct(("<" if little else ">") + fmt)
    for little in (True, False)
    for fmt in ("HHL", "HH", "H", "L")
}


class SequenceFormatError(ValueError):
    """The bytes are not item framing this reader understands."""


class ParsedSequence:
    """An undefined-length sequence met inside an item, already split into items."""

    __slots__ = ("items", "length")

    def __init__(self, items: list[RawItem], length: int) -> None:
        self.items = items
        self.length = length  # bytes of its value, delimiters included


RawItem = dict[int, "RawDataElement | ParsedSequence"]


def parse_sequence(data: bytes, implicit: bool, little: bool) -> list[RawItem]:
    """Items of a defined-length sequence value."""
    items, _ = _items(data, 0, len(data), implicit, little)
    return items


def _items(
    data: bytes, pos: int, end: int, implicit: bool, little: bool
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
            item, pos = _dataset(data, pos, end, implicit, little)
        else:
            item, _ = _dataset(data, pos, min(pos + length, end), implicit, little)
            pos += length
        items.append(item)
    return items, pos


def _dataset(data: bytes, pos: int, end: int, implicit: bool, little: bool) -> tuple[RawItem, int]:
    tag_struct = _STRUCTS[little, "HH"]
    short_length = _STRUCTS[little, "H"]
    long_length = _STRUCTS[little, "L"]
    elements: RawItem = {}
    while pos + 8 <= end:
        group, number = tag_struct.unpack_from(data, pos)
        tag = group << 16 | number
        if tag == ITEM_DELIMITER:
            return elements, pos + 8
        vr: str | None
        if implicit:
            (length,) = long_length.unpack_from(data, pos + 4)
            vr, value_pos = None, pos + 8
        else:
            vr_bytes = data[pos + 4 : pos + 6]
            if not (vr_bytes.isalpha() and vr_bytes.isupper()):
                raise SequenceFormatError(f"no explicit VR for ({group:04X},{number:04X})")
            if vr_bytes in _LONG_VRS:
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
            items, pos = _items(data, value_pos, end, nested_implicit, little or vr == "UN")
            elements[tag] = ParsedSequence(items, pos - value_pos)
            continue
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
    return elements, pos
