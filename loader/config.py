"""Typed settings: flags → environment (DICOM_LOADER_*) → defaults.

Secrets never live here: storage credentials stay with fsspec's own
configuration and warehouse credentials with the warehouse's connector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from loader.errors import ConfigError
from loader.headers import DEFAULT_HEADER_BYTES
from loader.listing import DEFAULT_SHARD_SIZE

DEFAULT_OUT = "./dicom-parquet"
DEFAULT_TARGET = "duckdb:///./imaging.duckdb"


def env_default(name: str, default: str) -> str:
    return os.environ.get(f"DICOM_LOADER_{name}", default)


@dataclass(frozen=True)
class Target:
    """Where a run is loaded: `duckdb:///PATH`, or `none` for Parquet only."""

    kind: str  # "duckdb" | "none"
    location: str

    @classmethod
    def parse(cls, text: str) -> Target:
        if text.lower() == "none":
            return cls("none", "")
        if text.startswith("duckdb://"):
            path = text[len("duckdb://") :]
            path = path.removeprefix("/")  # duckdb:///rel/path, duckdb:////abs/path
            if not path:
                raise ConfigError("duckdb target needs a path: duckdb:///imaging.duckdb")
            return cls("duckdb", path)
        if text.startswith("snowflake"):
            raise ConfigError("the Snowflake target is not available in this version")
        raise ConfigError(f"unknown target {text!r}: use duckdb:///PATH or none")

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:///{self.location}"


@dataclass(frozen=True)
class RunSettings:
    source: str
    out: Path = Path(DEFAULT_OUT)
    target: Target = field(default_factory=lambda: Target.parse(DEFAULT_TARGET))
    workers: int = os.cpu_count() or 1
    shard_size: int = DEFAULT_SHARD_SIZE
    run_id: str | None = None
    header_bytes: int = DEFAULT_HEADER_BYTES
    resume: bool = False
    max_in_flight: int | None = None  # shards submitted at once; default 2 per worker
