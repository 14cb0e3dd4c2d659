"""One row per data element and per sequence item, private and nested included.

Paths name where an element sits: `52009230[0].00209111[0].00189074` is
FrameAcquisitionDateTime in the first Frame Content item of the first frame.
Element and item keys hash (SOP Instance UID, path), so they are stable across
reruns and joinable from SQL.
"""

from __future__ import annotations

import datetime as dt

from pydicom.datadict import private_dictionary_description

from loader.decode import Binary, Item, is_private, keyword, private_creator_of
from loader.extract.context import Extraction, Row
from loader.extract.values import parse_date, parse_datetime
from loader.keys import key_of

PER_FRAME_GROUPS = 0x52009230
_private_names: dict[tuple[str, int], str | None] = {}


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
    def __init__(self, ex: Extraction) -> None:
        self.sop = ex.sop_instance_uid
        self.instance_key = ex.instance_key
        self.elements: list[Row] = []
        self.items: list[Row] = []

    def walk(self, item: Item, path: str, item_key: int | None, frame: int | None) -> None:
        prefix = f"{path}." if path else ""
        for tag, elem in item.items():
            tag_hex = f"{tag:08X}"
            element_path = prefix + tag_hex
            element_key = key_of(self.sop, element_path)
            value = elem.value
            private = is_private(tag)
            creator = private_creator_of(tag, item) if private else None
            row: Row = {
                "element_key": element_key,
                "instance_key": self.instance_key,
                "frame_number": frame,
                "tag_group": tag >> 16,
                "tag_element": tag & 0xFFFF,
                "tag_hex": tag_hex,
                "name": _private_name(tag, creator) if private else keyword(tag),
                "vr": elem.vr,
                "vm": elem.vm,
                "value_string": None,
                "value_number": None,
                "value_datetime": None,
                "value_binary_ref": None,
                "is_private": private,
                "private_creator": creator,
                "sequence_item_key": item_key,
                "sequence_path": path or None,
            }
            self.elements.append(row)
            if elem.vr == "SQ":
                for index, child in enumerate(value):
                    child_path = f"{element_path}[{index}]"
                    child_key = key_of(self.sop, child_path)
                    self.items.append({
                        "sequence_item_key": child_key,
                        "instance_key": self.instance_key,
                        "parent_element_key": element_key,
                        "item_index": index,
                        "sequence_path": child_path,
                    })
                    child_frame = index + 1 if tag == PER_FRAME_GROUPS and not path else frame
                    self.walk(child, child_path, child_key, child_frame)
                continue
            if value is None:
                continue
            if isinstance(value, Binary):
                row["value_binary_ref"] = f"length={value.length}"
                continue
            values = value if isinstance(value, list) else (value,)
            row["value_string"] = "\\".join(str(v) for v in values)
            first = values[0]
            if isinstance(first, (int, float)) and not isinstance(first, bool):
                row["value_number"] = float(first)
            elif elem.vr in ("DA", "DT") and isinstance(first, str):
                row["value_datetime"] = _as_datetime(elem.vr, first)


def elements_and_items(ex: Extraction) -> tuple[list[Row], list[Row]]:
    """Rows of dicom_element and dicom_sequence_item for one object."""
    walk = _ElementWalk(ex)
    walk.walk(ex.decoded.root, "", None, None)
    return walk.elements, walk.items
