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

from loader.core.keys import key_of
from loader.core.model import TABLES, ColumnType
from loader.dicom.decode import decode_header
from loader.extract import extract_object
from loader.headers.reader import read_local
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
    """The keyword paths of a spec of alternatives (`A`, `A|B`, `A|S>B`), each read
    from the first item of its sequences."""
    if not spec or "+" in spec or "(" in spec:
        return None
    return spec.split("|")


def _resolve(ds: pydicom.Dataset, path: str, frame: int | None = None):
    """The value at `S>T>A`: A in the first item of T in the first item of S; in a
    per-frame row, the row's own item of the per-frame functional groups."""
    *sequences, keyword = path.split(">")
    for sequence in sequences:
        items = ds.get(sequence)
        at = frame - 1 if frame and sequence == "PerFrameFunctionalGroupsSequence" else 0
        if not items or len(items) <= at:
            return None
        ds = items[at]
    return _present(ds, keyword)


def _time(text: str) -> dt.time:
    """A DICOM TM value (HHMMSS.FFFFFF, parts optional; ACR-NEMA colons allowed)."""
    text = text.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    whole = whole.ljust(6, "0")
    micro = int(fraction.ljust(6, "0")[:6]) if fraction else 0
    return dt.time(int(whole[:2]), int(whole[2:4]), int(whole[4:6]), micro)


def _date(text: str) -> dt.date:
    text = text.strip().replace(".", "")[:8]
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def test_declared_tags_are_where_each_value_comes_from_in_every_real_file():
    """For every column that declares its attributes: the value pydicom reads from
    the first declared attribute present (nested ones in the first item, a per-frame
    row in its frame's) is the column's (text, numbers, dates, times, date-times),
    and a column whose attributes are all absent is NULL. Keys hash the declared
    parts. Every declared column is compared in some real file, except those named
    in NOT_CHECKED_HERE, with the reason."""
    checked = {name: 0 for name in ("text", "number", "date", "key")}
    columns: set[tuple[str, str]] = set()
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
                        columns.add((table.name, column.name))
    assert min(checked.values()) > 50, checked
    declared = {(t.name, c.name) for t in TABLES for c in t.columns if c.tag and " " not in c.tag}
    assert columns == declared - set(NOT_CHECKED_HERE), sorted(declared - columns)


_NO_REAL_FILE = "no real file holds it (pydicom's and pydicom-data's test files)"
_COLUMNAR = "rows built column by column, one per element or item, not per object"
_FRAMES = (
    "per-frame rows built column by column: tests/test_extract.py::"
    "test_enhanced_multiframe_frames_and_planes and tests/test_frame_offsets.py"
)
_CONTENT = (
    "no real file holds it; objects built with highdicom and synth's are read back by "
    "highdicom and pydicom in tests/test_content_tables.py"
)
_SEGMENT_CODES = "a code sequence kept as JSON: tests/test_extract.py::test_segmentation_rows"
# Columns declaring DICOM attributes that the test above does not compare, each with
# why and, where one does, the test that checks it instead.
NOT_CHECKED_HERE: dict[tuple[str, str], str] = {
    ("dicom_dose_summary", "dose_length_product"): (
        "the content item is found by its concept name in the SR tree (TID 10011), not "
        "by position: tests/test_extract.py::test_dose_report_dlp"
    ),
    ("dicom_element", "instance_key"): _COLUMNAR,
    ("dicom_sequence_item", "instance_key"): _COLUMNAR,
    ("dicom_frame", "cardiac_cycle_position"): _FRAMES,
    ("dicom_frame", "frame_content_datetime"): _FRAMES,
    ("dicom_frame", "frame_length"): _FRAMES,
    ("dicom_frame", "frame_offset"): _FRAMES,
    ("dicom_frame", "slice_location"): _FRAMES,
    ("dicom_frame", "temporal_position_index"): _FRAMES,
    ("dicom_patient", "comments"): _NO_REAL_FILE,
    ("dicom_series", "performed_location"): _NO_REAL_FILE,
    ("dicom_study", "admitting_diagnosis"): _NO_REAL_FILE,
    ("dicom_procedure_step", "performed_procedure_type"): _NO_REAL_FILE,
    ("dicom_segmentation_metadata", "segment_description"): _NO_REAL_FILE,
    ("dicom_segmentation_metadata", "tracking_id"): _CONTENT,
    ("dicom_segmentation_metadata", "tracking_uid"): _CONTENT,
    ("dicom_dose_event", "instance_key"): _CONTENT,
    ("dicom_sr_measurement_group", "instance_key"): _CONTENT,
    ("dicom_sr_measurement", "instance_key"): _CONTENT,
    ("dicom_sr_qualitative_evaluation", "instance_key"): _CONTENT,
    ("dicom_segmentation_metadata", "segmentation_fractional_type"): _NO_REAL_FILE,
    ("dicom_procedure_step", "procedure_step_key"): (
        "a key of grouped alternatives: tests/test_extract.py::test_procedure_step"
    ),
    ("dicom_procedure_step", "performed_procedure_code_seq"): (
        "a code sequence kept as JSON: tests/test_extract.py::test_procedure_step"
    ),
    ("dicom_procedure_step", "requested_procedure_code_seq"): (
        "a code sequence kept as JSON: tests/test_extract.py::test_procedure_step"
    ),
    ("dicom_segmentation_metadata", "anatomic_region_code_seq"): _SEGMENT_CODES,
    ("dicom_segmentation_metadata", "property_category_code_seq"): _SEGMENT_CODES,
    ("dicom_segmentation_metadata", "property_type_code_seq"): _SEGMENT_CODES,
    ("dicom_segmentation_metadata", "recommended_display_grayscale"): _SEGMENT_CODES,
    ("dicom_segmentation_metadata", "referenced_series_key"): (
        "a key of a nested UID: tests/test_extract.py::test_segmentation_rows"
    ),
    ("dicom_structured_report_header", "coding_scheme_identification"): (
        "a sequence kept as JSON: tests/test_extract.py::test_structured_report_header"
    ),
    ("dicom_structured_report_header", "referenced_instance_keys"): (
        "keys of every referenced SOP instance: tests/test_extract.py::test_dose_report_dlp"
    ),
}


def _binary(keyword: str) -> bool:
    """OB, OW, OF … (the VR may be "OB or OW"); LO and other text VRs are not."""
    return any(vr.startswith("O") for vr in dictionary_VR(tag_for_keyword(keyword)).split(" or "))


def _check(ds, row, column, cast) -> str | None:
    if column.name not in row or " " in column.tag:
        return None  # a description ("content item: …"): its table's own tests check it
    value = row[column.name]
    if column.type is ColumnType.KEY and column.tag and ">" not in column.tag:
        if set("|( ") & set(column.tag):
            return None
        parts = [_present(ds, k) for k in column.tag.split("+")]
        expected = key_of(*(None if p is None else _text(p).strip() for p in parts))
        assert value == expected, column.name
        return "key"
    if column.type is ColumnType.TIMESTAMP and re.fullmatch(
        r"(\w+\|)?\w+Date\+\w+Time", column.tag
    ):
        return _check_timestamp(ds, value, column, cast)
    alternatives = _root_alternatives(column.tag)
    if alternatives is None or column.type in (ColumnType.VARIANT, ColumnType.KEY_ARRAY):
        return None
    keywords = [path.split(">")[-1] for path in alternatives]
    if any(_binary(k) for k in keywords):
        return None  # where a binary value is (frame offsets), not its value
    if {f"{tag_for_keyword(k):08X}" for k in keywords} & cast:
        return None  # a value that could not be typed: NULL and a TYPE_CAST_ERROR row
    frame = row.get("frame_number")
    source = next((k for k in alternatives if _resolve(ds, k, frame) is not None), None)
    if source is None:
        defaulted = column.name == "number_of_frames" and value == 1  # a single frame
        assert value is None or defaulted, (column.name, value)
        return None
    assert value is not None, column.name
    read = _resolve(ds, source, frame)
    if column.type is ColumnType.TEXT_ARRAY and source.count(">") == 1:
        # A list read from a sequence: the attribute of every item, in order.
        sequence, keyword = source.split(">")
        read = [v for item in ds[sequence].value if (v := _present(item, keyword)) is not None]
    if column.type is ColumnType.TEXT:
        assert value == _text(read).strip(" \x00"), (column.name, value, read)
        return "text"
    if column.type in (ColumnType.INT, ColumnType.FLOAT):
        assert float(value) == pytest.approx(float(read)), column.name
        return "number"
    if column.type in (ColumnType.FLOAT_ARRAY, ColumnType.TEXT_ARRAY):
        values = list(read) if isinstance(read, pydicom.multival.MultiValue | list) else [read]
        if column.type is ColumnType.FLOAT_ARRAY:
            assert value == pytest.approx([float(v) for v in values]), column.name
        else:
            assert value == [str(v).strip() for v in values], column.name
        return "text"
    if column.type is ColumnType.DATE:
        assert value == _date(str(read)), column.name
        return "date"
    if column.type is ColumnType.TIME:
        assert value == _time(str(read)), (column.name, value, read)
        return "date"
    return None


def _check_timestamp(ds, value, column, cast) -> str | None:
    """`DateTime|Date+Time` or `Date+Time`: the date and time joined (a date alone is
    its midnight); the DT attribute, when declared and present, first."""
    *whole, parts = column.tag.split("|")
    date_keyword, time_keyword = parts.split("+")
    if any(f"{tag_for_keyword(k):08X}" in cast for k in (*whole, date_keyword, time_keyword)):
        return None
    if whole and _present(ds, whole[0]) is not None:
        return None  # a DT value: its offset and precision are the decoder's tests'
    date = _present(ds, date_keyword)
    if date is None:
        assert value is None, column.name
        return None
    time = _present(ds, time_keyword)
    expected = dt.datetime.combine(_date(str(date)), _time(str(time)) if time else dt.time())
    assert value == expected, (column.name, value, expected)
    return "date"


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

    from loader.jobs.settings import Target
    from loader.jobs.targets import open_warehouse
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
