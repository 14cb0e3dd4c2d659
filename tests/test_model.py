import re
from pathlib import Path

import duckdb
import pyarrow as pa

from loader.core.model import (
    BY_NAME,
    EXTRACTED,
    TABLES,
    arrow_schema,
    phi_columns,
    render_ddl,
    render_model_doc,
)
from loader.warehouse.patterns import model_sql

ROOT = Path(__file__).resolve().parents[1]

# The contract: table names, in their documented order, and their natural keys. Users'
# queries, the Snowflake patterns and validation depend on them; changing one is a
# breaking change, made here on purpose.
CONTRACT = {
    "dicom_raw": ("file_path",),
    "dicom_ingestion_errors": ("file_path", "error_category", "tag"),
    "dicom_load_history": ("run_id", "shard_id"),
    "dicom_patient": ("patient_key",),
    "dicom_study": ("study_key",),
    "dicom_series": ("series_key",),
    "dicom_instance": ("instance_key",),
    "dicom_frame": ("frame_key",),
    "dicom_equipment": ("series_key",),
    "dicom_image_pixel": ("instance_key",),
    "dicom_image_plane": ("instance_key", "frame_number"),
    "dicom_procedure_step": ("procedure_step_key",),
    "dicom_dose_summary": ("series_key",),
    "dicom_segmentation_metadata": ("instance_key", "segment_number"),
    "dicom_structured_report_header": ("instance_key",),
    "dicom_sr_content": ("instance_key", "content_path"),
    "dicom_sr_measurement_group": ("instance_key", "group_path"),
    "dicom_sr_measurement": ("instance_key", "measurement_path"),
    "dicom_sr_qualitative_evaluation": ("instance_key", "evaluation_path"),
    "dicom_rt_roi": ("instance_key", "roi_number"),
    "dicom_dose_event": ("instance_key", "event_path"),
    "dicom_file_location": ("location_key",),
    "dicom_element": ("element_key",),
    "dicom_sequence_item": ("sequence_item_key",),
    "image_embedding": ("embedding_key",),
    "embedding_model": ("model_key",),
    "embedding_evaluation": ("evaluation_key",),
}


def test_sql_file_is_rendered_from_model():
    assert (ROOT / "sql" / "duckdb" / "model.sql").read_text() == model_sql("duckdb")


def test_model_doc_is_rendered_from_model():
    assert (ROOT / "docs" / "MODEL.md").read_text() == render_model_doc(), "run make sql"


def test_tables_and_keys_are_the_contract():
    assert {t.name: t.key for t in TABLES} == CONTRACT
    assert list(CONTRACT) == [t.name for t in TABLES]
    for table in TABLES:
        assert table.doc, table.name  # docs/MODEL.md says what a row is


def test_nothing_refers_outside_the_repository():
    """A clone has nothing beside it: no tracked file points at a sibling folder."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = re.compile(r"\.\./shared|shared/(?:MODEL|DESIGN|STYLE)\.md")
    found = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".toml", ".txt", ".sql", "Makefile", ".cfg", ".json"))
        and name != "package-lock.json"
        and outside.search((ROOT / name).read_text(errors="replace"))
        and name != "tests/test_model.py"
    ]
    assert found == []


def test_every_table_has_audit_columns():
    for table in TABLES:
        assert {"_run_id", "_loaded_at"} <= set(table.column_names)


def test_arrow_schema_and_duckdb_ddl_agree():
    con = duckdb.connect()
    con.execute(render_ddl("duckdb"))
    for name in EXTRACTED:
        schema = arrow_schema(BY_NAME[name])
        empty = pa.Table.from_pylist([], schema=schema)
        columns = ", ".join(schema.names)
        con.register("empty_batch", empty)
        # Inserting an Arrow batch of the schema into the DDL's table must type-check.
        con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM empty_batch")
        con.unregister("empty_batch")


def test_phi_columns_are_the_contract():
    phi = phi_columns()
    assert phi["dicom_patient"] == [
        "patient_id",
        "patient_name",
        "patient_birth_date",
        "other_patient_ids",
        "other_patient_names",
    ]
    assert phi["dicom_study"] == ["referring_physician"]
