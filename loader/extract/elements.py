"""One row per data element and per sequence item, private and nested included.

Paths name where an element sits: `52009230[0].00209111[0].00189074` is
FrameAcquisitionDateTime in the first Frame Content item of the first frame.
Element and item keys hash (SOP Instance UID, path), so they are stable across
reruns and joinable from SQL. This is the widest table (one row per element), so
rows are built as columns and per-tag facts are computed once per process.
"""

from __future__ import annotations

import datetime as dt

from pydicom.datadict import private_dictionary_description

from loader.decode import Binary, Item, Omitted, is_private, keyword, private_creator_of
from loader.extract.context import Columns, Extraction
from loader.extract.values import parse_date, parse_datetime
from loader.keys import SEPARATOR, fast_md5, key_of_text

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
ITEM_COLUMNS = (
    "sequence_item_key",
    "instance_key",
    "parent_element_key",
    "item_index",
    "sequence_path",
)
_private_names: dict[tuple[str, int], str | None] = {}
_tag_facts: dict[int, tuple[int, int, str, str, bool]] = {}


def _facts(tag: int) -> tuple[int, int, str, str, bool]:
    found = _tag_facts.get(tag)
    if found is None:
        found = _tag_facts[tag] = (
            tag >> 16,
            tag & 0xFFFF,
            f"{tag:08X}",
            keyword(tag),
            is_private(tag),
        )
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


class _ElementWalk:
    """Element and item rows as tuples (keys left out), with the text each key
    hashes: keys are computed at the end in one pass."""

    def __init__(self, ex: Extraction) -> None:
        self.key_prefix = ex.sop_instance_uid + SEPARATOR
        self.instance_key = ex.instance_key
        self.elements: list[tuple[object, ...]] = []  # ELEMENT_COLUMNS[1:]
        self.element_paths: list[str] = []
        self.items: list[tuple[object, ...]] = []  # ITEM_COLUMNS[1:]
        self.item_paths: list[str] = []

    def walk(self, item: Item, path: str, item_key: int | None, frame: int | None) -> None:
        append = self.elements.append
        append_path = self.element_paths.append
        prefix = f"{path}." if path else ""
        instance_key = self.instance_key
        sequence_path = path or None
        tag_facts = _tag_facts
        for tag, elem in item.items():
            facts = tag_facts.get(tag)
            if facts is None:
                facts = _facts(tag)
            group, number, tag_hex, name, private = facts
            element_path = prefix + tag_hex
            value = elem.value
            vr = elem.vr
            creator = None
            if private:
                creator = private_creator_of(tag, item)
                name = _private_name(tag, creator) or tag_hex
            text = number_value = stamp = binary = None
            kind = type(value)
            if kind is str:
                text = value
                if vr == "DA" or vr == "DT":
                    stamp = _as_datetime(vr, value)
            elif kind is int or kind is float:
                text = str(value)
                number_value = float(value)
            elif kind is list:
                if vr == "SQ":
                    self._items(value, element_path, tag, path, frame)
                else:
                    first = value[0]
                    text = "\\".join(map(str, value))
                    if isinstance(first, (int, float)):
                        number_value = float(first)
                    elif vr == "DA" or vr == "DT":
                        stamp = _as_datetime(vr, first)
            elif kind is Binary:
                binary = "length unknown" if value.length is None else f"length={value.length}"
            elif kind is Omitted:
                binary = f"omitted length={value.length}"
            append_path(element_path)  # after the items: rows and paths stay in step
            append(
                (
                    instance_key,
                    frame,
                    group,
                    number,
                    tag_hex,
                    name,
                    vr,
                    elem.vm,
                    text,
                    number_value,
                    stamp,
                    binary,
                    private,
                    creator,
                    item_key,
                    sequence_path,
                )
            )

    def _items(
        self, children: list[Item], element_path: str, tag: int, path: str, frame: int | None
    ) -> None:
        element_key = key_of_text(self.key_prefix + element_path)
        for index, child in enumerate(children):
            child_path = f"{element_path}[{index}]"
            child_key = key_of_text(self.key_prefix + child_path)
            self.items.append((self.instance_key, element_key, index, child_path))
            self.item_paths.append(child_path)
            child_frame = index + 1 if tag == PER_FRAME_GROUPS and not path else frame
            self.walk(child, child_path, child_key, child_frame)


def _columns(names: tuple[str, ...], keys: list[int], rows: list[tuple[object, ...]]) -> Columns:
    """Columns named `names`: the keys first, then the rows' values."""
    if not rows:
        return {}
    columns: Columns = {names[0]: keys}  # type: ignore[dict-item]
    for name, values in zip(names[1:], zip(*rows, strict=True), strict=True):
        columns[name] = list(values)
    return columns


def _keys(prefix: str, paths: list[str]) -> list[int]:
    """`key_of_text(prefix + path)` of every path, in one pass."""
    md5, from_bytes = fast_md5, int.from_bytes
    return [from_bytes(md5((prefix + p).encode()).digest()[8:], "big") for p in paths]


def elements_and_items(ex: Extraction) -> tuple[Columns, Columns]:
    """Columns of dicom_element and dicom_sequence_item for one object."""
    walk = _ElementWalk(ex)
    walk.walk(ex.decoded.root, "", None, None)
    return (
        _columns(ELEMENT_COLUMNS, _keys(walk.key_prefix, walk.element_paths), walk.elements),
        _columns(ITEM_COLUMNS, _keys(walk.key_prefix, walk.item_paths), walk.items),
    )
