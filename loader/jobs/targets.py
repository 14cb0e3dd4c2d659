"""What a command asks of its target around the work: open it, refuse before any
work a target that could not read the run's Parquet or a DuckDB file that cannot
be written, the objects it already holds (--incremental), its validation checks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from loader.core.errors import ConfigError
from loader.jobs import validate
from loader.jobs.incremental import KnownObjects, identity_sql
from loader.jobs.settings import Target, TargetKind
from loader.jobs.validate import Checks
from loader.output.location import OutputRoot
from loader.warehouse.base import Warehouse

log = logging.getLogger(__name__)


def open_warehouse(target: Target, read_only: bool = False) -> Warehouse:
    if target.kind is TargetKind.DUCKDB:
        from loader.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(target.location, read_only=read_only, options=target.duckdb)
    if target.kind is TargetKind.SNOWFLAKE:
        from loader.warehouse.snowflake import SnowflakeWarehouse

        return SnowflakeWarehouse(
            target.location, target.stage_url, target.storage_integration, target.stage_file_mb
        )
    raise ConfigError(f"no warehouse for target {target}")


def check_target_reads(out: OutputRoot, target: Target) -> None:
    """Refuse, before any work, a target that could not read the run's Parquet."""
    if out.remote and target.kind is TargetKind.SNOWFLAKE and not target.stage_url:
        raise ConfigError(
            f"the run's Parquet goes to {out.url}: give --stage-url (that location as "
            "Snowflake names it: s3://…, gcs://…, azure://ACCOUNT.blob.core.windows.net/…) "
            "and --storage-integration, so Snowflake reads it there"
        )


def check_target_writable(target: Target) -> None:
    """Refuse, before any work, a DuckDB file whose folder cannot be made or written."""
    if target.kind is not TargetKind.DUCKDB:
        return
    folder = Path(target.location).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--target {target}: cannot create {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--target {target}: {folder} is not writable")


def known_objects(target: Target) -> KnownObjects:
    """The identities of every object `target` already holds (for --incremental)."""
    if target.kind is TargetKind.NONE:
        raise ConfigError("--incremental compares the listing with a warehouse: give --target")
    warehouse = open_warehouse(target)
    try:
        warehouse.create_model()
        known = KnownObjects.from_columns(warehouse.column_batches(identity_sql(warehouse.dialect)))
    finally:
        warehouse.close()
    log.info("--incremental: %d objects already loaded", len(known))
    return known


def validate_target(target: Target) -> Checks:
    """Validation checks of what a warehouse target holds (read only)."""
    warehouse = open_warehouse(target, read_only=True)
    try:
        return validate.warehouse_checks(warehouse)
    finally:
        warehouse.close()
