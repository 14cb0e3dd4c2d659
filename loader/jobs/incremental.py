"""--incremental: objects the warehouse already holds, unchanged since, are not read again.

An object's identity is what a listing tells without reading it: URL, size,
modification time and, on object stores, the ETag. `dicom_file_location` keeps
all four for every loaded object (duplicates included). They are held on the
driver as sorted 128-bit digests, 16 bytes an object (16 MB per million), so a
periodic reload of a large archive reads only what is new or changed. Objects
that ended as error rows are not in `dicom_file_location`: they are tried again, as
are objects recorded deleted that are back (deleted_objects.py).
A digest collision can only make an unchanged object look changed (it is read
again, and loads are idempotent), never the reverse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np

from loader.core.count import Count
from loader.sources.listing import ObjectRef

BATCH = 8192
IDENTITY_SQL = (
    "SELECT storage_uri, file_size_bytes, modified_at, checksum, storage_provider "
    "FROM dicom_file_location WHERE deleted_at IS NULL"
)


_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)


def identity(url: str, size: int, micros: int | None, etag: str | None) -> bytes:
    """The digest of what a listing says of an object; `micros`: its modification
    time in whole microseconds since the epoch, as the warehouse stores it."""
    stamp = "" if micros is None else micros
    return hashlib.md5(f"{url}\\{size}\\{stamp}\\{etag or ''}".encode()).digest()


def micros_of_seconds(seconds: float) -> int:
    """POSIX seconds → whole microseconds, rounded as `datetime.fromtimestamp` rounds
    them (half to even; `modified_at` is stored that way), without building the
    datetime: formatting one per listed object took a sixth of a nightly reload's
    listing of a million objects."""
    fraction, whole = math.modf(seconds)
    return int(whole) * 1_000_000 + round(fraction * 1e6)


def identity_of(ref: ObjectRef) -> bytes:
    micros = None if ref.modified is None else micros_of_seconds(ref.modified)
    return identity(ref.url, ref.size, micros, ref.etag)


def identity_of_row(row: tuple[Any, ...]) -> bytes:
    """The identity of a `dicom_file_location` row (IDENTITY_SQL's columns): its
    checksum is the listing's ETag on object stores, a hash of the bytes locally."""
    uri, size, modified_at, checksum, provider = row
    if modified_at is not None and modified_at.tzinfo is not None:
        modified_at = modified_at.astimezone(dt.UTC).replace(tzinfo=None)
    micros = None if modified_at is None else (modified_at - _EPOCH) // _MICROSECOND
    return identity(uri, int(size or 0), micros, checksum if provider != "file" else None)


def _halves(digests: bytes) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


class KnownObjects:
    """A set of object identities, sorted for vectorised lookups."""

    def __init__(self, digests: Iterable[bytes]) -> None:
        high, low = _halves(b"".join(digests))
        order = np.lexsort((low, high))
        self._high, self._low = high[order], low[order]

    @classmethod
    def from_rows(cls, batches: Iterable[list[tuple[Any, ...]]]) -> KnownObjects:
        return cls(identity_of_row(row) for batch in batches for row in batch)

    def __len__(self) -> int:
        return len(self._high)

    def contains(self, digests: list[bytes]) -> np.ndarray:
        """Whether each digest is known: both halves equal. Known digests that share
        a high half (sorted by their low half within it) are all looked at."""
        high, low = _halves(b"".join(digests))
        if not len(self._high):
            return np.zeros(len(high), dtype=bool)
        first = np.searchsorted(self._high, high, side="left")
        after = np.searchsorted(self._high, high, side="right")
        one = after - first == 1  # nearly always: a high half names one digest
        found = one & (self._low[np.minimum(first, len(self._low) - 1)] == low)
        for i in np.nonzero(after - first > 1)[0]:  # as rare as 64-bit collisions
            lows = self._low[first[i] : after[i]]
            found[i] = lows[min(int(np.searchsorted(lows, low[i])), len(lows) - 1)] == low[i]
        return found


def changed_only(
    objects: Iterable[ObjectRef], known: KnownObjects, unchanged: Count
) -> Iterator[ObjectRef]:
    """The objects that are not in `known`, in listing order; adds the number left
    out to `unchanged`."""
    stream = iter(objects)
    while batch := list(islice(stream, BATCH)):
        seen = known.contains([identity_of(ref) for ref in batch])
        unchanged.value += int(seen.sum())
        yield from (ref for ref, skip in zip(batch, seen, strict=True) if not skip)
