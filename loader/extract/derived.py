"""Rows of derived objects: segments of SEG instances, headers of SR documents."""

from __future__ import annotations

import orjson

from loader.core.keys import key_of
from loader.dicom.decode import Item
from loader.dicom.raw_json import sequence_json
from loader.extract.context import Extraction, Row
from loader.extract.values import first_item, integer, items, text, value

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _referenced_series_key(root: Item) -> int | None:
    reference = first_item(root, "ReferencedSeriesSequence")
    uid = text(reference, "SeriesInstanceUID") if reference is not None else None
    return key_of(uid) if uid else None


def _source_uids(frame: Item) -> list[str]:
    return [
        uid
        for derivation in items(frame, "DerivationImageSequence")
        for source in items(derivation, "SourceImageSequence")
        if (uid := text(source, "ReferencedSOPInstanceUID"))
    ]


def _sources_by_segment(root: Item) -> dict[int | None, list[int]]:
    """Keys of the source images each segment's frames were derived from, in order of
    first mention (PS3.3 C.8.20.3: a frame's Segment Identification and Derivation
    Image). Segments whose frames name none get those of the whole object: its
    ReferencedSeriesSequence's instances (key None)."""
    shared = first_item(root, "SharedFunctionalGroupsSequence") or {}
    shared_uids = _source_uids(shared)
    found: dict[int | None, list[int]] = {}
    for frame in items(root, "PerFrameFunctionalGroupsSequence"):
        identification = first_item(frame, "SegmentIdentificationSequence") or {}
        segment = integer(identification, "ReferencedSegmentNumber")
        keys = found.setdefault(segment, [])
        for uid in _source_uids(frame) or shared_uids:
            key = key_of(uid)
            if key not in keys:
                keys.append(key)
    whole: list[int] = []
    for series in items(root, "ReferencedSeriesSequence"):
        for instance in items(series, "ReferencedInstanceSequence"):
            named = text(instance, "ReferencedSOPInstanceUID")
            if named and key_of(named) not in whole:
                whole.append(key_of(named))
    found[None] = whole
    return found


def segments(ex: Extraction) -> list[Row]:
    root = ex.decoded.root
    if text(root, "SOPClassUID") != SEGMENTATION_STORAGE and text(root, "Modality") != "SEG":
        return []
    referenced = _referenced_series_key(root)
    sources = _sources_by_segment(root)
    rows: list[Row] = []
    for segment in items(root, "SegmentSequence"):
        grayscale = value(segment, "RecommendedDisplayGrayscaleValue")
        lab = value(segment, "RecommendedDisplayCIELabValue")
        display = None
        if grayscale is not None or lab is not None:
            display = orjson.dumps({"grayscale": grayscale, "cielab": lab}).decode()
        rows.append(
            {
                "instance_key": ex.instance_key,
                "referenced_series_key": referenced,
                "segment_number": integer(segment, "SegmentNumber"),
                "segment_label": text(segment, "SegmentLabel"),
                "segment_description": text(segment, "SegmentDescription"),
                "segmentation_type": text(root, "SegmentationType"),
                "segmentation_fractional_type": text(root, "SegmentationFractionalType"),
                "recommended_display_grayscale": display,
                "anatomic_region_code_seq": sequence_json(items(segment, "AnatomicRegionSequence")),
                "property_category_code_seq": sequence_json(
                    items(segment, "SegmentedPropertyCategoryCodeSequence")
                ),
                "property_type_code_seq": sequence_json(
                    items(segment, "SegmentedPropertyTypeCodeSequence")
                ),
                "algorithm_type": text(segment, "SegmentAlgorithmType"),
                "algorithm_name": text(segment, "SegmentAlgorithmName"),
                "tracking_id": text(segment, "TrackingID"),
                "tracking_uid": text(segment, "TrackingUID"),
                "source_instance_keys": (
                    sources.get(integer(segment, "SegmentNumber")) or sources[None] or None
                ),
            }
        )
    return rows


def structured_report_header(ex: Extraction) -> Row | None:
    root = ex.decoded.root
    if text(root, "Modality") != "SR" and value(root, "CompletionFlag") is None:
        return None
    title = first_item(root, "ConceptNameCodeSequence")
    referenced: list[int] = []
    for evidence in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in items(root, evidence):
            for series in items(study, "ReferencedSeriesSequence"):
                for sop in items(series, "ReferencedSOPSequence"):
                    uid = text(sop, "ReferencedSOPInstanceUID")
                    if uid:
                        referenced.append(key_of(uid))
    return {
        "instance_key": ex.instance_key,
        "completion_flag": text(root, "CompletionFlag"),
        "verification_flag": text(root, "VerificationFlag"),
        "document_title": text(title, "CodeMeaning") if title is not None else None,
        "coding_scheme_identification": sequence_json(
            items(root, "CodingSchemeIdentificationSequence")
        ),
        "referenced_instance_keys": referenced or None,
    }
