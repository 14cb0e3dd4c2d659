"""Irradiation events of radiation dose structured reports, one row each.

A CT dose report (TID 10011) holds one CT Acquisition container (DCM 113819, TID
10013) per irradiation event; a projection X-ray report (TID 10001) one Irradiation
Event X-Ray Data container (DCM 113706, TID 10003). Each event's values sit at
various depths below its container (acquisition parameters, CT dose, X-ray source
parameters), so each is the first item below the container with its concept code,
in document order.
"""

from __future__ import annotations

from collections.abc import Callable

from loader.extract.context import Extraction, Row
from loader.extract.sr_tree import Node, coded, numeric
from loader.extract.values import text

EVENT_KINDS = {"113819": "CT", "113706": "projection"}


def _number(node: Node, ex: Extraction) -> object:
    return numeric(node.item)[0]


def _text(node: Node, ex: Extraction) -> object:
    return text(node.item, "TextValue")


def _uid(node: Node, ex: Extraction) -> object:
    return text(node.item, "UID")


def _meaning(node: Node, ex: Extraction) -> object:
    return coded(node.item, "ConceptCodeSequence")[2]


def _datetime(node: Node, ex: Extraction) -> object:
    return ex.typed.datetime(node.item, "DateTime")


# column → (concept code value, how its item's value is read)
_VALUES: dict[str, tuple[str, Callable[[Node, Extraction], object]]] = {
    "irradiation_event_uid": ("113769", _uid),
    "event_datetime": ("111526", _datetime),
    "acquisition_protocol": ("125203", _text),
    "ct_acquisition_type": ("113820", _meaning),
    "ctdi_vol": ("113830", _number),
    "dlp": ("113838", _number),
    "phantom_type": ("113835", _meaning),
    "scanning_length": ("113825", _number),
    "exposure_time": ("113824", _number),
    "pitch_factor": ("113828", _number),
    "kvp": ("113733", _number),
    "tube_current": ("113734", _number),
    "irradiation_event_type": ("113721", _meaning),
    "acquisition_plane": ("113764", _meaning),
    "dose_area_product": ("122130", _number),
    "dose_rp": ("113738", _number),
}
_TARGET_REGION = "123014"
_BY_CODE = {code: column for column, (code, _) in _VALUES.items()}


def event_rows(ex: Extraction) -> list[Row]:
    nodes = ex.content_nodes()
    rows: list[Row] = []
    for at, event in enumerate(nodes):
        kind = EVENT_KINDS.get(event.concept[0] or "")
        if kind is None or event.value_type != "CONTAINER" or event.concept[1] != "DCM":
            continue
        row: Row = {
            "instance_key": ex.instance_key,
            "event_path": event.path,
            "event_kind": kind,
            **dict.fromkeys(_VALUES),
            "target_region_code_value": None,
            "target_region_code_scheme": None,
            "target_region_code_meaning": None,
        }
        below = event.path + "."
        for node in nodes[at + 1 :]:
            if not node.path.startswith(below):
                break  # document order: the event's items are the ones right after it
            code = node.concept[0]
            if code == _TARGET_REGION and row["target_region_code_value"] is None:
                target = coded(node.item, "ConceptCodeSequence")
                row["target_region_code_value"] = target[0]
                row["target_region_code_scheme"] = target[1]
                row["target_region_code_meaning"] = target[2]
                continue
            column = _BY_CODE.get(code or "")
            if column is not None and row[column] is None and node.concept[1] == "DCM":
                row[column] = _VALUES[column][1](node, ex)
        rows.append(row)
    return rows
