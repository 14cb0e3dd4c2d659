"""One shard, inside one Dask task: read headers → extract rows → write → commit.

The task takes only picklable settings and a shard, builds everything it needs
itself, and returns the small ledger record it committed. Whatever one object
does, the shard goes on: each object ends as rows, or as an error row.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, cast

from loader.core.errors import FILE_ERROR_CATEGORIES, Category, object_failure
from loader.core.memory import peak_rss_bytes
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT, Decoded
from loader.dicom.pseudonymize import Pseudonymizer, read_key
from loader.dicom.value_store import ValueStore
from loader.extract import error_row, extract_object
from loader.extract.context import ObjectFacts, Row, Rows
from loader.jobs.gc_pause import gc_paused
from loader.jobs.library_warnings import Collected, summary
from loader.jobs.objects import Held, Use, held_objects, reads_ahead
from loader.jobs.settings import RunSettings
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.output.parquet import ShardWriter
from loader.sources.containers import DEFAULT_MEMBER_LIMIT, OpenZips
from loader.sources.listing import ObjectRef, Shard
from loader.sources.read_ahead import DEFAULT_READ_AHEAD_BYTES, Ahead
from loader.sources.storage import DEFAULT_READ_CONCURRENCY


@dataclass(frozen=True)
class ShardSettings:
    """The shard's slice of a run's settings (`of`): the fields it shares with
    RunSettings, copied by name, and what the run resolved for it."""

    out: str  # the output root: a local folder or an object-store URL
    run_id: str
    source: str
    header_bytes: int | None = None  # None: the default of the object's location
    element_limit: int = DEFAULT_ELEMENT_LIMIT
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    pseudonymize_key: bytes | None = field(default=None, repr=False)
    shift_dates: bool = False
    pseudonymize_uids: bool = False
    read_concurrency: int = DEFAULT_READ_CONCURRENCY  # first reads in flight (read_ahead)
    read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES  # first reads held at most
    member_limit: int = DEFAULT_MEMBER_LIMIT  # bytes a zip or tar member may declare
    # A dicom_frame row for every frame, located in its object; encapsulated frames
    # cost their Basic Offset Table, at most one small read (frame_offsets).
    frame_offsets: bool = False

    @classmethod
    def of(cls, settings: RunSettings, out: str, run_id: str) -> ShardSettings:
        """The slice of `settings` a shard reads, with the run's resolved output root
        and id, and the pseudonymisation key's bytes (read once, in the driver)."""
        shared = {name: getattr(settings, name) for name in SHARED_WITH_RUN}
        key_file = settings.pseudonymize_key_file
        key = read_key(key_file) if key_file else None
        return cls(out=out, run_id=run_id, pseudonymize_key=key, **shared)

    def pseudonymizer(self) -> Pseudonymizer | None:
        if self.pseudonymize_key is None:
            return None
        return Pseudonymizer(
            self.pseudonymize_key, shift_dates=self.shift_dates, uids=self.pseudonymize_uids
        )


# Every ShardSettings field a run's settings also have, by name (the rest, RESOLVED,
# the run works out for its shards).
RESOLVED = frozenset({"out", "run_id", "pseudonymize_key"})
SHARED_WITH_RUN = tuple(f.name for f in fields(ShardSettings) if f.name not in RESOLVED)


# One object's rows per table and its error rows.
Extracted = tuple[Rows, list[Row]]


def process_object(
    ref: ObjectRef, settings: ShardSettings, store: ValueStore | None = None
) -> list[tuple[Rows, list[Row], int]]:
    """Rows, error rows and bytes read of each object one listed object holds, read
    as a shard reads it (nothing fetched ahead); never raises for bad input."""
    zips = OpenZips(settings.storage_options)
    try:
        with Collected() as collected:
            found = held_objects(
                Ahead(ref, None),
                settings,
                extracting(settings.pseudonymizer()),
                store if store is not None else ValueStore(),
                zips,
                collected,
                Counter(),
            )
            return [(*rows_of(held), held.served) for held in found]
    finally:
        zips.close()


def extracting(pseudonymizer: Pseudonymizer | None) -> Use[Extracted]:
    """What a run makes of each decoded header: its rows, pseudonymised first when
    the run is told to."""

    def extract(decoded: Decoded, facts: ObjectFacts) -> Extracted:
        if pseudonymizer is not None:
            pseudonymizer.apply(decoded)
        return extract_object(decoded, facts)

    return extract


def rows_of(held: Held[Extracted]) -> Extracted:
    """An object's rows and error rows, by the one error policy: a failure is its one
    error row; what a library warned, its PARSE_WARNING row."""
    rows: Rows
    if held.failure is not None:
        rows, errors = {}, [error_row(held.facts, *object_failure(held.failure))]
    else:
        rows, errors = cast(Extracted, held.made)
    message = summary(held.warned)
    if message is None:
        return rows, errors
    return rows, [*errors, error_row(held.facts, Category.PARSE_WARNING, message)]


def count_frames(rows: Rows, frames: Counter[str]) -> None:
    """Frames located in their objects, and not (the row says why)."""
    for row in rows.get("dicom_frame", ()):
        located = isinstance(row, dict) and row.get("frame_offset") is not None
        frames["frames_located" if located else "frames_unlocated"] += 1


FRAME_COUNTS = ("offset_table_reads", "offset_table_bytes", "frames_located", "frames_unlocated")


class ShardOutput:
    """One shard's Parquet writer and its tally of objects and error rows, and the
    ledger record they end in: a run's shard and a rebuild's part keep them alike."""

    def __init__(self, out: OutputRoot, run_id: str, shard_id: str) -> None:
        self.out = out
        self.run_id = run_id
        self.shard_id = shard_id
        self.writer = ShardWriter(out, run_id, shard_id)
        self.errors: Counter[str] = Counter()  # error rows by category, as in the table
        self.error_files = self.parsed = 0
        self.files: list[Any] = []

    def add(self, rows: Rows, errors: list[Row], order: str) -> None:
        """One object's rows (ordered by `order`, its _source_order) and error rows."""
        for table, table_rows in rows.items():
            self.writer.add(table, table_rows, order)
        self.writer.add("dicom_ingestion_errors", errors, None)
        categories = [str(e["error_category"]) for e in errors]
        self.errors.update(categories)
        if FILE_ERROR_CATEGORIES.intersection(categories):
            self.error_files += 1
        else:
            self.parsed += 1

    def close(self) -> None:
        """Publish the files (the shard's work is done)."""
        self.files = self.writer.close()

    def abort(self) -> None:
        """Publish none of the files: the shard failed."""
        self.writer.abort()

    def record(self, started: float, **reading: Any) -> ledger.ShardRecord:
        """Commit the shard's record (`reading`: its bytes and reads) and return it."""
        finished = time.time()
        files = self.files
        record = ledger.ShardRecord(
            run_id=self.run_id,
            shard_id=self.shard_id,
            status="committed",
            listed=self.parsed + self.error_files,  # an export counts once per instance
            parsed=self.parsed,
            error_files=self.error_files,
            errors={str(k): v for k, v in self.errors.items()},
            rows={f.table: f.rows for f in files},
            files={f.table: f.path for f in files},
            parquet_bytes=sum(f.bytes for f in files),
            seconds=finished - started,
            started_at=_iso(started),
            finished_at=_iso(finished),
            worker_pid=os.getpid(),
            worker_peak_rss_bytes=peak_rss_bytes(),
            **reading,
        )
        ledger.commit_shard(self.out, self.run_id, record)
        return record


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None).isoformat()


def process_shard(
    settings: ShardSettings, shard: Shard, store: ValueStore | None = None
) -> ledger.ShardRecord:
    """Process one shard and commit its ledger record; return that record.

    `store` holds the decoded elements this shard shares with the worker's other
    shards: by default the Dask worker's own (ValueStore.of_worker)."""
    started = time.time()
    store = store if store is not None else ValueStore.of_worker()
    counted_from = store.snapshot()
    out = OutputRoot.of(settings.out, settings.storage_options)
    output = ShardOutput(out, settings.run_id, shard.shard_id)
    bytes_read = read_requests = 0
    read_seconds = 0.0  # reads the worker waited for itself (longer headers, retries)
    frames: Counter[str] = Counter()
    zips = OpenZips(settings.storage_options)
    use = extracting(settings.pseudonymizer())
    reads = reads_ahead(
        shard.objects,
        settings.header_bytes,
        settings.storage_options,
        settings.read_concurrency,
        settings.read_ahead_bytes,
    )
    try:
        # What pydicom says about an object is that object's row (library_warnings),
        # collected once for the shard; what is said between objects is no one's.
        with Collected() as collected, gc_paused():
            for ahead in reads:
                for held in held_objects(ahead, settings, use, store, zips, collected, frames):
                    rows, errors = rows_of(held)
                    bytes_read += held.served
                    read_requests += held.requests
                    read_seconds += held.seconds
                    frames["offset_table_reads"] += held.offset_table_reads
                    frames["offset_table_bytes"] += held.offset_table_bytes
                    count_frames(rows, frames)
                    output.add(rows, errors, held.order)
        output.close()
    except BaseException:
        output.abort()
        raise
    finally:
        zips.close()
    record = output.record(
        started,
        bytes_listed=sum(r.size for r in shard.objects),
        bytes_read=bytes_read,
        read_requests=read_requests,
        value_store=store.counted_since(counted_from).as_dict(),
        read_wait_seconds=round(reads.wait_seconds + read_seconds, 6),
        throttled_reads=reads.window.throttled,
        lowest_read_window=reads.window.lowest,
        **{name: frames[name] for name in FRAME_COUNTS},
        instance_fallbacks=frames["instance_fallbacks"],
    )
    return record
