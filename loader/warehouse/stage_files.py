"""A run's Parquet rewritten for Snowflake's COPY: per table, a few files of a target
size, keys in a type Snowflake loads exactly.

Why rewrite at all:

- **Size.** A 2,000-object shard writes a ≈ 50 KB `dicom_instance` file; 10 million
  objects would stage ≈ 75,000 small files per table, and Snowflake recommends files of
  roughly 100–250 MB compressed for COPY (each file costs a PUT, a FILES entry and a
  scan set-up). The shards' files are concatenated, batch by batch, into files of
  `target_bytes`.
- **Keys.** The model's keys are unsigned 64-bit hashes; about half are above 2^63 − 1,
  which Snowflake's Parquet reader rejects as UINT64. Staged, every key (and key
  array) is DECIMAL(20,0), which loads exactly into NUMBER(20,0).
  `sql/snowflake/README.md` has the whole type table. The shards' own files keep
  UINT64, which DuckDB loads as UBIGINT.

Every source file is read once, a record batch at a time, and the output is written as
it goes: neither a table nor a whole file is held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from loader.core.model import ColumnType, Table, arrow_schema
from loader.output.location import OutputRoot

KEY_DECIMAL = pa.decimal128(20, 0)  # 2^64 − 1 has 20 digits
READ_BATCH_ROWS = 131_072  # one row group of the staged file per batch read


@dataclass(frozen=True)
class StagedFile:
    """One file written for staging: its name in the table's folder, rows and bytes."""

    name: str
    rows: int
    bytes: int


def staged_schema(table: Table) -> pa.Schema:
    """The table's Parquet schema with every key as DECIMAL(20,0)."""
    fields = []
    for field in arrow_schema(table):
        kind = table.column(field.name).type
        if kind is ColumnType.KEY:
            field = field.with_type(KEY_DECIMAL)
        elif kind is ColumnType.KEY_ARRAY:
            field = field.with_type(pa.list_(KEY_DECIMAL))
        fields.append(field)
    return pa.schema(fields)


class _RollingWriter:
    """Parquet files of about `target_bytes` each, published whole under `folder`."""

    def __init__(self, out: OutputRoot, folder: str, schema: pa.Schema, target_bytes: int):
        self.out, self.folder, self.schema, self.target = out, folder, schema, target_bytes
        self.written: list[StagedFile] = []
        self._writer: pq.ParquetWriter | None = None
        self._sink: BinaryIO | None = None
        self._rows = 0

    def _relative(self) -> str:
        return f"{self.folder}/part-{len(self.written):05d}.parquet"

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._spooled = self.out.spool(self._relative())
            self._sink = pa.OSFile(str(self._spooled), "wb")
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")
        self._writer.write_batch(batch)
        self._rows += batch.num_rows
        assert self._sink is not None
        if self._sink.tell() >= self.target:
            self.close()

    def close(self) -> None:
        """Finish the open file, if any, and publish it."""
        if self._writer is None:
            return
        self._writer.close()
        assert self._sink is not None
        self._sink.close()
        relative = self._relative()
        size = self.out.publish(self._spooled, relative)
        self.written.append(StagedFile(relative.rsplit("/", 1)[-1], self._rows, size))
        self._writer, self._sink, self._rows = None, None, 0

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            assert self._sink is not None
            self._sink.close()
            self.out.discard(self._spooled)
            self._writer = None


def compact_table(
    out: OutputRoot, table: Table, sources: list[str], folder: str, target_bytes: int
) -> list[StagedFile]:
    """Concatenate `sources` (files relative to `out`) into files of about
    `target_bytes` under `folder`, keys converted; return what was written."""
    out.remove_folder(folder)  # a rerun's earlier files never mix with this one's
    schema = staged_schema(table)
    writer = _RollingWriter(out, folder, schema, target_bytes)
    try:
        for relative in sources:
            with out.open(relative) as fh:
                parquet = pq.ParquetFile(fh)
                for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS):
                    if batch.num_rows:
                        writer.write(batch.select(schema.names).cast(schema))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.written
