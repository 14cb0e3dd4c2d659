"""A run's load in batches of shards, loaded while later shards are extracted where
the driver has a core of its own.

Why batches: loaded as one transaction after its extraction, a run of 200,000 objects
grew the driver's DuckDB to 6.1 GB. A batch bounds what one transaction holds. Where
the workers leave the driver a core (a remote cluster, fewer workers than cores), a
background thread loads each batch while the workers extract later shards (DuckDB
releases the GIL while it works, so the driver keeps feeding the cluster). Where
they take every core the batches wait for the extraction's end: the load competing
with the workers made a 200,000-object run on 2 cores slower (65 s against 62 s).

Batches may be loaded in any order and any number of times: the merge keeps the row
of the greatest `_source_order` whatever the order (merge.py). So a failed batch
leaves the earlier ones loaded, and loading the run again (`load`, `run --resume`)
completes it. The run's accounting is made once, at the end, over all its shards
(`finish_run`): an object of a later batch can take the place of an earlier one's.

A warehouse that loads a run at once (Snowflake: `load_batch_objects` is None) is
loaded by `finish`, after the extraction.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.warehouse.base import BatchLoading, LoadResult, Warehouse

log = logging.getLogger(__name__)


def load_batches(records: list[ShardRecord], objects: int) -> Iterator[list[ShardRecord]]:
    """Consecutive shards of about `objects` listed objects each (whole shards)."""
    batch: list[ShardRecord] = []
    held = 0
    for record in records:
        batch.append(record)
        held += record.listed
        if held >= objects:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


class BatchedLoad:
    """Loads a run's shards as they are committed, then accounts for the run.

    `add` takes each shard the extraction commits; every `load_batch_objects`
    objects, the batch goes to a single background thread, so batches load one at
    a time and in order. `finish` waits for them, loads what is left of the run's
    committed shards and writes its accounting. The warehouse's connection belongs
    to that thread until `finish` returns.
    """

    def __init__(
        self, warehouse: Warehouse, out: OutputRoot, run_id: str, background: bool = True
    ) -> None:
        self.warehouse = warehouse
        self.out = out
        self.run_id = run_id
        self.batch_objects = warehouse.load_batch_objects
        self.loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self.result = LoadResult(run_id)
        self._pending: list[ShardRecord] = []
        self._pending_objects = 0
        self._loaded: dict[str, ShardRecord] = {}  # shard id → the record loaded
        self._futures: list[Future[LoadResult]] = []
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="load")
            if background and self.batch_objects
            else None
        )
        self.batches = 0  # loaded so far
        self.batches_during_extraction = 0

    def add(self, record: ShardRecord) -> None:
        """A shard the extraction committed; a full batch starts loading now."""
        self._raise_failure()
        if self._pool is None or self.batch_objects is None:
            return  # loaded by finish()
        self._pending.append(record)
        self._pending_objects += record.listed
        if self._pending_objects >= self.batch_objects:
            batch, self._pending, self._pending_objects = self._pending, [], 0
            self._futures.append(self._pool.submit(self._load, batch))
            self.batches_during_extraction += 1

    def finish(self, records: list[ShardRecord]) -> LoadResult:
        """Load what is left of `records` (every shard the run committed) and account
        for the run; the batches already loaded are not loaded again."""
        try:
            if self.batch_objects is None:
                return self.warehouse.load_run(self.out, self.run_id, records)
            for future in self._futures:
                future.result()
            rest = [r for r in records if self._loaded.get(r.shard_id) != r]
            for batch in load_batches(rest, self.batch_objects):
                self._load(batch)
            started = time.time()
            batching = cast(BatchLoading, self.warehouse)
            batching.finish_run(self.out, self.run_id, records, self.loaded_at, self.result)
            self.result.seconds += time.time() - started
            return self.result
        finally:
            self.close()

    def close(self) -> None:
        """Stop: batches not started are dropped, a running one ends first."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _load(self, batch: list[ShardRecord]) -> LoadResult:
        batching = cast(BatchLoading, self.warehouse)
        loaded = batching.load_batch(self.out, self.run_id, batch, self.loaded_at)
        self.result.absorb(loaded)
        self.result.seconds += loaded.seconds
        self._loaded.update((r.shard_id, r) for r in batch)
        self.batches += 1
        log.debug(
            "loaded batch %d: %d shards, %d objects in %.1f s",
            self.batches,
            len(batch),
            sum(r.listed for r in batch),
            loaded.seconds,
        )
        return loaded

    def _raise_failure(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                future.result()
