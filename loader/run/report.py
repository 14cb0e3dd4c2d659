"""The run report: the JSON document a run and a load end with (`--report FILE`),
typed, so that the code that writes it and the code that reads it agree on its keys.
Its accounting invariant is docs/ARCHITECTURE.md's "Nothing is lost"."""

from __future__ import annotations

from typing import Any, TypedDict


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
    `deleted_at`, never dropped (loader/run/deleted_objects.py). Not listed, so outside the
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
    validation: dict[str, Any]  # validate.warehouse_checks, accounting, conflicts
    validation_passed: bool
    validation_failed: list[str]  # the names of the checks that failed
