"""The Snowflake target through the real connector against a fakesnow server."""

import json
import os
import re
import socket
import time

import duckdb
import pytest
from fakesnow_gaps import LOCAL_BUCKET

from loader.core.errors import ConfigError, LoadError, StatementError
from loader.core.faults import InjectedFault
from loader.core.keys import SQL_KEY_EXPRESSION
from loader.core.model import BY_NAME, EXTRACTED, TABLES
from loader.jobs.load import load
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.warehouse.snowflake import (
    SnowflakeWarehouse,
)
from loader.warehouse.snowflake_target import parse_snowflake_target


def _keys(fetch, table: str) -> tuple[int, set]:
    key = ", ".join(BY_NAME[table].key)
    rows = fetch(f"SELECT {key} FROM {table}")
    return len(rows), {tuple(int(v) if isinstance(v, int) else v for v in r) for r in rows}


@pytest.fixture(scope="module")
def written_run(synth_archive, tmp_path_factory):
    """The synth archive loaded into DuckDB, its Parquet kept for other targets. Made
    once: each test loads it into its own Snowflake schema and reads the DuckDB file
    only; a load removes what it staged under the output, and one that fails leaves
    what the next load overwrites."""
    root, _ = synth_archive
    tmp_path = tmp_path_factory.mktemp("written-run")
    report = run(
        RunSettings(
            source=str(root),
            out=tmp_path / "pq",
            workers=0,
            shard_size=100,  # several shards: several files per table to compact
            run_id="parity",
            target=Target.parse(f"duckdb:///{tmp_path / 'w.duckdb'}"),
        )
    )
    return tmp_path / "pq", tmp_path / "w.duckdb", report


def test_same_run_in_duckdb_and_snowflake(written_run, snowflake_target):
    out, db, duck_report = written_run
    report = load(out, "parity", Target.parse(snowflake_target))
    con = duckdb.connect(str(db), read_only=True)
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        for name in [t.name for t in TABLES if t.name != "dicom_load_history"]:
            duck = _keys(lambda sql: con.execute(sql).fetchall(), name)
            flake = _keys(snow.query, name)
            assert duck == flake, name
        history = snow.query("SELECT shard_id, listed, rows_per_table FROM dicom_load_history")
        assert len(history) == duck_report["shards"]
        assert sum(row[1] for row in history) == duck_report["listed"]
        instances = sum(json.loads(row[2]).get("dicom_instance", 0) for row in history)
        assert instances == duck_report["rows"]["dicom_instance"]
    finally:
        snow.close()
    for key in ("listed", "loaded", "duplicates", "error_files", "errors", "rows"):
        assert report[key] == duck_report[key], key
    assert report["validation"] == duck_report["validation"]
    assert report["validation_passed"]


def _rows(fetch, table: str) -> list[tuple]:
    """Every row of a table, without load times: what a rerun must reproduce."""
    audit = {"_loaded_at", "detected_at"}  # DUPLICATE rows are detected at each load
    cols = ", ".join(c for c in BY_NAME[table].column_names if c not in audit)
    return sorted(fetch(f"SELECT {cols} FROM {table}"), key=repr)


@pytest.mark.parametrize("point", ["mid-copy", "after-copy", "mid-merge"])
def test_reload_and_interrupted_load_leave_the_same_tables(
    written_run, snowflake_target, monkeypatch, point
):
    """A failure at any point leaves the model tables as they were (the merge is one
    transaction), and the rerun ends with the tables an uninterrupted load gives."""
    out, _, _ = written_run
    target = Target.parse(snowflake_target)
    first = load(out, "parity", target)
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        before = {name: _rows(snow.query, name) for name in EXTRACTED}
        monkeypatch.setenv("DICOM_LOADER_FAIL_AT", point)
        with pytest.raises(InjectedFault):
            load(out, "parity", target)
        assert {name: _rows(snow.query, name) for name in EXTRACTED} == before
        monkeypatch.delenv("DICOM_LOADER_FAIL_AT")
        again = load(out, "parity", target)
        after = {name: _rows(snow.query, name) for name in EXTRACTED}
    finally:
        snow.close()
    assert before == after
    assert again["new_instances"] == 0
    assert (again["loaded"], again["duplicates"]) == (first["loaded"], first["duplicates"])


def test_a_load_leaves_no_staging_table_staged_file_or_compacted_file(
    written_run, snowflake_target
):
    """What a load makes on its way (transient staging tables, files PUT to the
    internal stage, compacted files under the output) is gone once it is loaded."""
    out, _, _ = written_run
    root = OutputRoot.of(out)
    shards = list(ledger.committed_shards(root, "parity"))
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        started = time.time()
        result = snow.load_run(root, "parity", shards)
        assert 0 < result.seconds <= time.time() - started  # the load's own time
        tables = {r["name"].lower() for r in snow.records("SHOW TABLES")}
        staged = snow.query("LIST @DICOM_LOADER_STAGE")
    finally:
        snow.close()
    assert "dicom_instance" in tables and not [t for t in tables if t.startswith("dl_stage_")]
    assert staged == []
    assert not (out / "_snowflake_stage" / "run_id=parity").exists()
    # The run is far below the 150 MB target: each table's rows go in one file.
    assert {f["files"] for f in result.staged_files.values()} <= {0, 1}
    assert result.staged_files["dicom_instance"]["files"] == 1


def test_named_connection_from_connections_toml(tmp_path, fakesnow_server, snowflake_target):
    """`snowflake:NAME` reads the connector's own connections.toml (SNOWFLAKE_HOME)."""
    import subprocess
    import sys

    from loader.synth import synthesize

    parsed = parse_snowflake_target(snowflake_target)
    home = tmp_path / "snowflake-home"
    home.mkdir()
    kw = parsed.connect_kwargs
    toml = home / "connections.toml"
    toml.write_text(
        "[dicom]\n"
        + "".join(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in kw.items())
    )
    toml.chmod(0o600)
    archive = tmp_path / "archive"
    synthesize(archive, patients=3, seed=4)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loader",
            "run",
            str(archive),
            "--workers",
            "0",
            "--out",
            str(tmp_path / "pq"),
            "--target",
            "snowflake:dicom",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SNOWFLAKE_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "listed = loaded + duplicates + errors" in done.stdout
    assert kw["password"] not in done.stdout + done.stderr
    checked = subprocess.run(
        [sys.executable, "-m", "loader", "validate", "--target", "snowflake:dicom"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SNOWFLAKE_HOME": str(home)},
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert json.loads(checked.stdout)["orphan_instances"] == 0
    assert json.loads(checked.stdout)["total_records"] > 0


def test_output_folder_with_spaces(tmp_path, snowflake_target):
    from loader.synth import synthesize

    archive = tmp_path / "my archive"
    synthesize(archive, patients=2, seed=6)
    report = run(
        RunSettings(
            source=str(archive),
            out=tmp_path / "parquet out dir",
            workers=0,
            target=Target.parse(snowflake_target),
        )
    )
    assert report["validation_passed"] and report["loaded"] > 0
    again = run(
        RunSettings(
            source=str(archive),
            out=tmp_path / "parquet out dir",
            workers=0,
            target=Target.parse(snowflake_target),
            incremental=True,
        )
    )
    assert again["unchanged"] == report["loaded"] + report["duplicates"]
    assert again["validation_passed"]


def test_a_statement_snowflake_refuses_is_one_line_naming_it(snowflake_target):
    """The connector's error for a refused statement (a table that does not exist)
    becomes a StatementError: the server's reason, then the statement, one line."""
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        with pytest.raises(StatementError) as refused:
            snow.query("SELECT 1 FROM no_such_table")
    finally:
        snow.close()
    import snowflake.connector
    from snowflake.connector.errors import ProgrammingError

    with (
        snowflake.connector.connect(
            **parse_snowflake_target(snowflake_target).connect_kwargs
        ) as con,
        pytest.raises(ProgrammingError) as direct,
    ):  # the connector's own refusal
        con.cursor().execute("SELECT 1 FROM no_such_table")
    reason = " ".join(str(direct.value).split())  # the connector's own message
    assert "NO_SUCH_TABLE" in reason.upper()
    assert str(refused.value) == f"{reason} (in: SELECT 1 FROM no_such_table)"


def test_secrets_never_printed(snowflake_target):
    password = "S3cr3t-Pa55w0rd"
    snowflake_target = snowflake_target.replace(":snow@", f":{password}@")
    parsed = parse_snowflake_target(snowflake_target)
    assert parsed.connect_kwargs["password"] == password
    target = Target.parse(snowflake_target)
    for text in (
        str(target),
        repr(target),
        repr(parsed),
        parsed.description,
        repr(RunSettings(source="x", target=target)),
    ):
        assert password not in text
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    closed = re.sub(r"port=\d+", f"port={closed_port}", snowflake_target)
    closed = closed.replace("network_timeout=5", "network_timeout=1") + "&login_timeout=2"
    with pytest.raises(LoadError) as failure:
        SnowflakeWarehouse(closed)
    assert "cannot connect" in str(failure.value)
    assert password not in str(failure.value)


@pytest.mark.parametrize(
    "bad",
    [
        "snowflake://u@acct/x;drop table y/S",
        "snowflake://u@acct/DB/S?warehouse=wh;drop",
        "snowflake://u@acct/DB/S?stage=a b",
        "snowflake://u@acct/DB/S?role=r%22x",
        "snowflake://u@acct/DB",
        "snowflake://u@acct/DB/S?unknown=1",
    ],
)
def test_identifiers_are_validated_before_any_sql(bad):
    with pytest.raises(ConfigError):
        Target.parse(bad)


def test_parquet_already_in_storage_loads_through_an_external_stage(written_run, snowflake_target):
    """No PUT: an external stage on the --out root, COPY with explicit FILES lists."""
    out, _, duck_report = written_run
    # The harness reads s3://fakesnow-local/PATH from the local PATH (fakesnow_gaps.py).
    target = Target.parse(snowflake_target, stage_url=f"{LOCAL_BUCKET}{out.resolve()}/")
    report = load(out, "parity", target)
    for key in ("listed", "loaded", "duplicates", "error_files", "rows"):
        assert report[key] == duck_report[key], key
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        stages = {r[1] for r in snow.query("SHOW STAGES")}
    finally:
        snow.close()
    assert "DICOM_LOADER_STAGE_EXTERNAL" in stages


@pytest.mark.parametrize("url", ["s3://bucket/x' OR 1=1", "http://example.org/x", "file:///x"])
def test_stage_url_is_validated(snowflake_target, url):
    with pytest.raises(ConfigError):
        Target.parse(snowflake_target, stage_url=url)


def _comparable(value, kind):
    """A warehouse value as plain Python: the connector returns ARRAY and VARIANT as
    JSON text, DuckDB returns lists and JSON text; keys come as int from both."""
    from loader.core.model import ColumnType as T

    if value is None:
        return None
    arrays = (T.VARIANT, T.TEXT_ARRAY, T.FLOAT_ARRAY, T.INT_ARRAY, T.KEY_ARRAY)
    if kind in arrays and isinstance(value, str):
        value = json.loads(value)
    if kind is T.KEY_ARRAY:
        return [int(v) for v in value]
    if kind is T.KEY:
        return int(value)
    return value


LOAD_TIME = "<the load's own time>"


def _all_rows(fetch, table: str) -> list[tuple]:
    """Every column but `_loaded_at` (each load's own time). The one documented
    exception (sql/snowflake/README.md): a DUPLICATE row is detected by the load, so
    its detected_at is that load's time; it is asserted to be exactly that."""
    model = BY_NAME[table]
    columns = [c for c in model.columns if c.name != "_loaded_at"]
    rows = fetch(f"SELECT {', '.join(c.name for c in columns)}, _loaded_at FROM {table}")
    converted = []
    for *values, loaded_at in rows:
        row = {c.name: _comparable(v, c.type) for v, c in zip(values, columns, strict=True)}
        if row.get("error_category") == "DUPLICATE":
            assert row["detected_at"] == loaded_at
            row["detected_at"] = LOAD_TIME
        converted.append(tuple(row.values()))
    return sorted(converted, key=repr)


def test_every_value_equal_in_duckdb_and_snowflake(written_run, snowflake_target):
    """Loaded from the same Parquet, the two warehouses hold equal values in every
    column of every table: keys, timestamps, times, dates, arrays and JSON included."""
    out, db, _ = written_run
    report = load(out, "parity", Target.parse(snowflake_target, stage_file_mb=0.02))
    con = duckdb.connect(str(db), read_only=True)
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        for name in EXTRACTED:
            duck = _all_rows(lambda sql: con.execute(sql).fetchall(), name)
            flake = _all_rows(snow.query, name)
            assert len(duck) == len(flake), name
            for d_row, s_row in zip(duck, flake, strict=True):
                assert d_row == s_row, name
    finally:
        snow.close()
        con.close()
    # 20 KB files: the element table is staged as several files, all copied.
    assert report["staged_files"]["dicom_element"]["files"] > 1
    assert report["rows"]["dicom_element"] > 0


def test_keys_above_two_to_the_63_load_exactly(written_run, snowflake_target):
    """About half of all keys are ≥ 2^63; they reach both warehouses unchanged and equal
    MD5_NUMBER_LOWER64 of their natural key (Snowflake's documented function) and
    the lower 64 bits of Python's MD5; in DuckDB, the loader's key expression."""
    import hashlib

    out, db, _ = written_run
    load(out, "parity", Target.parse(snowflake_target))
    snow = SnowflakeWarehouse(snowflake_target)
    con = duckdb.connect(str(db), read_only=True)
    try:
        flake = snow.query(
            "SELECT sop_instance_uid, instance_key, MD5_NUMBER_LOWER64(sop_instance_uid) "
            "FROM dicom_instance"
        )
        expression = SQL_KEY_EXPRESSION["duckdb"].format(s="sop_instance_uid")
        duck = {
            uid: (key, computed)
            for uid, key, computed in con.execute(
                f"SELECT sop_instance_uid, instance_key, {expression} FROM dicom_instance"
            ).fetchall()
        }
    finally:
        snow.close()
        con.close()
    high = [row for row in flake if int(row[1]) >= 2**63]
    assert high and len(high) < len(flake)
    for uid, key, function in flake:
        digest = int.from_bytes(hashlib.md5(uid.encode()).digest()[8:], "big")
        assert int(key) == int(function) == digest == duck[uid][0] == duck[uid][1]


def test_computed_counts_equal_on_real_files_in_both_warehouses(
    real_archive, snowflake_target, tmp_path
):
    """pydicom's test files hold studies whose series name no modality: a study's
    modalities are NULL there in DuckDB and in Snowflake alike (not `[]`, which
    Snowflake's ARRAY_AGG gives over no value, nor `[null]`), and every computed
    count is equal."""
    duck_db = tmp_path / "real.duckdb"
    run(
        RunSettings(
            source=str(real_archive), out=tmp_path / "pq", workers=0, run_id="real",
            target=Target.parse(f"duckdb:///{duck_db}"),
        )
    )  # fmt: skip
    load(tmp_path / "pq", "real", Target.parse(snowflake_target))
    con = duckdb.connect(str(duck_db), read_only=True)
    snow = SnowflakeWarehouse(snowflake_target)
    try:
        duck = _all_rows(lambda sql: con.execute(sql).fetchall(), "dicom_study")
        flake = _all_rows(snow.query, "dicom_study")
        (none,) = con.execute(
            "SELECT count(*) FROM dicom_study st WHERE NOT EXISTS (SELECT 1 FROM dicom_series "
            "se WHERE se.study_key = st.study_key AND se.modality IS NOT NULL)"
        ).fetchone()
    finally:
        snow.close()
        con.close()
    assert none > 0  # the case this is about is there
    assert duck == flake
    at = [c.name for c in BY_NAME["dicom_study"].columns if c.name != "_loaded_at"].index(
        "modalities_in_study"
    )
    assert sum(1 for row in duck if row[at] is None) >= none
