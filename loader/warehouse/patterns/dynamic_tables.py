"""Cascading dynamic tables over `dicom_raw`: instances (one row per SOP Instance UID)
→ series, studies, patients and equipment. Each keeps the row of the greatest
`_source_order` (then file path) per natural key, the loader's own rule, and computes
keys with the loader's expression (docs/MODEL.md "Keys"), so their rows join the
loader's. No volatile function in a body: every table refreshes incrementally."""

from __future__ import annotations

from dataclasses import dataclass

from loader.core.identifiers import quoted
from loader.core.keys import sql_key
from loader.core.model import ColumnType
from loader.core.model import ColumnType as T
from loader.warehouse.patterns.dialects import SNOWFLAKE, PatternDialect
from loader.warehouse.patterns.names import Names

DT_PREFIX = "dt_"


@dataclass(frozen=True)
class Field:
    """A dynamic-table column read from `dicom_raw.metadata` (first value of a
    multi-valued element), typed as the model types it."""

    column: str
    keyword: str
    type: ColumnType = T.TEXT


INSTANCE_FIELDS = (
    Field("sop_instance_uid", "SOPInstanceUID"),
    Field("series_instance_uid", "SeriesInstanceUID"),
    Field("study_instance_uid", "StudyInstanceUID"),
    Field("sop_class_uid", "SOPClassUID"),
    Field("instance_number", "InstanceNumber", T.INT),
    Field("patient_id", "PatientID"),
    Field("issuer_of_patient_id", "IssuerOfPatientID"),
    Field("patient_name", "PatientName"),
    Field("patient_sex", "PatientSex"),
    Field("patient_birth_date", "PatientBirthDate", T.DATE),
    Field("accession_number", "AccessionNumber"),
    Field("study_id", "StudyID"),
    Field("study_date", "StudyDate", T.DATE),
    Field("study_description", "StudyDescription"),
    Field("referring_physician", "ReferringPhysicianName"),
    Field("series_number", "SeriesNumber", T.INT),
    Field("modality", "Modality"),
    Field("body_part_examined", "BodyPartExamined"),
    Field("series_description", "SeriesDescription"),
    Field("frame_of_reference_uid", "FrameOfReferenceUID"),
    Field("manufacturer", "Manufacturer"),
    Field("manufacturer_model_name", "ManufacturerModelName"),
    Field("device_serial_number", "DeviceSerialNumber"),
    Field("institution_name", "InstitutionName"),
    Field("station_name", "StationName"),
)
# Each level: its key, the instance columns it keeps, the table it reads.
LEVELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dicom_series": (
        "series_key",
        (
            *("study_key", "series_instance_uid", "series_number", "modality"),
            *("body_part_examined", "series_description", "frame_of_reference_uid"),
        ),
    ),
    "dicom_study": (
        "study_key",
        (
            *("patient_key", "study_instance_uid", "accession_number", "study_id"),
            *("study_date", "study_description", "referring_physician"),
        ),
    ),
    "dicom_patient": (
        "patient_key",
        ("patient_id", "issuer_of_patient_id", "patient_name", "patient_sex", "patient_birth_date"),
    ),
    "dicom_equipment": (
        "series_key",
        (
            *("manufacturer", "manufacturer_model_name", "device_serial_number"),
            *("institution_name", "station_name"),
        ),
    ),
}


def winner(key: str) -> str:
    """The loader's rule: greatest _source_order wins, then file path."""
    order = "_source_order DESC, file_path DESC"
    return f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {order}) = 1"


def instance_select(dialect: PatternDialect, raw: str) -> str:
    """One row per SOP Instance UID of `raw`, with the keys of every level. Objects
    an incremental run found deleted are left out, so an instance whose every copy is
    gone leaves the instance table, and its series and study their counts."""
    text = {f.column: dialect.text(f.keyword) for f in INSTANCE_FIELDS}
    columns = [f"{dialect.cast[f.type](text[f.column])} AS {f.column}" for f in INSTANCE_FIELDS]
    keys = {
        "instance_key": sql_key(dialect.name, text["sop_instance_uid"]),
        "series_key": sql_key(dialect.name, text["series_instance_uid"]),
        "study_key": sql_key(dialect.name, text["study_instance_uid"]),
        "patient_key": sql_key(dialect.name, text["patient_id"], text["issuer_of_patient_id"]),
    }
    required = " AND ".join(
        f"{text[c]} IS NOT NULL"
        for c in ("sop_instance_uid", "series_instance_uid", "study_instance_uid")
    )
    return (
        "SELECT\n    "
        + ",\n    ".join([*(f"{sql} AS {name}" for name, sql in keys.items()), *columns])
        + ",\n    _source_order,\n    file_path\n"
        + f"FROM {raw}\nWHERE {required} AND deleted_at IS NULL\n{winner('sop_instance_uid')}"
    )


def level_select(level: str, instances: str) -> str:
    key, columns = LEVELS[level]
    listed = ", ".join([key, *columns, "_source_order", "file_path"])
    return f"SELECT {listed}\nFROM {instances}\n{winner(key)}"


def dynamic_tables(names: Names) -> list[str]:
    instances = names.table(f"{DT_PREFIX}dicom_instance")
    bodies = {f"{DT_PREFIX}dicom_instance": instance_select(SNOWFLAKE, names.table("dicom_raw"))}
    for level in LEVELS:
        bodies[f"{DT_PREFIX}{level}"] = level_select(level, instances)
    warehouse = quoted(names.warehouse_for("dynamic-tables"))
    return [
        f"CREATE OR REPLACE DYNAMIC TABLE {names.table(name)}\n"
        f"  TARGET_LAG = '{names.lag}'\n  WAREHOUSE = {warehouse}\n"
        f"  REFRESH_MODE = INCREMENTAL\nAS\n{body}"
        for name, body in bodies.items()
    ]


def dynamic_table_columns() -> dict[str, tuple[str, ...]]:
    """The columns of every dynamic table."""
    found: dict[str, tuple[str, ...]] = {
        f"{DT_PREFIX}dicom_instance": tuple(f.column for f in INSTANCE_FIELDS)
    }
    found.update({f"{DT_PREFIX}{level}": columns for level, (_, columns) in LEVELS.items()})
    return found
