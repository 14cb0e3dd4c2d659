"""Regions of interest of RT structure sets, one row each.

A structure set lists its ROIs (StructureSetROISequence), says what each is
(RTROIObservationsSequence) and holds their contours (ROIContourSequence), each
part keyed by ROI number. The image series an ROI was drawn on are those its frame
of reference names (ReferencedFrameOfReferenceSequence). Contour points are bulk:
the contours are counted where they were read, and a contour sequence over the
element limit is skipped unread (extracted_sequences.SIZE_GUARDED), so its ROIs'
counts are NULL rather than paid for with megabytes of points.
"""

from __future__ import annotations

from loader.core.keys import key_of
from loader.dicom.decode import Item, Omitted
from loader.extract.context import Extraction, Row
from loader.extract.values import integer, items, text, value


def _series_by_frame_of_reference(root: Item) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for frame in items(root, "ReferencedFrameOfReferenceSequence"):
        keys = found.setdefault(text(frame, "FrameOfReferenceUID") or "", [])
        for study in items(frame, "RTReferencedStudySequence"):
            for series in items(study, "RTReferencedSeriesSequence"):
                uid = text(series, "SeriesInstanceUID")
                if uid and key_of(uid) not in keys:
                    keys.append(key_of(uid))
    return found


def roi_rows(ex: Extraction) -> list[Row]:
    root = ex.decoded.root
    rois = items(root, "StructureSetROISequence")
    if not rois:
        return []
    observations: dict[int | None, Item] = {}
    for observation in items(root, "RTROIObservationsSequence"):
        observations.setdefault(integer(observation, "ReferencedROINumber"), observation)
    contours_read = value(root, "ROIContourSequence")
    contours: dict[int | None, Item] = {}
    for contour in items(root, "ROIContourSequence"):
        contours.setdefault(integer(contour, "ReferencedROINumber"), contour)
    series = _series_by_frame_of_reference(root)
    rows: list[Row] = []
    numbered: set[int] = set()
    for roi in rois:
        number = integer(roi, "ROINumber")
        if number is None or number in numbered:
            continue  # the row's key; a file repeating a number keeps its first ROI
        numbered.add(number)
        observation = observations.get(number, {})
        frame_of_reference = text(roi, "ReferencedFrameOfReferenceUID")
        count: int | None = None
        kinds: list[str] | None = None
        if contours_read is not None and not isinstance(contours_read, Omitted):
            polygons = items(contours.get(number, {}), "ContourSequence")
            count = len(polygons)
            kinds = sorted({k for p in polygons if (k := text(p, "ContourGeometricType"))})
        rows.append(
            {
                "instance_key": ex.instance_key,
                "roi_number": number,
                "roi_name": text(roi, "ROIName"),
                "roi_description": text(roi, "ROIDescription"),
                "roi_generation_algorithm": text(roi, "ROIGenerationAlgorithm"),
                "referenced_frame_of_reference_uid": frame_of_reference,
                "interpreted_type": text(observation, "RTROIInterpretedType"),
                "observation_label": text(observation, "ROIObservationLabel"),
                "referenced_series_keys": series.get(frame_of_reference or "") or None,
                "contour_count": count,
                "contour_geometric_types": kinds or None,
            }
        )
    return rows
