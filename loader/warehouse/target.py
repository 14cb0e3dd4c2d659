"""Where a run is loaded (`--target`), and how the embedded warehouse may use the
driver's machine: parsed and checked before any work starts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from loader.core.errors import ConfigError
from loader.core.flags import flag
from loader.core.identifiers import identifier
from loader.warehouse.snowflake_target import external_stage_url, parse_snowflake_target

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
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


class TargetKind(StrEnum):
    DUCKDB = "duckdb"
    SNOWFLAKE = "snowflake"
    NONE = "none"  # Parquet only


@dataclass(frozen=True)
class DuckDBOptions:
    """How the embedded warehouse may use the driver's machine."""

    memory_limit: str = flag(  # DuckDB's own spelling: 512MB, 2GB
        DEFAULT_DUCKDB_MEMORY_LIMIT,
        "DuckDB: the most memory the load may use (512MB, 2GB…); beyond it, it spills.",
        option="duckdb-memory-limit",
    )
    temp_directory: str | None = flag(
        None,
        "DuckDB: where the load spills what exceeds its memory limit "
        "[default: the database file's name + .tmp].",
        option="duckdb-temp-dir",
    )
    load_batch_objects: int = flag(
        DEFAULT_LOAD_BATCH_OBJECTS,
        "DuckDB: objects per load transaction; where the driver has a core the "
        "workers do not use, each batch loads while later shards are extracted.",
        minimum=1,
    )

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
    stage_url: str | None = flag(
        None,
        "Snowflake: the run's Parquet already at this s3://, gcs:// or azure:// URL "
        "(the --out root); load it through an external stage, without PUT.",
    )
    storage_integration: str | None = flag(
        None, "Snowflake storage integration that reads the --stage-url location."
    )
    stage_file_mb: float = flag(
        DEFAULT_STAGE_FILE_MB,
        "Snowflake: the run's Parquet is compacted per table into files of about this "
        f"size before staging [default: {DEFAULT_STAGE_FILE_MB}].",
        minimum=0.01,
        maximum=5000,
        unset=True,
    )
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
            return parse_snowflake_target(self.location).description
        return "none" if self.kind is TargetKind.NONE else f"{self.kind}:///{self.location}"

    def __repr__(self) -> str:
        return f"Target({str(self)!r})"
