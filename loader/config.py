"""Typed settings: command line → environment (DICOM_LOADER_*) → dicom-loader.toml →
defaults (config_file.py resolves the middle two).

Secrets never live here: storage credentials stay with fsspec's own
configuration and warehouse credentials with the warehouse's connector.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from loader.containers import DEFAULT_MEMBER_LIMIT
from loader.decode import DEFAULT_ELEMENT_LIMIT
from loader.errors import ConfigError
from loader.identifiers import identifier
from loader.listing import DEFAULT_SHARD_SIZE
from loader.read_ahead import DEFAULT_READ_AHEAD_BYTES
from loader.storage import DEFAULT_READ_CONCURRENCY

DEFAULT_OUT = "./dicom-parquet"
DEFAULT_TARGET = "duckdb:///./imaging.duckdb"
# Snowflake recommends roughly 100–250 MB (compressed) per file a COPY loads.
DEFAULT_STAGE_FILE_MB = 150
# The driver's DuckDB, bounded so the driver stays under 1 GB whatever the archive
# (benchmarks/README.md, scale): DuckDB spills what does not fit to its temp folder.
DEFAULT_DUCKDB_MEMORY_LIMIT = "512MB"
# Objects per DuckDB load transaction: a batch costs ≈ 1 s more than the same
# objects in a larger one (its commit), and DuckDB's memory limit, not the batch,
# bounds the driver (the same 730–750 MB peak at 200,000 objects in 1 or 4 batches).
DEFAULT_LOAD_BATCH_OBJECTS = 200_000
# A run that lists fewer objects runs in the driver process: starting and stopping
# a cluster costs more than a second core saves. Measured on 2 cores (pydicom-test-file
# mix, real image sizes), in this process against a LocalCluster: 5,000 objects 3.8 s
# against 3.9 s, 8,000 objects 5.5 s against 5.0 s.
DEFAULT_CLUSTER_MIN_OBJECTS = 5_000
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


class TargetKind(StrEnum):
    DUCKDB = "duckdb"
    SNOWFLAKE = "snowflake"
    NONE = "none"  # Parquet only


@dataclass(frozen=True)
class DuckDBOptions:
    """How the embedded warehouse may use the driver's machine."""

    memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT  # DuckDB's own spelling: 512MB, 2GB
    temp_directory: str | None = None  # where it spills; None: next to the database file
    load_batch_objects: int = DEFAULT_LOAD_BATCH_OBJECTS

    def __post_init__(self) -> None:
        if not _MEMORY.fullmatch(self.memory_limit.strip()):
            raise ConfigError(
                f"--duckdb-memory-limit {self.memory_limit!r}: give a size such as 512MB or 2GB"
            )
        if self.load_batch_objects < 1:
            raise ConfigError("--load-batch-objects must be at least 1")


@dataclass(frozen=True)
class Target:
    """Where a run is loaded: `duckdb:///PATH`, `snowflake:NAME`, `snowflake://…`, or
    `none` for Parquet only. A Snowflake location may hold a password: it is never
    part of str() or repr()."""

    kind: TargetKind
    location: str = field(repr=False)
    # Snowflake only: the run's Parquet already sits at this cloud URL (the --out
    # root), so it loads through an external stage, without PUT.
    stage_url: str | None = None
    storage_integration: str | None = None
    # Snowflake only: the size the run's Parquet is compacted to before staging.
    stage_file_mb: float = DEFAULT_STAGE_FILE_MB
    duckdb: DuckDBOptions = field(default_factory=DuckDBOptions)

    @classmethod
    def parse(
        cls,
        text: str,
        stage_url: str | None = None,
        storage_integration: str | None = None,
        stage_file_mb: float | None = None,
        duckdb: DuckDBOptions | None = None,
    ) -> Target:
        snowflake = text.startswith("snowflake:")
        if (stage_url or storage_integration or stage_file_mb) and not snowflake:
            raise ConfigError(
                "--stage-url, --storage-integration and --stage-file-mb apply to Snowflake only"
            )
        if stage_file_mb is not None and not 0.01 <= stage_file_mb <= 5000:
            raise ConfigError(f"--stage-file-mb {stage_file_mb} is not between 0.01 and 5000")
        if text.lower() == "none":
            return cls(TargetKind.NONE, "")
        if text.startswith("duckdb://"):
            path = text[len("duckdb://") :]
            path = path.removeprefix("/")  # duckdb:///rel/path, duckdb:////abs/path
            if not path:
                raise ConfigError("duckdb target needs a path: duckdb:///imaging.duckdb")
            return cls(TargetKind.DUCKDB, path, duckdb=duckdb or DuckDBOptions())
        if text.startswith("snowflake:"):
            from loader.warehouse.snowflake import external_stage_url
            from loader.warehouse.snowflake_target import parse_snowflake_target

            parse_snowflake_target(text)  # fail early, before any work
            if storage_integration:
                identifier(storage_integration, "storage integration")
            if stage_url:
                external_stage_url(stage_url)
            size = stage_file_mb or DEFAULT_STAGE_FILE_MB
            return cls(TargetKind.SNOWFLAKE, text, stage_url, storage_integration, size)
        raise ConfigError(
            f"unknown target {text.split('://')[0]!r}: use duckdb:///PATH, snowflake:NAME, "
            "snowflake://USER@ACCOUNT/DATABASE/SCHEMA or none"
        )

    def __str__(self) -> str:
        if self.kind is TargetKind.SNOWFLAKE:
            from loader.warehouse.snowflake_target import parse_snowflake_target

            return parse_snowflake_target(self.location).description
        return "none" if self.kind is TargetKind.NONE else f"{self.kind}:///{self.location}"

    def __repr__(self) -> str:
        return f"Target({str(self)!r})"


@dataclass(frozen=True)
class RunSettings:
    source: str
    out: str | Path = DEFAULT_OUT  # a local folder or an object-store URL
    target: Target = field(default_factory=lambda: Target.parse(DEFAULT_TARGET))
    workers: int = os.cpu_count() or 1
    shard_size: int = DEFAULT_SHARD_SIZE
    run_id: str | None = None
    header_bytes: int | None = None  # first read per object; None: by location (headers.py)
    resume: bool = False
    element_limit: int = DEFAULT_ELEMENT_LIMIT  # private values longer than this are omitted
    read_concurrency: int = DEFAULT_READ_CONCURRENCY  # object stores: first reads in flight
    read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES  # and the most of them held per worker
    incremental: bool = False  # skip objects the target holds unchanged (url, size, mtime, etag)
    member_limit: int = DEFAULT_MEMBER_LIMIT  # bytes a zip or tar member may declare
    frame_offsets: bool = False  # every frame located in its object (frame_offsets.py)
    max_in_flight: int | None = None  # shards submitted at once; default 2 per worker
    # Fewer objects listed: the run stays in this process (0: always start the cluster).
    cluster_min_objects: int = DEFAULT_CLUSTER_MIN_OBJECTS
    scheduler: str | None = None  # tcp://HOST:PORT or a scheduler file: an existing cluster
    dashboard: bool = False  # a LocalCluster with Dask's dashboard (its link is printed)
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)  # fsspec
    pseudonymize_key_file: str | None = None  # PHI → keyed pseudonyms in the workers
    shift_dates: bool = False  # with a key: every date moves by a per-patient offset
    pseudonymize_uids: bool = False  # with a key: instance UIDs → keyed UIDs under 2.25

    def __post_init__(self) -> None:
        if self.shift_dates and not self.pseudonymize_key_file:
            raise ConfigError("--shift-dates needs --pseudonymize-key-file")
        if self.pseudonymize_uids and not self.pseudonymize_key_file:
            raise ConfigError("--pseudonymize-uids needs --pseudonymize-key-file")
