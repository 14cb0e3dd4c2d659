"""The Warehouse protocol: what every destination offers the pipeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loader.core.model import TABLES, added_columns
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot


@dataclass
class Deleted:
    """What one run found deleted (warehouse/deletions.py stamps them)."""

    objects: int = 0  # locations stamped
    instances: int = 0  # instances with no live copy left, stamped


@dataclass
class LoadResult:
    """What one load changed and how the run's objects were accounted for."""

    run_id: str
    rows_staged: dict[str, int] = field(default_factory=dict)
    new_instances: int = 0
    loaded: int = 0
    duplicates: int = 0
    error_files: int = 0
    # Per entity table: natural keys whose objects disagreed, and on which columns.
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per table, the files and bytes staged for a warehouse that loads from a stage.
    staged_files: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def absorb(self, batch: LoadResult) -> None:
        """Add what one load batch changed. A natural key whose objects disagree
        is counted once per batch that brings it a disagreeing value."""
        for name, rows in batch.rows_staged.items():
            self.rows_staged[name] = self.rows_staged.get(name, 0) + rows
        self.new_instances += batch.new_instances
        for table, found in batch.conflicts.items():
            mine = self.conflicts.setdefault(table, {"keys": 0, "columns": {}})
            mine["keys"] += found["keys"]
            for column, n in found["columns"].items():
                mine["columns"][column] = mine["columns"].get(column, 0) + n


class Warehouse(Protocol):
    dialect: str
    placeholder: str  # how a statement marks a bound value ("?", "%s")
    # Objects per load transaction for a warehouse that loads a run in batches while
    # it is extracted (`BatchLoading`); None: the whole run at once, by load_run.
    load_batch_objects: int | None

    def create_model(self) -> None: ...

    def load_run(self, out: OutputRoot, run_id: str, shards: list[ShardRecord]) -> LoadResult: ...

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    # A large result in batches of rows, so it never sits in memory whole.
    def batches(
        self, sql: str, size: int = 100_000, params: list[Any] | None = None
    ) -> Iterator[list[tuple[Any, ...]]]: ...

    # The same as Arrow record batches: a million numbers as columns, not as a million
    # Python tuples (the numbers of a million known objects: under 0.1 s, 2.5 s as rows).
    def column_batches(
        self, sql: str, size: int = 100_000, params: list[Any] | None = None
    ) -> Iterator[pa.RecordBatch]: ...

    # Objects found gone from the archive: stamped, followed through, one transaction.
    def record_deletions(
        self, location_keys: Iterable[list[int]], at: dt.datetime, run_id: str
    ) -> Deleted: ...

    def close(self) -> None: ...


# Both engines answer this for the schema a session works in.
EXISTING_COLUMNS_SQL = (
    "SELECT lower(table_name), lower(column_name) FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND lower(table_name) IN ({tables})"
)


def upgrade_statements(query: Callable[[str], list[tuple[Any, ...]]], dialect: str) -> list[str]:
    """The ALTER TABLEs a warehouse made by an earlier version needs (model.added_columns)."""
    tables = ", ".join(f"'{t.name}'" for t in TABLES)
    rows = query(EXISTING_COLUMNS_SQL.format(tables=tables))
    return added_columns(dialect, {(str(t), str(c)) for t, c in rows})


def column_numbers(column: pa.Array, kind: pa.DataType) -> np.ndarray:
    """A result's column of whole numbers as a NumPy array of `kind`. Snowflake sends
    a NUMBER(20,0) as a decimal or as the narrowest integer its values fit, DuckDB a
    UBIGINT as uint64: the cast (checked: a value that does not fit is an error, never
    wrapped) makes them one type. A NULL is an error too: NumPy would hold it as a
    float NaN, whose cast to an integer no platform defines (the SQL coalesces)."""
    if column.null_count:
        raise ValueError(f"{column.null_count} NULL(s) in a column of whole numbers")
    return pc.cast(column, kind).to_numpy(zero_copy_only=False)


def fetch_batches(
    cursor: Any, sql: str, size: int, params: list[Any] | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """`Warehouse.batches` over a DB-API cursor (DuckDB's and Snowflake's alike);
    the cursor is closed when the batches end or the caller stops early."""
    try:
        cursor.execute(sql, params) if params else cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield list(rows)
    finally:
        cursor.close()


class BatchLoading(Warehouse, Protocol):
    """A warehouse that loads a run batch by batch (see warehouse/batches.py)."""

    def load_batch(
        self, out: OutputRoot, run_id: str, shards: list[ShardRecord], loaded_at: dt.datetime
    ) -> LoadResult:
        """Merge these shards in one transaction; safe to repeat."""

    def finish_run(
        self,
        out: OutputRoot,
        run_id: str,
        shards: list[ShardRecord],
        loaded_at: dt.datetime,
        result: LoadResult,
    ) -> LoadResult:
        """Once every batch is merged: the run's history and accounting, in `result`."""
