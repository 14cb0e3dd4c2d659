"""Snowflake: compact the run's Parquet into COPY-sized files (stage_files.py), PUT
them to an internal stage (or leave them where an external stage reads them), COPY
them into transient staging tables, check every COPY result, then MERGE into the
model in one transaction (merge.py).

The connection comes from the real snowflake-connector-python, configured only
through the connector's own mechanisms (snowflake_target.py). Every COPY result
is checked file by file: a file not LOADED, or loaded with another row count
than was staged, fails the load before anything is merged.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from loader.core import faults
from loader.core.errors import ConfigError, LoadError, StatementError
from loader.core.identifiers import quoted
from loader.core.model import (
    BY_NAME,
    DIALECT_TYPES,
    EXTRACTED,
    TABLES,
    ColumnType,
    Table,
    arrow_schema,
    create_table,
)
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.warehouse.base import Deleted, LoadResult, fetch_batches, upgrade_statements
from loader.warehouse.deletions import in_one_transaction
from loader.warehouse.merge import (
    MergeDialect,
    account_staged,
    merge_staged,
    merge_upsert,
    stage_table,
)
from loader.warehouse.snowflake_target import (
    DEFAULT_STAGE,
    SnowflakeTarget,
    external_stage_url,
    parse_snowflake_target,
)
from loader.warehouse.stage_files import StagedFile, compact_table
from loader.warehouse.target import DEFAULT_STAGE_FILE_MB

FILE_FORMAT = "DICOM_LOADER_PARQUET"
FILES_PER_COPY = 1000  # Snowflake's limit for an explicit FILES list
PUT_THREADS = 4
# Where a run's compacted files are written under --out before staging; an
# external stage on the --out root reads them from there.
STAGED_FOLDER = "_snowflake_stage"
_RUN_ID = re.compile(r"[A-Za-z0-9_.=-]{1,128}")

DIALECT = MergeDialect(
    types=DIALECT_TYPES["snowflake"],
    placeholder="%s",
    upsert=merge_upsert,
    sorted_distinct_list=lambda column: (
        f"ARRAY_AGG(DISTINCT {column}) WITHIN GROUP (ORDER BY {column})"
    ),
    variant_from_text=lambda text: f"PARSE_JSON({text})",
)


def setup_statements(stage: str) -> list[str]:
    """The model's tables, the Parquet file format and the loader's stage, idempotent.

    The file format is replaced on every load, so a deployment made by an earlier
    version gets these options: with logical types, DATE, TIME, TIMESTAMP and
    DECIMAL columns reach `$1:column` as themselves, not as the integers Parquet
    stores them as; the vectorized scanner reads only the columns a COPY selects.
    """
    tables = [create_table(table, "snowflake") for table in TABLES]
    return [
        *tables,
        file_format_statement(FILE_FORMAT),
        f"CREATE STAGE IF NOT EXISTS {quoted(stage, 'stage')}",
    ]


def file_format_statement(name: str, kind: str = "") -> str:
    """The Parquet file format every COPY reads with (`kind`: TEMPORARY, for doctor)."""
    return (
        f"CREATE OR REPLACE {kind + ' ' if kind else ''}FILE FORMAT {name} TYPE = PARQUET "
        "USE_LOGICAL_TYPE = TRUE USE_VECTORIZED_SCANNER = TRUE"
    )


def external_stage_statement(stage: str, url: str, integration: str | None) -> str:
    integration_clause = f" STORAGE_INTEGRATION = {quoted(integration)}" if integration else ""
    return (
        f"CREATE OR REPLACE STAGE {quoted(stage, 'stage')} URL = '{url}'{integration_clause} "
        f"FILE_FORMAT = (FORMAT_NAME = '{FILE_FORMAT}')"
    )


def put_statement(path: Path, stage: str, run_id: str, table: str) -> str:
    """PUT one Parquet file as it is (already compressed: no AUTO_COMPRESS).

    The local path is a quoted literal: backslashes and single quotes are escaped,
    so folders with quotes and spaces upload.
    """
    local = str(path.resolve()).replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"PUT 'file://{local}' @{quoted(stage, 'stage')}/{run_id}/{table}/ "
        "AUTO_COMPRESS = FALSE OVERWRITE = TRUE PARALLEL = 4"
    )


def render_stage_sql(stage: str = DEFAULT_STAGE) -> str:
    """The file format and stage the loader creates, as a deployable file."""
    return (
        "-- dicom-loader stage and Parquet file format, Snowflake dialect.\n"
        "-- Rendered by `dicom-loader sql --dialect snowflake`. Do not edit by hand.\n\n"
        + "".join(f"{s};\n" for s in setup_statements(stage)[len(TABLES) :])
    )


def copy_statement(
    model: Table, stage: str, folder: str, files: Sequence[str], file_format: str = FILE_FORMAT
) -> str:
    """COPY the named Parquet files of `@stage/folder` into the table's staging table.

    Every column is mapped by name and cast to its model type (VARIANT text parsed),
    and a file that does not load aborts the statement (bad DICOM never reaches COPY;
    it is already an error row). FORCE reloads files a previous, interrupted load
    copied already: the staging table is new for every load and MERGE makes the
    result idempotent.
    """
    names = arrow_schema(model).names
    types = DIALECT_TYPES["snowflake"]
    selects = [
        f"PARSE_JSON($1:{name})"
        if model.column(name).type is ColumnType.VARIANT
        else f"$1:{name}::{types[model.column(name).type]}"
        for name in names
    ]
    listed = ", ".join(f"'{f}'" for f in files)
    return (
        f"COPY INTO {stage_table(model.name)} ({', '.join(names)}) "
        f"FROM (SELECT {', '.join(selects)} FROM @{quoted(stage, 'stage')}/{folder}) "
        f"FILES = ({listed}) "
        f"FILE_FORMAT = (FORMAT_NAME = '{file_format}') ON_ERROR = ABORT_STATEMENT FORCE = TRUE"
    )


def copy_statements(table: str, stage: str, folder: str, names: list[str]) -> list[str]:
    """The COPY statements of a table's staged files: FILES lists of at most 1,000."""
    return [
        copy_statement(BY_NAME[table], stage, folder, names[i : i + FILES_PER_COPY])
        for i in range(0, len(names), FILES_PER_COPY)
    ]


class SnowflakeWarehouse:
    dialect = "snowflake"
    placeholder = DIALECT.placeholder

    def __init__(
        self,
        target_text: str,
        stage_url: str | None = None,
        storage_integration: str | None = None,
        stage_file_mb: float = DEFAULT_STAGE_FILE_MB,
    ) -> None:
        import snowflake.connector

        self.target: SnowflakeTarget = parse_snowflake_target(target_text)
        self.stage_url = external_stage_url(stage_url) if stage_url else None
        self.storage_integration = storage_integration
        self.stage_file_bytes = int(stage_file_mb * 1024 * 1024)
        try:
            if self.target.connection_name:
                self.con = snowflake.connector.connect(connection_name=self.target.connection_name)
            else:
                self.con = snowflake.connector.connect(**self.target.connect_kwargs)
        except Exception as exc:  # noqa: BLE001 - the connector raises many types; all fail here
            message = self.target.scrub(f"{type(exc).__name__}: {exc}")
            raise LoadError(f"cannot connect to {self.target.description}: {message}") from None

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def _cursor_for(self, sql: str) -> Iterator[Any]:
        """A cursor for one statement, closed after it; Snowflake's refusal, when the
        statement runs or while its rows are fetched, becomes a StatementError naming
        it (the message scrubbed of credentials)."""
        from snowflake.connector.errors import Error

        cursor = self.con.cursor()
        try:
            yield cursor
        except Error as exc:
            # The connector's message, its code and state in front (`Error.__str__`
            # returns it; "Unknown error" when the server gave none).
            raise StatementError(sql, self.target.scrub(str(exc))) from None
        finally:
            cursor.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (none for a statement without)."""
        with self._cursor_for(sql) as cursor:
            cursor.execute(sql, tuple(params) or None)
            return list(cursor.fetchall()) if cursor.description else []

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._execute(sql, params or ())

    def records(self, sql: str) -> list[dict[str, Any]]:
        """One statement's rows by column name, lower case (SHOW's columns are
        documented by name, not position)."""
        with self._cursor_for(sql) as cursor:
            cursor.execute(sql)
            names = [d[0].lower() for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def batches(
        self, sql: str, size: int = 100_000, params: list[Any] | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        return fetch_batches(self.con.cursor(), sql, size, params)

    def column_batches(
        self, sql: str, size: int = 100_000, params: list[Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The result's Arrow chunks as Snowflake sends them (their size is the
        service's: `size` does not apply)."""
        with self._cursor_for(sql) as cursor:
            cursor.execute(sql, tuple(params) if params else None)
            for table in cursor.fetch_arrow_batches():
                yield from table.to_batches()

    def record_deletions(
        self, location_keys: Iterable[list[int]], at: dt.datetime, run_id: str
    ) -> Deleted:
        """Stamp these locations deleted and follow through, in one transaction."""
        return in_one_transaction(self._execute, DIALECT, "BEGIN", location_keys, at, run_id)

    def create_model(self) -> None:
        for statement in setup_statements(self.target.stage):
            self._execute(statement)
        for statement in upgrade_statements(self.query, "snowflake"):
            self._execute(statement)

    # A run loads as one batch, after its extraction: its COPYs want few large files
    # (stage_files), and the driver holds none of the rows.
    load_batch_objects: int | None = None

    def load_run(self, out: OutputRoot, run_id: str, shards: list[ShardRecord]) -> LoadResult:
        """Compact, stage (PUT, or the external stage), COPY and check, then MERGE in
        one transaction; safe to repeat."""
        if not _RUN_ID.fullmatch(run_id):
            raise ConfigError(f"run id {run_id!r} cannot name a stage path")
        started = time.time()
        self.create_model()
        loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        staged_root = f"{STAGED_FOLDER}/run_id={run_id}"
        compacted = {
            name: compact_table(
                out,
                BY_NAME[name],
                [s.files[name] for s in shards if name in s.files],
                f"{staged_root}/{name}",
                self.stage_file_bytes,
            )
            for name in EXTRACTED
        }
        if self.stage_url:
            stage = f"{self.target.stage}_EXTERNAL"
            self._execute(external_stage_statement(stage, self.stage_url, self.storage_integration))
            folders = {name: f"{staged_root}/{name}/" for name in EXTRACTED}
        else:
            stage = self.target.stage
            self._put(out, run_id, staged_root, compacted)
            folders = {name: f"{run_id}/{name}/" for name in EXTRACTED}
        # Each COPY's rows are checked against the compacted files, and the staged
        # totals against the ledger (merge.check_staged): a lost row fails either way.
        staged = {}
        for name in EXTRACTED:
            staged[name] = self._copy(name, stage, folders[name], compacted[name], loaded_at)
            faults.maybe_fail("mid-copy")
        faults.maybe_fail("after-copy")
        self._execute("BEGIN")
        try:
            result = merge_staged(self._execute, DIALECT, run_id, shards, staged, loaded_at)
            account_staged(self._execute, DIALECT, run_id, shards, loaded_at, result)
            self._execute("COMMIT")
        except BaseException:
            self._execute("ROLLBACK")
            raise
        for name in EXTRACTED:
            self._execute(f"DROP TABLE IF EXISTS {stage_table(name)}")
        if not self.stage_url:
            self._execute(f"REMOVE @{quoted(stage, 'stage')}/{run_id}/")
        out.remove_folder(staged_root)
        result.staged_files = {
            name: {"files": len(files), "bytes": sum(f.bytes for f in files)}
            for name, files in compacted.items()
        }
        result.seconds = time.time() - started
        return result

    def _put(
        self,
        out: OutputRoot,
        run_id: str,
        staged_root: str,
        compacted: dict[str, list[StagedFile]],
    ) -> None:
        """Upload every compacted file to the internal stage, PUT_THREADS at a time
        (each PUT on its own cursor; the connector's connection serves them alike)."""
        jobs = [
            (table, Path(out.location(f"{staged_root}/{table}/{f.name}")))
            for table, files in compacted.items()
            for f in files
        ]

        def put(job: tuple[str, Path]) -> None:
            table, path = job
            rows = self._execute(put_statement(path, self.target.stage, run_id, table))
            check_put_result(table, path, rows)

        with ThreadPoolExecutor(PUT_THREADS) as pool:
            list(pool.map(put, jobs))

    def _copy(
        self,
        table: str,
        stage: str,
        folder: str,
        files: list[StagedFile],
        loaded_at: dt.datetime,
    ) -> int:
        staging = stage_table(table)
        self._execute(f"CREATE OR REPLACE TRANSIENT TABLE {staging} LIKE {table}")
        if not files:
            return 0
        expected = {f.name: f.rows for f in files}
        statements = copy_statements(table, stage, folder, sorted(expected))
        results = [row for statement in statements for row in self._execute(statement)]
        check_copy_results(table, results, expected)
        self._execute(f"UPDATE {staging} SET _loaded_at = %s", [loaded_at])
        [(counted,)] = self._execute(f"SELECT count(*) FROM {staging}")
        return int(counted)


# The result of COPY INTO <table>, one row per file, as Snowflake documents it
# (https://docs.snowflake.com/en/sql-reference/sql/copy-into-table, "Output").
COPY_RESULT_COLUMNS = (
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
)


def _copied(row: tuple[Any, ...], column: str) -> Any:
    """One column of a COPY result's row, by its documented name."""
    return row[COPY_RESULT_COLUMNS.index(column)]


# PUT's output, a row per file: source, target, source_size, target_size,
# source_compression, target_compression, status, message (PUT, "Output"); a file
# already on the stage with the same checksum is SKIPPED.
_PUT_STATUS = 6
_PUT_DONE = ("UPLOADED", "SKIPPED")


def check_put_result(table: str, path: Path, rows: list[tuple[Any, ...]]) -> None:
    """The PUT of one file put it there: its one row says UPLOADED or SKIPPED."""
    if len(rows) != 1 or rows[0][_PUT_STATUS] not in _PUT_DONE:
        raise LoadError(f"PUT of {path.name} for {table} did not upload: {rows}")


def check_copy_results(
    table: str, results: list[tuple[Any, ...]], expected: dict[str, int]
) -> None:
    """Every file LOADED with the rows the run wrote, and no file unaccounted for.

    A COPY that reports success on nothing is a failure: a wrong path returns
    "Copy executed with 0 files processed." and looks clean.
    """
    seen: dict[str, int] = {}
    for row in results:
        if len(row) < len(COPY_RESULT_COLUMNS):
            raise LoadError(f"{table}: COPY returned no per-file result: {row}")
        name = str(_copied(row, "file")).rsplit("/", 1)[-1]
        status, loaded = str(_copied(row, "status")), int(_copied(row, "rows_loaded") or 0)
        if status != "LOADED":
            error = _copied(row, "first_error")
            raise LoadError(f"{table}: COPY of {name} ended {status}: {error}")
        seen[name] = seen.get(name, 0) + loaded
    if seen != expected:
        missing = sorted(set(expected) - set(seen))
        wrong = sorted(n for n in seen if n in expected and seen[n] != expected[n])
        raise LoadError(
            f"{table}: COPY loaded {seen} but the run wrote {expected} "
            f"(missing {missing[:5]}, wrong row counts {wrong[:5]})"
        )
