"""The run report: the JSON document a run and a load end with (`--report FILE`),
typed, so that the code that writes it and the code that reads it agree on its keys,
and built here from the shards' ledger records, the load's result and validation.
Its accounting invariant is docs/ARCHITECTURE.md's "Nothing is lost"."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypedDict

import duckdb

from loader.core.count import Count
from loader.core.errors import Category
from loader.core.memory import peak_rss_bytes
from loader.jobs import validate
from loader.jobs.deleted_objects import (
    NOT_INCREMENTAL,
    Deletions,
)
from loader.jobs.settings import RunSettings, TargetKind
from loader.jobs.validate import Checks
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.sources.listing import ObjectRef
from loader.warehouse.base import LoadResult


class PeakMemory(TypedDict):
    driver: int  # bytes: this process's peak resident set, DuckDB included
    worker: int  # bytes: the largest peak of any worker that ran a shard


class Phases(TypedDict):
    """Where a run's wall time went, in seconds; the load of batches finished during
    the extraction overlaps it (`load_seconds` is all of the load's work)."""

    startup: float  # run() called to the first shard submitted: listing, cluster start
    extraction: float  # first shard submitted to last shard done
    shutdown: float  # closing the cluster the run started
    load_after_extraction: float  # the batches left, and the run's accounting
    validation: float
    # Within those: the run's start to the listing's end (it overlaps the extraction),
    # --incremental's read of what the target holds (before the first shard), and its
    # finding and stamping of objects gone (within load_after_extraction).
    listing: float
    known_objects: float
    deletions: float


class WorkerTime(TypedDict):
    """Whether the shards were bound by the network or by the CPU: the seconds their
    workers spent waiting for reads, the seconds they spent on everything else
    (decoding, extraction, writing), summed over shards, and the waiting share."""

    read_wait_seconds: float
    processing_seconds: float
    read_wait_share: float  # 0..1: near 1, the reads bound the run
    throttled_reads: int  # first reads the store throttled (503 SlowDown, 429)
    lowest_read_window: int  # the fewest reads in flight a worker backed off to


class Pseudonymized(TypedDict):
    """What the workers replaced before anything was written (--pseudonymize-key-file)."""

    identifiers: bool  # names, IDs, accession, study and procedure IDs, address, telephone
    dates_shifted: bool  # every date moved by a per-patient offset (--shift-dates)
    uids: bool  # instance UIDs → keyed UIDs under 2.25 (--pseudonymize-uids)


class DeletedReport(TypedDict):
    """Objects an --incremental run found gone from the prefix it listed: stamped
    `deleted_at`, never dropped (loader/jobs/deleted_objects.py). Not listed, so outside the
    listing's accounting; validation checks that instances follow their live copies."""

    checked: bool  # False: the run could not tell (see reason) and deleted nothing
    reason: str  # the prefix checked, or why nothing was checked
    objects: int  # locations stamped deleted by this run
    instances: int  # instances left with no live copy, stamped deleted


class FrameOffsets(TypedDict):
    """What locating frames in their objects cost and found (--frame-offsets; native
    frames of multi-frame objects are located without it, at no cost)."""

    requested: bool
    offset_table_reads: int  # reads beyond the header, at most one per object
    offset_table_bytes: int  # their bytes (within bytes_read)
    frames_located: int
    frames_unlocated: int  # dicom_frame.frame_offset_missing says why


class RunReport(TypedDict):
    run_id: str
    source: str
    target: str  # printable: no secrets
    out: str
    shards: int
    resumed_shards: int  # committed by an earlier attempt, skipped (--resume)
    listed: int  # entries listed: = loaded + duplicates + error_files + unchanged + repeated
    unchanged: int  # --incremental: held by the target as they are
    repeated_entries: int  # entries naming an object listed before them (read once)
    deleted: DeletedReport  # --incremental: what the listing no longer holds
    loaded: int
    new_instances: int
    duplicates: int
    error_files: int
    errors: dict[str, int]  # error rows by category
    rows: dict[str, int]  # rows written per table
    bytes_listed: int
    bytes_read: int
    read_requests: int
    bytes_read_per_object: float
    read_requests_per_object: float
    seconds: float  # the whole run, from the command's start
    extract_seconds: float  # shards' work once the cluster was up
    load_seconds: float  # the load's own work, overlapped with the extraction or not
    load_batches: int  # load transactions
    load_batches_during_extraction: int
    phases: Phases
    staged_files: dict[str, dict[str, int]]  # Snowflake: files and bytes staged per table
    files_per_second: float
    worker_time: WorkerTime
    pseudonymized: Pseudonymized
    frame_offsets: FrameOffsets
    # DICOMweb: instances read with their own metadata request because the server
    # did not serve their series' (dicomweb.study_instances)
    instance_metadata_fallbacks: int
    workers: int
    peak_rss_bytes: PeakMemory
    validation: Checks  # validate.warehouse_checks, accounting, conflicts
    validation_passed: bool
    validation_failed: list[str]  # the names of the checks that failed


def parquet_accounting(out: OutputRoot, shards: list[ShardRecord]) -> tuple[int, int]:
    """Loaded and duplicate objects of a Parquet-only run, from its location files."""
    files = [
        out.location(s.files["dicom_file_location"])
        for s in shards
        if "dicom_file_location" in s.files
    ]
    if not files:
        return 0, 0
    with duckdb.connect() as con:
        if out.remote:
            con.register_filesystem(out.filesystem())
        row = con.execute(
            "SELECT count(DISTINCT instance_key), count(*) FROM read_parquet(?)", [files]
        ).fetchone()
    distinct, total = (int(row[0]), int(row[1])) if row else (0, 0)
    return distinct, total - distinct


def _deleted_report(deleted: Deletions | None) -> DeletedReport:
    if deleted is None:
        return {"checked": False, "reason": NOT_INCREMENTAL, "objects": 0, "instances": 0}
    return {
        "checked": deleted.checked,
        "reason": deleted.reason,
        "objects": deleted.objects,
        "instances": deleted.instances,
    }


def pseudonymized(settings: RunSettings) -> Pseudonymized:
    keyed = settings.pseudonymize_key_file is not None
    return {
        "identifiers": keyed,
        "dates_shifted": keyed and settings.shift_dates,
        "uids": keyed and settings.pseudonymize_uids,
    }


@dataclass
class RunTally:
    """What a run counted before its load, filled in as it goes: when it started, the
    phases that overlap others (the listing, read as shards are made; an incremental
    run's lookup of what the target holds), what the listing skipped, and the
    extraction's seconds. A load of a written run starts a tally of its own."""

    started: float = field(default_factory=time.time)
    extraction_seconds: float | None = None  # None: the shards' own seconds, summed
    startup_seconds: float = 0.0
    shutdown_seconds: float = 0.0
    listing_seconds: float = 0.0
    known_objects_seconds: float = 0.0
    resumed_shards: Count = field(default_factory=Count)  # committed by an earlier attempt
    unchanged: Count = field(default_factory=Count)  # --incremental: held by the target
    repeated: Count = field(default_factory=Count)  # entries naming an object listed before

    def listing(self, objects: Iterator[ObjectRef]) -> Iterator[ObjectRef]:
        """`objects`, noting when they end."""
        yield from objects
        self.listing_seconds = time.time() - self.started


@dataclass
class LoadOutcome:
    """What the load, the deletions and validation did, and how long each took."""

    result: LoadResult | None = None  # None: nothing loaded (no target, no shard)
    checks: Checks = field(default_factory=lambda: Checks())
    deleted: Deletions | None = None
    batches: int = 0  # load transactions
    batches_during_extraction: int = 0
    after_extraction_seconds: float = 0.0  # the batches left, the deletions
    deletions_seconds: float = 0.0
    validation_seconds: float = 0.0


def _phases(tally: RunTally, outcome: LoadOutcome, extraction_seconds: float) -> Phases:
    return {
        "startup": round(tally.startup_seconds, 3),
        "extraction": round(extraction_seconds, 3),
        "shutdown": round(tally.shutdown_seconds, 3),
        "load_after_extraction": round(outcome.after_extraction_seconds, 3),
        "validation": round(outcome.validation_seconds, 3),
        "listing": round(tally.listing_seconds, 3),
        "known_objects": round(tally.known_objects_seconds, 3),
        "deletions": round(outcome.deletions_seconds, 3),
    }


def _worker_time(records: list[ShardRecord]) -> WorkerTime:
    waited = sum(r.read_wait_seconds for r in records)
    busy = sum(r.seconds for r in records)
    return {
        "read_wait_seconds": round(waited, 3),
        "processing_seconds": round(max(0.0, busy - waited), 3),
        "read_wait_share": round(waited / busy, 3) if busy else 0.0,
        "throttled_reads": sum(r.throttled_reads for r in records),
        "lowest_read_window": min(
            (r.lowest_read_window for r in records if r.lowest_read_window), default=0
        ),
    }


def _frame_offsets(settings: RunSettings, records: list[ShardRecord]) -> FrameOffsets:
    return FrameOffsets(
        requested=settings.frame_offsets,
        offset_table_reads=sum(r.offset_table_reads for r in records),
        offset_table_bytes=sum(r.offset_table_bytes for r in records),
        frames_located=sum(r.frames_located for r in records),
        frames_unlocated=sum(r.frames_unlocated for r in records),
    )


def build_report(
    run_id: str,
    settings: RunSettings,
    out: OutputRoot,
    records: list[ShardRecord],
    tally: RunTally,
    outcome: LoadOutcome,
) -> RunReport:
    """The run report: what was listed, loaded, refused, read, and how fast."""
    processed = sum(r.listed for r in records)
    unchanged, repeated = tally.unchanged.value, tally.repeated.value
    listed = processed + unchanged + repeated
    extraction_seconds = (
        tally.extraction_seconds
        if tally.extraction_seconds is not None
        else sum(r.seconds for r in records)
    )
    errors: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    for r in records:
        errors.update(r.errors)
        rows.update(r.rows)
    error_files = sum(r.error_files for r in records)
    load = outcome.result
    if load is not None:
        loaded, duplicates, new_instances = load.loaded, load.duplicates, load.new_instances
        errors[Category.DUPLICATE] = duplicates
        error_files = load.error_files
    else:
        loaded, duplicates = parquet_accounting(out, records)
        new_instances = loaded
    if not errors[Category.DUPLICATE]:
        del errors[Category.DUPLICATE]
    bytes_read = sum(r.bytes_read for r in records)
    requests = sum(r.read_requests for r in records)
    checks = validate.Checks(**outcome.checks)  # a copy: the outcome's stays as it was
    checks["accounting"] = validate.accounting(
        listed, loaded, duplicates, error_files, unchanged=unchanged, repeated=repeated
    )
    failed = validate.failed(checks, warehouse=settings.target.kind is not TargetKind.NONE)
    if load is not None:
        checks["conflicts"] = load.conflicts
    return {
        "run_id": run_id,
        "source": settings.source,
        "target": str(settings.target),
        "out": str(out),
        "shards": len(records),
        "resumed_shards": tally.resumed_shards.value,
        "listed": listed,
        "unchanged": unchanged,
        "repeated_entries": repeated,
        "deleted": _deleted_report(outcome.deleted),
        "loaded": loaded,
        "new_instances": new_instances,
        "duplicates": duplicates,
        "error_files": error_files,
        "errors": dict(sorted(errors.items())),
        "rows": dict(sorted(rows.items())),
        "bytes_listed": sum(r.bytes_listed for r in records),
        "bytes_read": bytes_read,
        "read_requests": requests,
        "bytes_read_per_object": round(bytes_read / processed, 1) if processed else 0,
        "read_requests_per_object": round(requests / processed, 3) if processed else 0,
        "seconds": round(time.time() - tally.started, 3),
        "extract_seconds": round(extraction_seconds, 3),
        "load_seconds": round(load.seconds, 3) if load else 0.0,
        "load_batches": outcome.batches,
        "load_batches_during_extraction": outcome.batches_during_extraction,
        "phases": _phases(tally, outcome, extraction_seconds),
        "staged_files": load.staged_files if load else {},
        "files_per_second": (round(processed / extraction_seconds, 1) if extraction_seconds else 0),
        "worker_time": _worker_time(records),
        "pseudonymized": pseudonymized(settings),
        "frame_offsets": _frame_offsets(settings, records),
        "instance_metadata_fallbacks": sum(r.instance_fallbacks for r in records),
        "workers": settings.workers,
        "peak_rss_bytes": {
            "driver": peak_rss_bytes(),
            "worker": max((r.worker_peak_rss_bytes for r in records), default=0),
        },
        "validation": checks,
        "validation_passed": not failed,
        "validation_failed": failed,
    }
