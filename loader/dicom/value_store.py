"""Decoded elements shared between the objects one worker decodes.

Most of a header repeats from object to object: a series shares all but a dozen
values, a study and an archive's scanners most of the rest. The decoder therefore
looks an element up by (tag, VR, value bytes, decoding context) before decoding it,
and the second object with the same Modality bytes, or the same code sequence, gets
the element the first one decoded: the same object, shared by both trees.

The rules that make sharing safe:

- **Owned and passed in.** A store belongs to one worker: `of_worker()` keeps it on
  the Dask worker that runs the shard (created with its first shard); an in-process
  run creates one and passes it along. Nothing is shared through a module global.
- **Bounded.** At most `entries` elements or `value_bytes` bytes of the values they
  came from (a decoded sequence takes several times its bytes): reaching either
  forgets everything at once (an eviction), so a worker's memory stays a few tens of
  MB. Values longer than `value_limit` are never kept: they rarely repeat.
- **Counted.** Hits, misses and evictions go into each shard's ledger record.
- **Never changed in place.** An element may be in many trees: a stage that changes a
  value (pseudonymisation) replaces the element in its own tree. What later stages
  derive from an element's value alone (its element row, its raw JSON text) is kept
  on the element, since it is the same for every tree that shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ValueKey = tuple[int, str, bytes, int]  # (tag, VR, value bytes, decoding context)
_WORKER_ATTRIBUTE = "dicom_loader_value_store"


@dataclass
class StoreCounts:
    """What a store did over some span (a shard): lookups that found an element,
    lookups that did not, and times it was forgotten whole."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions}


class ValueStore:
    """Decoded elements by ValueKey, bounded by entries and by value bytes."""

    def __init__(
        self, entries: int = 60_000, value_bytes: int = 8 << 20, value_limit: int = 16_384
    ) -> None:
        self.entries = entries
        self.value_bytes = value_bytes
        self.value_limit = value_limit
        # Read directly by the decoder's loop (a dict lookup is the whole cost of a hit).
        self.found: dict[ValueKey, Any] = {}
        self.bytes = 0
        self.counts = StoreCounts()

    def remember(self, key: ValueKey, element: Any) -> None:
        """Keep `element` for later objects; forget everything first at a bound."""
        size = len(key[2])
        if size > self.value_limit:
            return
        if len(self.found) >= self.entries or self.bytes + size > self.value_bytes:
            self.forget()
            self.counts.evictions += 1
        self.found[key] = element
        self.bytes += size

    def forget(self) -> None:
        """Drop every element (a bound was reached, or a measurement wants no sharing)."""
        self.found.clear()
        self.bytes = 0

    def counted_since(self, before: StoreCounts) -> StoreCounts:
        now = self.counts
        return StoreCounts(
            now.hits - before.hits, now.misses - before.misses, now.evictions - before.evictions
        )

    def snapshot(self) -> StoreCounts:
        return StoreCounts(self.counts.hits, self.counts.misses, self.counts.evictions)

    @classmethod
    def of_worker(cls) -> ValueStore:
        """The store of the Dask worker running this task, created on its first shard;
        outside a worker, a new store (shared by nothing but this task)."""
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):  # not inside a Dask worker
            return cls()
        store = getattr(worker, _WORKER_ATTRIBUTE, None)
        if store is None:
            store = cls()
            setattr(worker, _WORKER_ATTRIBUTE, store)
        return store
