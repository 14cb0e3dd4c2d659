"""The listing in parts: columns of listed objects, with the keys and identity digests
a run compares them by, made where the objects are listed.

A nightly reload that finds nothing changed is a walk and a comparison. Over a
million local files in half a million folders, the kernel's part of the walk
(scandir and stat) took 8.3 s in one process and 4.4 s in two, while threads made
it slower (29–45 s: the GIL changes hands at every stat). So a large folder is
walked by processes: the driver lists the top of the tree in the walk's own order
(folders whose subtrees are walked elsewhere, files listed here), hands the folders
to a pool a run of them at a time, and takes back one `Listed` per run, in order.
The driver then works on columns: the URLs' keys (for repeats and deletions), the
identities (for --incremental), and it builds an ObjectRef only for an object to
process; a night with no change builds none.

The first PARALLEL_FROM objects are walked in the driver, so a small folder never
starts a pool (two processes take longer to start than it takes to walk). Object
stores, manifests and single files are listed as before (listing.py) and cut into
parts in the driver.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from loader.core import faults
from loader.core.errors import ListingError
from loader.core.keys import keys_of_texts
from loader.sources.dicomweb import is_dicomweb
from loader.sources.identity import etag_words, micros_of
from loader.sources.identity import identities as identities_of
from loader.sources.listing import (
    ObjectRef,
    entry_listed,
    list_source,
    sorted_entries,
    walk,
    zips_opened,
)
from loader.sources.storage import is_remote

BATCH = 4096  # objects a part made in the driver holds
PARALLEL_FROM = 20_000  # objects walked in the driver before a pool takes the rest
FOLDERS_PER_TASK = 256  # folders a walking process lists in one task
SEGMENTS_AHEAD = 256  # parts under way while the first waits (~700,000 objects)
PLAN_FOLDERS = 64  # the top of the tree is opened until it holds this many folders
PLAN_DEPTH = 3  # or this deep
WALK_PROCESSES = min(os.cpu_count() or 1, 4)


@dataclass(frozen=True)
class Listed:
    """Listed objects as columns, in listing order."""

    text: str  # their URLs, joined by NUL (no path holds one)
    sizes: np.ndarray  # int64
    modified: np.ndarray  # float64 POSIX seconds; NaN where not known
    etags: tuple[str | None, ...] | None  # None: none has one
    keys: np.ndarray  # uint64: each URL's key (repeats.SeenKeys)
    digests: bytes | None  # identity.py's, 16 bytes an object; None: not asked for
    unreadable: tuple[str, ...] = ()  # folders under the part that could not be read

    def __len__(self) -> int:
        return len(self.keys)

    def refs(self, chosen: np.ndarray) -> list[ObjectRef]:
        """The objects `chosen` (a boolean mask), in order."""
        indices = np.flatnonzero(chosen)
        if not len(indices):
            return []
        urls = self.text.split("\0")
        refs = []
        for i in indices.tolist():
            modified = float(self.modified[i])
            refs.append(
                ObjectRef(
                    urls[i],
                    int(self.sizes[i]),
                    None if math.isnan(modified) else modified,
                    self.etags[i] if self.etags is not None else None,
                )
            )
        return refs


def listed_of(refs: list[ObjectRef], identities: bool, unreadable: Iterable[str] = ()) -> Listed:
    """`refs` as a part; their identity digests made when `identities`."""
    urls = [ref.url for ref in refs]
    etags = tuple(ref.etag for ref in refs)
    sizes = np.fromiter((ref.size for ref in refs), np.int64, len(refs))
    modified = np.fromiter(
        (math.nan if ref.modified is None else ref.modified for ref in refs),
        np.float64,
        len(refs),
    )
    keys = np.array(keys_of_texts("", urls), dtype=np.uint64)
    known_etags = etags if any(etags) else None
    return Listed(
        "\0".join(urls),
        sizes,
        modified,
        known_etags,
        keys,
        identities_of(keys, sizes, micros_of(modified), etag_words(known_etags, len(refs)))
        if identities
        else None,
        tuple(unreadable),
    )


def list_parts(
    source: str,
    storage_options: dict[str, Any] | None,
    unreadable: list[str],
    identities: bool,
) -> Iterator[Listed]:
    """Every object of `source` (as `list_source` lists it, in its order), in parts;
    folders that cannot be read are added to `unreadable`."""
    options = storage_options or {}
    path = Path(source.removeprefix("file://"))
    if not is_dicomweb(source) and not is_remote(source) and path.is_dir():
        yield from _walked(str(path.resolve()), unreadable, options, identities)
        return
    listed = list_source(source, storage_options, unreadable)
    while batch := list(islice(listed, BATCH)):
        yield listed_of(batch, identities)


def walk_folders(folders: list[str], options: dict[str, Any], identities: bool) -> Listed:
    """The objects under `folders`, in order, as one part (run in a walking process,
    never in the driver: `mid-walk:crash` ends that process as a kill would)."""
    faults.maybe_fail("mid-walk")
    unreadable: list[str] = []
    refs: list[ObjectRef] = []
    for folder in folders:
        refs.extend(zips_opened(walk(folder, unreadable), options))
    return listed_of(refs, identities, unreadable)


@dataclass(frozen=True, slots=True)
class _Folder:
    path: str


def _plan(root: str, unreadable: list[str]) -> list[_Folder | ObjectRef]:
    """The top of the tree under `root` in the walk's order: the folders whose
    subtrees are walked as wholes, and the objects beside them."""
    items: list[_Folder | ObjectRef] = [_Folder(root)]
    for _ in range(PLAN_DEPTH):
        if sum(isinstance(item, _Folder) for item in items) >= PLAN_FOLDERS:
            break
        opened: list[_Folder | ObjectRef] = []
        for item in items:
            if not isinstance(item, _Folder):
                opened.append(item)
                continue
            for entry in sorted_entries(item.path, unreadable):
                listed = entry_listed(entry)
                if isinstance(listed, str):
                    opened.append(_Folder(listed))
                elif listed is not None:
                    opened.append(listed)
        items = opened
    return items


class _Pool:
    """The walking processes, started when first asked for (spawned: the driver may
    hold threads by then, which a fork would copy in whatever state they are)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, folders: list[str], options: dict[str, Any], identities: bool) -> Any:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(WALK_PROCESSES, mp_context=context)
        return self._pool.submit(walk_folders, folders, options, identities)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _segments(
    root: str, unreadable: list[str], options: dict[str, Any], identities: bool, pool: _Pool
) -> Iterator[Listed | Future[Listed]]:
    """The parts of the walk of `root`, in order: made here, or being made by `pool`."""
    held: list[ObjectRef] = []
    folders: list[str] = []
    walked = 0
    # A daemonic process (a Celery worker's task, a Dask worker) may start no child:
    # it walks in one process, as before.
    parallel = WALK_PROCESSES > 1 and not multiprocessing.current_process().daemon
    for item in _plan(root, unreadable):
        if isinstance(item, _Folder) and parallel and walked >= PARALLEL_FROM:
            if held:
                yield listed_of(held, identities)
                held = []
            folders.append(item.path)
            if len(folders) == FOLDERS_PER_TASK:
                yield pool.submit(folders, options, identities)
                folders = []
            continue
        if folders:
            yield pool.submit(folders, options, identities)
            folders = []
        if isinstance(item, _Folder):
            found = list(zips_opened(walk(item.path, unreadable), options))
        else:
            found = list(zips_opened([item], options))
        walked += len(found)
        held.extend(found)
        if len(held) >= BATCH:
            yield listed_of(held, identities)
            held = []
    if folders:
        yield pool.submit(folders, options, identities)
    if held:
        yield listed_of(held, identities)


def _walked(
    root: str, unreadable: list[str], options: dict[str, Any], identities: bool
) -> Iterator[Listed]:
    """The parts of `root`'s walk in order. Once the pool walks, the first part waits
    until SEGMENTS_AHEAD are under way: the driver's next step (an --incremental
    run's lookup of what the target holds, seconds at a million objects) then runs
    while the pool walks, not before it."""
    pool = _Pool()
    ahead: deque[Listed | Future[Listed]] = deque()
    walking = 0  # tasks of the pool in `ahead`
    try:
        for segment in _segments(root, unreadable, options, identities, pool):
            ahead.append(segment)
            walking += isinstance(segment, Future)
            while ahead and (len(ahead) > SEGMENTS_AHEAD or not walking):
                head = ahead.popleft()
                walking -= isinstance(head, Future)
                yield _done(head, unreadable)
        while ahead:
            yield _done(ahead.popleft(), unreadable)
    finally:
        pool.close()


def _done(segment: Listed | Future[Listed], unreadable: list[str]) -> Listed:
    if isinstance(segment, Listed):
        return segment
    try:
        part = segment.result()
    except BrokenProcessPool:
        raise ListingError(
            "a process walking the folder stopped: the listing is incomplete"
        ) from None
    unreadable.extend(part.unreadable)
    return part
