"""What a warehouse stores of each object to derive its rows again without reading it:
its header (`dicom_raw`), the facts outside the header (`dicom_file_location`), the
values that could not be typed (`dicom_ingestion_errors`) and where its frames lie
(`dicom_frame`). `rebuild` reads them for every object, a deletion for the objects
that succeed a deleted one (successors.py); extract/from_stored.py turns them into rows.
"""

from __future__ import annotations

from typing import Any

from loader.core.errors import Category
from loader.extract.from_stored import FRAME_COLUMNS
from loader.warehouse.merge import Execute

STORED_COLUMNS = (
    "file_path",
    "metadata",
    "metadata_vr",
    "ingested_at",
    "file_size_bytes",
    "header_bytes",
    "transfer_syntax_uid",
    "_source_order",
    "storage_provider",
    "storage_container",
    "object_key",
    "checksum",
    "ingestion_source",
    "pixel_data_offset",
    "pixel_data_length",
    "modified_at",
)
# The columns above, of `dicom_raw r` and its location `l`.
STORED_SELECT = (
    "r.file_path, r.metadata, r.metadata_vr, r.ingested_at, r.file_size_bytes, "
    "r.header_bytes, r.transfer_syntax_uid, r._source_order, l.storage_provider, "
    "l.storage_container, l.object_key, l.checksum, l.ingestion_source, "
    "l.pixel_data_offset, l.pixel_data_length, l.modified_at"
)


def _by_object(
    execute: Execute, placeholder: str, sql: str, paths: list[str]
) -> dict[str, list[list[Any]]]:
    """The rows of `sql` per object of `paths`: its first column is the object's path,
    and `{paths}` stands where the list of paths goes (bound, one per object)."""
    if not paths:
        return {}
    marks = ", ".join(placeholder for _ in paths)
    found: dict[str, list[list[Any]]] = {}
    for path, *values in execute(sql.format(paths=marks), list(paths)):
        found.setdefault(path, []).append(values)
    return found


def cast_errors(
    execute: Execute, placeholder: str, paths: list[str]
) -> dict[str, tuple[list[dict[str, str]], int]]:
    """Per object of `paths`: the rows its read gave beside its tables (TYPE_CAST_ERROR
    by tag, PARSE_WARNING), and its bytes read."""
    rows = _by_object(
        execute,
        placeholder,
        "SELECT file_path, error_category, tag, error_message, bytes_read "
        "FROM dicom_ingestion_errors "
        f"WHERE error_category IN ('{Category.TYPE_CAST_ERROR}', '{Category.PARSE_WARNING}') "
        "AND file_path IN ({paths}) ORDER BY file_path, error_category, tag",
        paths,
    )
    return {
        path: (
            [
                {"category": category, "tag": tag, "message": message}
                for category, tag, message, _ in found
            ],
            int(found[0][3] or 0),
        )
        for path, found in rows.items()
    }


def stored_frames(
    execute: Execute, placeholder: str, paths: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per object of `paths`: its dicom_frame rows' locations, by frame number (its
    rows carry its _source_order, which names it)."""
    listed = ", ".join(f"f.{c}" for c in FRAME_COLUMNS)
    rows = _by_object(
        execute,
        placeholder,
        f"SELECT r.file_path, {listed} FROM dicom_frame f "
        "JOIN dicom_raw r ON r._source_order = f._source_order "
        "WHERE r.file_path IN ({paths}) ORDER BY r.file_path, f.frame_number",
        paths,
    )
    return {
        path: [
            {c: None if v is None else str(v) for c, v in zip(FRAME_COLUMNS, row, strict=True)}
            for row in found
        ]
        for path, found in rows.items()
    }
