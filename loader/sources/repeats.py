"""Every listed object once: an entry that names an object listed before is counted,
never read again.

Manifests repeat themselves (inventories concatenated, a retried export): a
100,000-line manifest naming 20,000 files five times would read each file five
times, and equal shards would share one ledger id, so four fifths of the entries
vanished from the report. Here the listing passes through `unique_objects`, which
drops an entry whose URL was listed before and counts it; the report's accounting
includes those repeats.

The URLs seen are kept as their 64-bit keys in sorted NumPy runs merged like a
log-structured tree: 8 bytes an entry (1 M entries take 8 MB, 100 M take 800 MB),
membership by binary search in each run, merging O(n log n) in all. Two different
URLs whose keys collide (a 2^-64 chance per pair) would count one as a repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from loader.core.count import Count
from loader.core.keys import keys_of_texts
from loader.sources.listing import ObjectRef

BATCH = 4_096  # entries looked up together: the listing runs this far ahead


class SeenKeys:
    """64-bit keys seen so far, in sorted runs of decreasing size."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    def seen(self, keys: np.ndarray) -> np.ndarray:
        """Which of `keys` were added before (a boolean mask)."""
        found = np.zeros(len(keys), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, keys)
            inside = at < len(run)
            found[inside] |= run[at[inside]] == keys[inside]
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add keys not seen before; runs of equal size are merged."""
        if not len(keys):
            return
        self.runs.append(np.sort(keys))
        while len(self.runs) > 1 and len(self.runs[-1]) >= len(self.runs[-2]):
            last = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], last]), kind="mergesort")


def unique_objects(
    objects: Iterable[ObjectRef], repeated: Count, seen: SeenKeys | None = None
) -> Iterator[ObjectRef]:
    """`objects` without an entry whose URL was listed before; `repeated` counts
    the entries dropped. `seen` ends holding the key of every URL listed (the
    deletion check compares the target's locations with them)."""
    seen = SeenKeys() if seen is None else seen
    batch: list[ObjectRef] = []
    for ref in objects:
        batch.append(ref)
        if len(batch) == BATCH:
            yield from _new(batch, seen, repeated)
            batch = []
    yield from _new(batch, seen, repeated)


def _new(batch: list[ObjectRef], seen: SeenKeys, repeated: Count) -> list[ObjectRef]:
    if not batch:
        return []
    keys = np.array(keys_of_texts("", [ref.url for ref in batch]), dtype=np.uint64)
    _, first = np.unique(keys, return_index=True)  # within the batch: its first entry
    fresh = np.zeros(len(batch), dtype=bool)
    fresh[first] = True
    fresh &= ~seen.seen(keys)
    seen.add(keys[fresh])
    repeated.value += len(batch) - int(fresh.sum())
    return [ref for ref, new in zip(batch, fresh, strict=True) if new]
