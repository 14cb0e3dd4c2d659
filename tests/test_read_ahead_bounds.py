"""Read-ahead's bounds, each exactly, and what an early stop leaves behind.

A bound is proved from both sides: the reads or fetches under test wait until one
more than the bound is in flight, which only a broken bound lets happen, or until
`HOLD` seconds have passed; then the most seen at once must equal the bound. With
the bound kept, the result does not depend on timing: the wait only limits how long
the test takes.

Objects fetched whole are also counted as they are classified (`holds_instances` is
asked once per object, in order): the read-ahead looks at the next object only after
sending the one before it, so while every fetch is held it has looked at exactly the
objects it sent plus the one waiting for room.

On an asynchronous store (s3fs, gcsfs, adlfs) reads are coroutines on fsspec's event
loop, with no pool of threads to cap them: there the window alone bounds the reads in
flight, and only cancelling a read stops it.
"""

from __future__ import annotations

import asyncio
import errno
import threading
import time

import pytest
from fsspec.asyn import AsyncFileSystem, sync
from fsspec.implementations.memory import MemoryFileSystem

from loader.sources.listing import ObjectRef
from loader.sources.read_ahead import ReadAhead

HOLD = 1.0  # seconds a held read waits for what only a broken bound would let happen


class _Crowd:
    """Counts what is in flight; each arrival waits (up to HOLD) until `crowd` are in
    flight together. After the first wait ends, for either reason, nothing waits."""

    def __init__(self, crowd: int) -> None:
        self.crowd = crowd
        self.changed = threading.Condition()
        self.in_flight = self.most = 0
        self.opened = False

    def __enter__(self) -> None:
        with self.changed:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
            if not self.opened:
                self.changed.wait_for(
                    lambda: self.opened or self.in_flight >= self.crowd, timeout=HOLD
                )
                self.opened = True
                self.changed.notify_all()

    def __exit__(self, *exc: object) -> None:
        with self.changed:
            self.in_flight -= 1


class _CrowdedMemory(MemoryFileSystem):
    """fsspec's in-memory store (synchronous: read on the read-ahead's threads), its
    reads passing through a `_Crowd`."""

    def __init__(self, crowd: int) -> None:
        super().__init__(skip_instance_cache=True)
        self.gate = _Crowd(crowd)

    def cat_file(self, path, start=None, end=None, **kwargs):
        with self.gate:
            return super().cat_file(path, start=start, end=end, **kwargs)


class _AsyncMemory(AsyncFileSystem):
    """An asynchronous store in memory, as s3fs is one over the network: reads are
    coroutines on fsspec's event loop, each taking a short round trip. Reads in
    flight are counted, `crowd` of them awaited together (as `_Crowd` does), and the
    reads of `held` paths wait until they are cancelled."""

    def __init__(self, blobs: dict[str, bytes], crowd: int = 1, held=frozenset()) -> None:
        super().__init__(skip_instance_cache=True)
        self.blobs, self.crowd, self.held = blobs, crowd, held
        self.in_flight = self.most = self.reads = 0
        self.opened = crowd <= 1
        self.tasks: list[asyncio.Task] = []
        self.cancelled: list[str] = []

    async def _cat_file(self, path, start=None, end=None, **kwargs):
        self.tasks.append(asyncio.current_task())
        self.in_flight += 1
        self.reads += 1
        self.most = max(self.most, self.in_flight)
        try:
            if path in self.held:
                await asyncio.Event().wait()
            deadline = time.monotonic() + HOLD
            while not self.opened and self.in_flight < self.crowd:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.001)
            self.opened = True
            await asyncio.sleep(0.01)  # a round trip: reads sent together overlap
            return self.blobs[path][start:end]
        except asyncio.CancelledError:
            self.cancelled.append(path)
            raise
        finally:
            self.in_flight -= 1


def _blobs(count: int, size: int = 3000) -> dict[str, bytes]:
    return {f"b/{i:03}": bytes([i]) * size for i in range(count)}


def _refs_of(blobs: dict[str, bytes]) -> list[ObjectRef]:
    return [ObjectRef(f"memory://{path}", len(data), None) for path, data in blobs.items()]


def _first_reads(fs, refs, **bounds) -> ReadAhead:
    return ReadAhead(refs, lambda ref: fs, 1000, lambda ref: False, lambda r, f: None, **bounds)


def test_an_asynchronous_stores_reads_in_flight_are_bounded_by_the_window_alone():
    blobs = _blobs(30)
    fs = _AsyncMemory(blobs, crowd=4)
    taken = list(_first_reads(fs, _refs_of(blobs), concurrency=3, max_bytes=1 << 20))
    assert [a.first for a in taken] == [data[:1000] for data in blobs.values()]
    assert fs.most == 3 and fs.reads == 30


def test_a_synchronous_store_is_read_on_at_most_32_threads():
    fs = _CrowdedMemory(crowd=33)
    blobs = _blobs(70)
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    taken = list(_first_reads(fs, _refs_of(blobs), concurrency=64, max_bytes=1 << 20))
    assert [a.first for a in taken] == [data[:1000] for data in blobs.values()]
    assert fs.gate.most == 32


class _HeadHeld(MemoryFileSystem):
    """The first object's read waits until `others` other reads have started, or
    HOLD seconds; `others_seen` is how many had when it returned."""

    def __init__(self, others: int) -> None:
        super().__init__(skip_instance_cache=True)
        self.others = others
        self.started = threading.Condition()
        self.count = 0
        self.others_seen = -1

    def cat_file(self, path, start=None, end=None, **kwargs):
        with self.started:
            if path.lstrip("/") == "b/000":
                self.started.wait_for(lambda: self.count >= self.others, timeout=HOLD)
                self.others_seen = self.count
            else:
                self.count += 1
                self.started.notify_all()
        return super().cat_file(path, start=start, end=end, **kwargs)


def test_first_reads_fetched_and_not_taken_stay_within_the_byte_budget():
    """A budget of four first reads: while the worker waits for the first object,
    three more are read and held, never a fourth, though the window has room."""
    fs = _HeadHeld(others=4)
    blobs = _blobs(12)
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    taken = list(_first_reads(fs, _refs_of(blobs), concurrency=64, max_bytes=4000))
    assert [a.first for a in taken] == [data[:1000] for data in blobs.values()]
    assert fs.others_seen == 3


@pytest.mark.parametrize("asked", [0, 1])
def test_a_first_read_is_at_least_one_byte(asked):
    fs = MemoryFileSystem(skip_instance_cache=True)
    blobs = _blobs(3, size=5)
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    reads = ReadAhead(_refs_of(blobs), lambda ref: fs, asked, lambda r: False, lambda r, f: None)
    assert [a.first for a in reads] == [data[:1] for data in blobs.values()]


class _CountingReads(MemoryFileSystem):
    def __init__(self) -> None:
        super().__init__(skip_instance_cache=True)
        self.paths: list[str] = []

    def cat_file(self, path, start=None, end=None, **kwargs):
        self.paths.append(path.lstrip("/"))
        return super().cat_file(path, start=start, end=end, **kwargs)


def test_an_empty_stored_object_is_left_to_the_reader_and_a_one_byte_one_is_read():
    fs = _CountingReads()
    blobs = {"b/empty": b"", "b/one": b"\x07"}
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    taken = list(_first_reads(fs, _refs_of(blobs)))
    assert [a.first for a in taken] == [None, b"\x07"]
    assert fs.paths == ["b/one"]


def test_objects_read_by_the_reader_itself_are_classified_no_further_than_the_budget():
    """Local files are not read ahead, but no more of them are held in line than
    first reads would be (four here): taking the first, the read-ahead has looked at
    four objects and the one waiting for room."""
    looked: list[ObjectRef] = []

    def filesystem_of(ref):
        looked.append(ref)

    refs = [ObjectRef(f"/data/{i}.dcm", 100, None) for i in range(10)]
    reads = iter(
        ReadAhead(refs, filesystem_of, 1000, lambda r: False, lambda r, f: None, max_bytes=4000)
    )
    assert next(reads).ref == refs[0]
    assert len(looked) == 5
    assert [a.ref for a in reads] == refs[1:]


class _Exports:
    """Objects fetched whole (DICOM JSON exports): `holds_instances` counts the
    objects looked at; each fetch passes through a `_Crowd` of `crowd`, and records
    how many objects had been looked at when its wait ended."""

    def __init__(self, crowd: int, reads: dict[str, object] | None = None) -> None:
        self.gate = _Crowd(crowd)
        self.looked = 0
        self.looked_at_release: list[int] = []
        self.reads = reads or {}

    def holds_instances(self, ref: ObjectRef) -> bool:
        with self.gate.changed:
            self.looked += 1
        return True

    def fetch_whole(self, ref: ObjectRef, fs) -> object:
        with self.gate:
            self.looked_at_release.append(self.looked)
        return self.reads.get(ref.url, _Fetched(ref.size))


class _Fetched:
    def __init__(self, read: int) -> None:
        self.read = read


@pytest.mark.parametrize(("ahead_whole", "bound"), [(0, 1), (1, 1), (2, 2), (None, 32)])
def test_objects_fetched_whole_are_fetched_and_lined_up_no_further_than_their_bound(
    ahead_whole, bound
):
    """`ahead_whole` fetches at once (at least one; 32 by default), and one more
    object looked at, waiting for room."""
    exports = _Exports(crowd=bound + 1)
    refs = [ObjectRef(f"/e/{i:02}.json", 10, None) for i in range(40)]
    chosen = {} if ahead_whole is None else {"ahead_whole": ahead_whole}
    reads = ReadAhead(
        refs, lambda r: None, 1000, exports.holds_instances, exports.fetch_whole, **chosen
    )
    assert [a.ref for a in reads] == refs
    assert exports.gate.most == bound
    assert exports.looked_at_release[0] == bound + 1


def test_exports_held_fill_the_byte_budget_to_the_byte():
    """A budget of 20 bytes: exports of 10 and 10 fill it, two of unknown size (0)
    still fit, one more byte does not. Five objects looked at: four fetched, one
    waiting."""
    exports = _Exports(crowd=5)
    sizes = [10, 10, 0, 0, 1, 10, 10]
    refs = [ObjectRef(f"/e/{i}.json", size, None) for i, size in enumerate(sizes)]
    reads = ReadAhead(
        refs,
        lambda r: None,
        1000,
        exports.holds_instances,
        exports.fetch_whole,
        max_bytes=20,
        ahead_whole=8,
    )
    assert [a.ref for a in reads] == refs
    assert exports.looked_at_release[0] == 5 and exports.gate.most == 4


class _Unmeasured:
    """What a fetch returns that does not say how much it read: counted as 0 bytes."""


@pytest.mark.parametrize(
    ("held_result", "third_size", "fetched_beside"),
    [
        (_Fetched(5), 10, True),  # listed 20, read 5: 5 + 10 fits 20
        (_Unmeasured(), 20, True),  # read unknown: 0 + 20 fits 20
        (_Unmeasured(), 21, False),  # 0 + 21 does not
    ],
)
def test_an_export_fetched_counts_what_it_read_not_its_listed_size(
    held_result, third_size, fetched_beside
):
    """The first export (size unknown, 0) is still being fetched; the second, listed
    at 20 bytes, has been fetched and not taken. Whether the third is fetched beside
    them depends on what the second read, not its listed size."""
    started = threading.Event()
    refs = [
        ObjectRef("/e/0.json", 0, None),
        ObjectRef("/e/1.json", 20, None),
        ObjectRef("/e/2.json", third_size, None),
    ]
    beside: list[bool] = []

    def fetch_whole(ref, fs):
        if ref.url == "/e/0.json":
            beside.append(started.wait(timeout=HOLD))
            return _Fetched(0)
        if ref.url == "/e/2.json":
            started.set()
        return held_result if ref.url == "/e/1.json" else _Fetched(ref.size)

    reads = ReadAhead(
        refs, lambda r: None, 1000, lambda r: True, fetch_whole, max_bytes=20, ahead_whole=8
    )
    assert [a.ref for a in reads] == refs
    assert beside == [fetched_beside]


@pytest.mark.parametrize(("export_size", "fetched_beside"), [(10, True), (15, False)])
def test_only_objects_fetched_whole_count_against_their_byte_budget(export_size, fetched_beside):
    """A first read in flight (5,000 bytes listed) is not an export: the exports
    held are 10 bytes, so a second of 10 fits a budget of 20 and one of 15 does not."""
    fs = MemoryFileSystem(skip_instance_cache=True)
    fs.pipe_file("b/first", b"f" * 5000)
    started = threading.Event()
    beside: list[bool] = []

    class _HeldFirst(MemoryFileSystem):
        def cat_file(self, path, start=None, end=None, **kwargs):
            beside.append(started.wait(timeout=HOLD))
            return fs.cat_file(path, start=start, end=end)

    held = _HeldFirst(skip_instance_cache=True)
    refs = [
        ObjectRef("memory://b/first", 5000, None),
        ObjectRef("/e/1.json", 10, None),
        ObjectRef("/e/2.json", export_size, None),
    ]

    def fetch_whole(ref, fs):
        if ref.url == "/e/2.json":
            started.set()
        return _Fetched(ref.size)

    reads = ReadAhead(
        refs,
        lambda r: held if r.url.startswith("memory") else None,
        1000,
        lambda r: r.url.endswith(".json"),
        fetch_whole,
        max_bytes=20,
        ahead_whole=8,
    )
    taken = list(reads)
    assert [a.ref for a in taken] == refs and taken[0].first == b"f" * 1000
    assert beside == [fetched_beside]


def test_an_export_the_store_throttled_leaves_the_first_read_window_alone():
    """The window is the first reads' (a whole fetch retries on its own): an export
    refused with 503 SlowDown is handed on, and the window neither narrows nor
    counts it."""

    def fetch_whole(ref, fs):
        raise OSError(errno.EBUSY, "SlowDown")

    refs = [ObjectRef(f"/e/{i}.json", 10, None) for i in range(4)]
    reads = ReadAhead(refs, lambda r: None, 1000, lambda r: True, fetch_whole, concurrency=16)
    assert all(isinstance(a.whole, OSError) for a in reads)
    assert reads.window.throttled == 0 and reads.window.limit == 16


def test_a_worker_that_stops_early_cancels_the_reads_on_the_event_loop():
    blobs = _blobs(8)
    fs = _AsyncMemory(blobs, held=frozenset(list(blobs)[1:]))
    reads = iter(_first_reads(fs, _refs_of(blobs), concurrency=8, max_bytes=1 << 20))
    assert next(reads).first == blobs["b/000"][:1000]
    reads.close()

    async def still_running() -> set:
        # Read once the loop has run what was scheduled before: a read not cancelled
        # has started by then and is waiting.
        _, pending = await asyncio.wait(list(fs.tasks), timeout=HOLD)
        return pending

    assert sync(fs.loop, still_running) == set()
    assert fs.reads == 1 + len(fs.cancelled)  # each read started was cancelled but one


def test_a_worker_that_stops_early_with_local_files_in_line_stops_cleanly():
    refs = [ObjectRef(f"/data/{i}.dcm", 100, None) for i in range(5)]
    reads = iter(ReadAhead(refs, lambda r: None, 1000, lambda r: False, lambda r, f: None))
    assert next(reads).ref == refs[0]
    reads.close()  # raises if it tried to cancel reads that were never sent


def _read_ahead_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("read-ahead")}


def test_a_worker_that_stops_early_leaves_no_thread_behind():
    before = _read_ahead_threads()
    fs = MemoryFileSystem(skip_instance_cache=True)
    blobs = _blobs(8)
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    exports = [ObjectRef(f"/e/{i}.json", 10, None) for i in range(4)]
    ahead = ReadAhead(
        [*_refs_of(blobs), *exports],
        lambda r: None if r in exports else fs,
        1000,
        lambda r: r in exports,
        lambda r, f: _Fetched(10),
        concurrency=4,
    )
    reads = iter(ahead)  # `ahead` held: its pools are not let go by being collected
    for _ in range(9):  # every first read, and one export: both pools have started
        next(reads)
    started = _read_ahead_threads() - before
    reads.close()
    for thread in started:
        thread.join(timeout=HOLD)
    assert {t.name.split("_")[0] for t in started} == {"read-ahead", "read-ahead-whole"}
    assert not [t for t in started if t.is_alive()]


def test_a_worker_that_stops_early_does_not_wait_for_reads_in_flight():
    fs = MemoryFileSystem(skip_instance_cache=True)
    blobs = _blobs(4)
    for path, data in blobs.items():
        fs.pipe_file(path, data)
    release = threading.Event()
    ended: list[str] = []

    class _Slow(MemoryFileSystem):
        def cat_file(self, path, start=None, end=None, **kwargs):
            if path.lstrip("/") != "b/000":
                release.wait(timeout=HOLD)
                ended.append(path)
            return fs.cat_file(path, start=start, end=end)

    reads = iter(_first_reads(_Slow(skip_instance_cache=True), _refs_of(blobs), concurrency=4))
    next(reads)
    reads.close()
    ended_at_close = list(ended)
    release.set()
    assert ended_at_close == []


def test_the_worker_waiting_for_a_read_does_not_spin():
    """While the worker waits for its next object, reads that complete wake it to
    send more; between them it sleeps. Its thread's CPU time over a wait of a second,
    woken once, stays far below that second."""
    fs = MemoryFileSystem(skip_instance_cache=True)
    blobs = _blobs(2)
    for path, data in blobs.items():
        fs.pipe_file(path, data)

    class _Late(MemoryFileSystem):
        def cat_file(self, path, start=None, end=None, **kwargs):
            time.sleep(1.0 if path.lstrip("/") == "b/000" else 0.3)
            return fs.cat_file(path, start=start, end=end)

    reads = iter(_first_reads(_Late(skip_instance_cache=True), _refs_of(blobs)))
    cpu = time.thread_time()
    assert next(reads).first == blobs["b/000"][:1000]
    assert time.thread_time() - cpu < 0.3
    list(reads)
