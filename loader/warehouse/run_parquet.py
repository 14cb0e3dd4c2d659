"""A run's own Parquet as an in-memory DuckDB: one view per table asked for, over the
files the run's ledger records name, with the model's columns (a column a Parquet
written by an earlier version lacks reads as NULL; a table no shard wrote is an
empty view). `rebuild --from-parquet` reads stored headers through it; the HTML
report reads error examples, modalities and SOP classes through it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loader.core.model import BY_NAME, DIALECT_TYPES
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.warehouse.duckdb import DuckDBWarehouse


def run_views(
    out: OutputRoot, records: Sequence[ledger.ShardRecord], tables: Iterable[str]
) -> DuckDBWarehouse:
    """An in-memory DuckDB with a view of each of `tables` over `records`' files."""
    memory = DuckDBWarehouse(":memory:")
    if out.remote:
        memory.con.register_filesystem(out.filesystem())
    types = DIALECT_TYPES["duckdb"]
    for name in tables:
        files = [out.location(r.files[name]) for r in records if name in r.files]
        table = BY_NAME[name]
        if not files:
            empty = ", ".join(f"CAST(NULL AS {types[c.type]}) AS {c.name}" for c in table.columns)
            memory.con.execute(f"CREATE VIEW {name} AS SELECT {empty} WHERE false")
            continue
        read = f"read_parquet({_sql_list(files)}, union_by_name = true)"
        present = {
            row[0] for row in memory.con.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()
        }
        columns = ", ".join(
            c.name if c.name in present else f"CAST(NULL AS {types[c.type]}) AS {c.name}"
            for c in table.columns
        )
        memory.con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM {read}")
    return memory


def _sql_list(texts: list[str]) -> str:
    """A DuckDB list literal of file names the ledger holds (quotes doubled)."""
    return "[" + ", ".join("'" + t.replace("'", "''") + "'" for t in texts) + "]"
