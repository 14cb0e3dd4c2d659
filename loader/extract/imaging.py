"""Image pixel description, image plane and per-frame rows.

Enhanced multi-frame objects keep plane geometry and timing in functional
groups: a macro is looked up in the frame's Per-frame Functional Groups item
first, then in the Shared Functional Groups, as PS3.3 C.7.6.16 defines.
"""

from __future__ import annotations

from loader.dicom.decode import Item
from loader.extract.context import Extraction, Row
from loader.extract.values import first_item, integer, items, number, numbers, text
from loader.headers.frame_offsets import (
    MAX_FRAMES,
    FrameLocation,
    Geometry,
    PixelData,
    locate_frames,
)


def _macro(frame: Item | None, shared: Item | None, keyword: str) -> Item | None:
    found = first_item(frame, keyword) if frame is not None else None
    if found is None and shared is not None:
        found = first_item(shared, keyword)
    return found


def image_pixel(ex: Extraction) -> Row | None:
    root = ex.decoded.root
    rows = integer(root, "Rows")
    if rows is None:
        return None
    shared = first_item(root, "SharedFunctionalGroupsSequence")
    transform = _macro(None, shared, "PixelValueTransformationSequence") or root
    voi = _macro(None, shared, "FrameVOILUTSequence") or root
    return {
        "instance_key": ex.instance_key,
        "image_rows": rows,
        "image_columns": integer(root, "Columns"),
        "number_of_frames": integer(root, "NumberOfFrames") or 1,
        "samples_per_pixel": integer(root, "SamplesPerPixel"),
        "photometric_interpretation": text(root, "PhotometricInterpretation"),
        "bits_allocated": integer(root, "BitsAllocated"),
        "bits_stored": integer(root, "BitsStored"),
        "high_bit": integer(root, "HighBit"),
        "pixel_representation": integer(root, "PixelRepresentation"),
        "planar_configuration": integer(root, "PlanarConfiguration"),
        "rescale_intercept": number(transform, "RescaleIntercept"),
        "rescale_slope": number(transform, "RescaleSlope"),
        "window_center": numbers(voi, "WindowCenter"),
        "window_width": numbers(voi, "WindowWidth"),
    }


def _plane(ex: Extraction, measures: Item, position: Item, orientation: Item) -> Row:
    root = ex.decoded.root
    return {
        "instance_key": ex.instance_key,
        "pixel_spacing": numbers(measures, "PixelSpacing"),
        "slice_thickness": number(measures, "SliceThickness"),
        "image_position_patient": numbers(position, "ImagePositionPatient"),
        "image_orientation_patient": numbers(orientation, "ImageOrientationPatient"),
        "spacing_between_slices": number(measures, "SpacingBetweenSlices"),
        "position_reference_indicator": text(root, "PositionReferenceIndicator"),
    }


def image_planes(ex: Extraction) -> list[Row]:
    """One row for a single-frame image, one per frame for enhanced multi-frame."""
    root = ex.decoded.root
    frames = items(root, "PerFrameFunctionalGroupsSequence")
    if frames:
        shared = first_item(root, "SharedFunctionalGroupsSequence")
        frame_keys = ex.frame_keys(len(frames))
        rows: list[Row] = []
        for number_, frame in enumerate(frames, start=1):
            row = _plane(
                ex,
                _macro(frame, shared, "PixelMeasuresSequence") or {},
                _macro(frame, shared, "PlanePositionSequence") or {},
                _macro(frame, shared, "PlaneOrientationSequence") or {},
            )
            row["frame_key"] = frame_keys[number_ - 1]
            row["frame_number"] = number_
            rows.append(row)
        return rows
    if integer(root, "Rows") is None and numbers(root, "ImagePositionPatient") is None:
        return []
    row = _plane(ex, root, root, root)
    row["frame_key"] = None
    row["frame_number"] = None
    return [row]


def frames(ex: Extraction) -> list[Row]:
    """One row per frame: those of the Per-frame Functional Groups of a multi-frame
    object, or, with frame offsets on, every frame of an object with pixels (a
    classic image's single frame takes the image's plane). Each is located in its
    object (frame_offsets)."""
    root = ex.decoded.root
    per_frame = items(root, "PerFrameFunctionalGroupsSequence")
    count = len(per_frame)
    if not count:
        if not ex.facts.frame_offsets or ex.facts.pixel_data_offset is None:
            return []
        count = min(integer(root, "NumberOfFrames") or 1, MAX_FRAMES)
    shared = first_item(root, "SharedFunctionalGroupsSequence")
    frame_keys = ex.frame_keys(count)
    located = _locations(ex, count)
    # A classic image with one frame: its plane is the frame's.
    single = root if not per_frame and count == 1 else None
    rows: list[Row] = []
    for number_ in range(1, count + 1):
        frame = per_frame[number_ - 1] if per_frame else single
        content = _macro(frame, shared, "FrameContentSequence") or {}
        cardiac = _macro(frame, shared, "CardiacSynchronizationSequence") or {}
        position = _macro(frame, shared, "PlanePositionSequence") or single or {}
        orientation = _macro(frame, shared, "PlaneOrientationSequence") or single or {}
        where = located[number_ - 1]
        rows.append(
            {
                "frame_key": frame_keys[number_ - 1],
                "instance_key": ex.instance_key,
                "sop_instance_uid": ex.sop_instance_uid,
                "frame_number": number_,
                "frame_content_datetime": (
                    ex.typed.datetime(content, "FrameAcquisitionDateTime")
                    or ex.typed.datetime(content, "FrameReferenceDateTime")
                ),
                "image_position_patient": numbers(position, "ImagePositionPatient"),
                "image_orientation_patient": numbers(orientation, "ImageOrientationPatient"),
                "slice_location": number(frame, "SliceLocation") if frame is not None else None,
                "temporal_position_index": integer(content, "TemporalPositionIndex"),
                "cardiac_cycle_position": number(cardiac, "NominalPercentageOfCardiacPhase"),
                "frame_offset": where.offset,
                "frame_length": where.length,
                "frame_offset_source": where.source,
                "frame_offset_missing": where.missing,
            }
        )
    return rows


def _locations(ex: Extraction, count: int) -> list[FrameLocation]:
    root, facts = ex.decoded.root, ex.facts
    geometry = Geometry(
        rows=integer(root, "Rows"),
        columns=integer(root, "Columns"),
        samples_per_pixel=integer(root, "SamplesPerPixel"),
        bits_allocated=integer(root, "BitsAllocated"),
        photometric_interpretation=text(root, "PhotometricInterpretation"),
    )
    pixels = PixelData(facts.pixel_data_offset, facts.pixel_data_length, facts.size)
    return locate_frames(count, geometry, pixels, facts.offset_tables)
