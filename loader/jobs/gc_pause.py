"""The cyclic garbage collector, paused while a shard's rows are built.

A shard buffers hundreds of thousands of small containers (row tuples, dicts,
lists, decoded elements) until it is written. None of them forms a reference
cycle, so reference counting alone frees them; but the cyclic collector rescans
them each time they survive a generation, which measured 6–7 % of the hot path on
CT headers (more where a long-lived heap, such as the decoder's memory or a Dask
worker's state, is rescanned with them). Paused for the length of a shard, with one
collection of the young generation when it ends (for the few cycles made
meanwhile, such as an exception's traceback), memory stays bounded by the shard.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    """Counts who holds the pause: shards running on threads of one worker process
    share the collector, and only the last one out restarts it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.restart = False

    def enter(self) -> None:
        with self.lock:
            if self.holders == 0:
                self.restart = gc.isenabled()  # a collector the host had off stays off
                gc.disable()
            self.holders += 1

    def leave(self) -> None:
        with self.lock:
            self.holders -= 1
            if self.holders == 0 and self.restart:
                gc.enable()
                gc.collect(0)  # everything made during the pause is still young


_PAUSE = _Pause()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with automatic cyclic collection off (see the module)."""
    _PAUSE.enter()
    try:
        yield
    finally:
        _PAUSE.leave()
