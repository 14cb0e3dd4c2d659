"""DICOM JSON (PS3.18 F.2) → the decoder's tree.

PACS exports and WADO-RS metadata responses carry headers as DICOM JSON. Turned
into the same tree `decode` builds from bytes, an instance yields exactly the rows
a binary object with the same header yields. The rules mirror the binary decoder:
values are split already, text is trimmed the same way, IS/DS become numbers, FL is
narrowed to 32 bits as its bytes would be, person names join their groups with
"=", the File Meta group and whatever follows Pixel Data are left out. Binary
values are never fetched: InlineBinary gives its length, a BulkDataURI none. An
InlineBinary UN value is decoded as an implicit VR file's bytes would be (a known
tag's VR, or a private sequence's items).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import struct
from collections.abc import Mapping
from typing import Any

import orjson

from loader.core.errors import HeaderParseError, NotDicomError
from loader.dicom.decode import (
    DEFAULT_ELEMENT_LIMIT,
    INTEGER_RANGES,
    Binary,
    Decoded,
    DecoderBase,
    Element,
    Item,
    decode_unknown,
    implied_vr,
    in_range,
)
from loader.dicom.vr import (
    MULTI_TEXT,
    NUMBER_STRINGS,
    NUMERIC_FORMATS,
    SINGLE_TEXT,
    is_private_data,
)
from loader.headers.dataset_bytes import PIXEL_DATA_TAGS
from loader.sources.containers import object_name

# Text values DICOM JSON gives as strings (DS and IS come as JSON numbers).
_SPLIT_TEXT = MULTI_TEXT - NUMBER_STRINGS
_FEW_VALUES = 256  # fewer values, none a long text, cannot reach an element limit


def _long_text(values: list[Any]) -> bool:
    return isinstance(values[0], str) and len(values[0]) > 4096


def _encoded_length(vr: str, values: list[Any]) -> int:
    """About the bytes the values take in a binary object: what the element limit
    is measured against, as the binary decoder measures its value bytes."""
    size = NUMERIC_FORMATS.get(vr)
    if size is not None:
        return len(values) * struct.calcsize("<" + size)
    return sum(len(str(v).encode()) + 1 for v in values if v is not None)


_FLOAT32 = struct.Struct("<f")
_FIRST_PIXEL_TAG = min(PIXEL_DATA_TAGS)


def instances_in(data: bytes, url: str) -> list[dict[str, Any]]:
    """The DICOM JSON instances an export holds: one object, an array of them, or
    (.ndjson) one a line."""
    if object_name(url).endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise NotDicomError(url, f"not a gzip stream: {exc}") from exc
    try:
        if object_name(url).endswith((".ndjson", ".ndjson.gz")):
            found = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        else:
            document = orjson.loads(data)
            found = document if isinstance(document, list) else [document]
    except orjson.JSONDecodeError as exc:
        raise NotDicomError(url, f"not JSON: {exc}") from exc
    if not found or not all(isinstance(i, dict) and _looks_like_dicom(i) for i in found):
        raise NotDicomError(url, "not DICOM JSON: an instance is not an object of ggggeeee tags")
    return found


def _looks_like_dicom(instance: Mapping[str, Any]) -> bool:
    return all(len(key) == 8 and isinstance(value, dict) for key, value in instance.items())


def transfer_syntax_of(instance: Mapping[str, Any]) -> str | None:
    entry = instance.get("00020010")
    values = entry.get("Value") if isinstance(entry, dict) else None
    return str(values[0]) if values else None


def decode_json(
    instance: Mapping[str, Any], path: str, element_limit: int = DEFAULT_ELEMENT_LIMIT
) -> Decoded:
    """The decoded header of one DICOM JSON instance."""
    out = Decoded(root={})
    try:
        representation = instance.get("00280103", {}).get("Value", [0])[0]
        decoder = _JsonDecoder(path, out, int(representation or 0), element_limit)
        out.root = decoder.item(instance, top_level=True)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
        raise HeaderParseError(path, f"malformed DICOM JSON: {type(exc).__name__}: {exc}") from exc
    return out


class _JsonDecoder(DecoderBase):
    def item(self, attributes: Mapping[str, Any], top_level: bool = False) -> Item:
        item: Item = {}
        for tag, key in sorted((int(key, 16), key) for key in attributes):
            if top_level and (tag >> 16 == 0x0002 or tag >= _FIRST_PIXEL_TAG):
                continue  # the binary path reads neither the File Meta group nor past Pixel Data
            entry = attributes[key]
            vr = str(entry.get("vr") or implied_vr(tag, item, self.pixel_representation))
            item[tag] = self.element(tag, vr, entry)
        return item

    def element(self, tag: int, vr: str, entry: Mapping[str, Any]) -> Element:
        private_data = is_private_data(tag)
        binary = "InlineBinary" in entry or "BulkDataURI" in entry
        if binary and vr == "SQ":
            vr = "UN"  # a sequence's bytes: what an unknown value's would be
        if "InlineBinary" in entry:
            length = _base64_length(entry["InlineBinary"])
            if length > self.element_limit and (left_out := self.oversized(tag, vr, length)):
                return left_out
            if vr == "UN" and length:  # bytes a binary object would have decoded further
                value = base64.b64decode(entry["InlineBinary"])
                return decode_unknown(tag, value, self.path, self.out, self.element_limit)
            return Element(vr, Binary(vr, length), 1) if length else Element(vr, None, 0)
        if "BulkDataURI" in entry:
            return Element(vr, Binary(vr, None), 1)
        values = entry.get("Value")
        if vr == "SQ":
            items = [self.item(child) for child in values or []]
            return Element("SQ", items, len(items))
        if not values:
            return Element(vr, None, 0)
        if len(values) > _FEW_VALUES or private_data or _long_text(values):
            length = _encoded_length(vr, values)
            if length > self.element_limit and (left_out := self.oversized(tag, vr, length)):
                return left_out
        if vr in SINGLE_TEXT:
            text = str(values[0]).rstrip(" \x00")
            return Element(vr, text or None, 1 if text else 0)
        converted = [self.value(tag, vr, v) for v in values]
        if vr in _SPLIT_TEXT and len(converted) == 1 and not converted[0]:
            return Element(vr, None, 0)
        return Element(vr, converted[0] if len(converted) == 1 else converted, len(converted))

    def value(self, tag: int, vr: str, value: Any) -> Any:
        if value is None:  # an empty value among several
            return "" if vr in _SPLIT_TEXT or vr == "PN" else None
        if vr == "PN":
            return _person_name(value)
        if vr == "IS" or vr == "DS":
            return self.json_number(tag, vr, value)
        if vr in INTEGER_RANGES:
            try:
                return in_range(vr, int(value))
            except (TypeError, ValueError, OverflowError):
                self.out.cast_error(
                    tag, f"{vr} value {str(value)[:64]!r} is not an integer it holds"
                )
                return None
        if vr == "FL":  # as its 4 bytes would give it
            return _FLOAT32.unpack(_FLOAT32.pack(float(value)))[0]
        if vr == "FD":
            return float(value)
        if vr == "AT":
            return str(value).upper()
        return str(value).strip(" \x00")

    def json_number(self, tag: int, vr: str, value: Any) -> int | float | None:
        """An IS or DS value given as a JSON number or string."""
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if vr == "DS":
                return float(value) + 0.0  # as parse_number: -0.0 is zero
            value = str(int(value)) if float(value).is_integer() else repr(value)
        return self.number(tag, vr, str(value).strip(" \x00"))


def _person_name(value: Any) -> str:
    if isinstance(value, str):
        return value.rstrip(" \x00=")
    if not isinstance(value, dict):
        return ""
    groups = [str(value.get(k) or "") for k in ("Alphabetic", "Ideographic", "Phonetic")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _base64_length(text: str) -> int:
    """Bytes an InlineBinary value holds, without decoding it."""
    text = "".join(text.split())
    if len(text) % 4:
        raise binascii.Error("InlineBinary is not base64")
    return len(text) // 4 * 3 - text[-2:].count("=")
