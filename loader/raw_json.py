"""A decoded header → the keyword-keyed JSON document of dicom_raw.metadata.

Public tags are keyed by keyword, private and unknown tags by ggggeeee hex.
Single values are scalars, multiple values arrays, sequences arrays of objects,
empty values null. Binary values never enter the document: only their VR and
length do, as {"vr": "OB", "length": 1234}. A private value over the element limit
is marked {"vr": "UT", "length": 5000000, "omitted": true}.
"""

from __future__ import annotations

from typing import Any

import orjson

from loader.decode import KEYWORDS, Binary, Element, Item, Omitted, keyword


def item_document(item: Item) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    names = KEYWORDS
    for tag, elem in item.items():
        value = elem.value
        kind = type(value)
        if kind is list and elem.vr == "SQ":
            value = elem.json or _sequence_fragment(elem)
        elif kind is Binary:
            value = {"vr": value.vr, "length": value.length}
        elif kind is Omitted:
            value = {"vr": value.vr, "length": value.length, "omitted": True}
        doc[names.get(tag) or keyword(tag)] = value
    return doc


def _sequence_fragment(sequence: Element) -> orjson.Fragment:
    """A sequence's JSON, serialised once and kept with it: a decoded sequence is
    shared by every object with the same bytes (see decode)."""
    fragment = orjson.Fragment(orjson.dumps([item_document(child) for child in sequence.value]))
    sequence.json = fragment
    return fragment


def metadata_json(root: Item) -> str:
    """The JSON text stored in dicom_raw.metadata."""
    return orjson.dumps(item_document(root)).decode()


def sequence_json(sequence: list[Item]) -> str | None:
    """A sequence as a JSON array of keyword-keyed objects (VARIANT columns)."""
    if not sequence:
        return None
    return orjson.dumps([item_document(item) for item in sequence]).decode()
