"""Rows → one zstd Parquet file per table per shard, with a deterministic name.

Rows are buffered per table and flushed as row groups once a buffer is large, so
a shard of objects with thousands of elements each still fits in bounded memory.
Files are spooled and published whole when complete (see `output`): a crashed
shard leaves no file that looks finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loader.extract.context import Columns, Row
from loader.model import BY_NAME, arrow_schema
from loader.output import OutputRoot

FLUSH_ROWS = 50_000
_PER_SHARD = frozenset({"_run_id", "_shard_id"})  # the same for every row of a shard


def part_path(table: str, run_id: str, shard_id: str) -> str:
    """A shard's file of a table, relative to the output root."""
    return f"{table}/run_id={run_id}/part-{shard_id}.parquet"


@dataclass(frozen=True, slots=True)
class FileRecord:
    table: str
    path: str  # relative to the output root
    rows: int
    bytes: int


class ShardWriter:
    """Collects one shard's rows per table, as columns, and writes them as Parquet."""

    def __init__(self, out: OutputRoot, run_id: str, shard_id: str) -> None:
        self.out = out
        self.run_id = run_id
        self.shard_id = shard_id
        self._buffers: dict[str, dict[str, list[object]]] = {}
        self._buffered: dict[str, int] = {}
        self._writers: dict[str, tuple[pq.ParquetWriter, Path]] = {}
        self._rows: dict[str, int] = {}

    def add(self, table: str, rows: list[Row] | Columns, source_order: str | None) -> None:
        """Buffer one object's rows of a table: a list of row dicts, or columns."""
        if not rows:
            return
        buffer = self._buffers.get(table)
        if buffer is None:
            names = arrow_schema(BY_NAME[table]).names
            buffer = self._buffers[table] = {name: [] for name in names if name not in _PER_SHARD}
        ordered = "_source_order" in buffer
        if isinstance(rows, dict):
            count = len(next(iter(rows.values())))
            for name, values in rows.items():
                buffer[name].extend(values)
            if ordered:
                buffer["_source_order"].extend([source_order] * count)
        else:
            count = len(rows)
            for row in rows:
                if ordered:
                    row["_source_order"] = source_order
                for name, values in buffer.items():
                    values.append(row.get(name))
        self._buffered[table] = self._buffered.get(table, 0) + count
        if self._buffered[table] >= FLUSH_ROWS:
            self._flush(table)

    def _flush(self, table: str) -> None:
        buffer = self._buffers.pop(table, None)
        count = self._buffered.pop(table, 0)
        if not buffer or not count:
            return
        schema = arrow_schema(BY_NAME[table])
        buffer["_run_id"] = [self.run_id] * count
        if "_shard_id" in schema.names:
            buffer["_shard_id"] = [self.shard_id] * count
        batch = pa.Table.from_pydict(buffer, schema=schema)
        if table not in self._writers:
            spooled = self.out.spool(part_path(table, self.run_id, self.shard_id))
            self._writers[table] = (
                pq.ParquetWriter(spooled, schema, compression="zstd", write_statistics=True),
                spooled,
            )
        writer, _ = self._writers[table]
        writer.write_table(batch, row_group_size=FLUSH_ROWS)
        self._rows[table] = self._rows.get(table, 0) + count

    def close(self) -> list[FileRecord]:
        """Flush and publish every file; return what was written."""
        for table in list(self._buffers):
            self._flush(table)
        records = []
        for table, (writer, spooled) in self._writers.items():
            writer.close()
            relative = part_path(table, self.run_id, self.shard_id)
            size = self.out.publish(spooled, relative)
            records.append(FileRecord(table, relative, self._rows[table], size))
        self._writers = {}
        return records

    def abort(self) -> None:
        for writer, spooled in self._writers.values():
            writer.close()
            self.out.discard(spooled)
        self._writers = {}
