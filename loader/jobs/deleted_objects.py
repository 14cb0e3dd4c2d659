"""--incremental: objects gone from the archive are recorded as deleted.

A periodic reload that only adds would let a warehouse drift from its archive over
months. After an incremental run has listed its whole source and loaded what was
new, every object the target holds live under the listed prefix and the listing no
longer named is stamped deleted (warehouse/deletions.py says what that changes).

Which objects the listing named is already known: `repeats.SeenKeys` holds the
64-bit key of every listed URL, and a location's key is that same key of its URL,
so the comparison costs no second pass over the listing and 8 bytes an object.

Deleting on a wrong listing would be worse than not deleting, so nothing is
deleted when:
- the source is not a prefix (a manifest, one file, DICOM JSON exports, a DICOMweb
  server): a manifest names objects, not a place whose contents it describes;
- any folder under it could not be read (a local walk skips it and says so; an
  object store's listing error stops the run before this);
- the listing found no object at all: an unmounted volume or a mistyped prefix is
  an empty folder, and an archive emptied on purpose is rare enough to ask for
  a full run with a new target.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from loader.core.keys import keys_of_texts
from loader.sources.containers import TAR, is_export, split_member
from loader.sources.dicomweb import is_dicomweb
from loader.sources.repeats import SeenKeys
from loader.sources.storage import is_remote
from loader.warehouse.base import Warehouse, column_numbers
from loader.warehouse.merge import KEYS_PER_STATEMENT

SCAN_BATCH = 100_000
NOT_INCREMENTAL = "not an --incremental run"  # the report's reason when none was sought


@dataclass(frozen=True)
class DeletionScope:
    """Where a run may find deletions: the prefix its listing covers, or why none."""

    prefix: str | None
    reason: str = ""


def scope_of(source: str) -> DeletionScope:
    """The prefix under which the listing of `source` names every object there is."""
    if is_dicomweb(source):
        return DeletionScope(None, "a DICOMweb source is listed by study, not by object")
    if is_remote(source):
        return DeletionScope(source.rstrip("/") + "/")
    path = Path(source.removeprefix("file://"))
    if path.is_dir():
        return DeletionScope(str(path.resolve()).rstrip("/") + "/")
    if is_export(path.name):
        return DeletionScope(None, "a DICOM JSON export is one file, not a prefix")
    return DeletionScope(None, "a manifest or a single file names objects, not a prefix")


@dataclass(frozen=True)
class Deletions:
    """What the run found deleted, for the report."""

    checked: bool  # False: nothing could be deleted (see `reason`)
    reason: str  # why not checked, or the prefix checked
    objects: int = 0  # locations stamped deleted
    instances: int = 0  # instances with no live copy left


def gone_keys(warehouse: Warehouse, prefix: str, listed: SeenKeys) -> np.ndarray:
    """The keys of the live locations under `prefix` that `listed` does not hold,
    members of the containers under it included. An object the listing does not
    name itself is there while what holds it is listed: an instance of a DICOM JSON
    export (`<export URL>#<index>`), a member of a tar (`tar://<name>::<tar URL>`;
    a zip's members are listed one by one)."""
    mark = warehouse.placeholder
    found = []
    sql = (
        "SELECT location_key FROM dicom_file_location WHERE deleted_at IS NULL "
        f"AND (substr(storage_uri, 1, {mark}) = {mark} OR position({mark} IN storage_uri) > 0)"
    )
    for batch in warehouse.column_batches(sql, SCAN_BATCH, [len(prefix), prefix, f"::{prefix}"]):
        keys = column_numbers(batch.column(0), pa.uint64())
        unlisted = ~listed.seen(keys)
        # Only the unlisted are looked at again, by their URLs (a night with no
        # change: none, and no URL is read at all).
        at = np.flatnonzero(unlisted)
        uris = _uris(warehouse, [int(k) for k in keys[at]])
        holders = {int(i): holder_of(uris[int(keys[i])]) for i in at}
        held = [i for i, holder in holders.items() if holder]
        if held:
            holder_keys = np.array(keys_of_texts("", [holders[i] for i in held]), dtype=np.uint64)
            unlisted[np.array(held)[listed.seen(holder_keys)]] = False
        found.append(keys[unlisted])
    return np.concatenate(found) if found else np.zeros(0, dtype=np.uint64)


def _uris(warehouse: Warehouse, keys: list[int]) -> dict[int, str]:
    """The storage URI of each location key of `keys`."""
    found: dict[int, str] = {}
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        chunk = keys[start : start + KEYS_PER_STATEMENT]
        marks = ", ".join(warehouse.placeholder for _ in chunk)
        rows = warehouse.query(
            "SELECT location_key, storage_uri FROM dicom_file_location "
            f"WHERE location_key IN ({marks})",
            chunk,
        )
        found.update((int(key), str(uri)) for key, uri in rows)
    return found


def holder_of(uri: str) -> str:
    """What the listing names for an object it does not name itself ("" if none):
    an export's instance is held by the export, which is listed itself (loose, or a
    zip's member) or held by its tar; a tar's member by the tar."""
    export, mark, index = uri.rpartition("#")
    if mark and index.isdigit() and is_export(export):
        member = split_member(export)
        return member.container if member is not None and member.kind == TAR else export
    member = split_member(uri)
    return member.container if member is not None and member.kind == TAR else ""


def record_deletions(
    warehouse: Warehouse,
    scope: DeletionScope,
    listed: SeenKeys,
    unreadable: list[str],
    run_id: str,
) -> Deletions:
    """Stamp what the archive no longer holds (run `run_id` found it gone), unless
    the listing cannot be trusted to say so (see the module's docstring)."""
    if scope.prefix is None:
        return Deletions(False, scope.reason)
    if unreadable:
        return Deletions(
            False, f"{len(unreadable)} folders could not be listed (first: {unreadable[0]})"
        )
    if not len(listed):
        return Deletions(False, f"the listing of {scope.prefix} found no objects")
    gone = gone_keys(warehouse, scope.prefix, listed)
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    keys = [int(k) for k in gone]
    batches = (keys[start : start + SCAN_BATCH] for start in range(0, len(keys), SCAN_BATCH))
    found = warehouse.record_deletions(batches, at, run_id) if keys else None
    return Deletions(
        True,
        scope.prefix,
        found.objects if found else 0,
        found.instances if found else 0,
    )
