"""Rows → one zstd Parquet file per table per shard, with a deterministic name.

Rows are buffered per table and flushed as row groups once a buffer is large, so
a shard of objects with thousands of elements each still fits in bounded memory.
Files are spooled and published whole when complete (see `output`): a crashed
shard leaves no file that looks finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loader.core import faults
from loader.core.model import BY_NAME, ColumnType, LoadMode, arrow_schema
from loader.extract.context import Columns, Row
from loader.output.location import OutputRoot

FLUSH_ROWS = 50_000
_PER_SHARD = frozenset({"_run_id", "_shard_id"})  # the same for every row of a shard


@cache
def _stored_schema(table: str) -> pa.Schema:
    """The columns a table's buffers hold: all but those the shard gives every row."""
    schema = arrow_schema(BY_NAME[table])
    return pa.schema([field for field in schema if field.name not in _PER_SHARD])


@cache
def _stored(table: str) -> tuple[str, ...]:
    return tuple(_stored_schema(table).names)


@cache
def _ordered(table: str) -> bool:
    return "_source_order" in _stored(table)


@cache
def _row_schema(table: str) -> pa.Schema:
    """What a table's row dicts hold: its stored columns but the source order, which
    the buffer keeps beside them (a row may be shared, see extract.repeated)."""
    stored = _stored_schema(table)
    return stored.remove(stored.get_field_index("_source_order")) if _ordered(table) else stored


@cache
def _parquet_options(table: str) -> dict[str, list[str]]:
    """Per-column Parquet encoding. A one-column key of a table of many rows per
    object (element, item, frame keys) is unique per row: a dictionary for it is
    built, found too large and dropped, at a seventh of the element table's write.
    Statistics are kept for what can prune a row group (keys, numbers, times), not
    for text, whose min and max cost without ever excluding a group."""
    model = BY_NAME[table]
    unique = model.key if model.mode is LoadMode.INSTANCE_CHILD and len(model.key) == 1 else ()
    text = {ColumnType.TEXT, ColumnType.TEXT_ARRAY, ColumnType.VARIANT}
    names = arrow_schema(model).names
    return {
        "use_dictionary": [name for name in names if name not in unique],
        "write_statistics": [
            c.name for c in model.columns if c.type not in text and c.name in names
        ],
    }


def _table_of_columns(columns: Columns, stored: pa.Schema) -> pa.Table:
    arrays: dict[str, pa.Array] = {}
    for key, values in columns.items():
        if isinstance(key, tuple):
            arrays.update(_shared_tuple_columns(key, values, stored))
        else:
            arrays[key] = pa.array(values, stored.field(key).type)
    return pa.Table.from_arrays([arrays[name] for name in stored.names], schema=stored)


def _shared_tuple_columns(
    names: tuple[str, ...], rows: list[tuple[object, ...]], stored: pa.Schema
) -> dict[str, pa.Array]:
    """Columns of row tuples that rows share by identity: each distinct tuple is
    converted once, then Arrow repeats it where it recurs. A series' objects share
    nine in ten element rows, and converting Python values is the writer's cost."""
    identities = pa.array(np.fromiter(map(id, rows), np.uint64, len(rows)))
    encoded = identities.dictionary_encode()  # hashed, in order of first appearance
    first = pc.index_in(encoded.dictionary, value_set=identities).to_numpy()
    distinct = zip(*[rows[at] for at in first.tolist()], strict=True)
    return {
        name: pa.array(values, stored.field(name).type).take(encoded.indices)
        for name, values in zip(names, distinct, strict=True)
    }


def part_path(table: str, run_id: str, shard_id: str) -> str:
    """A shard's file of a table, relative to the output root."""
    return f"{table}/run_id={run_id}/part-{shard_id}.parquet"


@dataclass(frozen=True, slots=True)
class FileRecord:
    table: str
    path: str  # relative to the output root
    rows: int
    bytes: int


class ArrowBuffers:
    """One shard's rows per table, as they come, converted to Arrow in one call per
    table once FLUSH_ROWS of it are buffered: row dicts (one or a few per object)
    and columns (many rows per object)."""

    def __init__(self, run_id: str, shard_id: str) -> None:
        self.run_id = run_id
        self.shard_id = shard_id
        self._rows: dict[str, list[Row]] = {}
        self._orders: dict[str, list[str | None]] = {}  # the source order of each row
        self._columns: dict[str, Columns] = {}
        self._buffered: dict[str, int] = {}

    def add(self, table: str, rows: list[Row] | Columns, source_order: str | None) -> bool:
        """Buffer one object's rows of a table; True when the table's buffer is full."""
        if not rows:
            return False
        ordered = _ordered(table)
        if isinstance(rows, dict):
            count = len(next(iter(rows.values())))
            buffer = self._columns.get(table)
            if buffer is None:
                buffer = self._columns[table] = {key: [] for key in rows}
                if ordered:
                    buffer["_source_order"] = []
            for key, values in rows.items():
                buffer[key].extend(values)
            if ordered:
                buffer["_source_order"].extend([source_order] * count)
        else:
            count = len(rows)
            if ordered:
                self._orders.setdefault(table, []).extend([source_order] * count)
            self._rows.setdefault(table, []).extend(rows)
        buffered = self._buffered[table] = self._buffered.get(table, 0) + count
        return buffered >= FLUSH_ROWS

    def tables(self) -> list[str]:
        """The tables with rows buffered."""
        return list(self._buffered)

    def take(self, table: str) -> pa.Table:
        """A table's buffered rows as Arrow, in the table's full schema."""
        count = self._buffered.pop(table)
        stored = _stored_schema(table)
        parts = []
        rows = self._rows.pop(table, None)
        if rows:
            row_schema = _row_schema(table)
            # from_pylist drops a key the schema lacks: a misspelled column would
            # be a NULL column, silently. The keys of all rows, in one C-level union.
            unknown = set().union(*rows).difference(row_schema.names)
            if unknown:
                raise KeyError(f"{table} rows name columns the model lacks: {sorted(unknown)}")
            part = pa.Table.from_pylist(rows, schema=row_schema)
            if _ordered(table):
                orders = pa.array(self._orders.pop(table), pa.string())
                part = part.append_column("_source_order", orders).select(stored.names)
            parts.append(part)
        columns = self._columns.pop(table, None)
        if columns:
            parts.append(_table_of_columns(columns, stored))
        batch = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        schema = arrow_schema(BY_NAME[table])
        for name, value in (("_run_id", self.run_id), ("_shard_id", self.shard_id)):
            if name in schema.names:
                batch = batch.append_column(
                    schema.field(name), pa.repeat(pa.scalar(value, pa.string()), count)
                )
        return batch.select(schema.names)


class ShardWriter:
    """Writes one shard's rows as Parquet, a row group per full buffer (see
    `ArrowBuffers`)."""

    def __init__(self, out: OutputRoot, run_id: str, shard_id: str) -> None:
        self.out = out
        self.run_id = run_id
        self.shard_id = shard_id
        self._buffers = ArrowBuffers(run_id, shard_id)
        self._writers: dict[str, tuple[pq.ParquetWriter, Path]] = {}
        self._written: dict[str, int] = {}

    def add(self, table: str, rows: list[Row] | Columns, source_order: str | None) -> None:
        """Buffer one object's rows of a table: a list of row dicts, or columns."""
        if self._buffers.add(table, rows, source_order):
            self._flush(table)

    def _flush(self, table: str) -> None:
        batch = self._buffers.take(table)
        if table not in self._writers:
            spooled = self.out.spool(part_path(table, self.run_id, self.shard_id))
            self._writers[table] = (
                pq.ParquetWriter(
                    spooled, batch.schema, compression="zstd", **_parquet_options(table)
                ),
                spooled,
            )
        writer, _ = self._writers[table]
        writer.write_table(batch, row_group_size=FLUSH_ROWS)
        self._written[table] = self._written.get(table, 0) + batch.num_rows

    def close(self) -> list[FileRecord]:
        """Flush and publish every file; return what was written."""
        for table in self._buffers.tables():
            self._flush(table)
        records = []
        for table, (writer, spooled) in self._writers.items():
            writer.close()
            relative = part_path(table, self.run_id, self.shard_id)
            size = self.out.publish(spooled, relative)
            records.append(FileRecord(table, relative, self._written[table], size))
            faults.maybe_fail("mid-publish")  # one file published, the others spooled
        self._writers = {}
        return records

    def abort(self) -> None:
        for writer, spooled in self._writers.values():
            writer.close()
            self.out.discard(spooled)
        self._writers = {}
