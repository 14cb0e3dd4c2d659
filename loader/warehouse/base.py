"""The Warehouse protocol: what every destination offers the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from loader.ledger import ShardRecord
    from loader.output import OutputRoot


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


class Warehouse(Protocol):
    dialect: str
    placeholder: str  # how a statement marks a bound value ("?", "%s")

    def create_model(self) -> None: ...

    def load_run(self, out: OutputRoot, run_id: str, shards: list[ShardRecord]) -> LoadResult: ...

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    # A large result in batches of rows, so it never sits in memory whole.
    def batches(self, sql: str, size: int = 100_000) -> Iterator[list[tuple[Any, ...]]]: ...

    def close(self) -> None: ...


def fetch_batches(cursor: Any, sql: str, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """`Warehouse.batches` over a DB-API cursor (DuckDB's and Snowflake's alike);
    the cursor is closed when the batches end or the caller stops early."""
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield list(rows)
    finally:
        cursor.close()
