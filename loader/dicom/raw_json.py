"""A decoded header → the keyword-keyed JSON document of dicom_raw.metadata.

Public tags are keyed by keyword, private and unknown tags by ggggeeee hex, and so
are the tags of repeating groups (overlays 60xx, curves 50xx, ...): one keyword
names a whole family of them, and one item may hold several. Single values are
scalars, multiple values arrays, sequences arrays of objects, empty values null.
Binary values never enter the document: only their VR and length do, as
{"vr": "OB", "length": 1234}. A value over the element limit is marked
{"vr": "UT", "length": 5000000, "omitted": true}.

An element's `"name":value` text is rendered once and kept with it: a decoded
element is shared by every object with the same bytes (see decode), so a
document is mostly the joining of texts already made.
"""

from __future__ import annotations

import orjson
from pydicom.datadict import tag_for_keyword

from loader.dicom.decode import Binary, Element, Item, Omitted, keyword
from loader.dicom.vr import is_private

_names: dict[int, bytes] = {}  # tag → its quoted JSON name and colon


def _name(tag: int) -> bytes:
    found = _names.get(tag)
    if found is None:
        name = keyword(tag)
        if not is_private(tag) and tag_for_keyword(name) != tag:
            name = f"{tag:08X}"  # a repeating group's: its keyword is not its own
        found = _names[tag] = f'"{name}":'.encode("ascii")
    return found


def _member(tag: int, elem: Element) -> bytes:
    value = elem.value
    kind = type(value)
    if kind is list and elem.vr == "SQ":
        body = _array(value)
    elif kind is Binary:
        body = orjson.dumps({"vr": value.vr, "length": value.length})
    elif kind is Omitted:
        body = orjson.dumps({"vr": value.vr, "length": value.length, "omitted": True})
    else:
        body = orjson.dumps(value)
    elem.json = _name(tag) + body
    return elem.json


def _document(item: Item) -> bytes:
    return b"{" + b",".join([elem.json or _member(tag, elem) for tag, elem in item.items()]) + b"}"


def _array(items: list[Item]) -> bytes:
    return b"[" + b",".join([_document(item) for item in items]) + b"]"


def metadata_json(root: Item) -> str:
    """The JSON text stored in dicom_raw.metadata."""
    return _document(root).decode()


def sequence_json(sequence: list[Item]) -> str | None:
    """A sequence as a JSON array of keyword-keyed objects (VARIANT columns)."""
    if not sequence:
        return None
    return _array(sequence).decode()
