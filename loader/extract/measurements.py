"""Measurement groups of structured reports, their measurements and evaluations.

TID 1500 (Measurement Report) holds its results in measurement groups (concept
DCM 125007, templates TID 1410, 1411 and 1501): a group names what is tracked and
the finding, refers to the segment or image region it measured, and contains
numeric measurements (NUM items) and qualitative evaluations (CODE items). The
concepts are found by code in the group's direct children, as the templates place
them; any SR that uses measurement groups gets these rows, not only TID 1500.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loader.core.keys import key_of
from loader.extract.context import Extraction, Row
from loader.extract.sr_tree import NO_CODE, Code, Node, code_columns, coded, integers, numeric
from loader.extract.values import first_item, text

MEASUREMENT_GROUP = ("125007", "DCM")
TRACKING_IDENTIFIER = "112039"
TRACKING_UID = "112040"
FINDING = "121071"
FINDING_CATEGORY = "276214006"
# SNOMED CT concepts, and the SNOMED-RT codes older reports carry for them.
FINDING_SITE = ("363698007", "G-C0E3")
METHOD = ("370129005", "G-C306")
DERIVATION = "121401"
ACTIVITY_SESSION = "C67447"
TIME_POINT = "C2348792"
SOURCE_SERIES = "121232"
REFERENCED_SEGMENT = "121191"
SEGMENTATION_FRAME = "121214"
IMAGE_REGION = "111030"
# What a group's region of interest may be given as (TID 1410, 1411).
ROI_REFERENCES = (REFERENCED_SEGMENT, SEGMENTATION_FRAME, IMAGE_REGION, "121231", "130488")
# Concepts that describe the group; any other CODE child is a qualitative evaluation.
_DESCRIBING = (FINDING, FINDING_CATEGORY, *FINDING_SITE, *METHOD)


def _children(nodes: list[Node]) -> dict[str, list[Node]]:
    by_parent: dict[str, list[Node]] = {}
    for node in nodes:
        if node.parent is not None:
            by_parent.setdefault(node.parent, []).append(node)
    return by_parent


def _first(children: list[Node], *codes: str) -> Node | None:
    return next((c for c in children if c.concept[0] in codes), None)


def _code(children: list[Node], *codes: str) -> Code:
    found = _first(children, *codes)
    return coded(found.item, "ConceptCodeSequence") if found else NO_CODE


def _text(children: list[Node], code: str) -> str | None:
    found = _first(children, code)
    return text(found.item, "TextValue") if found else None


def groups(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.value_type == "CONTAINER" and n.names(*MEASUREMENT_GROUP)]


def _sop_reference(node: Node | None) -> tuple[str | None, int | None]:
    """The SOP instance an IMAGE item refers to, and the first segment it names."""
    reference = first_item(node.item, "ReferencedSOPSequence") if node else None
    if reference is None:
        return None, None
    segments = integers(reference, "ReferencedSegmentNumber")
    return text(reference, "ReferencedSOPInstanceUID"), segments[0] if segments else None


def _selected_from(region: Node | None, by_parent: dict[str, list[Node]]) -> str | None:
    """The image a region is drawn on: its SELECTED FROM child (TID 1410, 1411)."""
    if region is None:
        return None
    for child in by_parent.get(region.path, []):
        if text(child.item, "RelationshipType") == "SELECTED FROM":
            return _sop_reference(child)[0]
    return None


@dataclass(frozen=True, slots=True)
class MeasurementTables:
    """The rows of one report's measurement groups, for their three tables."""

    groups: list[Row] = field(default_factory=list)
    measurements: list[Row] = field(default_factory=list)
    evaluations: list[Row] = field(default_factory=list)


def measurement_tables(ex: Extraction) -> MeasurementTables:
    """Every measurement group of the report, with its measurements and qualitative
    evaluations, in one pass over the walked tree."""
    found = groups(ex.content_nodes())
    if not found:
        return MeasurementTables()
    by_parent = _children(ex.content_nodes())
    out = MeasurementTables()
    for group in found:
        children = by_parent.get(group.path, [])
        out.groups.append(_group_row(ex.instance_key, group, children, by_parent))
        for item in children:
            if item.value_type == "NUM":
                modifiers = by_parent.get(item.path, [])
                out.measurements.append(_measurement_row(ex.instance_key, group, item, modifiers))
            elif item.value_type == "CODE" and item.concept[0] not in _DESCRIBING:
                out.evaluations.append(
                    {
                        "instance_key": ex.instance_key,
                        "evaluation_path": item.path,
                        "group_path": group.path,
                        **code_columns("concept", item.concept),
                        **code_columns("value", coded(item.item, "ConceptCodeSequence")),
                    }
                )
    return out


def _group_row(
    instance_key: int, group: Node, children: list[Node], by_parent: dict[str, list[Node]]
) -> Row:
    segment_node = _first(children, REFERENCED_SEGMENT, SEGMENTATION_FRAME)
    segmentation_uid, segment_number = _sop_reference(segment_node)
    source = _first(children, SOURCE_SERIES)
    source_uid = text(source.item, "UID") if source else None
    roi = _first(children, *ROI_REFERENCES)
    region = _first(children, IMAGE_REGION)
    region_uid = _selected_from(region, by_parent)
    tracking_uid = _first(children, TRACKING_UID)
    return {
        "instance_key": instance_key,
        "group_path": group.path,
        "tracking_identifier": _text(children, TRACKING_IDENTIFIER),
        "tracking_uid": text(tracking_uid.item, "UID") if tracking_uid else None,
        **code_columns("finding_category", _code(children, FINDING_CATEGORY)),
        **code_columns("finding", _code(children, FINDING)),
        **code_columns("finding_site", _code(children, *FINDING_SITE)),
        **code_columns("method", _code(children, *METHOD)),
        "activity_session": _text(children, ACTIVITY_SESSION),
        "time_point": _text(children, TIME_POINT),
        "roi_reference_type": roi.concept[2] if roi else None,
        "referenced_segmentation_uid": segmentation_uid,
        "referenced_segmentation_key": key_of(segmentation_uid) if segmentation_uid else None,
        "referenced_segment_number": segment_number,
        "source_series_uid": source_uid,
        "source_series_key": key_of(source_uid) if source_uid else None,
        "region_graphic_type": text(region.item, "GraphicType") if region else None,
        "region_instance_key": key_of(region_uid) if region_uid else None,
    }


def _measurement_row(instance_key: int, group: Node, item: Node, modifiers: list[Node]) -> Row:
    number, unit = numeric(item.item)
    return {
        "instance_key": instance_key,
        "measurement_path": item.path,
        "group_path": group.path,
        **code_columns("concept", item.concept),
        "numeric_value": number,
        **code_columns("unit", unit),
        **code_columns("numeric_qualifier", coded(item.item, "NumericValueQualifierCodeSequence")),
        **code_columns("derivation", _code(modifiers, DERIVATION)),
        **code_columns("method", _code(modifiers, *METHOD)),
        **code_columns("finding_site", _code(modifiers, *FINDING_SITE)),
    }
