"""Shards on Dask: one task per shard, a bounded number in flight, on a LocalCluster
of single-threaded worker processes, an existing cluster, or this process.

In: a task, its settings and an iterator of shards. Out: what each task returned,
handed to `progress` as it finishes, and the seconds the work took (`Elapsed`).
Used by a run, a scan and a rebuild alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, NamedTuple, Protocol

from loader.dicom.value_store import ValueStore

Progress = Callable[[Any], None]  # called with what each shard's task returned


log = logging.getLogger(__name__)


class Elapsed(NamedTuple):
    seconds: float  # the first shard submitted to the last one done
    shutdown_seconds: float  # closing the cluster this run started


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
) -> Elapsed:
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
        return Elapsed(time.time() - started, 0.0)
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
    return Elapsed(ended - started, time.time() - ended)  # the cluster closed between
