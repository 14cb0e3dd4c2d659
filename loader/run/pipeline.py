"""A run: list → shards on Dask (read + extract + write + commit) → load → validate.

The driver holds a bounded number of shards in flight and only the small ledger
record of each finished shard, so its memory does not grow with the archive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import duckdb

from loader.core.errors import Category, ConfigError, WarehouseMemoryError
from loader.core.memory import peak_rss_bytes
from loader.core.model import EXTRACTED
from loader.dicom.pseudonymize import Pseudonymizer, read_key
from loader.dicom.value_store import ValueStore
from loader.output import ledger
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.run import validate
from loader.run.deleted_objects import (
    NOT_INCREMENTAL,
    Deletions,
    DeletionScope,
    record_deletions,
    scope_of,
)
from loader.run.incremental import IDENTITY_SQL, KnownObjects, changed_only
from loader.run.progress import ListingCount, counted
from loader.run.report import DeletedReport, FrameOffsets, Phases, Pseudonymized, RunReport
from loader.run.settings import RunSettings, Target, TargetKind
from loader.run.shard import ShardSettings, process_shard
from loader.sources.dicomweb import incomplete_studies, is_dicomweb
from loader.sources.listing import ObjectRef, Shard, list_source, make_shards
from loader.sources.repeats import SeenKeys, unique_objects
from loader.warehouse.base import LoadResult, Warehouse
from loader.warehouse.batches import BatchedLoad

Progress = Callable[[Any], None]  # called with what each shard's task returned
log = logging.getLogger(__name__)


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def open_warehouse(target: Target, read_only: bool = False) -> Warehouse:
    if target.kind is TargetKind.DUCKDB:
        from loader.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(target.location, read_only=read_only, options=target.duckdb)
    if target.kind is TargetKind.SNOWFLAKE:
        from loader.warehouse.snowflake import SnowflakeWarehouse

        return SnowflakeWarehouse(
            target.location, target.stage_url, target.storage_integration, target.stage_file_mb
        )
    raise ConfigError(f"no warehouse for target {target}")


class Extraction(NamedTuple):
    seconds: float  # the first shard submitted to the last one done
    shutdown_seconds: float  # closing the cluster this run started


def _pending(shards: Iterator[Shard], done: set[str], skipped: list[str]) -> Iterator[Shard]:
    for shard in shards:
        if shard.shard_id in done:
            skipped.append(shard.shard_id)
        else:
            yield shard


def _client(workers: int, scheduler: str | None, stack: ExitStack, dashboard: bool) -> Any:
    """A Dask client: on an existing cluster (`tcp://…` or a scheduler file), or on a
    LocalCluster of `workers` single-threaded worker processes, with Dask's dashboard
    if asked (starting it takes 0.3 s, a third of the cluster's start-up)."""
    import dask
    from distributed import Client, LocalCluster

    # Handlers with levels of their own (log_file.py's dictConfig: a terminal at its
    # level, a file at INFO) are left alone; silencing would set every stream
    # handler, the file's included, to ERROR.
    silence = False if dask.config.get("logging.version", None) else logging.ERROR
    if scheduler:
        if scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            return stack.enter_context(Client(scheduler))
        return stack.enter_context(Client(scheduler_file=scheduler))
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if dashboard else None,
            silence_logs=silence,
        )
    )
    return stack.enter_context(Client(cluster))


class Sharded(Protocol):
    """What `execute` hands a task: a shard of a run, or a part of a rebuild."""

    @property
    def shard_id(self) -> str: ...


def execute(
    task: Callable[..., Any],
    settings: Any,
    shards: Iterator[Sharded],
    workers: int,
    progress: Progress,
    max_in_flight: int | None = None,
    scheduler: str | None = None,
    dashboard: bool = False,
) -> Extraction:
    """Run `task(settings, shard)` for every shard, one Dask task per shard (in
    process: `task(settings, shard, store)`, with the run's one ValueStore); return
    the seconds spent once the cluster was up (its start-up is not throughput) and
    the seconds its shutdown took.

    `workers=0` (and no scheduler) runs in this process, for debugging; otherwise
    the cluster gets at most `max_in_flight` shards at a time, so neither the driver
    nor the scheduler holds the whole archive. A shard whose worker dies is
    rescheduled by Dask on another worker; its ledger commit makes that safe.
    """
    if workers <= 0 and not scheduler:
        started = time.time()
        store = ValueStore()  # this process is the run's one worker: it owns the store
        for shard in shards:
            progress(task(settings, shard, store))
        return Extraction(time.time() - started, 0.0)
    import dask
    from distributed import as_completed

    with ExitStack() as stack:
        # Dask keeps the last messages of every connection for debugging (1,000 by
        # default); each holds a shard's object list, which made the driver grow
        # with the archive: keep none. Its statistical profiler (every 10 ms), its
        # event-loop tick (20 ms) and system monitor (500 ms) take the GIL from the
        # shard a worker runs: no profiler, and ticks a shard's work can afford.
        settings_for_dask = {
            "distributed.admin.low-level-log-length": 0,
            "distributed.worker.profile.enabled": False,
            "distributed.admin.tick.interval": "1s",
            "distributed.admin.system-monitor.interval": "2s",
        }
        stack.enter_context(dask.config.set(settings_for_dask))
        client = _client(workers, scheduler, stack, dashboard)
        if workers > 0 and not scheduler:
            client.wait_for_workers(workers)
        started = time.time()
        if (dashboard or scheduler) and client.dashboard_link:
            log.info("Dask dashboard: %s", client.dashboard_link)
        slots = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        in_flight = max_in_flight or 2 * slots
        running = as_completed()

        def submit_next() -> bool:
            shard = next(shards, None)
            if shard is None:
                return False
            running.add(
                client.submit(task, settings, shard, key=f"{task.__name__}-{shard.shard_id}")
            )
            return True

        for _ in range(in_flight):
            if not submit_next():
                break
        for future in running:
            progress(future.result())
            future.release()
            submit_next()
        ended = time.time()
    return Extraction(ended - started, time.time() - ended)  # the cluster closed between


def check_target_reads(out: OutputRoot, target: Target) -> None:
    """Refuse, before any work, a target that could not read the run's Parquet."""
    if out.remote and target.kind is TargetKind.SNOWFLAKE and not target.stage_url:
        raise ConfigError(
            f"the run's Parquet goes to {out.url}: give --stage-url (that location as "
            "Snowflake names it: s3://…, gcs://…, azure://ACCOUNT.blob.core.windows.net/…) "
            "and --storage-integration, so Snowflake reads it there"
        )


def check_target_writable(target: Target) -> None:
    """Refuse, before any work, a DuckDB file whose folder cannot be made or written."""
    if target.kind is not TargetKind.DUCKDB:
        return
    folder = Path(target.location).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--target {target}: cannot create {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--target {target}: {folder} is not writable")


def fewer_than(objects: Iterator[ObjectRef], limit: int) -> tuple[Iterator[ObjectRef], bool]:
    """`objects` whole, and whether the listing ends before `limit` of them: a run
    that small runs faster in this process than on a cluster it must start first."""
    ahead = list(itertools.islice(objects, limit))
    return itertools.chain(ahead, objects), len(ahead) < limit


def listed_first(objects: Iterator[ObjectRef]) -> Iterator[ObjectRef]:
    """`objects`, its first one listed now: a source that cannot be listed fails here,
    with one line, before a cluster starts."""
    first = next(objects, None)
    return objects if first is None else itertools.chain([first], objects)


def pacs_completeness(settings: RunSettings, warehouse: Warehouse) -> dict[str, Any]:
    """The studies of a DICOMweb source whose loaded instances fall short of what the
    server reports (dicomweb.incomplete_studies), from the warehouse's counts; with
    --pseudonymize-uids the server's UIDs are compared as the workers stored them."""
    mark = warehouse.placeholder

    def loaded(uids: list[str]) -> dict[str, int]:
        if not uids:
            return {}
        rows = warehouse.query(
            "SELECT study_instance_uid, number_of_instances FROM dicom_study "
            f"WHERE study_instance_uid IN ({', '.join(mark for _ in uids)})",
            uids,
        )
        return {str(uid): int(n or 0) for uid, n in rows}

    def loaded_series(study: str) -> dict[str, int]:
        rows = warehouse.query(
            "SELECT se.series_instance_uid, se.number_of_instances FROM dicom_series se "
            "JOIN dicom_study st ON st.study_key = se.study_key "
            f"WHERE st.study_instance_uid = {mark}",
            [study],
        )
        return {str(uid): int(n or 0) for uid, n in rows}

    stored_uid: Callable[[str], str] = str
    if settings.pseudonymize_uids and settings.pseudonymize_key_file:
        stored_uid = Pseudonymizer(read_key(settings.pseudonymize_key_file), uids=True).uid
    return incomplete_studies(
        settings.source, settings.storage_options, loaded, loaded_series, stored_uid
    )


def known_objects(target: Target) -> KnownObjects:
    """The identities of every object `target` already holds (for --incremental)."""
    if target.kind is TargetKind.NONE:
        raise ConfigError("--incremental compares the listing with a warehouse: give --target")
    warehouse = open_warehouse(target)
    try:
        warehouse.create_model()
        known = KnownObjects.from_rows(warehouse.batches(IDENTITY_SQL))
    finally:
        warehouse.close()
    log.info("--incremental: %d objects already loaded", len(known))
    return known


def validate_target(target: Target) -> dict[str, Any]:
    """Validation checks of what a warehouse target holds (read only)."""
    warehouse = open_warehouse(target, read_only=True)
    try:
        return validate.warehouse_checks(warehouse)
    finally:
        warehouse.close()


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


def run(
    settings: RunSettings,
    progress: Progress | None = None,
    listing: ListingCount | None = None,
) -> RunReport:
    """Run the whole job and return its report (see `build_report`); `listing`
    counts what the listing hands on to be processed, for a progress bar."""
    started = time.time()
    run_id = settings.run_id or new_run_id()
    out = OutputRoot.of(settings.out, settings.storage_options)
    check_target_reads(out, settings.target)
    check_target_writable(settings.target)
    try:
        if not settings.resume:
            ledger.clear_run(out, run_id, list(EXTRACTED))
        elif ledger.read_run(out, run_id) is None:
            raise ConfigError(f"--resume: no run {run_id} under {out}")
        ledger.write_run(
            out,
            run_id,
            {
                "run_id": run_id,
                "source": settings.source,
                "target": str(settings.target),
                "shard_size": settings.shard_size,
                "header_bytes": settings.header_bytes,
                "pseudonymized": _pseudonymized(settings),
                "started_at": dt.datetime.now(dt.UTC).isoformat(),
            },
        )
    except OSError as exc:  # a file where a folder must be, no permission, a full disk
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    shard_settings = ShardSettings(
        out=out.url,
        run_id=run_id,
        source=settings.source,
        header_bytes=settings.header_bytes,
        element_limit=settings.element_limit,
        storage_options=settings.storage_options,
        pseudonymize_key=(
            read_key(settings.pseudonymize_key_file) if settings.pseudonymize_key_file else None
        ),
        shift_dates=settings.shift_dates,
        pseudonymize_uids=settings.pseudonymize_uids,
        read_concurrency=settings.read_concurrency,
        read_ahead_bytes=settings.read_ahead_bytes,
        member_limit=settings.member_limit,
        frame_offsets=settings.frame_offsets,
    )
    done = ledger.committed_ids(out, run_id) if settings.resume else set()
    skipped: list[str] = []
    unchanged, repeated = [0], [0]
    unreadable: list[str] = []  # folders the listing could not read
    listed_keys = SeenKeys()  # every URL listed, for the deletion check
    listed = listed_first(list_source(settings.source, settings.storage_options, unreadable))
    clock = RunClock(started)
    objects = unique_objects(clock.listing(listed), repeated, listed_keys)
    deletion_check = None
    if settings.incremental:
        lookup_started = time.time()
        known = known_objects(settings.target)
        clock.known_objects = time.time() - lookup_started
        objects = changed_only(objects, known, unchanged)
        deletion_check = DeletionCheck(scope_of(settings.source), listed_keys, unreadable)
    workers = settings.workers
    if workers > 0 and not settings.scheduler and settings.cluster_min_objects:
        objects, small = fewer_than(objects, settings.cluster_min_objects)
        if small:
            workers = 0
            settings = dataclasses.replace(settings, workers=0)  # the report says so
    if listing is not None:
        objects = counted(objects, listing)
    shards = _pending(make_shards(objects, settings.shard_size), done, skipped)
    try:
        return _extract_and_load(
            settings, out, run_id, shards, shard_settings, workers, progress, clock,
            skipped, unchanged, repeated, deletion_check,
        )  # fmt: skip
    except WarehouseMemoryError as exc:
        raise WarehouseMemoryError(
            f"{exc}; the batches loaded before stay committed: run again with "
            f"--resume --run-id {run_id} to complete this run"
        ) from None


def _extract_and_load(
    settings: RunSettings,
    out: OutputRoot,
    run_id: str,
    shards: Iterator[Shard],
    shard_settings: ShardSettings,
    workers: int,
    progress: Progress | None,
    clock: RunClock,
    skipped: list[str],
    unchanged: list[int],
    repeated: list[int],
    deletion_check: DeletionCheck | None,
) -> RunReport:
    """The shards extracted on the cluster, loaded batch by batch, then validated;
    `unchanged` and `repeated` are counted as the listing is read."""
    with ExitStack() as stack:
        loading = None
        if settings.target.kind is not TargetKind.NONE:
            warehouse = open_warehouse(settings.target)
            stack.callback(warehouse.close)
            # Loading batches while the workers extract pays where the driver has a
            # core to itself. Where the workers take every core, the load competes
            # with them: at 200,000 objects on 2 cores the run took 65 s overlapped,
            # 62 s with the batches loaded after the extraction.
            spare_core = bool(settings.scheduler) or workers < (os.cpu_count() or 1)
            loading = BatchedLoad(warehouse, out, run_id, background=spare_core)
            stack.callback(loading.close)
        shown = progress or (lambda record: None)

        def finished(record: ShardRecord) -> None:
            if loading is not None:
                loading.add(record)  # a full batch loads while later shards are extracted
            shown(record)

        extraction = execute(
            process_shard,
            shard_settings,
            shards,
            workers,
            finished,
            settings.max_in_flight,
            settings.scheduler,
            settings.dashboard,
        )
        processed_seconds = extraction.seconds
        started = clock.started
        startup = time.time() - started - processed_seconds - extraction.shutdown_seconds
        return load(
            out,
            run_id,
            settings.target,
            settings=settings,
            started=started,
            processed_seconds=processed_seconds,
            resumed_shards=len(skipped),
            unchanged=unchanged[0],
            repeated=repeated[0],
            loading=loading,
            startup_seconds=startup,
            shutdown_seconds=extraction.shutdown_seconds,
            deletion_check=deletion_check,
            clock=clock,
        )


class RunClock:
    """When a run's phases that overlap others ended: the listing (read as the shards
    are made), the known objects' lookup of an incremental run."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.listing_seconds = 0.0
        self.known_objects = 0.0

    def listing(self, objects: Iterator[ObjectRef]) -> Iterator[ObjectRef]:
        """`objects`, noting when they end."""
        yield from objects
        self.listing_seconds = time.time() - self.started


class DeletionCheck(NamedTuple):
    """What an incremental run hands the load to find deletions with, once its
    listing has ended: where, which URLs were listed, which folders were not."""

    scope: DeletionScope
    listed: SeenKeys
    unreadable: list[str]


def load(
    out: OutputRoot | str | Path,
    run_id: str,
    target: Target,
    *,
    settings: RunSettings | None = None,
    started: float | None = None,
    processed_seconds: float | None = None,
    resumed_shards: int = 0,
    unchanged: int = 0,
    repeated: int = 0,
    loading: BatchedLoad | None = None,
    startup_seconds: float = 0.0,
    shutdown_seconds: float = 0.0,
    deletion_check: DeletionCheck | None = None,
    clock: RunClock | None = None,
) -> RunReport:
    """Load a written run (its committed shards) into `target`, validate, report.
    With `deletion_check` (an incremental run), objects gone from the listed prefix
    are then recorded as deleted (loader/run/deleted_objects.py), before validation.

    `loading` holds the batches a run already loaded during its extraction (and the
    warehouse it loaded them into); what is left is loaded here. An incremental run
    that found nothing new has no shards: there is nothing to load, and the target
    is only validated.
    """
    started = started if started is not None else time.time()
    if not isinstance(out, OutputRoot):
        out = OutputRoot.of(out)
    check_target_reads(out, target)
    records = list(ledger.committed_shards(out, run_id))
    if not records and not unchanged:
        raise ConfigError(f"run {run_id} has no committed shards under {out}")
    if settings is None:
        manifest = ledger.read_run(out, run_id) or {}
        settings = RunSettings(
            source=manifest.get("source", ""), out=out.url, target=target, workers=0, run_id=run_id
        )
    load_result: LoadResult | None = None
    checks: dict[str, Any] = {}
    phases: Phases = {
        "startup": round(startup_seconds, 3),
        "extraction": 0.0,
        "shutdown": round(shutdown_seconds, 3),
        "load_after_extraction": 0.0,
        "validation": 0.0,
        "listing": round(clock.listing_seconds, 3) if clock else 0.0,
        "known_objects": round(clock.known_objects, 3) if clock else 0.0,
        "deletions": 0.0,
    }
    batches = (0, 0)
    deleted: Deletions | None = None
    if target.kind is not TargetKind.NONE:
        with ExitStack() as stack:
            if loading is None:
                warehouse = open_warehouse(target)
                stack.callback(warehouse.close)
                loading = BatchedLoad(warehouse, out, run_id, background=False)
            warehouse = loading.warehouse
            tail_started = time.time()
            load_result = loading.finish(records) if records else None
            if deletion_check is not None:
                deletions_started = time.time()
                deleted = record_deletions(warehouse, *deletion_check)
                phases["deletions"] = round(time.time() - deletions_started, 3)
            phases["load_after_extraction"] = round(time.time() - tail_started, 3)
            batches = (loading.batches, loading.batches_during_extraction)
            validation_started = time.time()
            checks = validate.warehouse_checks(warehouse)
            if is_dicomweb(settings.source):
                checks["incomplete_studies"] = pacs_completeness(settings, warehouse)
            phases["validation"] = round(time.time() - validation_started, 3)
    if processed_seconds is None:
        processed_seconds = sum(r.seconds for r in records)
    phases["extraction"] = round(processed_seconds, 3)
    return build_report(
        run_id=run_id,
        settings=settings,
        records=records,
        load=load_result,
        checks=checks,
        out=out,
        started=started,
        processed_seconds=processed_seconds,
        resumed_shards=resumed_shards,
        unchanged=unchanged,
        repeated=repeated,
        phases=phases,
        load_batches=batches,
        deleted=deleted,
    )


def _deleted_report(deleted: Deletions | None) -> DeletedReport:
    if deleted is None:
        return {"checked": False, "reason": NOT_INCREMENTAL, "objects": 0, "instances": 0}
    return {
        "checked": deleted.checked,
        "reason": deleted.reason,
        "objects": deleted.objects,
        "instances": deleted.instances,
    }


def _pseudonymized(settings: RunSettings) -> Pseudonymized:
    keyed = settings.pseudonymize_key_file is not None
    return {
        "identifiers": keyed,
        "dates_shifted": keyed and settings.shift_dates,
        "uids": keyed and settings.pseudonymize_uids,
    }


def build_report(
    *,
    run_id: str,
    settings: RunSettings,
    records: list[ShardRecord],
    load: LoadResult | None,
    checks: dict[str, Any],
    out: OutputRoot,
    started: float,
    processed_seconds: float,
    resumed_shards: int,
    unchanged: int = 0,
    repeated: int = 0,
    phases: Phases,
    load_batches: tuple[int, int],
    deleted: Deletions | None = None,
) -> RunReport:
    """The run report: what was listed, loaded, refused, read, and how fast.
    `load_batches`: load transactions, and how many of them ran during extraction."""
    processed = sum(r.listed for r in records)
    listed = processed + unchanged + repeated
    errors: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    for r in records:
        errors.update(r.errors)
        rows.update(r.rows)
    error_files = sum(r.error_files for r in records)
    if load is not None:
        loaded, duplicates, new_instances = load.loaded, load.duplicates, load.new_instances
        errors[Category.DUPLICATE] = duplicates
        error_files = load.error_files
    else:
        loaded, duplicates = parquet_accounting(out, records)
        new_instances = loaded
    if not errors[Category.DUPLICATE]:
        del errors[Category.DUPLICATE]
    seconds = time.time() - started
    bytes_read = sum(r.bytes_read for r in records)
    requests = sum(r.read_requests for r in records)
    waited = sum(r.read_wait_seconds for r in records)
    busy = sum(r.seconds for r in records)
    checks = dict(checks)
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
        "resumed_shards": resumed_shards,
        "listed": listed,
        "unchanged": unchanged,
        "repeated_entries": repeated,
        "deleted": _deleted_report(deleted),
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
        "seconds": round(seconds, 3),
        "extract_seconds": round(processed_seconds, 3),
        "load_seconds": round(load.seconds, 3) if load else 0.0,
        "load_batches": load_batches[0],
        "load_batches_during_extraction": load_batches[1],
        "phases": phases,
        "staged_files": load.staged_files if load else {},
        "files_per_second": round(processed / processed_seconds, 1) if processed_seconds else 0,
        "worker_time": {
            "read_wait_seconds": round(waited, 3),
            "processing_seconds": round(max(0.0, busy - waited), 3),
            "read_wait_share": round(waited / busy, 3) if busy else 0.0,
            "throttled_reads": sum(r.throttled_reads for r in records),
            "lowest_read_window": min(
                (r.lowest_read_window for r in records if r.lowest_read_window), default=0
            ),
        },
        "pseudonymized": _pseudonymized(settings),
        "frame_offsets": FrameOffsets(
            requested=settings.frame_offsets,
            offset_table_reads=sum(r.offset_table_reads for r in records),
            offset_table_bytes=sum(r.offset_table_bytes for r in records),
            frames_located=sum(r.frames_located for r in records),
            frames_unlocated=sum(r.frames_unlocated for r in records),
        ),
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
