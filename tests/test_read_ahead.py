"""Reads fetched ahead of parsing: the window's back-off and recovery, order, bounds,
and failures handed on to the reader (the server-side behaviour is in
test_object_store.py, where a moto server counts the reads in flight)."""

from __future__ import annotations

import threading

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
