"""What a run's progress bar knows: how far the listing got, whether it ended, and
from that the ETA.

Migrations run for hours, and a listing streams ahead of the work: until it ends the
total is not known, so the bar shows objects listed and done; the moment it ends
(or at once, for a manifest whose entries can be counted) the total is known and the
bar shows an ETA from the rate so far. The pipeline counts what its listing hands on
(`counted`); the CLI's columns read the count as they draw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq

T = TypeVar("T")


@dataclass
class ListingCount:
    """Objects the listing handed on so far, and whether it ended; a manifest's
    entries (`expected`) when they could be counted before it was read."""

    listed: int = 0
    ended: bool = False
    expected: int | None = None

    @property
    def total(self) -> int | None:
        """The objects to do, when known: all listed once the listing ended, else a
        manifest's entries."""
        return self.listed if self.ended else self.expected


def counted(objects: Iterable[T], count: ListingCount) -> Iterator[T]:
    """`objects`, counted into `count` as they pass, which ends with them."""
    for item in objects:
        count.listed += 1
        yield item
    count.ended = True


def manifest_entries(source: str) -> int | None:
    """The entries of a local manifest (a Parquet file's rows, a text file's lines
    that name a path), counted without reading an object; None for other sources."""
    path = Path(source)
    if not path.is_file() or path.suffix in (".dcm", ".json", ".ndjson", ".zip", ".gz", ".tgz"):
        return None
    try:
        if path.suffix == ".parquet":
            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip() and not line.startswith("#"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # a single object, or unreadable: the run says which


def listed_text(count: ListingCount) -> str:
    """The listing's part of the bar: still listing, or the total."""
    if count.ended:
        return f"of {count.listed:,}"
    if count.expected is not None:
        return f"of {count.expected:,} (listing: {count.listed:,})"
    return f"listing: {count.listed:,} so far"


def eta_text(count: ListingCount, done: float, per_second: float | None) -> str:
    """Time left at the rate so far, once the total is known."""
    total = count.total
    if total is None:
        return "ETA when the listing ends"
    if not per_second:
        return "ETA -:--:--"
    left = max(0.0, total - done) / per_second
    return f"ETA {dt.timedelta(seconds=round(left))}"
