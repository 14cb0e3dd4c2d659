"""A structured report's content tree, flattened: one row per content item.

The table every SR template is a view of: each item's place, its relationship to
its parent, its concept name, and its value in the column of its value type
(PS3.3 C.17.3, Table C.17-5: the value type says which attribute holds the value).
Only that type's attributes are read, so an item costs a handful of lookups, not
one per column: a dose report has hundreds of items. The walk is sr_tree.py's.
"""

from __future__ import annotations

from collections.abc import Callable

from loader.core.keys import key_of
from loader.core.model import BY_NAME
from loader.dicom.decode import Item
from loader.extract.context import Extraction, Row
from loader.extract.sr_tree import Node, code_columns, coded, integers, numeric
from loader.extract.values import Typed, first_item, numbers, text

_EMPTY: Row = dict.fromkeys(
    c.name for c in BY_NAME["dicom_sr_content"].columns if not c.name.startswith("_")
)


def _text(row: Row, item: Item, typed: Typed) -> None:
    row["text_value"] = text(item, "TextValue")


def _code(row: Row, item: Item, typed: Typed) -> None:
    row |= code_columns("code", coded(item, "ConceptCodeSequence"))


def _num(row: Row, item: Item, typed: Typed) -> None:
    row["numeric_value"], unit = numeric(item)
    row |= code_columns("unit", unit)
    row |= code_columns("numeric_qualifier", coded(item, "NumericValueQualifierCodeSequence"))


def _date(row: Row, item: Item, typed: Typed) -> None:
    row["date_value"] = typed.date(item, "Date")


def _time(row: Row, item: Item, typed: Typed) -> None:
    row["time_value"] = typed.time(item, "Time")


def _datetime(row: Row, item: Item, typed: Typed) -> None:
    row["datetime_value"] = typed.datetime(item, "DateTime")


def _person(row: Row, item: Item, typed: Typed) -> None:
    row["person_name"] = text(item, "PersonName")


def _uid(row: Row, item: Item, typed: Typed) -> None:
    row["uid_value"] = text(item, "UID")


def _composite(row: Row, item: Item, typed: Typed) -> None:
    reference = first_item(item, "ReferencedSOPSequence")
    if reference is None:
        return
    uid = text(reference, "ReferencedSOPInstanceUID")
    row["referenced_sop_class_uid"] = text(reference, "ReferencedSOPClassUID")
    row["referenced_sop_instance_uid"] = uid
    row["referenced_instance_key"] = key_of(uid) if uid else None
    row["referenced_frame_numbers"] = integers(reference, "ReferencedFrameNumber")
    row["referenced_segment_numbers"] = integers(reference, "ReferencedSegmentNumber")


def _coordinates(row: Row, item: Item, typed: Typed) -> None:
    row["graphic_type"] = text(item, "GraphicType")
    row["graphic_data"] = numbers(item, "GraphicData")
    row["referenced_frame_of_reference_uid"] = text(item, "ReferencedFrameOfReferenceUID")


def _container(row: Row, item: Item, typed: Typed) -> None:
    template = first_item(item, "ContentTemplateSequence")
    row["template_id"] = text(template, "TemplateIdentifier") if template else None


_VALUES: dict[str | None, Callable[[Row, Item, Typed], None]] = {
    "TEXT": _text,
    "CODE": _code,
    "NUM": _num,
    "DATE": _date,
    "TIME": _time,
    "DATETIME": _datetime,
    "PNAME": _person,
    "UIDREF": _uid,
    "IMAGE": _composite,
    "COMPOSITE": _composite,
    "WAVEFORM": _composite,
    "SCOORD": _coordinates,
    "SCOORD3D": _coordinates,
    "CONTAINER": _container,
}


def _row(ex: Extraction, node: Node) -> Row:
    item = node.item
    row = dict(_EMPTY)
    value_type = node.value_type
    row["instance_key"] = ex.instance_key
    row["content_path"] = node.path
    row["parent_path"] = node.parent
    row["depth"] = node.depth
    row["relationship_type"] = text(item, "RelationshipType")
    row["value_type"] = value_type
    row |= code_columns("concept", node.concept)
    row["observation_uid"] = text(item, "ObservationUID")
    fill = _VALUES.get(value_type)
    if fill is not None:
        fill(row, item, ex.typed)
    elif value_type is None:  # by reference: the path of the item it stands for
        target = integers(item, "ReferencedContentItemIdentifier")
        row["referenced_content_path"] = ".".join(map(str, target)) if target else None
    return row


def content_rows(ex: Extraction) -> list[Row]:
    return [_row(ex, node) for node in ex.content_nodes()]
