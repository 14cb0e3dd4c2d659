"""Every listed object once: an entry that names an object listed before is counted,
never read again.

Manifests repeat themselves (inventories concatenated, a retried export): a
100,000-line manifest naming 20,000 files five times would read each file five
times, and equal shards would share one ledger id, so four fifths of the entries
vanished from the report. Here each part of the listing (listed_parts.py) passes through `fresh_of`,
which drops an entry whose URL was listed before and counts it; the report's accounting
includes those repeats.

The URLs seen are kept as their 64-bit keys in sorted NumPy runs merged like a
log-structured tree: 8 bytes an entry (1 M entries take 8 MB, 100 M take 800 MB),
membership by binary search in each run, merging O(n log n) in all. Two different
URLs whose keys collide (a 2^-64 chance per pair) would count one as a repeat.
"""

from __future__ import annotations

import numpy as np

from loader.core.count import Count


class SeenKeys:
    """64-bit keys seen so far, in sorted runs of decreasing size."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    def seen(self, keys: np.ndarray) -> np.ndarray:
        """Which of `keys` were added before (a boolean mask). They are looked up in
        sorted order: binary searches for sorted keys walk a run in one direction
        and stay in cache (a million keys against a million: 0.65 s unsorted)."""
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        found_ordered = np.zeros(len(keys), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, ordered)
            inside = at < len(run)
            found_ordered[inside] |= run[at[inside]] == ordered[inside]
        found = np.empty(len(keys), dtype=bool)
        found[order] = found_ordered
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add keys not seen before; runs of equal size are merged."""
        if not len(keys):
            return
        self.runs.append(np.sort(keys))
        while len(self.runs) > 1 and len(self.runs[-1]) >= len(self.runs[-2]):
            last = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], last]), kind="mergesort")


def fresh_of(keys: np.ndarray, seen: SeenKeys, repeated: Count) -> np.ndarray:
    """Which of a part's URL keys name an object not listed before (a boolean mask);
    the others are counted in `repeated`, and `seen` ends holding every key."""
    _, first = np.unique(keys, return_index=True)  # within the part: its first entry
    fresh = np.zeros(len(keys), dtype=bool)
    fresh[first] = True
    fresh &= ~seen.seen(keys)
    seen.add(keys[fresh])
    repeated.value += len(keys) - int(fresh.sum())
    return fresh
