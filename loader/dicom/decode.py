"""Raw element bytes → plain Python values, once per element.

pydicom parses a header cheaply but converting values through its value classes
costs several times the parse. This module turns each raw element's bytes
directly into str / int / float / lists, resolving VRs, byte order and Specific
Character Set itself, and falls back to pydicom only for what it alone decodes
(ISO 2022 escape sequences, sequence framing). Every later stage (raw JSON,
element rows, model rows) reads the decoded tree, never the Dataset.

Most of a header repeats from object to object, so a decoded element is kept in
the worker's ValueStore (value_store.py: owned, bounded, counted) by its bytes and
what they were decoded with: the second object with the same Modality bytes, or the
same code sequence, costs a dictionary lookup. Stored elements and their items are
shared between trees and never changed in place.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import (
    _dictionary_vr_fast,
    keyword_for_tag,
    private_dictionary_VR,
)
from pydicom.dataelem import DataElement
from pydicom.filereader import read_sequence
from pydicom.multival import MultiValue
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

from loader.core.errors import HeaderParseError
from loader.dicom.value_store import ValueStore
from loader.dicom.vr import (
    ASCII_MULTI,
    BINARY,
    CHARSET_MULTI,
    CHARSET_SINGLE,
    NUMERIC_FORMATS,
    is_private,
    is_private_data,
)
from loader.headers.dataset_bytes import (
    ParsedSequence,
    RawElement,
    RawItem,
    SequenceFormatError,
    SkippedValue,
    encoding_of,
    from_pydicom,
    parse_sequence,
)
from loader.headers.extracted_sequences import EXTRACTED_SEQUENCES
from loader.headers.reader import ParsedHeader

_SIZES = {code: struct.calcsize("<" + code) for code in NUMERIC_FORMATS.values()}
_UNDEFINED = 0xFFFFFFFF
_ITEM_TAG_LE = b"\xfe\xff\x00\xe0"
DEFAULT_ENCODINGS = ("iso8859",)


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary value, kept as its length only: bytes never leave the reader. A
    DICOM JSON BulkDataURI does not say its length: None."""

    vr: str
    length: int | None


@dataclass(frozen=True, slots=True)
class Omitted:
    """A private value longer than the element limit, left out of the JSON and the
    element rows (with a warning row): only its VR and length are kept. One vendor
    blob must not bloat every table or stall a worker."""

    vr: str
    length: int


DEFAULT_ELEMENT_LIMIT = 1 << 20


@dataclass(slots=True)
class Element:
    """One decoded element. May be shared by many trees (see the module's doc):
    replace an item's element rather than change one."""

    vr: str
    value: Any  # None | str | int | float | list | Binary | Omitted | list[Item]
    vm: int
    # What later stages derive from it, kept with it as it may be shared:
    row: Any = field(default=None, compare=False, repr=False)  # extract.elements, its columns
    json: Any = field(default=None, compare=False, repr=False)  # raw_json, its member text
    # stored_headers.vr_note, decided with `row` (so for `row`'s private creator)
    note: Any = field(default=None, compare=False, repr=False)


Item = dict[int, Element]


@dataclass(slots=True)
class Decoded:
    """A decoded header: the root item and the values that could not be typed."""

    root: Item
    cast_errors: list[tuple[str, str]] = field(default_factory=list)  # (tag, message)

    def cast_error(self, tag: int, message: str) -> None:
        self.cast_errors.append((f"{tag:08X}", message))


_vr_cache: dict[int, str] = {}
KEYWORDS: dict[int, str] = {}  # tag → keyword (or hex), filled as tags are met


def keyword(tag: int) -> str:
    """The DICOM keyword of a public tag, else its ggggeeee hex."""
    name = KEYWORDS.get(tag)
    if name is None:
        name = "" if tag >> 16 & 1 else keyword_for_tag(tag)
        name = name or f"{tag:08X}"
        KEYWORDS[tag] = name
    return name


def private_creator_of(tag: int, item: Item) -> str | None:
    """The Private Creator reserving a private tag's block, from the same item."""
    if not is_private(tag) or tag & 0xFFFF < 0x1000:
        return None
    creator = item.get((tag & 0xFFFF0000) | (tag >> 8 & 0xFF))
    return creator.value if creator is not None and isinstance(creator.value, str) else None


def _dictionary_vr(tag: int, pixel_representation: int) -> str:
    vr = _vr_cache.get(tag)
    if vr is None:
        try:
            vr = _dictionary_vr_fast(tag)
        except KeyError:
            vr = "UN"
        _vr_cache[tag] = vr
    if " or " in vr:  # ambiguous VRs: US or SS, OB or OW, US or SS or OW
        return "SS" if "SS" in vr and pixel_representation == 1 else vr.split(" or ")[0]
    return vr


INTEGER_RANGES = {  # what each integer VR can hold; IS: 64-bit, beyond the standard's 32
    "IS": (-(1 << 63), (1 << 63) - 1),
    "US": (0, (1 << 16) - 1),
    "SS": (-(1 << 15), (1 << 15) - 1),
    "UL": (0, (1 << 32) - 1),
    "SL": (-(1 << 31), (1 << 31) - 1),
    "UV": (0, (1 << 64) - 1),
    "SV": (-(1 << 63), (1 << 63) - 1),
}


def parse_number(vr: str, text: str) -> int | float | None:
    """An IS or DS value's number (None when empty); ValueError when it is none,
    or an IS no 64-bit column holds."""
    if not text:
        return None
    if vr != "IS":
        return float(text) + 0.0  # -0.0 is zero: one text for it
    try:
        number = int(text)
    except ValueError:
        as_float = float(text)  # an IS written as 12.0
        if not as_float.is_integer():
            raise ValueError(text) from None
        number = int(as_float)
    return in_range(vr, number)


class OutOfRange(ValueError):
    """An integer its VR (or a 64-bit column) cannot hold."""


def in_range(vr: str, number: int) -> int:
    """`number`, when the integer VR `vr` can hold it; OutOfRange otherwise."""
    low, high = INTEGER_RANGES[vr]
    if not low <= number <= high:
        raise OutOfRange(f"{number} is out of range for {vr}")
    return number


def implied_vr(tag: int, item: Item, pixel_representation: int) -> str:
    """The VR of an element whose encoding does not carry one (implicit VR, or a
    DICOM JSON attribute without "vr")."""
    if tag & 0xFFFF == 0:
        return "UL"  # group length
    if is_private(tag):
        if 0x10 <= tag & 0xFFFF <= 0xFF:
            return "LO"  # private creator
        creator = private_creator_of(tag, item)
        if creator:
            try:
                vr = private_dictionary_VR(tag, creator)
                return vr.split(" or ")[0]
            except KeyError:
                pass
        return "UN"
    return _dictionary_vr(tag, pixel_representation)


_contexts: dict[tuple[object, ...], int] = {}  # what else a value's decoding depends on


def _context_of(*facts: object) -> int:
    found = _contexts.get(facts)
    if found is None:
        found = _contexts[facts] = len(_contexts)
    return found


class DecoderBase:
    """What decoding bytes and decoding DICOM JSON share: where warnings go, the
    element limit, and how a value that is not what its VR says is recorded."""

    def __init__(
        self, path: str, out: Decoded, pixel_representation: int, element_limit: int
    ) -> None:
        self.path = path
        self.out = out
        self.pixel_representation = pixel_representation
        self.element_limit = element_limit

    def omitted(self, tag: int, vr: str, length: int) -> Element:
        kind = "private" if is_private(tag) else "public"
        self.out.cast_error(
            tag,
            f"{kind} {vr} value of {length:,} bytes is over the {self.element_limit:,}-byte "
            "element limit: left out of the JSON and element rows (marked omitted)",
        )
        return Element(vr, Omitted(vr, length), 0)

    def oversized(
        self, tag: int, vr: str | None, length: int, item: Item | None = None
    ) -> Element | None:
        """A value longer than the element limit, by both decoders: a public binary
        one keeps its length, as every binary value does; a sequence the model reads
        is decoded (None); any other (a private value, a contour's numbers, a long
        text, a structure set's contours) is left out, marked, with a warning row.
        `item` (the elements before it) implies an implicit VR."""
        if tag in EXTRACTED_SEQUENCES:
            return None
        if vr is None:
            vr = implied_vr(tag, item or {}, self.pixel_representation)
        if vr in BINARY and vr != "UN" and not is_private_data(tag):
            return Element(vr, Binary(vr, length), 1)
        return self.omitted(tag, vr or "UN", length)

    def number(self, tag: int, vr: str, text: str) -> int | float | None:
        """An IS or DS value's number; None, with a warning row, when it has none."""
        try:
            return parse_number(vr, text)
        except ValueError as exc:
            reason = "is out of range" if isinstance(exc, OutOfRange) else "is not a number"
            self.out.cast_error(tag, f"{vr} value {text[:64]!r} {reason}")
            return None


class _Decoder(DecoderBase):
    def __init__(
        self,
        path: str,
        out: Decoded,
        pixel_representation: int,
        element_limit: int,
        store: ValueStore,
    ) -> None:
        super().__init__(path, out, pixel_representation, element_limit)
        self.store = store

    def item(
        self, raw_dict: RawItem, encodings: tuple[str, ...], implicit: bool, little: bool
    ) -> Item:
        """Decode one dataset or sequence item, encoded as `implicit` and `little` say."""
        charset = raw_dict.get(0x00080005)
        if charset is not None:
            try:
                encodings = _encodings_of(charset)
            except UnusableCharsetError as exc:
                self.out.cast_error(
                    0x00080005,
                    f"Specific Character Set {exc} is unusable; "
                    "text decoded as the default repertoire",
                )
        fast = len(encodings) == 1 and "2022" not in encodings[0]
        codec = _python_codec(encodings[0]) if fast else ""
        context = _context_of(encodings, implicit, little, self.pixel_representation)
        item: Item = {}
        limit = self.element_limit
        store = self.store
        memo = store.found
        # Only the rare branches count: every other element was a lookup that hit.
        misses = not_looked_up = 0
        for tag, elem in raw_dict.items():
            if isinstance(elem, tuple):
                vr, value = elem
                if len(value) > limit:
                    oversized = self.oversized(tag, vr, len(value), item)
                    if oversized is not None:
                        item[tag] = oversized
                        not_looked_up += 1
                        continue
                if vr is None:
                    vr = implied_vr(tag, item, self.pixel_representation)
                key = (tag, vr, value, context)
                found = memo.get(key)
                if found is None:
                    misses += 1
                    warnings = len(self.out.cast_errors)
                    found = self.raw(tag, vr, value, encodings, fast, codec, implicit, little)
                    # Not kept: a value whose warning rows every object must get.
                    if len(self.out.cast_errors) == warnings:
                        store.remember(key, found)
                item[tag] = found
            elif isinstance(elem, ParsedSequence):
                not_looked_up += 1
                if elem.length > limit and (left_out := self.oversized(tag, "SQ", elem.length)):
                    item[tag] = left_out
                    continue
                items = [
                    self.item(child, encodings, elem.implicit, elem.little) for child in elem.items
                ]
                item[tag] = Element("SQ", items, len(items))
            elif isinstance(elem, SkippedValue):  # skipped unread: over the limit
                not_looked_up += 1
                item[tag] = self.oversized(tag, elem.vr, elem.length, item) or self.omitted(
                    tag, elem.vr or "UN", elem.length
                )
            else:
                not_looked_up += 1
                item[tag] = self.converted(tag, elem, encodings)
        store.counts.hits += len(raw_dict) - misses - not_looked_up
        store.counts.misses += misses
        return item

    def raw(
        self,
        tag: int,
        vr: str,
        value: bytes,
        encodings: tuple[str, ...],
        fast: bool,
        codec: str,
        implicit: bool,
        little: bool,
    ) -> Element:
        if vr in ASCII_MULTI:  # the most common case, first
            return self.split(tag, vr, value.decode("latin-1")) if value else Element(vr, None, 0)
        if vr == "UN" and not is_private(tag):
            known = _dictionary_vr(tag, self.pixel_representation)
            if known != "UN":  # UN of a known tag is implicit little endian (PS3.5 6.2.2)
                return self.raw(tag, known, value, encodings, fast, codec, True, True)
        if vr == "SQ" or (vr == "UN" and value[:4] == _ITEM_TAG_LE and implicit):
            return self.sequence(tag, value, implicit, little, encodings)
        if not value:
            return Element(vr, None, 0)
        if vr in NUMERIC_FORMATS:
            return self.numeric(tag, vr, value, little)
        if vr in BINARY:
            return Element(vr, Binary(vr, len(value)), 1)
        if vr == "PN":
            return self.person_names(value, encodings, fast, codec)
        if vr in CHARSET_MULTI or vr in CHARSET_SINGLE:
            text = (
                value.decode(codec, "replace")
                if fast
                else decode_bytes(value, list(encodings), TEXT_VR_DELIMS)
            )
            if vr in CHARSET_MULTI:
                return self.split(tag, vr, text)
            text = text.rstrip(" \x00")
            return Element(vr, text or None, 1 if text else 0)
        if vr == "AT":
            return self.tags(value, little)
        # ASCII_SINGLE (UR) and VRs no table names: one value in the default repertoire.
        text = value.decode("latin-1").rstrip(" \x00")
        return Element(vr, text or None, 1 if text else 0)

    def sequence(
        self, tag: int, value: bytes, implicit: bool, little: bool, encodings: tuple[str, ...]
    ) -> Element:
        try:
            raw_items = parse_sequence(value, implicit, little)
        except SequenceFormatError:
            # Odd framing (e.g. a VR switch inside an item): pydicom's reader may cope.
            try:
                seq = read_sequence(BytesIO(value), implicit, little, len(value), list(encodings))
                raw_items = [from_pydicom(ds._dict, self.path) for ds in seq]
            except Exception as exc:  # pydicom's many error types on hostile bytes
                raise HeaderParseError(
                    self.path,
                    f"sequence ({tag >> 16:04X},{tag & 0xFFFF:04X}) does not parse: "
                    f"{type(exc).__name__}: {exc}",
                    tag=f"{tag:08X}",
                ) from exc
        items = [self.item(raw_item, encodings, implicit, little) for raw_item in raw_items]
        return Element("SQ", items, len(items))

    def split(self, tag: int, vr: str, text: str) -> Element:
        if "\\" not in text:
            single = text.strip(" \x00")
            if not single:
                return Element(vr, None, 0)
            if vr == "IS" or vr == "DS":
                return Element(vr, self.number(tag, vr, single), 1)
            return Element(vr, single, 1)
        parts = [p.strip(" \x00") for p in text.split("\\")]
        if len(parts) == 1 and not parts[0]:
            return Element(vr, None, 0)
        if vr == "IS" or vr == "DS":
            numbers = [self.number(tag, vr, p) for p in parts]
            return Element(vr, numbers[0] if len(numbers) == 1 else numbers, len(numbers))
        return Element(vr, parts[0] if len(parts) == 1 else parts, len(parts))

    def numeric(self, tag: int, vr: str, value: bytes, little: bool) -> Element:
        code = NUMERIC_FORMATS[vr]
        size = _SIZES[code]
        count = len(value) // size
        if len(value) % size:
            self.out.cast_error(
                tag, f"{vr} value of {len(value)} bytes is not a multiple of {size}"
            )
        if count == 0:
            return Element(vr, None, 0)
        numbers = struct.unpack(f"{'<' if little else '>'}{count}{code}", value[: count * size])
        return Element(vr, numbers[0] if count == 1 else list(numbers), count)

    def tags(self, value: bytes, little: bool) -> Element:
        count = len(value) // 4
        pairs = struct.unpack(f"{'<' if little else '>'}{count * 2}H", value[: count * 4])
        tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
        return Element("AT", tags[0] if count == 1 else tags, count)

    def person_names(
        self, value: bytes, encodings: tuple[str, ...], fast: bool, codec: str
    ) -> Element:
        names = []
        for raw_name in value.split(b"\\"):
            raw_name = raw_name.rstrip(b" \x00")
            if fast:
                name = raw_name.decode(codec, "replace").rstrip("=")
            else:
                groups = [decode_bytes(g, list(encodings), PN_DELIMS) for g in raw_name.split(b"=")]
                while groups and not groups[-1]:
                    groups.pop()
                name = "=".join(groups)
            names.append(name)
        if len(names) == 1 and not names[0]:
            return Element("PN", None, 0)
        return Element("PN", names[0] if len(names) == 1 else names, len(names))

    def converted(self, tag: int, elem: DataElement, encodings: tuple[str, ...]) -> Element:
        """An element pydicom already converted (undefined-length sequences and values)."""
        vr = elem.VR or "UN"
        value = elem.value
        if vr == "SQ":
            items = [
                self.item(from_pydicom(ds._dict, self.path), encodings, *encoding_of(ds))
                for ds in value
            ]
            return Element("SQ", items, len(items))
        if isinstance(value, (bytes, bytearray)):
            return Element(vr, Binary(vr, len(value)), 1) if value else Element(vr, None, 0)
        if value is None or value == "":
            return Element(vr, None, 0)
        if isinstance(value, (list, MultiValue)):
            texts = [str(v) for v in value]
            return Element(vr, texts[0] if len(texts) == 1 else texts, len(texts))
        return Element(vr, str(value), 1)


class UnusableCharsetError(ValueError):
    """A Specific Character Set no codec answers to."""


def _encodings_of(
    charset: RawElement | ParsedSequence | SkippedValue | DataElement,
) -> tuple[str, ...]:
    value = charset[1] if isinstance(charset, tuple) else getattr(charset, "value", None)
    if isinstance(value, (bytes, bytearray)):
        terms: Any = [t.strip(" \x00") for t in bytes(value).decode("latin-1").split("\\")]
    else:
        terms = value
    if not terms or terms == [""]:
        return DEFAULT_ENCODINGS
    try:
        encodings = tuple(convert_encodings(list(terms) if isinstance(terms, list) else terms))
        for encoding in encodings:
            codecs.lookup(_python_codec(encoding))
    except (LookupError, ValueError) as exc:
        raise UnusableCharsetError(str(terms)) from exc
    return encodings


def _python_codec(encoding: str) -> str:
    return "latin-1" if encoding == "iso8859" else encoding


def decode_elements(
    elements: RawItem,
    path: str,
    element_limit: int = DEFAULT_ELEMENT_LIMIT,
    *,
    implicit: bool,
    little: bool,
    store: ValueStore | None = None,
) -> Decoded:
    """Decode a header's raw elements, encoded as `implicit` and `little` say, nested
    sequences included; values longer than `element_limit` bytes are kept as
    `Omitted` (public binary ones as their length, sequences the model reads whole).
    Elements are looked up in, and kept in, `store` (the worker's); without one,
    this header shares nothing with any other."""
    out = Decoded(root={})
    raw_pr = elements.get(0x00280103)
    pixel_representation = 0
    if isinstance(raw_pr, tuple) and len(raw_pr[1]) == 2:
        pixel_representation = struct.unpack("<H" if little else ">H", raw_pr[1])[0]
    decoder = _Decoder(path, out, pixel_representation, element_limit, store or ValueStore())
    out.root = decoder.item(elements, DEFAULT_ENCODINGS, implicit, little)
    return out


def decode_unknown(
    tag: int, value: bytes, path: str, out: Decoded, element_limit: int = DEFAULT_ELEMENT_LIMIT
) -> Element:
    """A UN value's element as an implicit VR little endian file would give it: a
    known tag's own VR, a sequence when its bytes are item framing, else binary
    (PS3.5 6.2.2). For DICOM JSON, whose InlineBinary UN values carry the bytes."""
    decoder = _Decoder(path, out, 0, element_limit, ValueStore())
    return decoder.raw(tag, "UN", value, DEFAULT_ENCODINGS, True, "latin-1", True, True)


def decode_header(
    parsed: ParsedHeader,
    path: str,
    element_limit: int = DEFAULT_ELEMENT_LIMIT,
    store: ValueStore | None = None,
) -> Decoded:
    """`decode_elements` of what `parse_header` read."""
    return decode_elements(
        parsed.elements,
        path,
        element_limit,
        implicit=parsed.implicit,
        little=parsed.little,
        store=store,
    )
