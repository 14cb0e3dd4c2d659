"""What a listing says of an object, as one 128-bit identity: its URL's 64-bit key
(core/keys.py, the `location_key` of its location) and a 64-bit word mixing its size,
its modification time in whole microseconds and, on object stores, its ETag's key.

An --incremental run compares these with the identities of the objects the target
holds (jobs/incremental.py). Both sides make them from the same four numbers with
the same NumPy arithmetic, a part's column at a time: the listing from its columns
(listed_parts.py, in the walking processes), the driver from the numbers the target
returns (`identity_sql`). Hashing a text per object took a walking process 3 µs an
object, a fifth of its time; mixing columns takes nanoseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loader.core.keys import keys_of_texts

NO_TIME = -(2**63)  # the microseconds of an object whose time is not known
_U64 = np.uint64


def micros_of(seconds: np.ndarray) -> np.ndarray:
    """POSIX seconds (float64, NaN where not known) → whole microseconds (int64,
    NO_TIME where not known), rounded as `datetime.fromtimestamp` rounds them (half
    to even; `modified_at` is stored that way), without building a datetime."""
    known = ~np.isnan(seconds)
    fraction, whole = np.modf(np.where(known, seconds, 0.0))
    micros = whole.astype(np.int64) * 1_000_000 + np.rint(fraction * 1e6).astype(np.int64)
    return np.where(known, micros, NO_TIME)


def etag_words(etags: Sequence[str | None] | None, count: int) -> np.ndarray:
    """Each ETag's 64-bit key (uint64), 0 where there is none (a local file's checksum
    is a hash of its bytes, which a listing does not know, and is left out)."""
    if etags is None:
        return np.zeros(count, dtype=_U64)
    at = [i for i, etag in enumerate(etags) if etag]
    words = np.zeros(count, dtype=_U64)
    words[at] = np.array(keys_of_texts("", [etags[i] or "" for i in at]), dtype=_U64)
    return words


def _mixed(words: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every bit of a word reaches every bit of the result
    (uint64 arithmetic wraps, as the finaliser needs)."""
    words = (words ^ (words >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    words = (words ^ (words >> _U64(27))) * _U64(0x94D049BB133111EB)
    return words ^ (words >> _U64(31))


def identities(keys: np.ndarray, sizes: np.ndarray, micros: np.ndarray, etags: np.ndarray) -> bytes:
    """The identity of each object, 16 bytes an object (the URL key, then the word of
    the rest, both big-endian), joined: of `keys` and `etags` (uint64 each), `sizes`
    and `micros` (int64 each)."""
    word = _mixed(sizes.astype(np.int64).view(_U64))
    word = _mixed(word ^ micros.astype(np.int64).view(_U64))
    word = _mixed(word ^ etags.astype(_U64))
    pairs = np.empty((len(keys), 2), dtype=">u8")
    pairs[:, 0] = keys
    pairs[:, 1] = word
    return pairs.tobytes()
