"""Requested/performed procedure steps per study and the dose summary per series."""

from __future__ import annotations

from loader.core.keys import key_of
from loader.dicom.decode import Item
from loader.dicom.raw_json import sequence_json
from loader.extract.context import Extraction, Row
from loader.extract.repeated import repeated
from loader.extract.values import Typed, first_item, items, number, text, value

# SR content items of a CT Radiation Dose report (TID 10011) by concept code.
_DLP_TOTAL = "113813"  # CT Dose Length Product Total
_DLP = "113838"  # DLP of one irradiation event
_CTDI_VOL = "113830"  # Mean CTDIvol


@repeated
def procedure_step(root: Item, typed: Typed) -> Row | None:
    """The study's procedure step, repeated by its objects (see repeated)."""
    request = first_item(root, "RequestAttributesSequence") or {}
    requested_id = text(request, "RequestedProcedureID") or text(root, "RequestedProcedureID")
    performed_id = text(root, "PerformedProcedureStepID")
    study_uid = text(root, "StudyInstanceUID")
    row: Row = {
        "procedure_step_key": key_of(study_uid, requested_id, performed_id),
        "study_key": key_of(study_uid),
        "requested_procedure_id": requested_id,
        "requested_procedure_description": (
            text(request, "RequestedProcedureDescription")
            or text(root, "RequestedProcedureDescription")
        ),
        "requested_procedure_code_seq": sequence_json(
            items(request, "RequestedProcedureCodeSequence")
            or items(root, "RequestedProcedureCodeSequence")
        ),
        "performed_procedure_step_id": performed_id,
        "performed_procedure_description": text(root, "PerformedProcedureStepDescription"),
        "performed_procedure_type": text(root, "PerformedProcedureTypeDescription"),
        "performed_procedure_code_seq": sequence_json(
            items(root, "PerformedProtocolCodeSequence") or items(root, "ProcedureCodeSequence")
        ),
    }
    described = any(
        v is not None for k, v in row.items() if k not in ("procedure_step_key", "study_key")
    )
    return row if described else None


def _content_numbers(content: list[Item], found: dict[str, float]) -> None:
    """Collect the first numeric value of each dose concept in an SR content tree."""
    for node in content:
        concept = first_item(node, "ConceptNameCodeSequence") or {}
        code = text(concept, "CodeValue")
        if code in (_DLP_TOTAL, _DLP, _CTDI_VOL) and code not in found:
            measured = first_item(node, "MeasuredValueSequence") or {}
            amount = number(measured, "NumericValue")
            if amount is not None:
                found[code] = amount
        _content_numbers(items(node, "ContentSequence"), found)


def _first(*values: float | None) -> float | None:
    """The first value present: 0 mAs or 0 mGy is a value, not an absence."""
    return next((v for v in values if v is not None), None)


def dose_summary(ex: Extraction) -> Row | None:
    root = ex.decoded.root
    shared = first_item(root, "SharedFunctionalGroupsSequence") or {}
    exposure = first_item(shared, "CTExposureSequence") or {}
    from_report: dict[str, float] = {}
    if value(root, "ContentSequence") is not None:
        _content_numbers(items(root, "ContentSequence"), from_report)
    row: Row = {
        "series_key": ex.series_key,
        "study_key": ex.study_key,
        "ctdi_vol": _first(
            number(root, "CTDIvol"), number(exposure, "CTDIvol"), from_report.get(_CTDI_VOL)
        ),
        "dose_length_product": _first(from_report.get(_DLP_TOTAL), from_report.get(_DLP)),
        "exposure_time": _first(number(root, "ExposureTime"), number(exposure, "ExposureTimeInms")),
        "kvp": number(root, "KVP"),
        "xray_tube_current": _first(
            number(root, "XRayTubeCurrent"), number(exposure, "XRayTubeCurrentInmA")
        ),
        "exposure": _first(number(root, "Exposure"), number(exposure, "ExposureInmAs")),
        "acquisition_protocol": text(root, "AcquisitionProtocolName") or text(root, "ProtocolName"),
    }
    measured = (
        "ctdi_vol",
        "dose_length_product",
        "exposure_time",
        "kvp",
        "xray_tube_current",
        "exposure",
    )
    return row if any(row[k] is not None for k in measured) else None
