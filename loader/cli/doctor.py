"""`dicom-loader doctor`: what a user runs on their own account and archive before a
migration. Each check ends ok or missing, with the statement or setting that fixes it;
a check that fails is reported, never raised, and the command exits 0 only if all hold.

Snowflake: the connection and how it authenticated; the session's role, warehouse,
database and schema; a round trip of the loader's own path (a Parquet file written
with the model's Arrow types, PUT, COPY with the loader's casts and checks, MERGE
with the loader's upsert, twice) on temporary objects it drops, its values read back
and compared one by one; then every privilege each pattern needs (privileges.py).
DuckDB: the file can be opened for writing, and the free space for spilling. A
source: it lists, and one header is read and decoded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loader.core.credentials import secret_names
from loader.core.errors import LoaderError
from loader.core.model import LOADED_AT, RUN_ID, SOURCE_ORDER, Column, LoadMode, Table, arrow_schema
from loader.core.model import ColumnType as T
from loader.core.units import size_text
from loader.jobs.settings import Target, TargetKind


@dataclass(frozen=True)
class Check:
    """One item: its name, whether it holds, what was found, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


# The round trip's table: every type whose conversion a real account could get
# wrong, written and read as the model's own columns are.
PROBE = Table(
    name="dicom_loader_doctor",
    columns=(
        Column("instance_key", T.KEY),
        Column("acquired_at", T.TIMESTAMP),
        Column("deleted_at", T.TIMESTAMP),
        Column("metadata", T.VARIANT),
        Column("referenced_instance_keys", T.KEY_ARRAY),
        SOURCE_ORDER,
        RUN_ID,
        LOADED_AT,
    ),
    key=("instance_key",),
    mode=LoadMode.ENTITY,
)
PROBE_ROWS: list[dict[str, Any]] = [
    {
        "instance_key": 2**64 - 3,  # above 2^63: DECIMAL(20,0), never a signed 64-bit
        "acquired_at": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        "deleted_at": None,
        "metadata": json.dumps({"Modality": "CT", "ImageType": ["ORIGINAL", "PRIMARY"]}),
        "referenced_instance_keys": [2**63 + 5, 7],
        "_source_order": "2024-02-29T23:59:58.123456\\s3://b/a.dcm",
        "_run_id": "doctor",
    },
    {
        "instance_key": 1,
        "acquired_at": None,
        "deleted_at": dt.datetime(1970, 1, 1, 0, 0, 0, 1),
        "metadata": json.dumps({}),
        "referenced_instance_keys": [],
        "_source_order": "1970-01-01T00:00:00\\s3://b/b.dcm",
        "_run_id": "doctor",
    },
]
_STAGE = "DICOM_LOADER_DOCTOR"
_FORMAT = "DICOM_LOADER_DOCTOR_PARQUET"


def snowflake_checks(target: Target) -> list[Check]:
    from loader.jobs.targets import open_warehouse
    from loader.warehouse.snowflake import SnowflakeWarehouse

    checks: list[Check] = []
    try:
        warehouse = open_warehouse(target)
    except LoaderError as exc:
        return [Check("connection", False, str(exc), _CONNECT_FIX)]
    assert isinstance(warehouse, SnowflakeWarehouse)  # a Snowflake target opens one
    try:
        checks.append(Check("connection", True, _authentication(warehouse)))
        session = _session(warehouse, checks)
        checks.append(_round_trip(warehouse))
        checks += _privileges(warehouse, session)
        checks.append(_cortex_search(warehouse))
    finally:
        warehouse.close()
    return checks


_CONNECT_FIX = (
    "check the account, user and credentials of the target (a snowflake:// URL, or a "
    "connection in ~/.snowflake/connections.toml)"
)


def _authentication(warehouse: Any) -> str:
    target = warehouse.target
    if target.connection_name:
        return f"connection {target.connection_name!r} of connections.toml"
    kwargs = target.connect_kwargs
    method = kwargs.get("authenticator") or (
        "key pair" if "private_key_file" in kwargs else "password"
    )
    return f"user {kwargs.get('user', '?')} on {kwargs.get('account', '?')}, {method}"


def _session(warehouse: Any, checks: list[Check]) -> dict[str, str | None]:
    row = warehouse.query(
        "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE(), CURRENT_DATABASE(), CURRENT_SCHEMA()"
    )[0]
    session = dict(zip(("role", "warehouse", "database", "schema"), row, strict=True))
    fixes = {
        "role": "GRANT ROLE <role> TO USER <you>, and add ?role=<role> to the target",
        "warehouse": "add ?warehouse=NAME to the target (or ALTER USER <you> SET "
        "DEFAULT_WAREHOUSE = NAME), and GRANT USAGE ON WAREHOUSE NAME TO ROLE <role>",
        "database": "name it in the target: snowflake://USER@ACCOUNT/DATABASE/SCHEMA",
        "schema": "name it in the target: snowflake://USER@ACCOUNT/DATABASE/SCHEMA "
        "(CREATE SCHEMA DATABASE.SCHEMA if it does not exist)",
    }
    for name, value in session.items():
        ok = bool(value)
        checks.append(
            Check(name, ok, str(value) if ok else "none in use", "" if ok else fixes[name])
        )
    return session


def _round_trip(warehouse: Any) -> Check:
    """The loader's load path on temporary objects, values compared one by one."""
    from loader.core.errors import StatementError
    from loader.core.model import create_table
    from loader.warehouse.merge import merge_upsert, stage_table
    from loader.warehouse.snowflake import (
        check_copy_results,
        copy_statement,
        file_format_statement,
        put_statement,
    )

    name = "round trip (PUT, COPY, MERGE)"
    columns = arrow_schema(PROBE).names
    folder = Path(tempfile.mkdtemp(prefix="dicom-loader-doctor-"))
    created = [
        f"DROP TABLE IF EXISTS {PROBE.name}",
        f"DROP TABLE IF EXISTS {stage_table(PROBE.name)}",
        f"DROP STAGE IF EXISTS {_STAGE}",
        f"DROP FILE FORMAT IF EXISTS {_FORMAT}",
    ]
    try:
        path = folder / "part-0.parquet"
        pq.write_table(pa.Table.from_pylist(PROBE_ROWS, schema=arrow_schema(PROBE)), path)
        temporary = create_table(PROBE, "snowflake").replace(
            "CREATE TABLE IF NOT EXISTS", "CREATE TEMPORARY TABLE", 1
        )
        for statement in (
            file_format_statement(_FORMAT, "TEMPORARY"),
            f"CREATE OR REPLACE TEMPORARY STAGE {_STAGE}",
            temporary,
            temporary.replace(PROBE.name, stage_table(PROBE.name), 1),
        ):
            warehouse.query(statement)
        warehouse.query(put_statement(path, _STAGE, "doctor", PROBE.name))
        copied = warehouse.query(
            copy_statement(PROBE, _STAGE, f"doctor/{PROBE.name}/", [path.name], _FORMAT)
        )
        check_copy_results(PROBE.name, copied, {path.name: len(PROBE_ROWS)})
        warehouse.query(
            f"UPDATE {stage_table(PROBE.name)} SET _loaded_at = %s",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None)],
        )
        for _ in range(2):  # inserted, then the same objects replaced
            for statement in merge_upsert(PROBE, unique=False):
                warehouse.query(statement)
        read = warehouse.query(f"SELECT {', '.join(columns)} FROM {PROBE.name} ORDER BY 1")
    except (LoaderError, StatementError) as exc:
        return Check(name, False, str(exc), "see the failing statement; the privileges below")
    finally:
        for statement in created:
            with contextlib.suppress(LoaderError):
                warehouse.query(statement)
        shutil.rmtree(folder, ignore_errors=True)
    wrong = list(_differences(columns, read))
    if wrong:
        return Check(name, False, "; ".join(wrong), "report it: the load would change values")
    return Check(name, True, f"{len(PROBE_ROWS)} rows, {len(columns)} columns read back equal")


def _differences(columns: list[str], read: list[tuple[Any, ...]]) -> Iterator[str]:
    expected = sorted(PROBE_ROWS, key=lambda r: r["instance_key"])
    if len(read) != len(expected):
        yield f"{len(read)} rows read back, {len(expected)} written"
        return
    for row, want in zip(read, expected, strict=True):
        for column, value in zip(columns, row, strict=True):
            written = want[column]
            if PROBE.column(column).type in (T.VARIANT, T.KEY_ARRAY):
                value = json.loads(value) if isinstance(value, str) else value
                written = json.loads(written) if isinstance(written, str) else written
            elif PROBE.column(column).type is T.KEY and value is not None:
                value = int(value)
            if value != written:
                yield f"{column} of key {want['instance_key']}: {value!r}, written {written!r}"


def _privileges(warehouse: Any, session: dict[str, str | None]) -> list[Check]:
    from loader.core.errors import StatementError
    from loader.warehouse.patterns import PATTERNS, plan
    from loader.warehouse.patterns.names import Names
    from loader.warehouse.patterns.privileges import LOAD, Context, grants_of, needed

    role = session["role"] or ""
    if not (session["database"] and session["schema"] and role):
        return [Check("privileges", False, "not checked: no role, database or schema", "")]
    context = Context(str(session["database"]), str(session["schema"]), session["warehouse"])
    try:
        grants = grants_of(role, warehouse.records)
    except StatementError as exc:
        return [Check("privileges", False, f"SHOW GRANTS refused: {exc}", "")]
    # A pipe needs a bucket: its privileges are read from an example one's (the
    # storage integration's USAGE is the user's to grant for their own).
    names = Names(
        owner_role=role,
        warehouse=session["warehouse"] or "WAREHOUSE",
        stage_url="s3://bucket/exports/",
        storage_integration="INTEGRATION",
    )
    who: dict[Any, list[str]] = {p: ["load"] for p in [*needed([]), *LOAD]}
    for pattern in PATTERNS:
        for privilege in needed(plan(pattern, names).as_owner):
            if privilege.on != "INTEGRATION":
                who.setdefault(privilege, []).append(pattern)
    checks = []
    for privilege, users in who.items():
        label = (
            f"database role {privilege.privilege}"
            if privilege.on == "DATABASE ROLE"
            else f"{privilege.privilege} on {privilege.on.lower()}"
        )
        ok = grants.holds(privilege, context)
        checks.append(
            Check(
                f"privilege {label}",
                ok,
                f"{role} {'holds' if ok else 'lacks'} it ({', '.join(users)})",
                "" if ok else privilege.grant(role, context),
            )
        )
    return checks


_CORTEX_REGIONS = (
    "https://docs.snowflake.com/en/user-guide/snowflake-cortex/cortex-search/"
    "cortex-search-overview (regional availability)"
)


def _cortex_search(warehouse: Any) -> Check:
    """Whether the account offers Cortex Search (model-knowledge's service): its
    SHOW command runs only where the feature is."""
    from loader.core.errors import StatementError

    name = "cortex search (model-knowledge)"
    try:
        listed = warehouse.records("SHOW CORTEX SEARCH SERVICES IN SCHEMA")
    except StatementError as exc:
        return Check(name, False, str(exc), f"not offered here: see {_CORTEX_REGIONS}")
    return Check(name, True, f"offered; {len(listed)} services in this schema")


def duckdb_checks(target: Target) -> list[Check]:
    import duckdb

    path = Path(target.location)
    checks = []
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TEMPORARY TABLE dicom_loader_doctor (k UBIGINT)")
            con.execute("DROP TABLE dicom_loader_doctor")
        if not existed:
            path.unlink(missing_ok=True)
        checks.append(Check("duckdb file", True, f"{path} opens for writing"))
    except (OSError, duckdb.Error) as exc:
        first = " ".join(str(exc).split())
        checks.append(
            Check(
                "duckdb file",
                False,
                first,
                "another process holds it, or the folder is not writable",
            )
        )
    free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    enough = free >= 1 << 30
    checks.append(
        Check(
            "spill space",
            enough,
            f"{size_text(free)} free beside {path.name}",
            "" if enough else "free space there, or put the file where there is more",
        )
    )
    return checks


def source_checks(source: str, options: dict[str, Any]) -> list[Check]:
    import itertools

    from loader.jobs.scan import ScanSettings, scan_shard
    from loader.sources.listing import Shard, list_source

    checks = []
    try:
        listed = list(itertools.islice(list_source(source, options), 100))
    except (LoaderError, OSError) as exc:
        return [Check("listing", False, " ".join(str(exc).split()), _credentials_fix(source))]
    if not listed:
        return [Check("listing", False, f"{source}: nothing there", "check the path or prefix")]
    checks.append(
        Check("listing", True, f"{len(listed)}{'+' if len(listed) == 100 else ''} objects")
    )
    checks.append(Check("credentials", True, _credentials(source, options)))
    profile = scan_shard(ScanSettings(None, options), Shard("doctor", (listed[0],)))
    errors = dict(profile.counters["errors"])
    read = profile.bytes_read
    checks.append(
        Check(
            "header read",
            not errors,
            f"{listed[0].url}: {read} bytes read"
            + (f", {', '.join(errors)}" if errors else ", decoded"),
            "" if not errors else "the first object is not DICOM, or cannot be read",
        )
    )
    return checks


def _credentials(source: str, options: dict[str, Any]) -> str:
    if "://" not in source or source.startswith("file://"):
        return "a local path: none needed"
    if options.get("anon"):
        return "anonymous"
    given = [k for k in options if secret_names(f"{k}=x")]
    if given:
        return f"given as storage options ({', '.join(sorted(given))})"
    return "the SDK's own chain (environment, config files, instance or workload identity)"


def _credentials_fix(source: str) -> str:
    scheme = source.split("://", 1)[0] if "://" in source else "file"
    return {
        "s3": "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or --anon",
        "gs": "set GOOGLE_APPLICATION_CREDENTIALS, or --anon",
        "gcs": "set GOOGLE_APPLICATION_CREDENTIALS, or --anon",
        "az": "set AZURE_STORAGE_CONNECTION_STRING or --storage-option account_name=…",
        "abfs": "set AZURE_STORAGE_CONNECTION_STRING or --storage-option account_name=…",
    }.get(scheme, "check the path exists and can be read")


def checks(target: Target, source: str | None, options: dict[str, Any]) -> list[Check]:
    """Every check of the target and, when given, the source."""
    runners: list[Callable[[], list[Check]]] = []
    if source:
        runners.append(lambda: source_checks(source, options))
    if target.kind is TargetKind.SNOWFLAKE:
        runners.append(lambda: snowflake_checks(target))
    elif target.kind is TargetKind.DUCKDB:
        runners.append(lambda: duckdb_checks(target))
    found: list[Check] = []
    for runner in runners:
        found += runner()
    return found


def report_lines(found: list[Check]) -> list[str]:
    width = max((len(c.name) for c in found), default=0)
    lines = []
    for check in found:
        lines.append(f"{'ok' if check.ok else 'MISSING':8} {check.name:{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':8} {'':{width}}  fix: {check.fix}")
    return lines
