"""--incremental: objects the warehouse already holds, unchanged since, are not read again.

An object's identity is what a listing tells without reading it: URL, size,
modification time and, on object stores, the ETag. `dicom_file_location` keeps
all four for every loaded object (duplicates included). They are held on the
driver as sorted 128-bit identities (sources/identity.py: the URL's key and a word
of the rest), 16 bytes an object (16 MB per million), so a periodic reload of a
large archive reads only what is new or changed. Objects that ended as error rows
are not in `dicom_file_location`: they are tried again, as are objects recorded
deleted that are back (deleted_objects.py).
A changed object is taken for unchanged only if its new word equals its old one
(a 2^-64 chance a change); a collision of URL keys can only make an unchanged
object look changed (it is read again, and loads are idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from loader.core.count import Count
from loader.core.keys import SQL_KEY_EXPRESSION
from loader.sources.identity import NO_TIME, identities
from loader.sources.listed_parts import Listed
from loader.sources.listing import ObjectRef
from loader.sources.repeats import SeenKeys, fresh_of
from loader.warehouse.base import column_numbers

# The numbers an identity (sources/identity.py) is made of, for every live location:
# its URL's key, size, time in whole microseconds (NO_TIME where not known, as the
# listing says it) and the key of its checksum off the local filesystem (there it is
# a hash of the bytes, which a listing does not know).
# Four numbers a row; the driver mixes them as the listing does, a batch at a time.
_EPOCH_MICROS = {
    "duckdb": "epoch_us(modified_at)",
    "snowflake": "DATE_PART(EPOCH_MICROSECOND, modified_at)",
}


def identity_sql(dialect: str) -> str:
    """SQL giving the numbers of the identity of each live `dicom_file_location`."""
    etag = SQL_KEY_EXPRESSION[dialect].format(s="checksum")
    return (
        f"SELECT location_key, coalesce(file_size_bytes, 0), "
        f"coalesce({_EPOCH_MICROS[dialect]}, {NO_TIME}), "
        f"CASE WHEN storage_provider = 'file' OR coalesce(checksum, '') = '' THEN 0 "
        f"ELSE {etag} END FROM dicom_file_location WHERE deleted_at IS NULL"
    )


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
    def from_columns(cls, batches: Iterable[pa.RecordBatch]) -> KnownObjects:
        """From the record batches of `identity_sql`, column by column: no Python
        object per row."""
        return cls(_identities_of_columns(batch) for batch in batches if batch.num_rows)

    def __len__(self) -> int:
        return len(self._high)

    def contains(self, digests: bytes) -> np.ndarray:
        """Whether each digest (16 bytes each, joined) is known: both halves equal.
        Known digests that share a high half (sorted by their low half within it)
        are all looked at."""
        high, low = _halves(digests)
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


def _identities_of_columns(batch: pa.RecordBatch) -> bytes:
    keys, sizes, micros, etags = batch.columns
    return identities(
        column_numbers(keys, pa.uint64()),
        column_numbers(sizes, pa.int64()),
        column_numbers(micros, pa.int64()),
        column_numbers(etags, pa.uint64()),
    )


def to_process(
    parts: Iterable[Listed],
    seen: SeenKeys,
    repeated: Count,
    known: KnownObjects | None,
    unchanged: Count,
) -> Iterator[ObjectRef]:
    """The listed objects to process, in listing order: not listed before (the others
    counted in `repeated`; `seen` ends holding every URL's key) and, with `known`
    (--incremental), not held by the target unchanged (counted in `unchanged`)."""
    for part in parts:
        chosen = fresh_of(part.keys, seen, repeated)
        if known is not None and part.digests is not None:
            held = known.contains(part.digests) & chosen
            unchanged.value += int(held.sum())
            chosen &= ~held
        yield from part.refs(chosen)
