"""The rows a stored header gives: what its object's first read gave, without the read.

A warehouse keeps each parsed object's header in `dicom_raw` (with the VR notes that
make it whole again, dicom/stored_headers.py) and the facts that live outside the
header in `dicom_file_location`. `rebuild` derives every table again from them, and
a deletion derives the rows an entity took from a deleted object again from the next
newest live object (warehouse/successors.py): both through this one function, so a
stored header gives the same rows wherever it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loader.core.errors import Category
from loader.dicom.stored_headers import decoded_from_stored
from loader.extract import error_row, extract_object
from loader.extract.context import ObjectFacts, Row, Rows
from loader.headers.frame_offsets import NOT_REQUESTED, FrameLocation, OffsetTables

FRAME_COLUMNS = ("frame_offset", "frame_length", "frame_offset_source", "frame_offset_missing")


def _offset_tables(frames: list[dict[str, Any]]) -> tuple[bool, OffsetTables | None]:
    """Whether the object's read located every frame (--frame-offsets: none says it
    was not asked for), and what it found, for the extraction to give again."""
    requested = bool(frames) and all(f["frame_offset_missing"] != NOT_REQUESTED for f in frames)
    located = tuple(
        FrameLocation(
            None if f["frame_offset"] is None else int(f["frame_offset"]),
            None if f["frame_length"] is None else int(f["frame_length"]),
            f["frame_offset_source"],
            f["frame_offset_missing"],
        )
        for f in frames
    )
    return requested, OffsetTables(None, None, None, located) if requested else None


def extracted_from_stored(header: Mapping[str, Any]) -> tuple[Rows, list[Row]]:
    """The rows and error rows of one stored header, as its first read gave them.

    `header` holds dicom_raw's and dicom_file_location's columns of the object, its
    `cast_errors` (TYPE_CAST_ERROR and PARSE_WARNING rows: category, tag, message),
    its `bytes_read` and its `frames` (dicom_frame's locations, FRAME_COLUMNS)."""
    requested, tables = _offset_tables(header.get("frames") or [])
    facts = ObjectFacts(
        uri=header["file_path"],
        size=header["file_size_bytes"] or 0,
        modified_at=header["modified_at"],
        ingestion_source=header["ingestion_source"] or "",
        storage_provider=header["storage_provider"] or "",
        storage_container=header["storage_container"],
        object_key=header["object_key"] or "",
        transfer_syntax_uid=header["transfer_syntax_uid"],
        header_bytes=header["header_bytes"] or 0,
        bytes_read=header["bytes_read"] or 0,
        pixel_data_offset=header["pixel_data_offset"],
        pixel_data_length=header["pixel_data_length"],
        checksum=header["checksum"] or "",
        ingested_at=header["ingested_at"],
        frame_offsets=requested,
        offset_tables=tables,
    )
    stored = header["cast_errors"] or []
    cast_errors = [
        (e["tag"], e["message"]) for e in stored if e["category"] != Category.PARSE_WARNING
    ]
    warned = [
        error_row(facts, Category.PARSE_WARNING, e["message"])
        for e in stored
        if e["category"] == Category.PARSE_WARNING
    ]
    try:
        decoded = decoded_from_stored(header["metadata"], header["metadata_vr"], cast_errors)
        rows, errors = extract_object(decoded, facts)
        return rows, errors + warned
    except Exception as exc:  # noqa: BLE001 - one stored header must never stop the caller
        message = f"stored header cannot be rebuilt: {type(exc).__name__}: {exc}"[:1000]
        return {}, [error_row(facts, Category.PARSE_ERROR, message)]
