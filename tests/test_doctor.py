"""`dicom-loader doctor`: every check runs and is reported by name; a missing
privilege, an unusable session or a locked DuckDB file is reported with its fix and
exit 1, never raised; nothing but temporary objects is left behind.

Snowflake through the real connector against the fakesnow server, whose roles and
grants the harness keeps as Snowflake documents them (tests/fakesnow_gaps.py)."""

from __future__ import annotations

import re
import subprocess

import duckdb
import pytest

from loader.jobs.settings import Target
from loader.jobs.targets import open_warehouse
from tests.conftest import as_admin
from tests.test_cli import dicom_loader

pytestmark = pytest.mark.server


def _lines(done: subprocess.CompletedProcess) -> dict[str, str]:
    """Check name → status, from doctor's report."""
    found = {}
    for line in done.stdout.splitlines():
        if match := re.match(r"^(ok|MISSING)\s+(.+?)\s{2,}", line):
            found[match.group(2)] = match.group(1)
    return found


def _schema(target: str) -> str:
    return target.split("/")[4].split("?")[0]


def test_every_check_is_reported_and_all_hold_for_the_account_admin(snowflake_target):
    done = dicom_loader("doctor", "--target", snowflake_target, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = _lines(done)
    for name in ("connection", "role", "warehouse", "database", "schema"):
        assert checks[name] == "ok", done.stdout
    assert checks["round trip (PUT, COPY, MERGE)"] == "ok", done.stdout
    assert "2 rows, 7 columns read back equal" in done.stdout
    for privilege in (
        "CREATE TABLE on schema",
        "CREATE TASK on schema",
        "EXECUTE TASK on account",
        "EXECUTE MANAGED TASK on account",
        "CREATE DYNAMIC TABLE on schema",
        "CREATE MASKING POLICY on schema",
        "APPLY MASKING POLICY on account",
        "CREATE PIPE on schema",
        "CREATE CORTEX SEARCH SERVICE on schema",
        "database role SNOWFLAKE.CORTEX_USER",
        "USAGE on warehouse",
        "CREATE FUNCTION on schema",
    ):
        assert checks[f"privilege {privilege}"] == "ok", done.stdout
    assert checks["cortex search (model-knowledge)"] == "ok"
    assert f"doctor: all {len(checks)} checks ok" in done.stdout and len(checks) == 25
    assert "ACCOUNTADMIN" in done.stdout and "TEST_WH" in done.stdout
    # Only temporary objects, all dropped.
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        left = warehouse.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [_schema(snowflake_target)],
        )
    finally:
        warehouse.close()
    assert not [r for r in left if "doctor" in r[0].lower()], left


def test_a_missing_privilege_is_reported_with_the_grant_that_fixes_it(snowflake_target):
    schema = _schema(snowflake_target)
    as_admin(
        snowflake_target,
        'CREATE ROLE IF NOT EXISTS "THIN"',
        'GRANT USAGE ON DATABASE "DICOM" TO ROLE "THIN"',
        f'GRANT USAGE, CREATE TABLE, CREATE STAGE ON SCHEMA "DICOM"."{schema}" TO ROLE "THIN"',
    )
    done = dicom_loader("doctor", "--target", snowflake_target + "&role=THIN", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    checks = _lines(done)
    assert checks["role"] == "ok" and checks["privilege CREATE TABLE on schema"] == "ok"
    assert checks["privilege CREATE TASK on schema"] == "MISSING"
    assert checks["privilege CREATE FILE FORMAT on schema"] == "MISSING"
    assert checks["privilege USAGE on warehouse"] == "MISSING"
    assert f'fix: GRANT CREATE TASK ON SCHEMA "DICOM"."{schema}" TO ROLE "THIN"' in done.stdout
    assert 'fix: GRANT EXECUTE TASK ON ACCOUNT TO ROLE "THIN"' in done.stdout
    assert "doctor: " in done.stderr and "checks missing" in done.stderr


def test_a_session_without_a_warehouse_is_reported_with_its_fix(snowflake_target):
    target = snowflake_target.replace("&warehouse=TEST_WH", "")
    done = dicom_loader("doctor", "--target", target, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert _lines(done)["warehouse"] == "MISSING"
    assert "fix: add ?warehouse=NAME to the target" in done.stdout


def test_a_connection_that_fails_is_one_missing_check(snowflake_target):
    closed = re.sub(r"port=\d+", "port=9", snowflake_target).replace(
        "network_timeout=5", "network_timeout=1"
    )
    done = dicom_loader("doctor", "--target", closed + "&login_timeout=2", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert _lines(done) == {"connection": "MISSING"}
    assert "password" not in done.stdout.lower() or "***" in done.stdout


def test_duckdb_and_a_source(tmp_path, real_archive):
    database = tmp_path / "w.duckdb"
    done = dicom_loader(
        "doctor", "--target", f"duckdb:///{database}", "--source", str(real_archive), check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    checks = _lines(done)
    assert checks == {
        "listing": "ok",
        "credentials": "ok",
        "header read": "ok",
        "duckdb file": "ok",
        "spill space": "ok",
    }, done.stdout
    assert not database.exists()  # nothing left behind
    holder = duckdb.connect(str(database))  # another process's lock, as a running load's
    try:
        held = dicom_loader("doctor", "--target", f"duckdb:///{database}", check=False)
    finally:
        holder.close()
    assert held.returncode == 1 and _lines(held)["duckdb file"] == "MISSING", held.stdout
    nothing = dicom_loader(
        "doctor", "--target", "none", "--source", str(tmp_path / "absent"), check=False
    )
    assert nothing.returncode == 1 and _lines(nothing) == {"listing": "MISSING"}, nothing.stdout


def test_a_value_changed_on_the_way_is_reported():
    """The round trip's comparison: a value read back other than written is named,
    by column and key (keys compared as integers, JSON as its value)."""
    from loader.cli.doctor import PROBE, PROBE_ROWS, _differences
    from loader.core.model import arrow_schema

    columns = arrow_schema(PROBE).names
    written = sorted(PROBE_ROWS, key=lambda r: r["instance_key"])
    faithful = [tuple(r[c] for c in columns) for r in written]
    assert list(_differences(columns, faithful)) == []
    keys_as_text = [(str(row[0]), *row[1:]) for row in faithful]  # NUMBER(20,0) as text
    assert list(_differences(columns, keys_as_text)) == []
    signed = [faithful[0], (2**64 - 3 - 2**64, *faithful[1][1:])]  # read as signed 64-bit
    assert any("instance_key" in d for d in _differences(columns, signed))
    rounded = list(faithful)
    rounded[1] = (rounded[1][0], rounded[1][1].replace(microsecond=0), *rounded[1][2:])
    assert [d.split(" of ")[0] for d in _differences(columns, rounded)] == ["acquired_at"]
    assert list(_differences(columns, faithful[:1])) == ["1 rows read back, 2 written"]
