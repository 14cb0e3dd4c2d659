"""The model described as rows (`sql --pattern model-knowledge`): every column's DICOM
tag is checked against pydicom's dictionary and against pydicom reading the real
files; the table is created from the CLI's DuckDB SQL, and deployed with its Cortex
Search service on the Snowflake emulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys

import duckdb
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from loader.decode import decode_header
from loader.extract import extract_object
from loader.headers import read_local
from loader.keys import key_of
from loader.model import TABLES, ColumnType
from loader.warehouse.patterns import Names, render
from loader.warehouse.patterns.model_knowledge import KNOWLEDGE_TABLE, knowledge_rows
from tests.conftest import loadable_real_files
from tests.test_extract import STORE, facts

ALL_COLUMNS = [(t.name, c.name) for t in TABLES for c in t.columns]


def _paths(spec: str) -> list[list[str]]:
    """Every keyword path of a spec (parentheses, `+` and `|` split it)."""
    return [part.split(">") for part in re.split(r"[|+()]", spec) if part]


def test_every_declared_keyword_is_in_pydicoms_dictionary_and_sequences_nest():
    declared = 0
    for table in TABLES:
        for column in table.columns:
            for path in _paths(column.tag) if column.tag else []:
                if " " in path[0]:  # a description, not an attribute ("frame number")
                    continue
                declared += 1
                for keyword in path:
                    assert tag_for_keyword(keyword) is not None, (table.name, keyword)
                for sequence in path[:-1]:
                    assert dictionary_VR(tag_for_keyword(sequence)) == "SQ", sequence
    assert declared > 100


def _present(ds: pydicom.Dataset, keyword: str):
    tag = tag_for_keyword(keyword)
    value = (ds.file_meta if tag >> 16 == 2 else ds).get(keyword)
    if value is None or value == "" or (isinstance(value, list | tuple) and not value):
        return None
    return value


def _text(value) -> str:
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _root_alternatives(spec: str) -> list[str] | None:
    """The keywords of a spec that reads root attributes only (`A` or `A|B`)."""
    if not spec or ">" in spec or "+" in spec:
        return None
    return spec.split("|")


def test_declared_tags_are_where_each_value_comes_from_in_every_real_file():
    """For every column read from root attributes: the value pydicom reads from the
    first declared attribute present is the column's (text, numbers, dates), and a
    column whose attributes are all absent is NULL. Keys hash the declared parts."""
    checked = {name: 0 for name in ("text", "number", "date", "key")}
    for path in loadable_real_files():
        parsed = read_local(path, os.path.getsize(path))
        object_facts = dataclasses.replace(
            facts(path), transfer_syntax_uid=parsed.transfer_syntax_uid
        )
        rows, errors = extract_object(decode_header(parsed, path, store=STORE), object_facts)
        if "dicom_instance" not in rows:
            continue  # a file-level error: no model rows to check
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        cast = {
            re.sub(r"[^0-9A-F]", "", e["tag"].upper())
            for e in errors
            if e["error_category"] == "TYPE_CAST_ERROR" and e["tag"]
        }
        for table in TABLES:
            for row in rows.get(table.name, []):
                if not isinstance(row, dict):
                    continue  # columnar tables (elements, items) carry no root tags
                for column in table.columns:
                    found = _check(ds, row, column, cast)
                    if found:
                        checked[found] += 1
    assert min(checked.values()) > 50, checked


def _check(ds, row, column, cast) -> str | None:
    if column.name not in row:
        return None
    value = row[column.name]
    if column.type is ColumnType.KEY and column.tag and ">" not in column.tag:
        if set("|( ") & set(column.tag):
            return None
        parts = [_present(ds, k) for k in column.tag.split("+")]
        expected = key_of(*(None if p is None else _text(p).strip() for p in parts))
        assert value == expected, column.name
        return "key"
    alternatives = _root_alternatives(column.tag)
    if alternatives is None or column.type in (ColumnType.VARIANT, ColumnType.KEY_ARRAY):
        return None
    if any("O" in dictionary_VR(tag_for_keyword(k)) for k in alternatives):
        return None  # where a binary value is (frame offsets), not its value
    if {f"{tag_for_keyword(k):08X}" for k in alternatives} & cast:
        return None  # a value that could not be typed: NULL and a TYPE_CAST_ERROR row
    source = next((k for k in alternatives if _present(ds, k) is not None), None)
    if source is None:
        defaulted = column.name == "number_of_frames" and value == 1  # a single frame
        assert value is None or defaulted, (column.name, value)
        return None
    assert value is not None, column.name
    read = _present(ds, source)
    if column.type is ColumnType.TEXT:
        assert value == _text(read).strip(" \x00"), (column.name, value, read)
        return "text"
    if column.type in (ColumnType.INT, ColumnType.FLOAT):
        assert float(value) == pytest.approx(float(read)), column.name
        return "number"
    if column.type in (ColumnType.FLOAT_ARRAY, ColumnType.TEXT_ARRAY):
        values = list(read) if isinstance(read, pydicom.multival.MultiValue) else [read]
        if column.type is ColumnType.FLOAT_ARRAY:
            assert value == pytest.approx([float(v) for v in values]), column.name
        else:
            assert value == [str(v).strip() for v in values], column.name
        return "text"
    if column.type is ColumnType.DATE:
        text = str(read).strip().replace(".", "")[:8]
        assert value == dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])), column.name
        return "date"
    return None


def test_the_knowledge_rows_say_what_the_model_says():
    rows = {(r.table_name, r.column_name): r for r in knowledge_rows()}
    assert list(rows) == ALL_COLUMNS
    patient_id = rows[("dicom_patient", "patient_id")]
    assert patient_id.dicom_tag == "(0010,0020) PatientID"
    assert "PHI" in (patient_id.constraints or "")
    study_key = rows[("dicom_study", "patient_key")]
    assert study_key.relationships == "references dicom_patient.patient_key"
    assert "FOREIGN KEY REFERENCES dicom_patient" in (study_key.constraints or "")
    referenced = rows[("dicom_instance", "instance_key")].relationships or ""
    assert "referenced by dicom_frame.instance_key" in referenced
    assert rows[("dicom_image_plane", "frame_number")].constraints == (
        "PRIMARY KEY (instance_key, frame_number)"
    )
    assert rows[("dicom_instance", "sop_instance_uid")].constraints == "UNIQUE"


def test_duckdb_gets_the_table_from_the_cli_sql():
    """`dicom-loader sql --dialect duckdb` run by DuckDB: every table of the model
    and the knowledge table, one row per column, with DuckDB's types, and each
    foreign key naming a table that exists."""
    sql = subprocess.run(
        [sys.executable, "-m", "loader", "sql", "--dialect", "duckdb"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    con = duckdb.connect()
    con.execute(sql)
    rows = con.execute(
        f"SELECT table_name, column_name, data_type, dicom_tag FROM {KNOWLEDGE_TABLE}"
    ).fetchall()
    assert [(t, c) for t, c, _, _ in rows] == ALL_COLUMNS
    actual = {
        (t, c): d
        for t, c, d in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            f"WHERE table_name <> '{KNOWLEDGE_TABLE}'"
        ).fetchall()
    }
    for table, column, data_type, _ in rows:
        assert actual[(table, column)] == data_type, (table, column)
    references = con.execute(
        f"SELECT DISTINCT regexp_extract(relationships, 'references (\\w+)\\.', 1) "
        f"FROM {KNOWLEDGE_TABLE} WHERE relationships LIKE 'references %'"
    ).fetchall()
    tables = {t.name for t in TABLES}
    assert len(references) >= 7 and {r[0] for r in references} <= tables


def test_the_service_is_created_over_a_change_tracked_table():
    """Cortex Search reads its source's changes: the table has change tracking
    (https://docs.snowflake.com/en/user-guide/snowflake-cortex/cortex-search/
    cortex-search-overview, "Change tracking"); the service lists the search column
    and its attributes, and is created once."""
    statements = render("model-knowledge", Names(warehouse="LOAD_WH"))
    assert re.search(r"CHANGE_TRACKING = TRUE$", statements[0])
    assert statements[1].startswith(f"INSERT OVERWRITE INTO {KNOWLEDGE_TABLE} ")
    assert statements[2].startswith("CREATE CORTEX SEARCH SERVICE IF NOT EXISTS ")


@pytest.mark.server
def test_deploy_creates_the_table_and_the_search_service_twice_the_same(snowflake_target):
    """`deploy --pattern model-knowledge` through the CLI, twice: the table holds the
    model's rows once (replaced, not appended), the service is created once, and what
    it indexes finds a column by its tag."""
    from fakesnow_gaps import CATALOG

    from loader.config import Target
    from loader.pipeline import open_warehouse
    from tests.test_cli import dicom_loader

    schema = snowflake_target.split("/")[4].split("?")[0]
    for _ in (1, 2):
        done = dicom_loader("deploy", "--pattern", "model-knowledge", "--target", snowflake_target)
        assert "deployed model-knowledge: 3 statements" in done.stdout
    assert CATALOG.created[(schema, "search_service", "DICOM_MODEL_SEARCH")] == 1
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        held = warehouse.query(
            f"SELECT table_name, column_name, dicom_tag FROM {KNOWLEDGE_TABLE} "
            "ORDER BY table_name, column_name"
        )
        found = warehouse.query(
            "SELECT table_name, column_name FROM dicom_model_search "
            "WHERE search_text LIKE '%(0008,0060) Modality%'"
        )
    finally:
        warehouse.close()
    expected = sorted((r.table_name, r.column_name, r.dicom_tag) for r in knowledge_rows())
    assert sorted(tuple(r) for r in held) == expected
    assert ("dicom_series", "modality") in {tuple(r) for r in found}
