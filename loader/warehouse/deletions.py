"""Objects gone from the archive → `deleted_at` on their rows, in one transaction.

The driver finds them (loader/jobs/deleted_objects.py): live locations under the
listed prefix that the listing no longer holds. Here their `dicom_file_location` and
`dicom_raw` rows are stamped, an instance whose loaded file went is re-pointed to its
newest remaining copy, an instance with no copy left is stamped too, an entity row a
deleted object gave passes to the newest live object of its entity (successors.py),
and the counts of the series and studies they belong to are recomputed from live
instances. Nothing is dropped: a deleted object's rows stay, and a later load of it
(restored, or moved back) makes them live again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from loader.core import faults
from loader.warehouse.base import Deleted
from loader.warehouse.merge import (
    KEYS_PER_STATEMENT,
    Execute,
    Keys,
    MergeDialect,
    follow_live_locations,
    mark_duplicates,
    recount,
    single_count,
)
from loader.warehouse.successors import pass_on


def in_one_transaction(
    execute: Execute,
    dialect: MergeDialect,
    begin: str,
    location_keys: Iterable[list[int]],
    at: dt.datetime,
    run_id: str,
) -> Deleted:
    """`record_deletions` between `begin` (the engine's spelling) and COMMIT; rolled
    back whole if any of it fails."""
    execute(begin, [])
    try:
        found = record_deletions(execute, dialect, location_keys, at, run_id)
        execute("COMMIT", [])
    except BaseException:
        execute("ROLLBACK", [])
        raise
    return found


def record_deletions(
    execute: Execute,
    dialect: MergeDialect,
    location_keys: Iterable[list[int]],
    at: dt.datetime,
    run_id: str,
) -> Deleted:
    """Stamp the locations `location_keys` (batches of keys) deleted `at` by run
    `run_id`, and follow through; the caller holds the transaction."""
    p = dialect.placeholder
    found = Deleted()
    for batch in location_keys:
        for start in range(0, len(batch), KEYS_PER_STATEMENT):
            keys = batch[start : start + KEYS_PER_STATEMENT]
            execute(
                f"UPDATE dicom_file_location SET deleted_at = {p} WHERE deleted_at IS NULL "
                f"AND location_key IN ({', '.join(p for _ in keys)})",
                [at, *keys],
            )
    stamped = f"SELECT storage_uri FROM dicom_file_location WHERE deleted_at = {p}"
    found.objects = single_count(execute(f"SELECT count(*) FROM ({stamped}) s", [at]))
    if not found.objects:
        return found
    execute(f"UPDATE dicom_raw SET deleted_at = {p} WHERE file_path IN ({stamped})", [at, at])
    touched: Keys = (
        f"SELECT DISTINCT instance_key FROM dicom_file_location WHERE deleted_at = {p}",
        [at],
    )
    follow_live_locations(execute, touched)
    execute(
        f"UPDATE dicom_instance SET deleted_at = {p} WHERE deleted_at IS NULL "
        f"AND instance_key IN ({touched[0]}) AND NOT EXISTS (SELECT 1 FROM dicom_file_location l "
        "WHERE l.instance_key = dicom_instance.instance_key AND l.deleted_at IS NULL)",
        [at, *touched[1]],
    )
    found.instances = single_count(
        execute(f"SELECT count(*) FROM dicom_instance WHERE deleted_at = {p}", [at])
    )
    mark_duplicates(execute, p, at, touched)
    pass_on(execute, dialect, at, run_id)
    faults.maybe_fail("mid-deletions")  # stamped and re-pointed, counts not yet recomputed
    series: Keys = (
        f"SELECT series_key FROM dicom_instance WHERE instance_key IN ({touched[0]})",
        touched[1],
    )
    studies: Keys = (
        f"SELECT study_key FROM dicom_series WHERE series_key IN ({series[0]})",
        series[1],
    )
    recount(execute, dialect, series, studies)
    return found
