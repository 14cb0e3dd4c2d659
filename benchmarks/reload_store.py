"""`make bench-reload-s3`: the nightly reload from a bucket, its requests counted by
the server's side.

What a night costs an object store is requests, not seconds on this machine: LIST
requests to learn what is there, GETs to read what changed. The archive of
`make bench-reload` at BENCH_RELOAD_S3_OBJECTS (default 20,000) is uploaded to a moto
S3 server on 127.0.0.1 and loaded from it through a counting proxy (latency.py's,
with no delay): a full run, the same night's changes (reload.py's: 1 % new, 0.5 %
modified, 0.1 % deleted, a few moved) made in the bucket, `run --incremental`, and a
second `--incremental` with nothing changed. Each run gets a fresh proxy, so its
counts are its own.

Checks: every incremental run lists each "folder" of the bucket once (one LIST page
per 1,000 names of a prefix) and asks nothing of an unchanged object that
loaded (no GET, no HEAD); after the night, every new, modified and moved object is
read. Objects that ended as error rows are read again each night by design
(README, `--incremental`): counted apart.
Results: benchmarks/results/<date>-reload-s3.{json,md}.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
from e2e import machine  # run as a script: its folder is on the path
from latency import moto_server, proxied
from reload import HERE, linked_archive, night, run

BUCKET = "bench"
PREFIX = f"{BUCKET}/archive"
CREDENTIALS = {"key": "bench", "secret": "bench"}


def _key(path: Path, root: Path) -> str:
    return f"{PREFIX}/{path.relative_to(root).as_posix()}"


def _upload(fs: Any, paths: list[Path], root: Path) -> None:
    if paths:
        fs.put([str(p) for p in paths], [_key(p, root) for p in paths])


def _list_pages(root: Path) -> int:
    """The LIST requests a listing of the bucket costs: one page of up to 1,000 names
    (keys and sub-prefixes) per prefix, the archive's own and every folder with a file
    under it (a bucket has no empty folders: one whose files were all deleted or moved
    is gone)."""
    names: dict[Path, set[str]] = {root: set()}
    for path in root.rglob("*"):
        if path.is_file():
            child = path
            for parent in path.parents:
                names.setdefault(parent, set()).add(child.name)
                if parent == root:
                    break
                child = parent
    return sum(max(1, -(-len(found) // 1000)) for found in names.values())


def _error_keys(database: Path) -> set[str]:
    """The bucket keys of the objects that ended as error rows."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT file_path FROM dicom_ingestion_errors").fetchall()
    finally:
        con.close()
    return {str(path).removeprefix("s3://") for (path,) in rows}


def counted_run(
    upstream: str, work: Path, name: str, database: Path, *extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run from the bucket through a fresh counting proxy: its figures and the
    proxy's counts (LIST requests; other requests by bucket key)."""
    with proxied(upstream, 0.0) as proxy:
        options = {"endpoint_url": proxy.url, **CREDENTIALS}
        flags = [f for k, v in options.items() for f in ("--storage-option", f"{k}={v}")]
        measured = run(f"s3://{PREFIX}", work, name, database, *flags, *extra)
        seen = proxy.stats()
    requested = {unquote(path).lstrip("/"): n for path, n in seen["requested"].items()}
    counts = {"lists": seen["lists"], "requested": requested}
    return measured, counts


def _requests_of(counts: dict[str, Any], keys: set[str]) -> int:
    return sum(n for key, n in counts["requested"].items() if key in keys)


def main() -> None:
    import s3fs

    objects = int(os.environ.get("BENCH_RELOAD_S3_OBJECTS", "20000"))
    copies, root, place = linked_archive(objects, f"reload-s3-{objects}")
    with moto_server() as upstream:
        fs = s3fs.S3FileSystem(endpoint_url=upstream, **CREDENTIALS)
        fs.mkdir(BUCKET)
        _upload(fs, copies, root)
        print(f"uploaded {len(copies):,} objects", flush=True)
        database = place / "imaging.duckdb"
        full, full_counts = counted_run(upstream, place, "full", database)
        errors = _error_keys(database)
        changes = night(copies, root)
        _upload(fs, [Path(p) for p in changes["modified"] + changes["added"]], root)
        _upload(fs, [Path(p) for p in changes["moved_to"]], root)
        fs.rm([_key(Path(p), root) for p in changes["deleted"] + changes["moved_from"]])
        pages = _list_pages(root)
        night_run, night_counts = counted_run(
            upstream, place, "incremental", database, "--incremental"
        )
        quiet, quiet_counts = counted_run(upstream, place, "no-change", database, "--incremental")
    changed = {_key(Path(p), root) for p in changes["modified"] + changes["added"]}
    changed |= {_key(Path(p), root) for p in changes["moved_to"]}
    record = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "objects": len(copies),
        "list_pages_after_the_night": pages,
        "error_objects": len(errors),
        "changes": {k: len(v) for k, v in changes.items()},
        "runs": [],
    }
    for measured, counts in (
        (full, full_counts),
        (night_run, night_counts),
        (quiet, quiet_counts),
    ):
        asked = set(counts["requested"])
        record["runs"].append(
            {
                **measured,
                "list_requests": counts["lists"],
                "objects_asked": len(asked),
                "requests": sum(counts["requested"].values()),
                "requests_of_changed": _requests_of(counts, changed),
                "requests_of_error_objects": _requests_of(counts, errors),
                "unchanged_loaded_asked": len(asked - changed - errors),
                "changed_not_read": len(changed - asked),
            }
        )
    record["verdicts"] = verdicts(record)
    target = HERE / "results"
    target.mkdir(exist_ok=True)
    stem = f"{record['date']}-reload-s3"
    (target / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    (target / f"{stem}.md").write_text(text)
    print(text)


def verdicts(record: dict[str, Any]) -> list[str]:
    _, night_run, quiet = record["runs"]
    pages = record["list_pages_after_the_night"]
    checks = [
        (
            night_run["list_requests"] == pages and quiet["list_requests"] == pages,
            f"LIST requests: {night_run['list_requests']:,} after the night, "
            f"{quiet['list_requests']:,} with no change; pages of the bucket's prefixes "
            f"(one per 1,000 names): {pages:,}",
        ),
        (
            night_run["unchanged_loaded_asked"] == 0 and quiet["unchanged_loaded_asked"] == 0,
            "unchanged loaded objects asked for (GET or HEAD): "
            f"{night_run['unchanged_loaded_asked']} after the night, "
            f"{quiet['unchanged_loaded_asked']} with no change",
        ),
        (
            night_run["changed_not_read"] == 0,
            f"new, modified and moved objects not read after the night: "
            f"{night_run['changed_not_read']}",
        ),
    ]
    return [("met: " if ok else "MISSED: ") + text for ok, text in checks]


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Nightly reload from S3 (moto), {record['objects']:,} objects ({record['date']})",
        "",
        f"Machine: {record['machine']}. Changes: {record['changes']}. Objects that ended "
        f"as error rows (read again each night by design): {record['error_objects']:,}.",
        "",
        "| run | wall s | LIST requests | objects asked | GET/HEAD requests | of changed "
        "objects | of error objects | unchanged loaded asked | objects read | bytes read |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in record["runs"]:
        lines.append(
            f"| {r['run']} | {r['seconds']:,.1f} | {r['list_requests']:,} | "
            f"{r['objects_asked']:,} | {r['requests']:,} | {r['requests_of_changed']:,} | "
            f"{r['requests_of_error_objects']:,} | {r['unchanged_loaded_asked']:,} | "
            f"{r['objects_read']:,} | {r['bytes_read']:,} |"
        )
    lines += [
        "",
        *[f"- {v}" for v in record["verdicts"]],
        "",
        "Wall times are the emulator's: moto answers each LIST by scanning every key of "
        "the bucket, so at 20,000 objects a listing costs minutes here; the requests are "
        "what a night costs on S3.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
