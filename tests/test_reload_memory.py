"""A periodic reload fits the memory DuckDB is given: merging a small batch runs
within a small memory limit, and a limit too small for anything is one line that
names the setting, after which `--resume` completes the run.

The merge's memory once grew with the number of columns compared, not the rows
staged (a DISTINCT aggregate per column, whose hash tables also depend on how the
threads interleave): a reload of 1 % of 30,000 objects ran out of 64 MB here, and of
1 % of a million out of the default 512 MB. How large a warehouse the default limit
serves is measured by `make bench-reload`, at a million objects.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pydicom
import pytest

from loader.synth import synthesize

pytestmark = pytest.mark.slow  # 25 s: a warehouse built and reloaded twice

CLI = [sys.executable, "-m", "loader"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_LOADER_")}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, list[Path]]]:
    """An archive of ~3,000 objects loaded whole, then changed as a night would."""
    root = tmp_path_factory.mktemp("reload")
    archive = root / "archive"
    synthesize(archive / "old", patients=300, seed=5, duplicate_fraction=0)
    database = root / "w.duckdb"
    full = _cli(
        "run", str(archive), "--workers", "0", "--out", str(root / "pq"),
        "--target", f"duckdb:///{database}", cwd=root,
    )  # fmt: skip
    assert full.returncode == 0, full.stderr
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    rng = random.Random(3)
    modified, deleted = rng.sample(files, 15), []
    for n, path in enumerate(modified):
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = f"amended {n}"
        ds.save_as(path, enforce_file_format=True)
    for path in rng.sample([f for f in files if f not in modified], 3):
        path.unlink()
        deleted.append(path)
    synthesize(archive / "new", patients=3, seed=77, duplicate_fraction=0)
    added = sorted((archive / "new").rglob("*"))
    return root, database, {"modified": modified, "deleted": deleted, "added": added}


def test_a_small_reload_merges_within_a_small_memory_limit(loaded):
    root, database, changed = loaded
    assert database.stat().st_size > 12 << 20  # the warehouse the merge meets
    report_path = root / "incremental.json"
    done = _cli(
        "run", str(root / "archive"), "--workers", "0", "--out", str(root / "pq"),
        "--target", f"duckdb:///{database}", "--incremental",
        "--duckdb-memory-limit", "32MB", "--report", str(report_path), cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    added = [p for p in changed["added"] if p.is_file()]
    now = [p for p in (root / "archive").rglob("*") if p.is_file()]
    assert report["listed"] == len(now)
    assert report["unchanged"] == len(now) - len(added) - len(changed["modified"])
    assert report["deleted"]["objects"] == len(changed["deleted"])
    assert report["validation_passed"], report["validation_failed"]
    # The nightly phases are timed as they ran, not left at zero.
    phases = report["phases"]
    assert phases["known_objects"] > 0 and phases["deletions"] > 0, phases
    assert phases["listing"] > 0, phases
    with duckdb.connect(str(database), read_only=True) as con:
        amended = con.execute(
            "SELECT count(*) FROM dicom_series WHERE series_description LIKE 'amended %'"
        ).fetchone()[0]
    # A series takes the attributes of its newest object: every amended one's.
    series = {pydicom.dcmread(p).SeriesInstanceUID for p in changed["modified"]}
    assert amended == len(series)


def test_a_limit_too_small_is_one_line_and_resume_completes(loaded):
    root, database, _ = loaded
    args = [
        "run", str(root / "archive"), "--workers", "0", "--out", str(root / "pq"),
        "--target", f"duckdb:///{database}", "--run-id", "tight",
    ]  # fmt: skip
    tight = _cli(*args, "--duckdb-memory-limit", "1MB", cwd=root)
    assert tight.returncode == 1, tight.stderr
    assert "Traceback" not in tight.stderr and tight.stderr.strip().count("\n") == 0, tight.stderr
    assert "--duckdb-memory-limit 1MB" in tight.stderr
    assert "--resume --run-id tight" in tight.stderr
    resumed = _cli(*args, "--resume", "--report", str(root / "tight.json"), cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((root / "tight.json").read_text())
    assert report["validation"]["accounting"]["balanced"] and report["validation_passed"]
