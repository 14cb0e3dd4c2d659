"""`dicom-loader rebuild`: every table derived again from the headers already stored.

When the model or the extraction changes (a new column, a fixed parser), an archive of
100 million objects should not have to be read again. A warehouse's `dicom_raw` holds
each parsed object's header as the decoder typed it, with the VR notes that make it
whole again (stored_headers.py); `dicom_file_location` holds the facts that live
outside the header (size, modification time, ETag or checksum, where Pixel Data
starts); `dicom_ingestion_errors` the values that could not be typed. A run's own
Parquet holds the same three tables, and serves when the warehouse is not at hand
(`--from-parquet OUT --run-id ID`). The driver
reads them in parts of `shard_size` objects into Parquet under the new run's output
root; each part is one shard, extracted by the same code a run uses (on Dask workers
or in process) and written and committed as a run's shards are; the new run is then
loaded with the usual merge. No archive object is read: the report's bytes read are 0.

Objects an incremental run found deleted are left as they are: rebuilding them would
make them live again. Headers stored before `metadata_vr` existed have none, and
their private values rebuild with the VR their creator's dictionary implies.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loader.core.errors import ConfigError
from loader.core.model import EXTRACTED
from loader.extract.from_stored import FRAME_COLUMNS, extracted_from_stored
from loader.jobs.engine import Progress, execute
from loader.jobs.gc_pause import gc_paused
from loader.jobs.load import load
from loader.jobs.pipeline import new_run_id
from loader.jobs.report import RunReport, RunTally
from loader.jobs.settings import RunSettings, Target, TargetKind
from loader.jobs.shard import ShardOutput, count_frames
from loader.jobs.targets import check_target_writable, open_warehouse
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.sources.listing import DEFAULT_SHARD_SIZE
from loader.warehouse.base import Warehouse
from loader.warehouse.duckdb import DuckDBWarehouse
from loader.warehouse.run_parquet import run_views
from loader.warehouse.stored import STORED_COLUMNS, STORED_SELECT, cast_errors, stored_frames

PARTS_FOLDER = "rebuild_input"  # under the output root: the stored headers, in parts
_STORED_SQL = (
    f"SELECT {STORED_SELECT} "
    "FROM dicom_raw r LEFT JOIN dicom_file_location l ON l.storage_uri = r.file_path "
    "WHERE r.deleted_at IS NULL"
)
_PART_SCHEMA = pa.schema(
    [
        ("file_path", pa.string()),
        ("metadata", pa.string()),
        ("metadata_vr", pa.string()),
        ("ingested_at", pa.timestamp("us")),
        ("file_size_bytes", pa.int64()),
        ("header_bytes", pa.int64()),
        ("transfer_syntax_uid", pa.string()),
        ("_source_order", pa.string()),
        ("storage_provider", pa.string()),
        ("storage_container", pa.string()),
        ("object_key", pa.string()),
        ("checksum", pa.string()),
        ("ingestion_source", pa.string()),
        ("pixel_data_offset", pa.int64()),
        ("pixel_data_length", pa.int64()),
        ("modified_at", pa.timestamp("us")),
        # The object's TYPE_CAST_ERROR and PARSE_WARNING rows: (category, tag, message),
        # and the bytes its read took.
        (
            "cast_errors",
            pa.list_(
                pa.struct(
                    [("category", pa.string()), ("tag", pa.string()), ("message", pa.string())]
                )
            ),
        ),
        ("bytes_read", pa.int64()),
        # Its frames as located when it was read (dicom_frame; frame_offsets.py).
        ("frames", pa.list_(pa.struct([(name, pa.string()) for name in FRAME_COLUMNS]))),
    ]
)


@dataclass(frozen=True)
class StoredPart:
    """One part of the stored headers: a shard of the rebuild."""

    shard_id: str
    path: str  # its Parquet file, relative to the output root


@dataclass(frozen=True)
class RebuildSettings:
    out: str
    run_id: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)


def stored_parts(
    warehouse: Warehouse,
    out: OutputRoot,
    run_id: str,
    from_run: str | None,
    part_size: int,
) -> Iterator[StoredPart]:
    """The stored headers of `warehouse` (those loaded by run `from_run`, or all),
    written as parts of `part_size` objects for the workers, lazily."""
    mark = warehouse.placeholder
    sql, params = _STORED_SQL, []
    if from_run is not None:
        sql, params = f"{sql} AND r._run_id = {mark}", [from_run]
    batches = warehouse.batches(f"{sql} ORDER BY r.file_path", part_size, params)

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return warehouse.query(sql, list(params))

    for number, batch in enumerate(batches, 1):
        columns = {name: [row[i] for row in batch] for i, name in enumerate(STORED_COLUMNS)}
        errors = cast_errors(query, mark, columns["file_path"])
        columns["cast_errors"] = [errors.get(p, ([], 0))[0] for p in columns["file_path"]]
        columns["bytes_read"] = [errors.get(p, ([], 0))[1] for p in columns["file_path"]]
        frames = stored_frames(query, mark, columns["file_path"])
        columns["frames"] = [frames.get(p, []) for p in columns["file_path"]]
        path = f"{PARTS_FOLDER}/run_id={run_id}/part-{number:06d}.parquet"
        out.write_bytes(path, _parquet(pa.table(columns, schema=_PART_SCHEMA)))
        yield StoredPart(f"rebuild-{number:06d}", path)


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def rebuild_part(
    settings: RebuildSettings, part: StoredPart, store: Any = None
) -> ledger.ShardRecord:
    """Extract one part of stored headers as a run's shard, and commit it."""
    started = time.time()
    out = OutputRoot.of(settings.out, settings.storage_options)
    with out.open(part.path) as fh:
        stored = pq.read_table(fh).to_pylist()
    output = ShardOutput(out, settings.run_id, part.shard_id)
    frames: Counter[str] = Counter()  # located again from the stored locations: no read
    try:
        with warnings.catch_warnings(), gc_paused():
            warnings.simplefilter("ignore")
            for header in stored:
                rows, errors = extracted_from_stored(header)
                count_frames(rows, frames)
                output.add(rows, errors, header["_source_order"])
        output.close()
    except BaseException:
        output.abort()
        raise
    return output.record(
        started,
        bytes_listed=sum(h["file_size_bytes"] or 0 for h in stored),
        bytes_read=0,
        read_requests=0,
        frames_located=frames["frames_located"],
        frames_unlocated=frames["frames_unlocated"],
    )


_STORED_TABLES = ("dicom_raw", "dicom_file_location", "dicom_ingestion_errors", "dicom_frame")


def written_run(out: OutputRoot, run_id: str) -> DuckDBWarehouse:
    """The stored headers of a run's Parquet (under `out`), as an in-memory DuckDB
    that answers what a warehouse would (run_parquet)."""
    records = list(ledger.committed_shards(out, run_id))
    if not records:
        raise ConfigError(f"run {run_id} has no committed shards under {out}")
    return run_views(out, records, _STORED_TABLES)


def rebuild(
    target: Target,
    out: str,
    *,
    from_run: str | None,
    workers: int = 0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    storage_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    from_parquet: str | None = None,
) -> RunReport:
    """Rebuild every table `target` holds (or those of the objects run `from_run`
    loaded) from its stored headers, as a new run under `out`; its report. With
    `from_parquet` (an output root), the headers are run `from_run`'s Parquet there
    instead of the target's tables."""
    if target.kind is TargetKind.NONE:
        raise ConfigError("rebuild derives the tables a warehouse holds: give --target")
    started = time.time()
    run_id = "rebuild-" + new_run_id()
    options = storage_options or {}
    root = OutputRoot.of(out, options)
    check_target_writable(target)
    source = f"the headers {target} stores" + (f" of run {from_run}" if from_run else "")
    try:
        ledger.clear_run(root, run_id, list(EXTRACTED))
        ledger.write_run(
            root,
            run_id,
            {"run_id": run_id, "source": source, "target": str(target)},
        )
    except OSError as exc:
        raise ConfigError(f"--out {root}: cannot write there ({exc.strerror or exc})") from None
    settings = RebuildSettings(root.url, run_id, options)
    if from_parquet is not None:
        if from_run is None:
            raise ConfigError("rebuild from a run's Parquet: give its --run-id")
        warehouse: Warehouse = written_run(OutputRoot.of(from_parquet, options), from_run)
    else:
        warehouse = open_warehouse(target)
    try:
        if from_parquet is None:
            warehouse.create_model()
        parts = stored_parts(warehouse, root, run_id, from_run, shard_size)
        extraction = execute(rebuild_part, settings, parts, workers, progress or (lambda r: None))
    finally:
        warehouse.close()
    if not list(ledger.committed_shards(root, run_id)):
        scope = f"loaded by run {from_run}" if from_run else "at all"
        raise ConfigError(f"{target} stores no headers {scope}: nothing to rebuild")
    report = load(
        root,
        run_id,
        target,
        settings=RunSettings(
            source=source, out=root.url, target=target, workers=workers, run_id=run_id
        ),
        tally=RunTally(
            started,
            extraction_seconds=extraction.seconds,
            shutdown_seconds=extraction.shutdown_seconds,
        ),
    )
    root.remove_folder(f"{PARTS_FOLDER}/run_id={run_id}")
    return report
