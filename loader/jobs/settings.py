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
from loader.core.flags import flag
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT
from loader.headers.reader import DEFAULT_HEADER_BYTES, LOCAL_HEADER_BYTES
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
    """Everything a run is told. Each field a user sets declares its option here
    (core/flags.py); cli/options.py makes the option, its variable and its settings
    file key from that, and the shard receives its own slice (shard.ShardSettings)."""

    source: str
    out: str | Path = DEFAULT_OUT  # a local folder or an object-store URL
    target: Target = field(default_factory=lambda: Target.parse(DEFAULT_TARGET))
    workers: int = flag(
        os.cpu_count() or 1,
        "Dask worker processes; 0 runs in this process.",
        show_default="cores",
    )
    cluster_min_objects: int = flag(
        DEFAULT_CLUSTER_MIN_OBJECTS,
        "A source listing fewer objects runs in this process, without starting a "
        "cluster (that costs more than it saves); 0 always starts one.",
        minimum=0,
    )
    shard_size: int = flag(
        DEFAULT_SHARD_SIZE,
        "Objects per shard (one Dask task each); the listing's last shards are cut "
        "a quarter that size, so workers run out of work together.",
    )
    scheduler: str | None = flag(  # tcp://HOST:PORT or a scheduler file: an existing cluster
        None, "Run the shards on this existing Dask scheduler.", metavar="tcp://HOST:PORT"
    )
    dashboard: bool = flag(
        False, "Serve Dask's dashboard for the run's LocalCluster and print its link."
    )
    run_id: str | None = flag(None, "Name of the run (default: time-stamped).")
    resume: bool = flag(False, "Skip the shards --run-id already committed.")
    incremental: bool = flag(
        False,
        "Periodic reload: skip objects TARGET already holds with the same URL, size, "
        "modification time and ETag; read only new or changed ones.",
    )
    header_bytes: int | None = flag(  # None: by the object's location (headers/reader.py)
        None,
        "First read per object, grown only when a header is longer [default: "
        f"{DEFAULT_HEADER_BYTES // 1024} KiB on object stores, {LOCAL_HEADER_BYTES // 1024} "
        "KiB on local and network filesystems].",
    )
    element_limit: int = flag(
        DEFAULT_ELEMENT_LIMIT,
        "Values longer than this many bytes, public or private, are left out (marked, "
        "with a warning); binary values keep their length, the sequences the model reads "
        "stay.",
        minimum=1,
    )
    read_concurrency: int = flag(
        DEFAULT_READ_CONCURRENCY,
        "Object stores: first reads a worker keeps in flight while it parses (covers "
        "~100 ms of latency); halved while the store throttles. S3's and GCS's connection "
        "pools follow it unless --storage-option sets their own.",
        minimum=1,
    )
    read_ahead_bytes: int = flag(
        DEFAULT_READ_AHEAD_BYTES,
        "Object stores: at most this many MB of first reads held ahead per worker.",
        option="read-ahead-mb",
        per=1 << 20,
        minimum=0.1,
    )
    member_limit: int = flag(
        DEFAULT_MEMBER_LIMIT,
        "A zip or tar member declaring more is not read: a CONTAINER_ERROR row (a zip "
        "bomb inflates a few KB into terabytes).",
        option="member-limit-mb",
        per=1 << 20,
        minimum=0.001,
    )
    frame_offsets: bool = flag(
        False,
        "A dicom_frame row for every frame of every object with pixels, with where its "
        "bytes are: native frames from the geometry, encapsulated ones from their offset "
        "table (at most one small read per object, counted in the report).",
    )
    pseudonymize_key_file: str | None = flag(
        None,
        "Replace patient identifiers and person names by keyed HMAC pseudonyms (the key: "
        "this file's bytes), in the workers, before anything is written.",
        metavar="FILE",
    )
    shift_dates: bool = flag(
        False, "With --pseudonymize-key-file: move every date of a patient by the same offset."
    )
    pseudonymize_uids: bool = flag(
        False,
        "With --pseudonymize-key-file: replace study, series, instance and frame of "
        "reference UIDs (and references to them) by keyed UIDs under 2.25.",
    )
    max_in_flight: int | None = None  # shards submitted at once; default 2 per worker
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)  # fsspec

    def __post_init__(self) -> None:
        if self.shift_dates and not self.pseudonymize_key_file:
            raise ConfigError("--shift-dates needs --pseudonymize-key-file")
        if self.pseudonymize_uids and not self.pseudonymize_key_file:
            raise ConfigError("--pseudonymize-uids needs --pseudonymize-key-file")
