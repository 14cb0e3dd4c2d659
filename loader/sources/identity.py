"""What a listing says of an object, as one digest: URL, size, modification time and,
on object stores, the ETag. An --incremental run compares these digests with those
of the objects the target holds (jobs/incremental.py); they are made where the
listing is, so a walk split over processes makes them there too (listed_parts.py).
"""

from __future__ import annotations

import hashlib
import math

from loader.sources.listing import ObjectRef


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
