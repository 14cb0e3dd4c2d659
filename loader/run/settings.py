"""Typed settings: command line → environment (DICOM_LOADER_*) → dicom-loader.toml →
defaults (settings_file.py resolves the middle two).

Secrets never live here: storage credentials stay with fsspec's own
configuration and warehouse credentials with the warehouse's connector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loader.core.errors import ConfigError
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT
from loader.sources.containers import DEFAULT_MEMBER_LIMIT
from loader.sources.listing import DEFAULT_SHARD_SIZE
from loader.sources.read_ahead import DEFAULT_READ_AHEAD_BYTES
from loader.sources.storage import DEFAULT_READ_CONCURRENCY

# Where a run loads, declared by the warehouse (re-exported: settings carry them).
from loader.warehouse.target import (  # noqa: F401
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_LOAD_BATCH_OBJECTS,
    DEFAULT_STAGE_FILE_MB,
    DEFAULT_TARGET,
    DuckDBOptions,
    Target,
    TargetKind,
)

DEFAULT_OUT = "./dicom-parquet"
# A run that lists fewer objects runs in the driver process: starting and stopping
# a cluster costs more than a second core saves. Measured on 2 cores (pydicom-test-file
# mix, real image sizes), in this process against a LocalCluster: 5,000 objects 3.8 s
# against 3.9 s, 8,000 objects 5.5 s against 5.0 s.
DEFAULT_CLUSTER_MIN_OBJECTS = 5_000


@dataclass(frozen=True)
class RunSettings:
    source: str
    out: str | Path = DEFAULT_OUT  # a local folder or an object-store URL
    target: Target = field(default_factory=lambda: Target.parse(DEFAULT_TARGET))
    workers: int = os.cpu_count() or 1
    shard_size: int = DEFAULT_SHARD_SIZE
    run_id: str | None = None
    header_bytes: int | None = None  # first read per object; None: by location (headers/reader.py)
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
