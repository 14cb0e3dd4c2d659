"""What fakesnow 0.12.1 lacks of Snowflake, supplied inside the fakesnow server.

The loader sends the emulator exactly the statements it sends Snowflake. Where
fakesnow cannot run one, this layer (installed in the server, which runs in the test
process) runs it with the behaviour Snowflake documents. Each gap, with the page that
defines the real behaviour, is listed in `sql/snowflake/README.md`; keep the two in
step.

- `BEGIN` / `COMMIT` / `ROLLBACK`: fakesnow cannot run MERGE inside an explicit
  transaction (DuckDB refuses a transaction that writes its catalog database and the
  data database). BEGIN snapshots the session schema's tables (in a schema of that
  session's own), ROLLBACK restores them, COMMIT drops the snapshot; the statements in
  between run as they come. A DDL statement in an open transaction commits it first,
  as on Snowflake, so a later ROLLBACK restores nothing. A session closed with a
  transaction open rolls it back, as Snowflake's does (the login answers a master
  token, as Snowflake's does, so the connector's close() logs out).
- `COPY … FROM (SELECT … FROM @stage/folder/) FILES = (…)` on an internal stage:
  fakesnow rejects FILES there ("invalid URL prefix"). It runs as one COPY per
  listed file, with the per-file results of all of them as the statement's result.
- `REMOVE @stage/path/`: not parsed by fakesnow; the stage's files under the path are
  deleted and listed as removed.
- Several statements at once on one session (the loader's parallel PUT): fakesnow
  serves a session on one DuckDB connection; they are serialised per session.
- NULL `TIMESTAMP_NTZ` in results: fakesnow's result encoder drops the null mask and
  returns 1970-01-01; the mask is kept.
- `ARRAY_AGG(…) WITHIN GROUP (ORDER BY …)`: fakesnow's rewrite keeps NULL values in
  the array; Snowflake omits them, and so does the rewrite once patched.
- `MD5_NUMBER_LOWER64`: missing; a function computing it as Snowflake documents
  (the MD5 digest read as a big-endian 128-bit number, its lower 64 bits unsigned, as NUMBER(20,0)).
- External stages on `s3://` URLs: fakesnow reads only local files or real buckets;
  a stage URL under `s3://fakesnow-local/` is read from the local path after it.
- `SET name = <expression>`: fakesnow keeps the expression's text and pastes it
  wherever `$name` is used, so `SET batch = UUID_STRING()` gave a new value at each
  use. Snowflake evaluates the expression once and the variable holds its result
  (session variables: "derived from the data type of the result of the evaluated
  expression"); the expression is evaluated here, and its value set.
- Roles and privileges: fakesnow has none. The session's role is the login's
  `roleName`, else the user's default role (ACCOUNTADMIN, as a new account's first
  user has), changed by `USE ROLE` (refused for a role that does not exist); its
  warehouse the login's `warehouse`, changed by `USE WAREHOUSE`; `CURRENT_ROLE()` and
  `CURRENT_WAREHOUSE()` read them. `GRANT … TO ROLE` is recorded, the creator of a
  database, schema or role owns it, and `SHOW GRANTS TO ROLE` lists what a role was
  granted with SHOW GRANTS' documented columns. The account has the system roles'
  hierarchy, one warehouse (TEST_WH, owned by SYSADMIN) and SNOWFLAKE.CORTEX_USER
  granted to PUBLIC, as a new account has.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
from typing import Any

import pyarrow as pa

LOCAL_BUCKET = "s3://fakesnow-local"
_SUCCESS = "SELECT 'Statement executed successfully.' AS \"status\""
_SNAPSHOT_SCHEMA = "_harness_txn"
_COPY_FILES = re.compile(
    r"^(?P<head>COPY INTO .*? FROM \(SELECT .*? FROM @(?P<stage>[^\s)]+?)/(?P<folder>[^\s)]*?))\) "
    r"FILES = \((?P<files>[^)]*)\) (?P<tail>.*)$",
    re.DOTALL,
)
_REMOVE = re.compile(r"^REMOVE @(?P<stage>[^\s/]+)/(?P<path>\S*)\s*$", re.IGNORECASE)
_SET_EXPRESSION = re.compile(r"^SET (?P<name>\w+) = (?P<expression>\w+\(.*\))\s*;?$", re.I | re.S)
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK)\s*;?\s*$", re.IGNORECASE)
_LOCAL_STAGE_URL = re.compile(r"URL = '" + re.escape(LOCAL_BUCKET) + r"(/[^']*)'")


def md5_number_lower64(text: str | None) -> int | None:
    """Snowflake's MD5_NUMBER_LOWER64, from its documented definition."""
    if text is None:
        return None
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[8:], "big")


def install() -> None:
    """Patch the fakesnow server's cursor, routes and result encoder (once per
    process). Take `fakesnow.server` (the function) before calling this."""
    import importlib

    import fakesnow.arrow
    from fakesnow.cursor import FakeSnowflakeCursor

    if getattr(FakeSnowflakeCursor, "_dicom_loader_gaps", False):
        return
    # Importing the module fakesnow.server replaces the package's server() function
    # by the module: callers take the function before they install this layer.
    server_module = importlib.import_module("fakesnow.server")
    original_execute = FakeSnowflakeCursor.execute

    def execute(self: Any, command: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("server"):
            return original_execute(self, command, params, *args, **kwargs)
        run = lambda sql: original_execute(self, sql, params, *args, **kwargs)  # noqa: E731
        text = command.strip()
        if match := _TRANSACTION.match(text):
            _transaction(self, match.group(1).upper())
            return run(_SUCCESS)
        if _DDL_COMMITS.match(text):
            _transaction(self, "COMMIT")
        if (answer := _roles(self, text)) is not None:
            return run(answer)
        if match := _SET_EXPRESSION.match(text):
            value = run(f"SELECT {match.group('expression')}").fetchone()[0]
            return run(f"SET {match.group('name')} = {_literal(value)}")
        text = _session_functions(self, text)
        command = _session_functions(self, command)
        if match := _REMOVE.match(text):
            return run(_removed(self, match.group("stage"), match.group("path")))
        if (ddl := _catalog_ddl(self, text)) is not None:
            return run(ddl)
        if text.startswith("COPY INTO") and "METADATA$" in text:
            return run(_copy_with_file_metadata(self, text))
        if _RESULT_SCAN in text:
            return run(_result_scan(self, text))
        if (match := _COPY_FILES.match(text)) and not _is_external(self, match.group("stage")):
            return run(_copy_file_by_file(self, match, run))
        return run(_LOCAL_STAGE_URL.sub(lambda m: f"URL = 'file://{m.group(1)}'", command))

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
    FakeSnowflakeCursor._dicom_loader_gaps = True  # type: ignore[attr-defined]
    _serialise_sessions(server_module.app)
    _login_roles(server_module)
    _close_rolls_back(server_module)
    # Sessions' DuckDB connections are cursors of this one and inherit its functions;
    # fakesnow's translation renames the function m_d5_number_lower64.
    for name in ("md5_number_lower64", "m_d5_number_lower64"):
        server_module.shared_fs.duck_conn.create_function(
            name, md5_number_lower64, ["VARCHAR"], "DECIMAL(20,0)"
        )

    _array_agg_omits_nulls()
    original_struct = fakesnow.arrow.timestamp_to_sf_struct

    def timestamp_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original_struct(ts)
        if not ts.null_count:
            return struct
        fields = [struct.type.field(i) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(
            [struct.field(i) for i in range(len(fields))], fields=fields, mask=ts.is_null()
        )

    fakesnow.arrow.timestamp_to_sf_struct = timestamp_struct


def _array_agg_omits_nulls() -> None:
    """fakesnow rewrites `ARRAY_AGG(x) WITHIN GROUP (ORDER BY …)` into DuckDB's
    ordered ARRAY_AGG as a new expression, which loses the parser's mark that NULLs
    are left out: DuckDB then keeps them. Snowflake omits NULL values from the array
    (https://docs.snowflake.com/en/sql-reference/functions/array_agg, usage notes):
    the mark is carried over, so DuckDB filters them as Snowflake does."""
    from fakesnow import transforms
    from sqlglot import exp

    original = transforms.array_agg_within_group

    def within_group(expression: Any) -> Any:
        made = original(expression)
        if made is not expression and isinstance(made, exp.ArrayAgg):
            agg = expression.find(exp.ArrayAgg)
            made.set("nulls_excluded", agg.args.get("nulls_excluded"))
        return made

    transforms.array_agg_within_group = within_group


def _serialise_sessions(app: Any) -> None:
    """One query request at a time per session: fakesnow answers a session's requests
    on one DuckDB connection, which refuses a second call while one runs (Snowflake
    runs a session's concurrent statements, such as the loader's parallel PUTs)."""
    from starlette.routing import Route, request_response

    locks: dict[str, asyncio.Lock] = {}
    for route in app.routes:
        if isinstance(route, Route) and route.path == "/queries/v1/query-request":
            endpoint = route.endpoint

            async def serialised(request: Any, endpoint: Any = endpoint) -> Any:
                token = request.headers.get("Authorization", "")
                lock = locks.setdefault(token, asyncio.Lock())
                async with lock:
                    return await endpoint(request)

            route.endpoint = serialised
            route.app = request_response(serialised)


DEFAULT_ROLE = "ACCOUNTADMIN"
TEST_WAREHOUSE = "TEST_WH"
_SYSTEM_ROLES = {"ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN", "PUBLIC"}
# (privilege, granted_on, name, grantee) as a new account has them.
_SYSTEM_GRANTS = {
    ("USAGE", "ROLE", "SYSADMIN", "ACCOUNTADMIN"),
    ("USAGE", "ROLE", "SECURITYADMIN", "ACCOUNTADMIN"),
    ("USAGE", "ROLE", "USERADMIN", "SECURITYADMIN"),
    ("OWNERSHIP", "WAREHOUSE", TEST_WAREHOUSE, "SYSADMIN"),
    ("USAGE", "DATABASE_ROLE", "SNOWFLAKE.CORTEX_USER", "PUBLIC"),
}
_GRANT_COLUMNS = [
    "created_on", "privilege", "granted_on", "name", "granted_to", "grantee_name",
    "grant_option", "granted_by",
]  # fmt: skip


def _login_roles(server_module: Any) -> None:
    """Each session's role and warehouse, from its login request."""
    import json

    from starlette.responses import JSONResponse
    from starlette.routing import Route, request_response

    for route in server_module.app.routes:
        if isinstance(route, Route) and route.path == "/session/v1/login-request":
            endpoint = route.endpoint

            async def login(request: Any, endpoint: Any = endpoint) -> Any:
                response = await endpoint(request)
                body = json.loads(response.body)
                token = body["data"]["token"]
                session = server_module.sessions[token]
                role = request.query_params.get("roleName")
                session._harness_role = role.upper() if role else DEFAULT_ROLE
                warehouse = request.query_params.get("warehouse")
                session._harness_warehouse = warehouse.upper() if warehouse else None
                # Snowflake's login answers a master token too; without one the
                # connector's close() never logs out, so the session never ends.
                body["data"]["masterToken"] = f"master-{token}"
                return JSONResponse(body, status_code=response.status_code)

            route.endpoint = login
            route.app = request_response(login)


def _close_rolls_back(server_module: Any) -> None:
    """A session closed with a transaction open: "the open transaction is rolled
    back" (https://docs.snowflake.com/en/sql-reference/transactions)."""
    from starlette.routing import Route, request_response

    for route in server_module.app.routes:
        if isinstance(route, Route) and route.path == "/session":
            endpoint = route.endpoint

            async def close(request: Any, endpoint: Any = endpoint) -> Any:
                token = request.headers.get("Authorization", "")[17:-1]
                conn = server_module.sessions.get(token)
                if request.query_params.get("delete") and conn is not None:
                    _transaction(conn.cursor(), "ROLLBACK")
                return await endpoint(request)

            route.endpoint = close
            route.app = request_response(close)


def _session(cursor: Any) -> tuple[str, str | None]:
    conn = cursor._conn
    return getattr(conn, "_harness_role", DEFAULT_ROLE), getattr(conn, "_harness_warehouse", None)


def _session_functions(cursor: Any, text: str) -> str:
    """CURRENT_ROLE() and CURRENT_WAREHOUSE() as the session's values."""
    if "CURRENT_ROLE()" not in text.upper() and "CURRENT_WAREHOUSE()" not in text.upper():
        return text
    role, warehouse = _session(cursor)
    text = re.sub(r"CURRENT_ROLE\(\)", _literal(role), text, flags=re.IGNORECASE)
    return re.sub(r"CURRENT_WAREHOUSE\(\)", _literal(warehouse), text, flags=re.IGNORECASE)


def _roles(cursor: Any, text: str) -> str | None:
    """USE ROLE / USE WAREHOUSE, GRANT of privileges, SHOW GRANTS TO ROLE and the
    ownership of what a role creates; None for any other statement."""
    c = CATALOG
    role, _ = _session(cursor)
    if match := re.fullmatch(r'USE ROLE "?(\w+)"?', text, re.IGNORECASE):
        wanted = match.group(1).upper()
        if wanted not in c.roles | _SYSTEM_ROLES:
            _refuse(
                f"Role '{wanted}' specified in the USE command does not exist or not authorized."
            )
        cursor._conn._harness_role = wanted
        return _SUCCESS
    if match := re.fullmatch(r'USE WAREHOUSE "?(\w+)"?', text, re.IGNORECASE):
        cursor._conn._harness_warehouse = match.group(1).upper()
        return _SUCCESS
    if re.fullmatch(r"SHOW CORTEX SEARCH SERVICES IN SCHEMA", text, re.IGNORECASE):
        # SHOW CORTEX SEARCH SERVICES: the schema's services, the documented columns.
        _, schema = _schema_of(cursor)
        database = cursor._conn.database
        rows = sorted(
            ("1970-01-01", name, database, schema)
            for (s, kind, name) in c.bodies
            if s == schema and kind == "search_service"
        )
        return _values(["created_on", "name", "database_name", "schema_name"], rows)
    if match := re.fullmatch(r'SHOW GRANTS TO ROLE "?(\w+)"?', text, re.IGNORECASE):
        grantee = match.group(1).upper()
        rows = sorted(
            ("1970-01-01", p, on, name, "ROLE", grantee, "false", "")
            for p, on, name, to in c.privileges
            if to == grantee
        )
        return _values(_GRANT_COLUMNS, rows)
    if match := re.fullmatch(
        r'GRANT ([A-Z ,]+?) ON (ACCOUNT|(SCHEMA|DATABASE|WAREHOUSE|INTEGRATION) ([\w."]+)) '
        r'TO ROLE "?(\w+)"?',
        text,
        re.IGNORECASE,
    ):
        kind = (match.group(3) or "ACCOUNT").upper()
        name = (match.group(4) or "").replace('"', "").upper()
        for privilege in match.group(1).split(","):
            c.privileges.add((privilege.strip().upper(), kind, name, match.group(5).upper()))
        return _SUCCESS
    if match := re.match(
        r'CREATE (OR REPLACE )?(SCHEMA|DATABASE|ROLE) (IF NOT EXISTS )?([\w."]+)',
        text,
        re.IGNORECASE,
    ):
        kind, name = match.group(2).upper(), match.group(4).replace('"', "").upper()
        if kind == "SCHEMA" and "." not in name:
            name = f"{cursor._conn.database}.{name}"
        if not any(p == "OWNERSHIP" and k == kind and n == name for p, k, n, _ in c.privileges):
            c.privileges.add(("OWNERSHIP", kind, name, role))
    return None


def _schema_of(cursor: Any) -> tuple[str, str]:
    return cursor._conn.database, cursor._conn.schema


def _tables(cursor: Any, database: str, schema: str) -> list[str]:
    rows = cursor._duck_conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = ? AND table_schema = ? AND table_type = 'BASE TABLE'",
        [database, schema],
    ).fetchall()
    return [r[0] for r in rows]


def _transaction(cursor: Any, verb: str) -> None:
    """BEGIN snapshots the session schema's tables into a schema of this session's
    own; ROLLBACK restores them; COMMIT (and ROLLBACK) drop the snapshot. With no
    transaction open, COMMIT and ROLLBACK do nothing, as on Snowflake."""
    conn = cursor._conn
    duck = cursor._duck_conn
    if verb == "BEGIN":
        if getattr(conn, "_harness_snapshot", None):
            return  # Snowflake: BEGIN inside a transaction is ignored
        database, schema = _schema_of(cursor)
        name = f"{_SNAPSHOT_SCHEMA}_{id(conn):x}"
        snap = f'"{database}"."{name}"'
        duck.execute(f"DROP SCHEMA IF EXISTS {snap} CASCADE")
        duck.execute(f"CREATE SCHEMA {snap}")
        for table in _tables(cursor, database, schema):
            duck.execute(
                f'CREATE TABLE {snap}."{schema}__{table}" AS '
                f'SELECT * FROM "{database}"."{schema}"."{table}"'
            )
        conn._harness_snapshot = (database, schema, name)
        return
    opened = getattr(conn, "_harness_snapshot", None)
    if not opened:
        return
    database, schema, name = opened
    snap = f'"{database}"."{name}"'
    if verb == "ROLLBACK":
        saved = set(_tables(cursor, database, name))
        for table in _tables(cursor, database, schema):
            if f"{schema}__{table}" in saved:
                target = f'"{database}"."{schema}"."{table}"'
                duck.execute(f"DELETE FROM {target}")
                duck.execute(f'INSERT INTO {target} SELECT * FROM {snap}."{schema}__{table}"')
    duck.execute(f"DROP SCHEMA IF EXISTS {snap} CASCADE")
    conn._harness_snapshot = None


# Statements that commit an open transaction before they run: "a DDL statement
# executed while a transaction is active implicitly commits it"
# (https://docs.snowflake.com/en/sql-reference/transactions, "DDL").
_DDL_COMMITS = re.compile(r"^(CREATE|ALTER|DROP|UNDROP|GRANT|REVOKE)\b", re.IGNORECASE)


def _stage_dir(cursor: Any, stage: str, path: str) -> str:
    from fakesnow.transforms import stage as fake_stage

    database, schema = _schema_of(cursor)
    parts = fake_stage.parts_from_var(stage, database, schema)
    return fake_stage.internal_dir(".".join(parts), path)


def _is_external(cursor: Any, stage: str) -> bool:
    return not os.path.isdir(_stage_dir(cursor, stage, ""))


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    if not rows:
        return "SELECT " + ", ".join(f"NULL AS {c}" for c in columns) + " WHERE FALSE"
    body = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    return f"SELECT * FROM (VALUES {body}) AS t ({', '.join(columns)})"


def _removed(cursor: Any, stage: str, path: str) -> str:
    directory = _stage_dir(cursor, stage, path)
    removed = []
    for root, _, files in os.walk(directory):
        removed += [os.path.join(root, f) for f in files]
    shutil.rmtree(directory, ignore_errors=True)
    rows = [(os.path.relpath(f, _stage_dir(cursor, stage, "")), "removed") for f in removed]
    return _values(["name", "result"], sorted(rows))


_COPY_COLUMNS = [
    "file",
    "status",
    "rows_parsed",
    "rows_loaded",
    "error_limit",
    "errors_seen",
    "first_error",
    "first_error_line",
    "first_error_character",
    "first_error_column_name",
]


_RESULT_SCAN = "TABLE(RESULT_SCAN(LAST_QUERY_ID()))"
_NO_FILE = "SELECT 'Copy executed with 0 files processed.' AS \"status\""
LAST_COPY: dict[int, list[tuple[Any, ...]]] = {}  # per session: the last COPY's result


def _copy_file_by_file(cursor: Any, match: re.Match[str], run: Any) -> str:
    files = [f.strip().strip("'") for f in match.group("files").split(",") if f.strip()]
    results: list[tuple[Any, ...]] = []
    for name in files:
        head = match.group("head")
        run(f"{head}{name}) {match.group('tail')}")
        results += [tuple(r) for r in cursor.fetchall()]
    LAST_COPY[id(cursor._conn)] = results
    return _values(_COPY_COLUMNS, results)


def _copy_with_file_metadata(cursor: Any, text: str) -> str:
    """A COPY selecting METADATA$ columns from an internal stage. With no file there,
    Snowflake's answer; with files, refused (not supplied: the conversion that
    follows it is tested on rows inserted directly)."""
    stage = re.search(r"FROM @([^\s)]+)", text)
    directory = _stage_dir(cursor, stage.group(1), "") if stage else ""
    if any(files for _, _, files in os.walk(directory)):
        _refuse("the test harness does not supply COPY of METADATA$ columns from files")
    LAST_COPY[id(cursor._conn)] = []
    return _NO_FILE


def _result_scan(cursor: Any, text: str) -> str:
    """RESULT_SCAN of the session's last COPY, as Snowflake keeps its result: its
    per-file rows, or, when it processed no file, the one row of one `status` column
    a COPY of no file returns (COPY INTO <table>, "Output": "Copy executed with 0
    files processed."): a query naming a per-file column then fails, as it does on
    Snowflake."""
    rows = LAST_COPY.get(id(cursor._conn), [])
    if rows:
        columns = ", ".join(f'"{c}"' for c in _COPY_COLUMNS)
        body = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        scan = f"(SELECT * FROM (VALUES {body}) AS t ({columns}))"
    else:
        scan = f"({_NO_FILE})"
    return text.replace(_RESULT_SCAN, scan)


# --- Objects fakesnow cannot create, kept in a catalog with Snowflake's rules -------
#
# Roles, grants, masking policies and their assignment, streams, tasks and pipes are
# kept per session schema with the checks Snowflake makes when they are created or
# changed: a policy exists before it is set or altered, the column it is set on
# exists, a task's predecessor exists, a stream's table exists, ALTER TASK finds its
# task. What they do at run time (masking, scheduling, change tracking) is not
# emulated: their bodies are tested translated to DuckDB (tests/test_patterns.py). A
# dynamic table is created as a view of its query, which fakesnow runs: the same
# rows, computed when read.


class Catalog:
    """What the harness created that fakesnow cannot: for the tests to inspect."""

    def __init__(self) -> None:
        self.roles: set[str] = set()
        self.grants: set[tuple[str, str]] = set()
        # (privilege, granted_on, name, grantee role)
        self.privileges: set[tuple[str, str, str, str]] = set(_SYSTEM_GRANTS)
        self.bodies: dict[tuple[str, str, str], str] = {}  # (schema, kind, name) → SQL
        self.created: dict[tuple[str, str, str], int] = {}  # times created or replaced
        self.masked: dict[tuple[str, str, str], str] = {}  # (schema, table, column) → policy
        self.resumed: set[tuple[str, str]] = set()
        self.owners: dict[tuple[str, str, str], str] = {}  # (schema, kind, name) → role

    def schema(self, schema: str, kind: str) -> dict[str, str]:
        return {n: b for (s, k, n), b in self.bodies.items() if s == schema and k == kind}


CATALOG = Catalog()
_NAME = r'((?:"[^"]+"\.)*(?:"[^"]+"|\w+))'
_FLAGS = re.IGNORECASE | re.DOTALL


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _FLAGS)


_DDL = (
    ("role", _re(r'^CREATE ROLE IF NOT EXISTS "?(\w+)"?$')),
    ("grant", _re(r'^GRANT ROLE "?(\w+)"? TO ROLE "?(\w+)"?$')),
    ("policy", _re(rf"^CREATE MASKING POLICY IF NOT EXISTS {_NAME} AS (.*)$")),
    ("policy_body", _re(rf"^ALTER MASKING POLICY {_NAME} SET BODY (.*)$")),
    (
        "set_policy",
        _re(
            rf"^ALTER (?:DYNAMIC )?TABLE IF EXISTS {_NAME} MODIFY COLUMN (\w+) "
            rf"SET MASKING POLICY {_NAME}(?: USING \(([\w, ]+)\))? FORCE$"
        ),
    ),
    ("stream", _re(rf"^CREATE STREAM IF NOT EXISTS {_NAME} ON TABLE {_NAME}")),
    (
        "function",
        _re(
            rf"^CREATE OR REPLACE SECURE FUNCTION {_NAME}\((\w+ \w+)\)\s+RETURNS (\w+) "
            r"LANGUAGE JAVASCRIPT\s+AS \$\$(.*)\$\$$"
        ),
    ),
    ("task", _re(rf"^CREATE OR REPLACE TASK {_NAME}\n(.*?)\nAS\n(.*)$")),
    ("alter_task", _re(rf"^ALTER TASK (IF EXISTS )?{_NAME} (RESUME|SUSPEND)$")),
    ("dynamic_table", _re(rf"^CREATE OR REPLACE DYNAMIC TABLE {_NAME}\n.*?\nAS\n(.*)$")),
    ("pipe", _re(rf"^CREATE PIPE IF NOT EXISTS {_NAME} (.*)$")),
    (
        "search_service",
        _re(
            rf"^CREATE CORTEX SEARCH SERVICE IF NOT EXISTS {_NAME}\n\s*ON (\w+)\n"
            rf"\s*ATTRIBUTES ([\w, ]+)\n(.*?)\nAS\n(.*)$"
        ),
    ),
)


def _last(name: str) -> str:
    """An object's own name from a possibly qualified one, as Snowflake stores it."""
    part = name.rsplit(".", 1)[-1]
    return part.strip('"') if part.startswith('"') else part.upper()


def _refuse(message: str) -> Any:
    import snowflake.connector.errors

    raise snowflake.connector.errors.ProgrammingError(msg=message, errno=2003, sqlstate="02000")


def _column_types(cursor: Any, table: str) -> dict[str, str] | None:
    """A table's columns (lower case) and their DuckDB types; None: no such table."""
    database, schema = _schema_of(cursor)
    rows = cursor._duck_conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = ? AND lower(table_name) = lower(?)",
        [database, schema, table],
    ).fetchall()
    return {r[0].lower(): r[1].upper() for r in rows} or None


# A policy's argument type → the column types fakesnow gives the Snowflake types it
# may be set on ("the data type of the first column in the signature must match the
# column's": https://docs.snowflake.com/en/sql-reference/sql/alter-table-column).
_POLICY_COLUMN_TYPES = {
    "STRING": ("VARCHAR",),
    "DATE": ("DATE",),
    "ARRAY": ("JSON",),
    "VARIANT": ("JSON",),
    "FLOAT": ("DOUBLE", "FLOAT"),
    "TIMESTAMP_NTZ": ("TIMESTAMP",),
}


def _check_signature(
    body: str, policy: str, columns: dict[str, str], column: str, using: list[str]
) -> None:
    """The policy's signature against the column it is set on: as many arguments as
    the USING list names (one without it), each of its column's type."""
    signature = re.match(r"\s*\(([^)]*)\)", body)
    arguments = [a.split()[-1].upper() for a in signature.group(1).split(",")] if signature else []
    named = using or [column]
    if len(arguments) != len(named) or (using and using[0].lower() != column.lower()):
        _refuse(
            f"Masking policy '{policy}' takes {len(arguments)} arguments; "
            f"USING names {len(named)} starting with {named[0].upper()}"
        )
    for argument, name in zip(arguments, named, strict=True):
        held = columns[name.lower()]
        accepted = _POLICY_COLUMN_TYPES.get(argument, ())
        if not any(held.startswith(t) for t in accepted):
            _refuse(
                f"Masking policy '{policy}': argument of type {argument} "
                f"for column {name.upper()} of type {held}"
            )


def _catalog_ddl(cursor: Any, text: str) -> str | None:
    """The SQL fakesnow should run for a DDL statement it lacks (a success message,
    or a view for a dynamic table), or None when the statement is not one of them."""
    _, schema = _schema_of(cursor)
    found = next(((k, m) for k, p in _DDL if (m := p.match(text))), None)
    if found is None:
        return None
    kind, match = found
    c = CATALOG
    if kind == "role":
        c.roles.add(match.group(1).upper())
    elif kind == "grant":
        if match.group(1).upper() not in c.roles:
            _refuse(f"Role '{match.group(1).upper()}' does not exist or not authorized.")
        c.grants.add((match.group(1).upper(), match.group(2).upper()))
        c.privileges.add(("USAGE", "ROLE", match.group(1).upper(), match.group(2).upper()))
    elif kind == "policy":
        c.bodies.setdefault((schema, "policy", _last(match.group(1))), match.group(2))
    elif kind == "policy_body":
        key = (schema, "policy", _last(match.group(1)))
        if key not in c.bodies:
            _refuse(f"Masking policy '{_last(match.group(1))}' does not exist or not authorized.")
        signature = c.bodies[key].split("->", 1)[0]
        c.bodies[key] = f"{signature}{match.group(2)}"
    elif kind == "set_policy":
        table, column, policy = _last(match.group(1)), match.group(2), _last(match.group(3))
        if (schema, "policy", policy) not in c.bodies:
            _refuse(f"Masking policy '{policy}' does not exist or not authorized.")
        columns = _column_types(cursor, table)
        if columns is not None:  # IF EXISTS: a missing table is no error
            using = [u for u in (match.group(4) or "").replace(" ", "").split(",") if u]
            for needed in [column, *using]:
                if needed.lower() not in columns:
                    _refuse(f"invalid identifier '{needed.upper()}' of table {table}")
            _check_signature(c.bodies[(schema, "policy", policy)], policy, columns, column, using)
            c.masked[(schema, table.lower(), column.lower())] = policy
    elif kind == "stream":
        if _column_types(cursor, _last(match.group(2))) is None:
            _refuse(f"Table '{_last(match.group(2))}' does not exist or not authorized.")
        c.bodies.setdefault((schema, "stream", _last(match.group(1))), text)
        c.created.setdefault((schema, "stream", _last(match.group(1))), 1)
    elif kind == "function":
        # Kept, not run: tests run the JavaScript with node (test_patterns.py).
        c.bodies[(schema, "function", _last(match.group(1)))] = match.group(4)
    elif kind == "task":
        name, options = _last(match.group(1)), match.group(2)
        after = re.search(r"AFTER " + _NAME, options)
        if after and (schema, "task", _last(after.group(1))) not in c.bodies:
            _refuse(f"Task '{_last(after.group(1))}' does not exist or not authorized.")
        c.bodies[(schema, "task", name)] = text
        c.owners[(schema, "task", name)] = _session(cursor)[0]  # the creator owns it
        c.created[(schema, "task", name)] = c.created.get((schema, "task", name), 0) + 1
        c.resumed.discard((schema, name))  # a replaced task is suspended
    elif kind == "alter_task":
        name = _last(match.group(2))
        if (schema, "task", name) not in c.bodies:
            if match.group(1):
                return _SUCCESS
            _refuse(f"Task '{name}' does not exist or not authorized.")
        if match.group(3).upper() == "RESUME":
            c.resumed.add((schema, name))
        else:
            c.resumed.discard((schema, name))
    elif kind == "dynamic_table":
        name = _last(match.group(1))
        c.bodies[(schema, "dynamic_table", name)] = text
        c.owners[(schema, "dynamic_table", name)] = _session(cursor)[0]
        c.created[(schema, "dynamic_table", name)] = (
            c.created.get((schema, "dynamic_table", name), 0) + 1
        )
        return f"CREATE OR REPLACE VIEW {match.group(1)} AS\n{match.group(2)}"
    elif kind == "pipe":
        c.bodies.setdefault((schema, "pipe", _last(match.group(1))), text)
        c.created.setdefault((schema, "pipe", _last(match.group(1))), 1)
    elif kind == "search_service":
        return _search_service(cursor, schema, match)
    return _SUCCESS


def _search_service(cursor: Any, schema: str, match: re.Match[str]) -> str:
    """CREATE CORTEX SEARCH SERVICE IF NOT EXISTS, with the checks its page makes
    (https://docs.snowflake.com/en/sql-reference/sql/create-cortex-search): the
    search column and every attribute are columns of the source query, the search
    column is text, the WAREHOUSE and TARGET_LAG parameters are given, and the
    source tables have change tracking (checked by the pattern's test, as fakesnow
    ignores the property). What it indexes is kept as a view of the query, which
    fakesnow runs, so a test reads the rows the service would search."""
    name, on, options, query = _last(match.group(1)), match.group(2), match.group(4), match.group(5)
    attributes = [a.strip() for a in match.group(3).split(",")]
    if not re.search(r"^\s*WAREHOUSE = \w+$", options, re.MULTILINE) or not re.search(
        r"^\s*TARGET_LAG = '\d+ (second|minute|hour|day)s?'$", options, re.MULTILINE
    ):
        _refuse(f"Cortex Search service {name}: WAREHOUSE and TARGET_LAG are required")
    c = CATALOG
    if (schema, "search_service", name) in c.bodies:
        return _SUCCESS  # IF NOT EXISTS
    columns = {d[0].lower(): d[1] for d in _described(cursor, query)}
    for needed in [on, *attributes]:
        if needed.lower() not in columns:
            _refuse(f"invalid identifier '{needed.upper()}' in the source query of {name}")
    if "VARCHAR" not in str(columns[on.lower()]).upper():
        _refuse(f"search column {on.upper()} of {name} must be text")
    c.bodies[(schema, "search_service", name)] = match.group(0)
    c.created[(schema, "search_service", name)] = 1
    return f"CREATE VIEW {match.group(1)} AS\n{query}"


def _described(cursor: Any, query: str) -> list[tuple[str, str]]:
    """The source query's columns and their types, from DuckDB binding it."""
    import sqlglot

    translated = sqlglot.transpile(query, read="snowflake", write="duckdb")[0]
    return [(r[0], r[1]) for r in cursor._duck_conn.execute(f"DESCRIBE {translated}").fetchall()]
