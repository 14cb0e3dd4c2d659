"""The embedded default warehouse: DuckDB, loaded straight from the run's Parquet.

A run loads in batches of shards (`load_batch`, driven by warehouse/batches.py):
staging puts a view over each table's Parquet files of the batch, and
`merge.merge_staged` applies them in one transaction, so a batch is all or nothing
and reloading it leaves identical tables. `finish_run` then accounts for the whole
run. DuckDB runs in the driver under an explicit memory limit, spilling to its temp
folder beyond it: the driver's memory does not grow with the archive.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from loader.core import faults
from loader.core.errors import LoadError, WarehouseMemoryError
from loader.core.model import (
    BY_NAME,
    DIALECT_TYPES,
    EXTRACTED,
    TABLES,
    arrow_schema,
    create_table,
)
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.warehouse.base import Deleted, LoadResult, fetch_batches, upgrade_statements
from loader.warehouse.batches import BatchedLoad
from loader.warehouse.deletions import in_one_transaction
from loader.warehouse.merge import (
    MergeDialect,
    account_staged,
    delete_insert_upsert,
    merge_staged,
    stage_table,
)
from loader.warehouse.target import DuckDBOptions

DIALECT = MergeDialect(
    types=DIALECT_TYPES["duckdb"],
    placeholder="?",
    upsert=delete_insert_upsert,
    sorted_distinct_list=lambda column: (
        f"list_sort(list(DISTINCT {column}) FILTER (WHERE {column} IS NOT NULL))"
    ),
    variant_from_text=lambda text: f"CAST({text} AS JSON)",
)


class DuckDBWarehouse:
    dialect = "duckdb"
    placeholder = DIALECT.placeholder

    def __init__(
        self, path: str, read_only: bool = False, options: DuckDBOptions | None = None
    ) -> None:
        options = options or DuckDBOptions()
        if path != ":memory:" and not read_only:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.load_batch_objects: int | None = options.load_batch_objects
        spill = options.temp_directory or (f"{path}.tmp" if path != ":memory:" else None)
        self.memory_limit, self.spill = options.memory_limit, spill or "nowhere"
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": options.memory_limit
        }
        if spill:
            config["temp_directory"] = spill
        try:
            self.con = duckdb.connect(path, read_only=read_only, config=config)
        except duckdb.Error as exc:
            raise LoadError(f"cannot open DuckDB database {path}: {exc}") from exc
        # Rows have no order that means anything; inserting unordered runs in parallel.
        self.con.execute("SET preserve_insertion_order = false")

    def close(self) -> None:
        self.con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._within_memory():
            return self.con.execute(sql, params or []).fetchall()

    def batches(
        self, sql: str, size: int = 100_000, params: list[Any] | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        with self._within_memory():
            yield from fetch_batches(self.con.cursor(), sql, size, params)

    def column_batches(
        self, sql: str, size: int = 100_000, params: list[Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        cursor = self.con.cursor()
        try:
            with self._within_memory():
                yield from cursor.sql(sql, params=params or None).to_arrow_reader(size)
        finally:
            cursor.close()

    @contextmanager
    def _within_memory(self) -> Iterator[None]:
        """DuckDB's out-of-memory error as what it is: a setting to raise, one line."""
        try:
            yield
        except duckdb.OutOfMemoryException:
            raise WarehouseMemoryError(
                f"DuckDB ran out of memory within --duckdb-memory-limit {self.memory_limit} "
                f"(spilling to {self.spill}): raise --duckdb-memory-limit "
                "(DICOM_LOADER_DUCKDB_MEMORY_LIMIT)"
            ) from None

    def record_deletions(
        self, location_keys: Iterable[list[int]], at: dt.datetime, run_id: str
    ) -> Deleted:
        """Stamp these locations deleted and follow through, in one transaction."""
        return in_one_transaction(
            self._execute, DIALECT, "BEGIN TRANSACTION", location_keys, at, run_id
        )

    def _execute(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._within_memory():
            cursor = self.con.execute(sql, list(params))
            return cursor.fetchall() if cursor.description else []

    def create_model(self) -> None:
        for table in TABLES:
            self.con.execute(create_table(table, "duckdb"))
        for statement in upgrade_statements(self.query, "duckdb"):
            self.con.execute(statement)

    def load_run(self, out: OutputRoot, run_id: str, shards: list[ShardRecord]) -> LoadResult:
        """Load every committed shard of a run, batch by batch; idempotent."""
        return BatchedLoad(self, out, run_id, background=False).finish(shards)

    def load_batch(
        self, out: OutputRoot, run_id: str, shards: list[ShardRecord], loaded_at: dt.datetime
    ) -> LoadResult:
        """Merge these shards in one transaction; all or nothing, safe to repeat.

        Parquet on an object store is read in place through the same fsspec
        filesystem the run wrote it with (no httpfs extension to download).
        """
        started = time.time()
        with self._staging(out, EXTRACTED):
            staged = {}
            for name in EXTRACTED:
                staged[name] = self._stage(name, self._files(out, shards, name), loaded_at)
                faults.maybe_fail("mid-copy")
            result = merge_staged(self._execute, DIALECT, run_id, shards, staged, loaded_at)
        result.seconds = time.time() - started
        return result

    def finish_run(
        self,
        out: OutputRoot,
        run_id: str,
        shards: list[ShardRecord],
        loaded_at: dt.datetime,
        result: LoadResult,
    ) -> LoadResult:
        """The run's load history and accounting, from all of its locations and errors."""
        whole_run = ("dicom_file_location", "dicom_ingestion_errors")
        with self._staging(out, whole_run):
            for name in whole_run:
                self._stage(name, self._files(out, shards, name), loaded_at)
            account_staged(self._execute, DIALECT, run_id, shards, loaded_at, result)
        return result

    @contextmanager
    def _staging(self, out: OutputRoot, names: tuple[str, ...]) -> Iterator[None]:
        """One transaction, committed if the block ends and rolled back if it raises;
        the views staged for `names` are dropped either way."""
        self._prepare(out)
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self._drop_staged(names)

    def _prepare(self, out: OutputRoot) -> None:
        """The model exists, and DuckDB reads the run's object store (once per connection)."""
        self.create_model()
        if out.remote:
            filesystem = out.filesystem()
            protocol = filesystem.protocol
            name = protocol[0] if isinstance(protocol, tuple | list) else protocol
            if not self.con.filesystem_is_registered(name):
                self.con.register_filesystem(filesystem)

    @staticmethod
    def _files(out: OutputRoot, shards: list[ShardRecord], name: str) -> list[str]:
        return [out.location(s.files[name]) for s in shards if name in s.files]

    def _drop_staged(self, names: tuple[str, ...]) -> None:
        for name in names:
            self.con.execute(f"DROP VIEW IF EXISTS {stage_table(name)}")

    def _stage(self, name: str, files: list[str], loaded_at: dt.datetime) -> int:
        """Stage a table's files as a view over them: the merge reads each table once
        or twice, a few columns at a time. Copying rows into temporary tables first
        cost a fifth of a load, and over dicom_raw's JSON documents (600 MB at
        200,000 objects) spilled past DuckDB's memory limit."""
        stage = stage_table(name)
        columns = ", ".join(arrow_schema(BY_NAME[name]).names)
        listed = ", ".join(_literal(f) for f in files)
        source = (
            f"SELECT {columns}, {_literal(loaded_at.isoformat())}::TIMESTAMP AS _loaded_at "
            f"FROM read_parquet([{listed}])"
            if files
            else f"SELECT * FROM {name} WHERE false"
        )
        self.con.execute(f"CREATE OR REPLACE TEMPORARY VIEW {stage} AS {source}")
        [(staged,)] = self._execute(f"SELECT count(*) FROM {stage}", [])
        return int(staged)


def _literal(text: str) -> str:
    """A SQL string literal (DDL takes no bound parameters)."""
    return "'" + text.replace("'", "''") + "'"
