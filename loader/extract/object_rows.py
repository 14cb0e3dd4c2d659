"""Rows that describe the object itself: its raw header JSON and its location."""

from __future__ import annotations

from loader.core.keys import key_of
from loader.dicom.decode import Decoded
from loader.dicom.raw_json import metadata_json
from loader.extract.context import ObjectFacts, Row


def raw(decoded: Decoded, facts: ObjectFacts, sop_instance_uid: str | None) -> Row:
    return {
        "file_path": facts.uri,
        "metadata": metadata_json(decoded.root),
        "metadata_vr": None,  # the element walk's notes, when it has any (stored_headers)
        "ingested_at": facts.ingested_at,
        "sop_instance_uid": sop_instance_uid,
        "file_size_bytes": facts.size,
        "header_bytes": facts.header_bytes,
        "transfer_syntax_uid": facts.transfer_syntax_uid,
    }


def file_location(facts: ObjectFacts, instance_key: int) -> Row:
    return {
        "location_key": key_of(facts.uri),
        "instance_key": instance_key,
        "storage_uri": facts.uri,
        "storage_provider": facts.storage_provider,
        "storage_container": facts.storage_container,
        "object_key": facts.object_key,
        "transfer_syntax_uid": facts.transfer_syntax_uid,
        "checksum": facts.checksum,
        "ingestion_source": facts.ingestion_source,
        "header_bytes": facts.header_bytes,
        "pixel_data_offset": facts.pixel_data_offset,
        "pixel_data_length": facts.pixel_data_length,
        "file_size_bytes": facts.size,
        "modified_at": facts.modified_at,
    }
