"""Reads fetched ahead of parsing: the window's back-off and recovery, order, bounds,
and failures handed on to the reader (the server-side behaviour is in
test_object_store.py, where a moto server counts the reads in flight)."""

from __future__ import annotations

import errno
import threading
import time

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from loader.sources.listing import ObjectRef
from loader.sources.read_ahead import ReadAhead, Window


def test_a_wave_of_throttled_reads_halves_the_window_once_then_it_grows_back():
    window = Window(64)
    for sent in range(1, 65):  # 64 reads in flight when the store starts throttling
        window.throttle(sent, latest=64)
    assert window.limit == 32 and window.throttled == 64
    window.throttle(65, latest=90)  # a read sent after the halving: a new wave
    assert window.limit == 16 == window.lowest
    grown = []
    while window.limit < 64:
        window.succeeded()
        grown.append(window.limit)
    assert window.limit == 64 and window.lowest == 16
    # A quarter more after each window of successes: 16 → 20 → 25 → 31 → 38 → 47 → 58 → 64.
    assert len(grown) == 16 + 20 + 25 + 31 + 38 + 47 + 58
    for _ in range(1000):
        window.succeeded()
    assert window.limit == 64  # never above its ceiling


def test_the_window_never_closes():
    window = Window(8)
    for sent in range(1, 100):
        window.throttle(sent, latest=sent)
    assert window.limit == 4


class _CountingMemory(MemoryFileSystem):
    """fsspec's in-memory store, counting reads in flight at once (a synchronous
    filesystem: read on the read-ahead's threads)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Barrier(4)
        self.lock = threading.Lock()
        self.in_flight = self.most = 0

    def cat_file(self, path, start=None, end=None, **kwargs):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            self.gate.wait(timeout=30)  # four reads must be in flight together
            if path.endswith("missing"):
                raise FileNotFoundError(path)
            return super().cat_file(path, start=start, end=end, **kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_objects_come_in_order_with_their_first_bytes_within_the_bounds():
    fs = _CountingMemory(skip_instance_cache=True)
    refs = []
    for i in range(40):
        fs.pipe_file(f"/b/{i:03}", bytes([i]) * 5000)
        refs.append(ObjectRef(f"memory://b/{i:03}", 5000, None))
    refs[7] = ObjectRef("memory://b/missing", 5000, None)
    reads = ReadAhead(
        refs,
        lambda ref: fs,
        first_bytes=1000,
        holds_instances=lambda ref: False,
        fetch_whole=lambda ref, fs: None,
        concurrency=64,
        max_bytes=4000,  # four first reads of 1000 bytes held at most
    )
    taken = list(reads)
    assert [a.ref for a in taken] == refs
    assert taken[7].first is None  # the reader reads it again itself (and fails there)
    assert all(a.first == bytes([i]) * 1000 for i, a in enumerate(taken) if i != 7)
    assert fs.most == 4  # the barrier proves four in flight at once; the bytes cap four
    assert reads.window.throttled == 0


def test_objects_holding_instances_are_fetched_whole_and_failures_handed_on():
    refs = [ObjectRef(f"/exports/{i}.json", 10, None) for i in range(6)]

    def fetch_whole(ref, fs):
        if ref.url.endswith("3.json"):
            raise ValueError("broken export")
        return ref.url.upper()

    taken = list(
        ReadAhead(refs, lambda ref: None, 1000, lambda ref: True, fetch_whole, ahead_whole=2)
    )
    assert [a.whole for a in taken if not isinstance(a.whole, Exception)] == [
        r.url.upper() for r in refs if not r.url.endswith("3.json")
    ]
    assert isinstance(taken[3].whole, ValueError)
    assert all(a.fs is None and a.first is None for a in taken)


@pytest.mark.parametrize("size", [0, 100])
def test_local_files_and_empty_objects_are_left_to_the_reader(size):
    refs = [ObjectRef(f"/data/{i}.dcm", size, None) for i in range(3)]
    taken = list(ReadAhead(refs, lambda ref: None, 1000, lambda ref: False, lambda r, f: None))
    assert [(a.ref, a.fs, a.first, a.whole) for a in taken] == [(r, None, None, None) for r in refs]


def test_a_window_is_at_least_one_read_wide():
    assert Window(0).limit == Window(0).ceiling == 1


def test_the_first_read_throttled_halves_the_window():
    window = Window(16)
    window.throttle(1, latest=1)
    assert window.limit == 8 == window.lowest and window.throttled == 1


def test_a_narrow_window_grows_by_one_after_a_window_of_successes():
    window = Window(8)
    window.throttle(1, latest=8)
    assert window.limit == 4
    limits = []
    for _ in range(4 + 5 + 6 + 7):
        window.succeeded()
        limits.append(window.limit)
    # 4 successes at 4 wide, 5 at 5, 6 at 6, 7 at 7: one more read each time.
    assert limits == [4] * 3 + [5] * 5 + [6] * 6 + [7] * 7 + [8]


def test_a_throttled_read_starts_the_count_of_successes_again():
    window = Window(8)
    window.throttle(1, latest=8)
    for _ in range(3):
        window.succeeded()
    window.throttle(2, latest=8)  # the same wave: no halving, but no growth yet either
    assert window.limit == 4
    for _ in range(3):
        window.succeeded()
    assert window.limit == 4
    window.succeeded()
    assert window.limit == 5


@pytest.mark.parametrize(("ceiling", "floor"), [(3, 3), (6, 4), (40, 4)])
def test_the_window_stops_shrinking_at_four_reads_or_its_ceiling(ceiling, floor):
    window = Window(ceiling)
    for sent in range(1, 50):
        window.throttle(sent, latest=sent)
    assert window.limit == window.lowest == floor


class _GatedMemory(MemoryFileSystem):
    """fsspec's in-memory store: reads counted while in flight, `together` of them
    made to meet (a barrier proves that many at once), `throttled` paths refused as
    s3fs refuses a 503 SlowDown (OSError EBUSY)."""

    def __init__(self, together: int, throttled: frozenset[str] = frozenset()) -> None:
        super().__init__(skip_instance_cache=True)
        self.gate = threading.Barrier(together)
        self.throttled = throttled
        self.lock = threading.Lock()
        self.in_flight = self.most = self.reads = 0

    def cat_file(self, path, start=None, end=None, **kwargs):
        with self.lock:
            self.in_flight += 1
            self.reads += 1
            self.most = max(self.most, self.in_flight)
        try:
            if self.gate.parties > 1:
                self.gate.wait(timeout=30)
            if path.lstrip("/") in self.throttled:
                raise OSError(errno.EBUSY, "SlowDown")
            return super().cat_file(path, start=start, end=end, **kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1


def _stored(fs, count: int, size: int = 3000) -> list[ObjectRef]:
    refs = []
    for i in range(count):
        fs.pipe_file(f"/b/{i:03}", bytes([i]) * size)
        refs.append(ObjectRef(f"memory://b/{i:03}", size, None))
    return refs


def _first_reads(fs, refs, **bounds) -> ReadAhead:
    return ReadAhead(refs, lambda ref: fs, 1000, lambda ref: False, lambda r, f: None, **bounds)


def test_a_budget_below_one_read_still_reads_one_at_a_time():
    fs = _GatedMemory(together=1)
    refs = _stored(fs, 12)
    reads = _first_reads(fs, refs, concurrency=64, max_bytes=400)
    taken = list(reads)
    assert [a.first for a in taken] == [bytes([i]) * 1000 for i in range(12)]
    assert fs.most == 1 and reads.window.ceiling == 1


def test_reads_in_flight_never_exceed_the_concurrency():
    fs = _GatedMemory(together=3)
    refs = _stored(fs, 30)
    taken = list(_first_reads(fs, refs, concurrency=3, max_bytes=1 << 20))
    assert [a.ref for a in taken] == refs
    assert fs.most == 3  # the barrier proves three at once; the window caps three


def test_throttled_first_reads_narrow_the_window_and_are_left_to_the_reader():
    fs = _GatedMemory(together=1, throttled=frozenset({"b/000", "b/001"}))
    refs = _stored(fs, 20)
    reads = _first_reads(fs, refs, concurrency=16, max_bytes=1 << 20)
    taken = list(reads)
    assert [a.ref for a in taken] == refs
    assert [a.first is None for a in taken[:3]] == [True, True, False]
    assert reads.window.throttled == 2
    assert reads.window.lowest < 16  # the wave halved it at least once


def test_the_time_waited_is_within_the_time_taken():
    fs = _GatedMemory(together=2)
    refs = _stored(fs, 10)
    reads = _first_reads(fs, refs, concurrency=2, max_bytes=1 << 20)
    started = time.perf_counter()
    list(reads)
    assert 0 < reads.wait_seconds <= time.perf_counter() - started


class _Fetched:
    def __init__(self, url: str, read: int) -> None:
        self.url, self.read = url, read


def test_objects_fetched_whole_are_held_within_the_byte_budget():
    """Two exports of 10 bytes fit a budget of 25 and a third does not; one larger
    than the whole budget is still fetched, on its own."""
    lock = threading.Lock()
    state = {"now": 0, "most": 0, "alone": None}
    meet = threading.Barrier(2)

    def fetch_whole(ref, fs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            if ref.size > 25:
                state["alone"] = state["now"] == 1
        try:
            if ref.size <= 25:
                meet.wait(timeout=30)
            return _Fetched(ref.url, ref.size)
        finally:
            with lock:
                state["now"] -= 1

    refs = [ObjectRef(f"/e/{i}.json", 10, None) for i in range(8)]
    refs.append(ObjectRef("/e/big.json", 100, None))
    reads = ReadAhead(
        refs, lambda ref: None, 1000, lambda ref: True, fetch_whole, ahead_whole=8, max_bytes=25
    )
    taken = list(reads)
    assert [a.whole.url for a in taken] == [r.url for r in refs]
    assert state["most"] == 2 and state["alone"] is True


def test_an_object_store_read_asks_for_the_first_bytes_only():
    fs = _GatedMemory(together=1)
    refs = _stored(fs, 3, size=600)  # smaller than a first read: the whole object
    fs.pipe_file("/b/long", b"x" * 5000)
    refs.append(ObjectRef("memory://b/long", 5000, None))
    taken = list(_first_reads(fs, refs, concurrency=4, max_bytes=1 << 20))
    assert [len(a.first) for a in taken] == [600, 600, 600, 1000]


def test_the_very_first_read_throttled_halves_the_window():
    fs = _GatedMemory(together=1, throttled=frozenset({"b/000"}))
    reads = _first_reads(fs, _stored(fs, 20), concurrency=16, max_bytes=1 << 20)
    list(reads)
    assert reads.window.throttled == 1 and reads.window.lowest == 8


class _HeldFirst(_GatedMemory):
    """The first object's read is held until `needed` other reads have been made:
    only a reader that sends new reads while it waits for the first ever gets it."""

    def __init__(self, needed: int) -> None:
        super().__init__(together=1)
        self.needed = needed
        self.released = threading.Event()
        self.released_by_reads = False

    def cat_file(self, path, start=None, end=None, **kwargs):
        if path.lstrip("/") == "b/000":
            self.released_by_reads = self.released.wait(timeout=30)
        else:
            with self.lock:
                done = self.reads + 1 >= self.needed
            if done:
                self.released.set()
        return super().cat_file(path, start=start, end=end, **kwargs)


def test_reads_that_complete_while_the_worker_waits_are_replaced_at_once():
    """Four reads in flight; the first is slow. The three beside it complete and are
    replaced while the worker waits for the first, so twelve reads are made before
    it arrives, not four."""
    fs = _HeldFirst(needed=12)
    refs = _stored(fs, 16)
    taken = list(_first_reads(fs, refs, concurrency=4, max_bytes=1 << 20))
    assert [a.ref for a in taken] == refs
    assert fs.released_by_reads
