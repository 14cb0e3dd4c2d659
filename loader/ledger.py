"""Run state next to the Parquet: a shard counts as done only once its record is committed.

A shard record is published whole (see `output`) after its Parquet files are, so
a crash at any moment leaves either no record (the shard is redone) or a complete
one (the shard is skipped on --resume), on a local disk or an object store alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from loader.output import OutputRoot

LEDGER_DIR = "_ledger"
_PREFIX, _SUFFIX = "shard-", ".json"


def run_dir(run_id: str) -> str:
    """The run's ledger folder, relative to the output root."""
    return f"{LEDGER_DIR}/run_id={run_id}"


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True, default=str).encode()


def commit_shard(out: OutputRoot, run_id: str, record: dict[str, Any]) -> None:
    out.write_bytes(f"{run_dir(run_id)}/{_PREFIX}{record['shard_id']}{_SUFFIX}", _encode(record))


def committed_ids(out: OutputRoot, run_id: str) -> set[str]:
    names = out.names(run_dir(run_id), _PREFIX, _SUFFIX)
    return {name[len(_PREFIX) : -len(_SUFFIX)] for name in names}


def committed_shards(out: OutputRoot, run_id: str) -> Iterator[dict[str, Any]]:
    folder = run_dir(run_id)
    names = out.names(folder, _PREFIX, _SUFFIX)
    for data in out.read_many([f"{folder}/{name}" for name in names]):
        yield json.loads(data)


def write_run(out: OutputRoot, run_id: str, document: dict[str, Any]) -> None:
    out.write_bytes(f"{run_dir(run_id)}/run.json", _encode(document))


def read_run(out: OutputRoot, run_id: str) -> dict[str, Any] | None:
    data = out.read_bytes(f"{run_dir(run_id)}/run.json")
    return None if data is None else json.loads(data)  # type: ignore[no-any-return]


def clear_run(out: OutputRoot, run_id: str, tables: list[str]) -> None:
    """Forget a run's ledger and Parquet before it starts afresh."""
    out.remove_folder(run_dir(run_id))
    for table in tables:
        out.remove_folder(f"{table}/run_id={run_id}")
