"""Run state on disk: a shard counts as done only once its record is committed.

A shard record is written to a temporary file and renamed into place after its
Parquet files are published, so a crash at any moment leaves either no record
(the shard is redone) or a complete one (the shard is skipped on --resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LEDGER_DIR = "_ledger"


def run_dir(out: Path, run_id: str) -> Path:
    return out / LEDGER_DIR / f"run_id={run_id}"


def _write_atomic(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(document, fh, indent=1, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def commit_shard(out: Path, run_id: str, record: dict[str, Any]) -> None:
    _write_atomic(run_dir(out, run_id) / f"shard-{record['shard_id']}.json", record)


def committed_shards(out: Path, run_id: str) -> Iterator[dict[str, Any]]:
    folder = run_dir(out, run_id)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("shard-*.json")):
        with path.open(encoding="utf-8") as fh:
            yield json.load(fh)


def committed_ids(out: Path, run_id: str) -> set[str]:
    folder = run_dir(out, run_id)
    if not folder.is_dir():
        return set()
    return {p.name[len("shard-") : -len(".json")] for p in folder.glob("shard-*.json")}


def write_run(out: Path, run_id: str, document: dict[str, Any]) -> None:
    _write_atomic(run_dir(out, run_id) / "run.json", document)


def read_run(out: Path, run_id: str) -> dict[str, Any] | None:
    path = run_dir(out, run_id) / "run.json"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]
