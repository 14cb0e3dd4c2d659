"""First reads fetched ahead of parsing: the network waits while the worker parses.

On an object store every GET waits tens of milliseconds (100 ms and more for cold
objects in another region) before its first byte, and a worker parses a header in
about a millisecond. Fetching a batch, waiting for all of it and then parsing it
leaves the parser idle for the whole wait; a worker therefore keeps many first reads
in flight at once, each replaced as soon as it completes, and parses the objects in
listing order as their reads arrive.

How many are in flight is a `Window`: `--read-concurrency` (256: 100 ms of latency
at 1,300 objects/s, twice over), halved when the store throttles (503 SlowDown,
429) and grown back while it does not; and no more than `--read-ahead-mb` of first
reads are held, fetched or not yet taken.
Reads go out on the filesystem's own event loop when it is asynchronous (s3fs, gcsfs,
adlfs), else on threads. A first read that fails is retried by the header reader
itself, with backoff (`storage.with_retries`), so a failure here loses nothing.

Objects that hold instances (DICOM JSON exports, DICOMweb studies) are fetched
whole, on threads, up to `ahead_whole` at once (a study costs two round trips, its
series and their metadata, for a handful of instances, so many must be in flight),
and no more started while those in flight or not yet taken hold `max_bytes` or more
(one is always allowed: a single export larger than that is read on its own).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from loader.sources.listing import ObjectRef
from loader.sources.storage import DEFAULT_READ_CONCURRENCY, is_throttled, path_of

DEFAULT_READ_AHEAD_BYTES = 32 << 20
AHEAD_WHOLE = 32  # DICOM JSON exports and DICOMweb studies fetched ahead
_FLOOR = 4  # the window never shrinks below this many reads


class Window:
    """How many reads may be outstanding: `ceiling` at first; halved when a read is
    throttled, once per wave (the reads already in flight when the store started to
    throttle fail together and count once: only a read sent after the last halving
    halves again, as TCP's congestion window does); grown by a quarter after each
    window's worth of successes, up to its ceiling."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.lowest = self.limit
        self.throttled = 0  # reads the store throttled
        self._successes = 0
        self._halved_after = 0  # reads sent up to this number belong to the last wave

    def succeeded(self) -> None:
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + max(1, self.limit // 4))
            self._successes = 0

    def throttle(self, sent: int, latest: int) -> None:
        """Read number `sent` was throttled; `latest` is the number of the last read sent."""
        self.throttled += 1
        self._successes = 0
        if sent > self._halved_after:
            self.limit = max(min(_FLOOR, self.ceiling), self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._halved_after = latest


@dataclass(frozen=True)
class Ahead:
    """One listed object as the worker takes it: its filesystem (None for local
    files), its first read when one was fetched ahead (None: the reader reads it
    itself), and for an object holding instances what fetching it whole gave (a
    value, or the exception it raised)."""

    ref: ObjectRef
    fs: Any
    first: bytes | None = None
    whole: Any = None


@dataclass
class _Pending:
    ref: ObjectRef
    fs: Any
    kind: str  # "first", "whole", or "none" (nothing fetched ahead)
    future: Future[Any] | None
    sent: int  # its number among the reads sent


class ReadAhead:
    """Listed objects in order, each with its first read fetched ahead (see the
    module's doc). `filesystem_of` gives an object's filesystem (None: a local file,
    read by the reader itself); `first_bytes` is how much of an object a first read
    asks for; `fetch_whole` fetches an object holding instances.

    Two bounds, kept apart so that one slow read does not drain the pipeline: reads
    in flight (the window) and reads fetched but not yet taken (`max_bytes`). While
    the worker waits for the object it needs next, the reads that complete meanwhile
    are replaced at once, not when the worker moves on.

    A shard reports `wait_seconds` (the worker waiting for it), and the `window`'s
    throttled reads and lowest width.
    """

    def __init__(
        self,
        objects: Sequence[ObjectRef],
        filesystem_of: Callable[[ObjectRef], Any],
        first_bytes: int,
        holds_instances: Callable[[ObjectRef], bool],
        fetch_whole: Callable[[ObjectRef, Any], Any],
        concurrency: int = DEFAULT_READ_CONCURRENCY,
        max_bytes: int = DEFAULT_READ_AHEAD_BYTES,
        ahead_whole: int = AHEAD_WHOLE,
    ) -> None:
        self.upcoming = iter(objects)
        self.filesystem_of = filesystem_of
        self.first_bytes = max(1, first_bytes)
        self.holds_instances = holds_instances
        self.fetch_whole = fetch_whole
        self.max_firsts = max(1, max_bytes // self.first_bytes)  # fetched, not yet taken
        self.window = Window(min(concurrency, self.max_firsts))
        self.ahead_whole = max(1, ahead_whole)
        self.max_bytes = max_bytes
        self.wait_seconds = 0.0  # the worker waiting for the object it needs next
        self._threads: ThreadPoolExecutor | None = None
        self._whole_threads: ThreadPoolExecutor | None = None
        self._pending: deque[_Pending] = deque()
        self._next: _Pending | None = None  # classified, waiting for room
        self._sent = 0
        self._changed = threading.Condition()
        self._completions = 0
        self._in_flight = {"first": 0, "whole": 0}
        self._outstanding = {"first": 0, "whole": 0, "none": 0}

    def __iter__(self) -> Iterator[Ahead]:
        try:
            while True:
                self._top_up()
                if not self._pending:
                    return
                head = self._pending[0]
                if head.future is not None and not head.future.done():
                    self._wait_for(head.future)
                self._pending.popleft()
                self._outstanding[head.kind] -= 1
                yield self._taken(head)
        finally:  # done, or the worker stopped early: every read not taken is cancelled
            for entry in self._pending:
                if entry.future is not None:
                    entry.future.cancel()
            for pool in (self._threads, self._whole_threads):
                if pool is not None:
                    pool.shutdown(wait=False)  # reads running end on their own

    def _wait_for(self, future: Future[Any]) -> None:
        """Block until `future` is done, sending a read for each one completed meanwhile."""
        started = time.perf_counter()
        seen = -1
        while not future.done():
            with self._changed:
                if self._completions == seen and not future.done():
                    self._changed.wait()
                seen = self._completions
            self._top_up()
        self.wait_seconds += time.perf_counter() - started

    def _top_up(self) -> None:
        """Send reads for the next objects while the bounds allow."""
        while True:
            entry = self._next or self._classified()
            if entry is None:
                return
            if not self._has_room(entry.kind, entry.ref):
                self._next = entry
                return
            self._next = None
            self._send(entry)

    def _classified(self) -> _Pending | None:
        ref = next(self.upcoming, None)
        if ref is None:
            return None
        fs = self.filesystem_of(ref)
        if self.holds_instances(ref):
            kind = "whole"
        elif fs is None or ref.size <= 0:
            kind = "none"
        else:
            kind = "first"
        return _Pending(ref, fs, kind, None, 0)

    def _has_room(self, kind: str, ref: ObjectRef) -> bool:
        with self._changed:
            if kind == "first":
                return (
                    self._in_flight["first"] < self.window.limit
                    and self._outstanding["first"] < self.max_firsts
                )
            if kind == "whole":
                return self._in_flight["whole"] < self.ahead_whole and (
                    not self._outstanding["whole"]
                    or self._whole_bytes_held() + max(0, ref.size) <= self.max_bytes
                )
        return len(self._pending) < self.max_firsts

    def _whole_bytes_held(self) -> int:
        """Bytes of the objects being fetched whole or fetched and not yet taken: what
        a fetch read, or until it is done the size listed (an export's; a DICOMweb
        study's is not known before it is read)."""
        held = 0
        for entry in self._pending:
            future = entry.future
            if entry.kind != "whole" or future is None:
                continue
            if future.done() and not future.cancelled() and future.exception() is None:
                held += getattr(future.result(), "read", 0)
            else:
                held += max(0, entry.ref.size)
        return held

    def _send(self, entry: _Pending) -> None:
        with self._changed:
            self._sent += 1
            entry.sent = self._sent
        entry.future = self._submit(entry)
        with self._changed:
            self._outstanding[entry.kind] += 1
            if entry.future is not None:
                self._in_flight[entry.kind] += 1
        self._pending.append(entry)
        if entry.future is not None:
            entry.future.add_done_callback(partial(self._completed, entry))

    def _completed(self, entry: _Pending, future: Future[Any]) -> None:
        """A read finished (on the event loop's or a pool's thread): room for another,
        and the window learns at once whether the store throttled it, before the
        reads sent in its place would be sent at the old width."""
        failure = None if future.cancelled() else future.exception()
        with self._changed:
            self._in_flight[entry.kind] -= 1
            self._completions += 1
            if entry.kind == "first" and not future.cancelled():
                if failure is None:
                    self.window.succeeded()
                elif is_throttled(failure):
                    self.window.throttle(entry.sent, self._sent)
            self._changed.notify_all()

    def _submit(self, entry: _Pending) -> Future[Any] | None:
        ref, fs = entry.ref, entry.fs
        if entry.kind == "whole":
            if self._whole_threads is None:
                self._whole_threads = ThreadPoolExecutor(self.ahead_whole, "read-ahead-whole")
            return self._whole_threads.submit(self.fetch_whole, ref, fs)
        if entry.kind == "none":
            return None
        path, end = path_of(ref.url), min(self.first_bytes, ref.size)
        if getattr(fs, "async_impl", False):  # s3fs, gcsfs, adlfs: on their own loop
            coroutine = fs._cat_file(path, start=0, end=end)
            return asyncio.run_coroutine_threadsafe(coroutine, fs.loop)
        if self._threads is None:
            self._threads = ThreadPoolExecutor(min(self.window.ceiling, 32), "read-ahead")
        return self._threads.submit(fs.cat_file, path, start=0, end=end)

    def _taken(self, entry: _Pending) -> Ahead:
        ref, fs, future = entry.ref, entry.fs, entry.future
        if future is None:
            return Ahead(ref, fs)
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - the storage clients raise many types
            if entry.kind == "whole":
                return Ahead(ref, fs, whole=exc)
            return Ahead(ref, fs)  # the reader reads it again, with backoff
        if entry.kind == "whole":
            return Ahead(ref, fs, whole=result)
        return Ahead(ref, fs, first=result if isinstance(result, bytes) else None)
