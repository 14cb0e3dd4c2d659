"""The Snowflake statements the loader sends and the COPY results it accepts, without
a server: each statement parses as Snowflake SQL (sqlglot), and the checks follow the
COPY INTO <table> output Snowflake documents (one row per file: file, status,
rows_parsed, rows_loaded, error_limit, errors_seen, first_error, …;
https://docs.snowflake.com/en/sql-reference/sql/copy-into-table). The statements
fakesnow cannot run as written are checked here; the rest run in test_snowflake.py."""

from pathlib import Path

import pytest
import sqlglot

from loader.core.errors import ConfigError, LoadError
from loader.core.model import BY_NAME, TABLES
from loader.jobs.settings import Target
from loader.warehouse.merge import merge_upsert
from loader.warehouse.snowflake import (
    FILE_FORMAT,
    check_copy_results,
    check_put_result,
    copy_statement,
    copy_statements,
    external_stage_statement,
    file_format_statement,
    put_statement,
    render_stage_sql,
    setup_statements,
)


def _copy_row(path: str, status: str = "LOADED", loaded: int | None = 3, error=None) -> tuple:
    return (path, status, loaded, loaded, 1, 0, error, None, None, None)


def test_copy_results_are_checked_file_by_file():
    good = ("s/run/t/part-a.parquet", "LOADED", 3, 3, 1, 0, None, None, None, None)
    check_copy_results("t", [good], {"part-a.parquet": 3})
    with pytest.raises(LoadError):  # a COPY that loaded nothing looks clean
        check_copy_results("t", [("Copy executed with 0 files processed.",)], {"part-a.parquet": 3})
    with pytest.raises(LoadError):
        check_copy_results(
            "t", [(*good[:1], "LOAD_SKIPPED", 0, 0, *good[4:])], {"part-a.parquet": 3}
        )
    with pytest.raises(LoadError):
        check_copy_results("t", [(*good[:3], 2, *good[4:])], {"part-a.parquet": 3})
    with pytest.raises(LoadError):
        check_copy_results("t", [good], {"part-a.parquet": 3, "part-b.parquet": 1})


def test_real_snowflake_statements_parse():
    """The statements fakesnow cannot run as written still parse as Snowflake SQL."""
    files = [f"part-{i:016x}.parquet" for i in range(1000)]
    copy = copy_statement(BY_NAME["dicom_raw"], "DICOM_LOADER_STAGE", "run-1", files)
    statements = [
        *setup_statements("DICOM_LOADER_STAGE"),
        copy,
        *[
            s
            for t in TABLES
            if t.mode.value == "entity"
            for u in (False, True)
            for s in merge_upsert(t, u)
        ],
    ]
    for statement in statements:
        assert sqlglot.parse_one(statement, read="snowflake") is not None
    assert "CHANGE_TRACKING = TRUE" in setup_statements("S")[0]
    parsed = sqlglot.parse_one(copy, read="snowflake")
    assert "PARSE_JSON($1:metadata)" in copy
    assert copy.count(".parquet'") == 1000 and "FILES = ('part-0000000000000000.parquet'" in copy
    assert parsed.find(sqlglot.exp.Copy) is not None


def test_sql_files_are_rendered_from_model():
    from loader.core.model import render_ddl

    folder = Path(__file__).resolve().parents[1] / "sql" / "snowflake"
    assert (folder / "model.sql").read_text() == render_ddl("snowflake")
    assert (folder / "stage.sql").read_text() == render_stage_sql()


def test_put_of_a_path_with_quotes_and_spaces(tmp_path):
    path = tmp_path / 'it\'s a "dir"' / "part-00.parquet"
    statement = put_statement(path, "DICOM_LOADER_STAGE", "run-1", "dicom_raw")
    literal = sqlglot.parse_one(statement, read="snowflake").this
    assert literal.this == f"file://{path.resolve()}"


def test_external_stage_statement():
    statement = external_stage_statement("EXT", "s3://bucket/dicom/", "MY_INT")
    assert statement == (
        "CREATE OR REPLACE STAGE \"EXT\" URL = 's3://bucket/dicom/' "
        "STORAGE_INTEGRATION = \"MY_INT\" FILE_FORMAT = (FORMAT_NAME = 'DICOM_LOADER_PARQUET')"
    )
    assert sqlglot.parse_one(statement, read="snowflake") is not None
    with pytest.raises(ConfigError):
        Target.parse("duckdb:///x.duckdb", stage_url="s3://bucket/x/")


def test_each_file_of_every_copy_statement_is_counted_once():
    """Files are named by their last path part; a table's files may come back from
    several COPY statements, each file once with its rows."""
    results = [
        _copy_row("stage/run-1/dicom_raw/part-a.parquet", loaded=3),
        _copy_row("part-b.parquet", loaded=4),
        _copy_row("s3://bucket/out/run-1/dicom_raw/part-c.parquet", loaded=0),
    ]
    check_copy_results(
        "t", results, {"part-a.parquet": 3, "part-b.parquet": 4, "part-c.parquet": 0}
    )
    with pytest.raises(LoadError, match=r"wrong row counts \['part-c.parquet'\]"):
        check_copy_results(
            "t", results, {"part-a.parquet": 3, "part-b.parquet": 4, "part-c.parquet": 2}
        )


def test_a_file_not_loaded_fails_with_its_status_and_first_error():
    row = _copy_row("part-a.parquet", "LOAD_FAILED", 0, "Numeric value 'x' is not recognized")
    with pytest.raises(LoadError) as failure:
        check_copy_results("dicom_raw", [row], {"part-a.parquet": 3})
    assert str(failure.value) == (
        "dicom_raw: COPY of part-a.parquet ended LOAD_FAILED: Numeric value 'x' is not recognized"
    )


def test_a_file_loaded_without_a_row_count_counts_none():
    with pytest.raises(LoadError, match=r"loaded \{'part-a.parquet': 0\}"):
        check_copy_results("t", [_copy_row("part-a.parquet", loaded=None)], {"part-a.parquet": 3})


def test_files_missing_from_the_results_are_named():
    expected = {f"part-{i}.parquet": 1 for i in range(8)}
    results = [_copy_row("part-0.parquet", loaded=1)]
    with pytest.raises(LoadError) as failure:
        check_copy_results("t", results, expected)
    # The first five missing files, sorted, and none of the loaded one.
    assert "missing ['part-1.parquet', 'part-2.parquet', 'part-3.parquet', " in str(failure.value)
    assert "'part-5.parquet'], wrong row counts [])" in str(failure.value)


def test_files_loaded_with_other_row_counts_are_named():
    expected = {f"part-{i}.parquet": 2 for i in range(7)}
    results = [_copy_row(f"part-{i}.parquet", loaded=1) for i in range(7)]
    with pytest.raises(LoadError) as failure:
        check_copy_results("t", results, expected)
    named = [f"'part-{i}.parquet'" for i in range(5)]  # the first five, sorted
    assert str(failure.value).endswith(f"(missing [], wrong row counts [{', '.join(named)}])")


def test_a_copy_result_without_per_file_columns_is_refused():
    with pytest.raises(LoadError, match="COPY returned no per-file result"):
        check_copy_results("t", [_copy_row("a", loaded=1)[:9]], {"a": 1})
    check_copy_results("t", [], {})


def test_copy_files_lists_hold_at_most_a_thousand_files_in_order():
    """Snowflake's limit for a FILES list is 1,000 names (COPY INTO <table>)."""
    names = [f"part-{i:05d}.parquet" for i in range(2001)]
    statements = copy_statements("dicom_raw", "STAGE", "run-1/dicom_raw/", names)
    listed = []
    for statement in statements:
        parsed = sqlglot.parse_one(statement, read="snowflake")
        assert parsed.find(sqlglot.exp.Copy) is not None
        listed.append(statement.split("FILES = (", 1)[1].split(")", 1)[0].split(", "))
    assert [len(files) for files in listed] == [1000, 1000, 1]
    assert [f.strip("'") for files in listed for f in files] == names
    assert copy_statements("dicom_raw", "STAGE", "run-1/dicom_raw/", []) == []


def test_copy_reads_the_stage_folder_with_the_loaders_file_format():
    statement = copy_statement(BY_NAME["dicom_raw"], "MY_STAGE", "run-1/dicom_raw/", ["a.parquet"])
    assert "FROM @\"MY_STAGE\"/run-1/dicom_raw/) FILES = ('a.parquet') " in statement
    assert statement.endswith(
        f"FILE_FORMAT = (FORMAT_NAME = '{FILE_FORMAT}') ON_ERROR = ABORT_STATEMENT FORCE = TRUE"
    )
    assert statement.startswith("COPY INTO dl_stage_dicom_raw (file_path, metadata, ")


def test_put_of_a_path_with_a_backslash(tmp_path):
    path = tmp_path / "back\\slash" / "part-00.parquet"
    statement = put_statement(path, "DICOM_LOADER_STAGE", "run-1", "dicom_raw")
    assert sqlglot.parse_one(statement, read="snowflake").this.this == f"file://{path.resolve()}"
    assert statement.endswith(
        '@"DICOM_LOADER_STAGE"/run-1/dicom_raw/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE PARALLEL = 4'
    )


def test_an_external_stage_without_an_integration_names_none():
    statement = external_stage_statement("EXT", "s3://bucket/dicom/", None)
    assert statement == (
        "CREATE OR REPLACE STAGE \"EXT\" URL = 's3://bucket/dicom/' "
        "FILE_FORMAT = (FORMAT_NAME = 'DICOM_LOADER_PARQUET')"
    )


def test_the_file_format_reads_logical_types_with_the_vectorized_scanner():
    options = "TYPE = PARQUET USE_LOGICAL_TYPE = TRUE USE_VECTORIZED_SCANNER = TRUE"
    assert file_format_statement("F") == f"CREATE OR REPLACE FILE FORMAT F {options}"
    assert file_format_statement("F", "TEMPORARY") == (
        f"CREATE OR REPLACE TEMPORARY FILE FORMAT F {options}"
    )


def test_the_stage_file_holds_the_file_format_and_the_stage_only():
    rendered = render_stage_sql("MY_STAGE")
    text = "\n".join(line for line in rendered.splitlines() if not line.startswith("--"))
    body = [s.strip() for s in text.split(";") if s.strip()]
    assert body == [file_format_statement(FILE_FORMAT), 'CREATE STAGE IF NOT EXISTS "MY_STAGE"']
    assert setup_statements("MY_STAGE")[len(TABLES) :] == body


def _put_row(status: str) -> tuple:
    """A PUT's row as Snowflake documents its output: source, target, their sizes and
    compressions, status, message."""
    return ("part-a.parquet", "part-a.parquet", 2048, 2048, "NONE", "NONE", status, "")


@pytest.mark.parametrize(
    ("rows", "uploaded"),
    [
        ([_put_row("UPLOADED")], True),
        ([_put_row("SKIPPED")], True),  # on the stage already, the same checksum
        ([], False),  # the path matched no file
        ([_put_row("UPLOADED"), _put_row("UPLOADED")], False),  # not the one file asked
        ([_put_row("ERROR")], False),
    ],
)
def test_a_put_is_checked_by_its_one_row(rows, uploaded):
    path = Path("/out/_snowflake_stage/run_id=r/dicom_raw/part-a.parquet")
    if uploaded:
        check_put_result("dicom_raw", path, rows)
        return
    with pytest.raises(LoadError, match=r"^PUT of part-a\.parquet for dicom_raw did not upload"):
        check_put_result("dicom_raw", path, rows)
