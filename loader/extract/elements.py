"""One row per data element and per sequence item, private and nested included.

Paths name where an element sits: `52009230[0].00209111[0].00189074` is
FrameAcquisitionDateTime in the first Frame Content item of the first frame.
Element and item keys hash (SOP Instance UID, path), so they are stable across
reruns and joinable from SQL. This is the widest table (one row per element), so
per-tag facts are computed once per process and an element's values once per
decoded element, as a tuple kept on it: objects that share the element (see decode)
hand the writer that same tuple, which it converts once (see parquet).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.datadict import private_dictionary_description

from loader.core.keys import SEPARATOR, key_of_text, keys_of_texts
from loader.dicom.decode import Binary, Element, Item, Omitted, keyword, private_creator_of
from loader.dicom.stored_headers import pixel_representation_of, vr_note
from loader.dicom.vr import PRIVATE_GROUP_BIT
from loader.extract.context import Columns, Extraction
from loader.extract.values import parse_date, parse_datetime

PER_FRAME_GROUPS = 0x52009230
ELEMENT_COLUMNS = (
    "element_key",
    "instance_key",
    "frame_number",
    "tag_group",
    "tag_element",
    "tag_hex",
    "name",
    "vr",
    "vm",
    "value_string",
    "value_number",
    "value_datetime",
    "value_binary_ref",
    "is_private",
    "private_creator",
    "sequence_item_key",
    "sequence_path",
)
_VALUE_COLUMNS = ELEMENT_COLUMNS[3:15]  # tag_group .. private_creator
_PLACE_COLUMNS = ("frame_number", "sequence_item_key", "sequence_path")
_private_names: dict[tuple[str, int], str | None] = {}
_tag_facts: dict[int, tuple[int, int, str, str]] = {}
_Values = tuple[object, object, object, object]  # value_string .. value_binary_ref
# tag_group, tag_element, tag_hex, name, vr, vm, the four values, is_private, private_creator
ElementRow = tuple[int, int, str, str, str, int, object, object, object, object, bool, str | None]


def _facts(tag: int) -> tuple[int, int, str, str]:
    found = _tag_facts.get(tag)
    if found is None:
        found = _tag_facts[tag] = (tag >> 16, tag & 0xFFFF, f"{tag:08X}", keyword(tag))
    return found


def _private_name(tag: int, creator: str | None) -> str | None:
    if creator is None:
        return None
    cache_key = (creator, (tag & 0xFFFF0000) | (tag & 0xFF))
    if cache_key not in _private_names:
        try:
            _private_names[cache_key] = private_dictionary_description(tag, creator)
        except KeyError:
            _private_names[cache_key] = None
    return _private_names[cache_key]


def _as_datetime(vr: str, text: str) -> dt.datetime | None:
    try:
        if vr == "DA":
            return dt.datetime.combine(parse_date(text), dt.time())
        return parse_datetime(text)
    except ValueError:
        return None


def _values(elem: Element) -> _Values:
    """value_string, value_number, value_datetime and value_binary_ref of an element."""
    value = elem.value
    vr = elem.vr
    kind = type(value)
    if kind is str:
        return value, None, _as_datetime(vr, value) if vr == "DA" or vr == "DT" else None, None
    if kind is int or kind is float:
        return str(value), float(value), None, None
    if kind is list:
        if vr == "SQ":
            return None, None, None, None
        first = value[0]
        number = float(first) if isinstance(first, (int, float)) else None
        stamp = _as_datetime(vr, first) if vr == "DA" or vr == "DT" else None
        return "\\".join(map(str, value)), number, stamp, None
    if kind is Binary:
        length = value.length
        return None, None, None, "length unknown" if length is None else f"length={length}"
    if kind is Omitted:
        return None, None, None, f"omitted length={value.length}"
    return None, None, None, None


def _public_row(tag: int, elem: Element) -> ElementRow:
    """A public element's columns from tag_group to private_creator, kept on the
    element: a remembered element (see decode) gives them to every object sharing it."""
    group, number, tag_hex, name = _facts(tag)
    row = (group, number, tag_hex, name, elem.vr, elem.vm, *_values(elem), False, None)
    elem.row = row
    return row


def _private_row(tag: int, elem: Element, creator: str | None) -> ElementRow:
    """A private element's columns: its name depends on its creator, which its item
    gives; kept on the element with the creator it was named for."""
    group, number, tag_hex, _ = _facts(tag)
    name = _private_name(tag, creator) or tag_hex
    row = (group, number, tag_hex, name, elem.vr, elem.vm, *_values(elem), True, creator)
    elem.row = row
    return row


class _ElementWalk:
    """Element rows as tuples (ELEMENT_COLUMNS from tag_group to private_creator)
    with where each sits (frame, item key, sequence path); element keys are hashed
    at the end in one pass, item keys as the items are met (their elements need them)."""

    def __init__(self, ex: Extraction) -> None:
        self.pixel_representation = pixel_representation_of(ex.decoded.root)
        self.notes: dict[str, Any] = {}  # dicom_raw.metadata_vr, by element path
        self.key_prefix = ex.sop_instance_uid + SEPARATOR
        self.instance_key = ex.instance_key
        self.elements: list[ElementRow] = []
        self.places: list[tuple[int | None, int | None, str | None]] = []
        self.element_paths: list[str] = []
        self.item_indexes: list[int] = []
        self.item_paths: list[str] = []
        self.item_keys: list[int] = []
        self.item_parents: list[int] = []  # each item's sequence, as its place in elements

    def walk(self, item: Item, path: str, item_key: int | None, frame: int | None) -> None:
        append = self.elements.append
        append_place = self.places.append
        append_path = self.element_paths.append
        prefix = f"{path}." if path else ""
        place = (frame, item_key, path or None)
        notes = self.notes
        for tag, elem in item.items():
            if tag & PRIVATE_GROUP_BIT:  # vr.is_private, inlined: the loop runs per element
                creator = private_creator_of(tag, item)
                row = elem.row
                if row is None or row[11] != creator:
                    row = _private_row(tag, elem, creator)
                    elem.note = vr_note(tag, elem, item, self.pixel_representation)
            else:
                row = elem.row
                if row is None:
                    row = _public_row(tag, elem)
                    elem.note = vr_note(tag, elem, item, self.pixel_representation)
            element_path = prefix + row[2]
            if elem.note:
                notes[element_path] = elem.note
            append_path(element_path)
            append(row)
            append_place(place)
            if elem.vr == "SQ" and type(elem.value) is list:
                self._items(elem.value, element_path, tag, path, frame)

    def _items(
        self, children: list[Item], element_path: str, tag: int, path: str, frame: int | None
    ) -> None:
        parent = len(self.elements) - 1  # the sequence's own row, just appended
        for index, child in enumerate(children):
            child_path = f"{element_path}[{index}]"
            child_key = key_of_text(self.key_prefix + child_path)
            self.item_indexes.append(index)
            self.item_paths.append(child_path)
            self.item_keys.append(child_key)
            self.item_parents.append(parent)
            child_frame = index + 1 if tag == PER_FRAME_GROUPS and not path else frame
            self.walk(child, child_path, child_key, child_frame)


def elements_and_items(ex: Extraction) -> tuple[Columns, Columns, dict[str, Any]]:
    """Columns of dicom_element and dicom_sequence_item for one object: an element's
    values and its place as the row tuples the walk kept (shared between the rows of
    one item, and between objects when the element is remembered); and the VR notes
    of dicom_raw.metadata_vr (stored_headers), by element path."""
    walk = _ElementWalk(ex)
    walk.walk(ex.decoded.root, "", None, None)
    if not walk.elements:
        return {}, {}, walk.notes
    element_keys = keys_of_texts(walk.key_prefix, walk.element_paths)
    elements: Columns = {
        _VALUE_COLUMNS: walk.elements,
        _PLACE_COLUMNS: walk.places,
        "element_key": element_keys,
        "instance_key": [walk.instance_key] * len(walk.elements),
    }
    if not walk.item_keys:
        return elements, {}, walk.notes
    items: Columns = {
        "item_index": walk.item_indexes,
        "sequence_path": walk.item_paths,
        "sequence_item_key": walk.item_keys,
        "instance_key": [walk.instance_key] * len(walk.item_keys),
        "parent_element_key": [element_keys[i] for i in walk.item_parents],
    }
    return elements, items, walk.notes
