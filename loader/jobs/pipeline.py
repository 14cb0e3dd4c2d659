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
from collections.abc import Iterator
from contextlib import ExitStack

from loader.core.count import Count
from loader.core.errors import ConfigError, WarehouseMemoryError
from loader.core.model import EXTRACTED
from loader.jobs.deleted_objects import (
    scope_of,
)
from loader.jobs.engine import Progress, execute
from loader.jobs.incremental import to_process
from loader.jobs.load import DeletionCheck, load
from loader.jobs.progress import ListingCount, counted
from loader.jobs.report import (
    RunReport,
    RunTally,
    pseudonymized,
)
from loader.jobs.settings import RunSettings, TargetKind
from loader.jobs.shard import ShardSettings, process_shard
from loader.jobs.targets import (
    check_target_reads,
    check_target_writable,
    known_objects,
    open_warehouse,
)
from loader.output import ledger
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.sources.listed_parts import Listed, list_parts
from loader.sources.listing import ObjectRef, Shard, make_shards
from loader.sources.repeats import SeenKeys
from loader.warehouse.batches import BatchedLoad

log = logging.getLogger(__name__)


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def _pending(shards: Iterator[Shard], done: set[str], resumed: Count) -> Iterator[Shard]:
    """The shards not in `done` (committed by an earlier attempt: counted)."""
    for shard in shards:
        if shard.shard_id in done:
            resumed.value += 1
        else:
            yield shard


def fewer_than(objects: Iterator[ObjectRef], limit: int) -> tuple[Iterator[ObjectRef], bool]:
    """`objects` whole, and whether the listing ends before `limit` of them: a run
    that small runs faster in this process than on a cluster it must start first."""
    ahead = list(itertools.islice(objects, limit))
    return itertools.chain(ahead, objects), len(ahead) < limit


def listed_first(parts: Iterator[Listed]) -> Iterator[Listed]:
    """`parts`, its first one listed now."""
    first = next(parts, None)
    return parts if first is None else itertools.chain([first], parts)


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
                "pseudonymized": pseudonymized(settings),
                "started_at": dt.datetime.now(dt.UTC).isoformat(),
            },
        )
    except OSError as exc:  # a file where a folder must be, no permission, a full disk
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    shard_settings = ShardSettings.of(settings, out.url, run_id)
    done = ledger.committed_ids(out, run_id) if settings.resume else set()
    tally = RunTally(started)
    unreadable: list[str] = []  # folders the listing could not read
    listed_keys = SeenKeys()  # every URL listed, for the deletion check
    options = settings.storage_options
    # The first part listed now: a source that cannot be listed fails here, with
    # one line, before a cluster starts (and a walk's processes start at once).
    parts = listed_first(list_parts(settings.source, options, unreadable, settings.incremental))
    known = None
    deletion_check = None
    if settings.incremental:
        lookup_started = time.time()
        known = known_objects(settings.target)
        tally.known_objects_seconds = time.time() - lookup_started
        deletion_check = DeletionCheck(scope_of(settings.source), listed_keys, unreadable)
    objects = tally.listing(to_process(parts, listed_keys, tally.repeated, known, tally.unchanged))
    workers = settings.workers
    if workers > 0 and not settings.scheduler and settings.cluster_min_objects:
        objects, small = fewer_than(objects, settings.cluster_min_objects)
        if small:
            workers = 0
            settings = dataclasses.replace(settings, workers=0)  # the report says so
    if listing is not None:
        objects = counted(objects, listing)
    shards = _pending(make_shards(objects, settings.shard_size), done, tally.resumed_shards)
    try:
        return _extract_and_load(
            settings, out, run_id, shards, shard_settings, workers, progress, tally,
            deletion_check,
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
    tally: RunTally,
    deletion_check: DeletionCheck | None,
) -> RunReport:
    """The shards extracted on the cluster, loaded batch by batch, then validated;
    `tally` counts what the listing skipped as it is read."""
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
        tally.extraction_seconds = extraction.seconds
        tally.shutdown_seconds = extraction.shutdown_seconds
        tally.startup_seconds = (
            time.time() - tally.started - extraction.seconds - extraction.shutdown_seconds
        )
        return load(
            out,
            run_id,
            settings.target,
            settings=settings,
            tally=tally,
            loading=loading,
            deletion_check=deletion_check,
        )
