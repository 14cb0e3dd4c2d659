"""Run state next to the Parquet: a shard counts as done only once its record is committed.

A shard record is published whole (see `output`) after its Parquet files are, so
a crash at any moment leaves either no record (the shard is redone) or a complete
one (the shard is skipped on --resume), on a local disk or an object store alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NotRequired, TypedDict

from loader.output.location import OutputRoot

LEDGER_DIR = "_ledger"
_PREFIX, _SUFFIX = "shard-", ".json"


def run_dir(run_id: str) -> str:
    """The run's ledger folder, relative to the output root."""
    return f"{LEDGER_DIR}/run_id={run_id}"


@dataclass(frozen=True)
class ShardRecord:
    """What one committed shard did: the contract between a shard (shard.py), the
    load (warehouse/) and the report (pipeline.py), kept as JSON in the ledger."""

    run_id: str
    shard_id: str
    status: str  # "committed"
    listed: int  # objects accounted for (an export counts once per instance)
    parsed: int
    error_files: int
    errors: dict[str, int]  # error rows by category
    rows: dict[str, int]  # rows written per table
    files: dict[str, str]  # Parquet file per table, relative to the output root
    parquet_bytes: int
    bytes_listed: int
    bytes_read: int
    read_requests: int
    seconds: float
    started_at: str  # ISO 8601, UTC
    finished_at: str
    worker_pid: int
    worker_peak_rss_bytes: int
    value_store: dict[str, int] = field(default_factory=dict)  # hits, misses, evictions
    read_wait_seconds: float = 0.0  # the worker waiting for reads rather than working
    throttled_reads: int = 0  # first reads the store throttled (503 SlowDown, 429)
    lowest_read_window: int = 0  # the fewest reads in flight it backed off to
    # Locating frames (--frame-offsets): reads of Basic Offset Tables beyond the header
    # (within bytes_read and read_requests), frames located and not.
    offset_table_reads: int = 0
    offset_table_bytes: int = 0
    frames_located: int = 0
    frames_unlocated: int = 0
    # DICOMweb: instances read with their own metadata request, their series' not
    # served (dicomweb.study_instances).
    instance_fallbacks: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ShardRecord:
        """A record as committed; keys a later version added are ignored, and those
        an earlier one lacked take their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in document.items() if k in names})


def _encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True, default=str).encode()


def commit_shard(out: OutputRoot, run_id: str, record: ShardRecord) -> None:
    path = f"{run_dir(run_id)}/{_PREFIX}{record.shard_id}{_SUFFIX}"
    out.write_bytes(path, _encode(record.to_json()))


def committed_ids(out: OutputRoot, run_id: str) -> set[str]:
    names = out.names(run_dir(run_id), _PREFIX, _SUFFIX)
    return {name[len(_PREFIX) : -len(_SUFFIX)] for name in names}


def committed_shards(out: OutputRoot, run_id: str) -> Iterator[ShardRecord]:
    folder = run_dir(run_id)
    names = out.names(folder, _PREFIX, _SUFFIX)
    for data in out.read_many([f"{folder}/{name}" for name in names]):
        yield ShardRecord.from_json(json.loads(data))


class RunManifest(TypedDict):
    """What a run or a rebuild was asked, kept beside its shard records (run.json):
    `load --run-id` reads the source back, `--resume` that the run exists."""

    run_id: str
    source: str
    target: str
    shard_size: NotRequired[int]
    header_bytes: NotRequired[int | None]
    pseudonymized: NotRequired[Mapping[str, object]]  # report.Pseudonymized
    started_at: NotRequired[str]  # ISO 8601, UTC


def write_run(out: OutputRoot, run_id: str, document: RunManifest) -> None:
    out.write_bytes(f"{run_dir(run_id)}/run.json", _encode(document))


def read_run(out: OutputRoot, run_id: str) -> RunManifest | None:
    data = out.read_bytes(f"{run_dir(run_id)}/run.json")
    return None if data is None else json.loads(data)  # type: ignore[no-any-return]


def clear_run(out: OutputRoot, run_id: str, tables: list[str]) -> None:
    """Forget a run's ledger and Parquet before it starts afresh."""
    out.remove_folder(run_dir(run_id))
    for table in tables:
        out.remove_folder(f"{table}/run_id={run_id}")
