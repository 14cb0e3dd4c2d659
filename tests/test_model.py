import re
from pathlib import Path

import duckdb
import pyarrow as pa

from loader.model import BY_NAME, EXTRACTED, TABLES, arrow_schema, phi_columns, render_ddl

ROOT = Path(__file__).resolve().parents[1]
MODEL_MD = ROOT.parent / "shared" / "MODEL.md"


def test_sql_file_is_rendered_from_model():
    assert (ROOT / "sql" / "duckdb" / "model.sql").read_text() == render_ddl("duckdb")


def test_every_model_md_table_and_column_exists():
    text = MODEL_MD.read_text()
    tables = set(re.findall(r"\*\*([a-z_]+)\*\*", text))
    assert tables <= set(BY_NAME), tables - set(BY_NAME)
    # Columns named in MODEL.md's table entries exist in the model.
    for name in tables:
        entry = text.split(f"**{name}**", 1)[1].split("**", 1)[0].split("\n#", 1)[0]
        wanted = set(re.findall(r"`([a-z_]+)(?:\s[A-Z][A-Z0-9_(),]*)?`", entry))
        wanted -= {name}
        have = set(BY_NAME[name].column_names)
        missing = {w for w in wanted if w not in have and not w.startswith("_")}
        assert not missing, (name, missing)


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


def test_phi_columns_follow_model_md():
    phi = phi_columns()
    assert phi["dicom_patient"] == [
        "patient_id",
        "patient_name",
        "patient_birth_date",
        "other_patient_ids",
        "other_patient_names",
    ]
    assert phi["dicom_study"] == ["referring_physician"]
