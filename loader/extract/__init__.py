"""Pure extraction: one decoded header → rows for every table of the model.

No I/O happens here; the shard worker reads, this module turns what was read
into rows, and the Parquet writer persists them.
"""

from __future__ import annotations

from loader.core.errors import Category
from loader.dicom.decode import Decoded
from loader.dicom.stored_headers import notes_text
from loader.extract import (
    derived,
    dose_events,
    hierarchy,
    imaging,
    measurements,
    object_rows,
    procedure,
    rt,
    sr_content,
)
from loader.extract.context import Extraction, ObjectFacts, Row, Rows
from loader.extract.elements import elements_and_items
from loader.extract.values import Typed, text

REQUIRED_UIDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")


def error_row(facts: ObjectFacts, category: Category, message: str, tag: str | None = None) -> Row:
    return {
        "file_path": facts.uri,
        "error_category": category,
        "error_message": message,
        "tag": tag,
        "detected_at": facts.ingested_at,
        "bytes_read": facts.bytes_read,
    }


def extract_object(decoded: Decoded, facts: ObjectFacts) -> tuple[Rows, list[Row]]:
    """Rows per table and error rows for one parsed object.

    An object missing one of the three identifying UIDs yields only its raw row
    and a VALIDATION_ERROR: without them it cannot join the hierarchy.
    """
    root = decoded.root
    uids = {name: text(root, name) for name in REQUIRED_UIDS}
    raw_row = object_rows.raw(decoded, facts, uids["SOPInstanceUID"])
    missing = [name for name, uid in uids.items() if not uid]
    if missing:
        message = "missing " + ", ".join(missing)
        return {"dicom_raw": [raw_row]}, [error_row(facts, Category.VALIDATION_ERROR, message)]

    ex = Extraction(
        decoded=decoded,
        facts=facts,
        sop_instance_uid=uids["SOPInstanceUID"] or "",
        series_instance_uid=uids["SeriesInstanceUID"] or "",
        study_instance_uid=uids["StudyInstanceUID"] or "",
        typed=Typed(decoded),
    )
    elements, sequence_items, vr_notes = elements_and_items(ex)
    raw_row["metadata_vr"] = notes_text(vr_notes)
    rows: Rows = {
        "dicom_raw": [raw_row],
        "dicom_patient": [hierarchy.patient(ex)],
        "dicom_study": [hierarchy.study(ex)],
        "dicom_series": [hierarchy.series(ex)],
        "dicom_instance": [hierarchy.instance(ex)],
        "dicom_frame": imaging.frames(ex),
        "dicom_image_plane": imaging.image_planes(ex),
        "dicom_segmentation_metadata": derived.segments(ex),
        "dicom_sr_content": sr_content.content_rows(ex),
        "dicom_rt_roi": rt.roi_rows(ex),
        "dicom_dose_event": dose_events.event_rows(ex),
        "dicom_file_location": [object_rows.file_location(facts, ex.instance_key)],
        "dicom_element": elements,
        "dicom_sequence_item": sequence_items,
    }
    measured = measurements.measurement_tables(ex)
    rows["dicom_sr_measurement_group"] = measured.groups
    rows["dicom_sr_measurement"] = measured.measurements
    rows["dicom_sr_qualitative_evaluation"] = measured.evaluations
    for table, build in (
        ("dicom_equipment", hierarchy.equipment),
        ("dicom_image_pixel", imaging.image_pixel),
        ("dicom_procedure_step", procedure.procedure_step),
        ("dicom_dose_summary", procedure.dose_summary),
        ("dicom_structured_report_header", derived.structured_report_header),
    ):
        row = build(ex)
        rows[table] = [row] if row is not None else []

    seen: set[str] = set()
    errors = []
    for tag, message in decoded.cast_errors:
        if tag not in seen:
            seen.add(tag)
            errors.append(error_row(facts, Category.TYPE_CAST_ERROR, message, tag))
    return rows, errors
