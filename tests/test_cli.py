"""The dicom-loader command as users run it: a subprocess, real files, real exit codes."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

CLI = [sys.executable, "-m", "loader"]


def dicom_loader(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=check, timeout=300)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
        digest.update(str(int(path.stat().st_mtime)).encode())
    return digest.hexdigest()


def test_synth_is_deterministic(tmp_path):
    for name in ("a", "b"):
        dicom_loader(
            "synth", str(tmp_path / name), "--patients", "6", "--seed", "5", "--bad-fraction", "0.1"
        )
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_run_report_and_exit_code(tmp_path):
    archive = tmp_path / "archive"
    summary = json.loads(
        dicom_loader(
            "synth", str(archive), "--patients", "8", "--seed", "2", "--bad-fraction", "0.1"
        ).stdout
    )
    report_path = tmp_path / "report.json"
    done = dicom_loader(
        "run",
        str(archive),
        "--out",
        str(tmp_path / "pq"),
        "--target",
        f"duckdb:///{tmp_path / 'w.duckdb'}",
        "--workers",
        "0",
        "--run-id",
        "cli",
        "--report",
        str(report_path),
    )
    assert "listed = loaded + duplicates + errors" in done.stdout
    report = json.loads(report_path.read_text())
    for key in (
        "run_id",
        "listed",
        "loaded",
        "new_instances",
        "duplicates",
        "errors",
        "rows",
        "bytes_read",
        "bytes_listed",
        "seconds",
        "files_per_second",
        "validation",
    ):
        assert key in report
    assert report["run_id"] == "cli"
    assert report["listed"] == summary["files"]
    assert report["loaded"] == summary["instances"]
    assert sum(v for k, v in report["errors"].items() if k in summary["bad"]) == sum(
        summary["bad"].values()
    )
    assert report["validation"]["accounting"]["balanced"] is True
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    (uid,) = con.execute(
        "SELECT metadata->>'StudyInstanceUID' FROM dicom_raw "
        "WHERE sop_instance_uid IS NOT NULL LIMIT 1"
    ).fetchone()
    assert uid.startswith("2.25.")
    validated = dicom_loader("validate", "--target", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert json.loads(validated.stdout)["total_records"] == summary["instances"]


@pytest.mark.slow  # over 4 s: make test only
def test_load_written_run_into_another_target(tmp_path):
    archive = tmp_path / "archive"
    dicom_loader("synth", str(archive), "--patients", "3")
    written = dicom_loader(
        "run",
        str(archive),
        "--out",
        str(tmp_path / "pq"),
        "--target",
        "none",
        "--workers",
        "1",
        "--cluster-min-objects",
        "0",
        "--dashboard",
        "--run-id",
        "keep",
    )
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", written.stderr)
    dicom_loader(
        "load",
        "--run-id",
        "keep",
        "--out",
        str(tmp_path / "pq"),
        "--target",
        f"duckdb:///{tmp_path / 'later.duckdb'}",
    )
    con = duckdb.connect(str(tmp_path / "later.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM dicom_instance").fetchone()[0] > 0
    con.close()
    again = dicom_loader(
        "run",
        str(archive),
        "--out",
        str(tmp_path / "pq"),
        "--target",
        f"duckdb:///{tmp_path / 'later.duckdb'}",
        "--workers",
        "0",
        "--incremental",
        "--report",
        str(tmp_path / "again.json"),
    )
    report = json.loads((tmp_path / "again.json").read_text())
    assert report["unchanged"] == report["loaded"] + report["duplicates"] + report["unchanged"]
    assert report["unchanged"] > 0 and "unchanged (skipped)" in again.stdout


def test_scan_profiles_without_loading(tmp_path):
    archive = tmp_path / "archive"
    summary = json.loads(
        dicom_loader(
            "synth", str(archive), "--patients", "5", "--seed", "9", "--duplicate-fraction", "0"
        ).stdout
    )
    profile = json.loads(dicom_loader("scan", str(archive)).stdout)
    assert profile["objects"] == summary["files"]
    assert profile["instances"] == summary["instances"]
    assert profile["studies"] == summary["studies"]
    assert profile["modality"] == summary["modalities"] | {}
    assert not list(tmp_path.glob("*.duckdb"))


def _one_line_before_any_work(done: subprocess.CompletedProcess, words: str) -> None:
    """Exit 1 with one `error:` line naming the problem: no traceback, no cluster."""
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert words in lines[0]
    assert "Traceback" not in done.stderr and "Scheduler" not in done.stderr


def test_bad_source_fails_with_message(tmp_path):
    done = dicom_loader("run", str(tmp_path / "missing"), "--workers", "2", check=False)
    _one_line_before_any_work(done, "neither a folder nor a manifest")


def test_unwritable_out_and_target_fail_before_work(tmp_path):
    archive = tmp_path / "archive"
    dicom_loader("synth", str(archive), "--patients", "1")
    (tmp_path / "a-file").write_text("not a folder")
    out = dicom_loader(
        "run",
        str(archive),
        "--workers",
        "2",
        "--target",
        "none",
        "--out",
        str(tmp_path / "a-file" / "out"),
        check=False,
    )
    _one_line_before_any_work(out, "--out")
    target = dicom_loader(
        "run",
        str(archive),
        "--workers",
        "2",
        "--out",
        str(tmp_path / "pq"),
        "--target",
        f"duckdb:///{tmp_path / 'a-file' / 'w.duckdb'}",
        check=False,
    )
    _one_line_before_any_work(target, "--target")


def test_bad_target_fails_before_work(tmp_path):
    done = dicom_loader("run", str(tmp_path), "--target", "postgres://x", check=False)
    assert done.returncode == 1
    assert "unknown target" in done.stderr


@pytest.fixture(scope="module")
def validated_warehouse(tmp_path_factory) -> Path:
    """A DuckDB warehouse loaded by `run` from a synthetic archive, that `validate`
    passes: made once, each tampering test works on a copy of it."""
    tmp_path = tmp_path_factory.mktemp("validated")
    archive, db = tmp_path / "archive", tmp_path / "w.duckdb"
    dicom_loader("synth", str(archive), "--patients", "3", "--seed", "8")
    dicom_loader(
        "run",
        str(archive),
        "--workers",
        "0",
        "--out",
        str(tmp_path / "pq"),
        "--target",
        f"duckdb:///{db}",
    )
    assert dicom_loader("validate", "--target", f"duckdb:///{db}").returncode == 0
    return db


def _tampered(validated: Path, tmp_path: Path, tampering: str) -> subprocess.CompletedProcess:
    """`validate` of a copy of the validated warehouse after `tampering` with it."""
    db = tmp_path / validated.name
    shutil.copy(validated, db)  # closed by its commands: one file, nothing in a WAL
    con = duckdb.connect(str(db))
    con.execute(tampering)
    con.close()
    return dicom_loader("validate", "--target", f"duckdb:///{db}", check=False)


def test_validate_fails_when_the_session_reads_masked_phi(validated_warehouse, tmp_path):
    """A warehouse whose PHI the session reads masked (the loading role lacks the PHI
    role) fails validation, exit 3, naming the check: its MERGE would compare and
    write masked values."""
    refused = _tampered(
        validated_warehouse, tmp_path, "UPDATE dicom_patient SET patient_name = '***MASKED***'"
    )
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["masked_phi_rows"] > 0


@pytest.mark.parametrize(
    ("tampering", "check"),
    [
        (
            "DELETE FROM dicom_series WHERE series_key IN (SELECT series_key FROM dicom_series "
            "LIMIT 1)",
            "orphan_instances",
        ),
        ("DELETE FROM dicom_patient", "orphan_studies"),
        ("INSERT INTO dicom_study SELECT * FROM dicom_study LIMIT 1", "duplicate_natural_keys"),
    ],
)
def test_validate_fails_on_a_tampered_warehouse(validated_warehouse, tmp_path, tampering, check):
    """Orphans and duplicate natural keys fail validation: exit 3, naming the check."""
    refused = _tampered(validated_warehouse, tmp_path, tampering)
    assert refused.returncode == 3
    assert json.loads(refused.stdout)[check] > 0
    assert f"validation failed: {check}" in " ".join(refused.stderr.split())


def test_a_run_whose_accounting_does_not_balance_exits_3(tmp_path):
    """A run's report names the failed checks; unbalanced accounting is one. A
    tampered ledger (a shard record claiming one more object than it holds) makes
    the load's accounting not balance."""
    archive, out = tmp_path / "archive", tmp_path / "pq"
    dicom_loader("synth", str(archive), "--patients", "2", "--seed", "9")
    dicom_loader(
        "run",
        str(archive),
        "--workers",
        "0",
        "--out",
        str(out),
        "--run-id",
        "t",
        "--target",
        "none",
    )
    record = next((out / "_ledger" / "run_id=t").glob("shard-*.json"))
    document = json.loads(record.read_text())
    document["listed"] += 1
    record.write_text(json.dumps(document))
    report = tmp_path / "report.json"
    done = dicom_loader(
        "load",
        "--run-id",
        "t",
        "--out",
        str(out),
        "--report",
        str(report),
        "--target",
        f"duckdb:///{tmp_path / 'w.duckdb'}",
        check=False,
    )
    assert done.returncode == 3
    written = json.loads(report.read_text())
    assert written["validation_failed"] == ["accounting"]
    assert written["validation"]["accounting"]["balanced"] is False


@pytest.mark.slow  # over 4 s: make test only
def test_quiet_by_default_and_dask_lines_with_verbose(tmp_path):
    """A run shows its summary, not Dask's lines about nannies and workers (those come
    with -v); synth does not log the bad values it writes on purpose."""
    archive = tmp_path / "archive"
    made = dicom_loader("synth", str(archive), "--patients", "4", "--bad-fraction", "0.3")
    assert "Invalid value" not in made.stderr and made.stderr.strip() == ""
    quiet = dicom_loader(
        "run", str(archive), "--workers", "2", "--cluster-min-objects", "0",
        "--out", str(tmp_path / "a"), "--target", "none",
    )  # fmt: skip
    assert "listed = loaded + duplicates + errors" in quiet.stdout
    assert "Nanny" not in quiet.stderr and "Register worker" not in quiet.stderr
    loud = dicom_loader(
        "-v",
        "run",
        str(archive),
        "--workers",
        "2",
        "--cluster-min-objects",
        "0",
        "--out",
        str(tmp_path / "b"),
        "--target",
        "none",
    )
    assert "Nanny" in loud.stderr


@pytest.mark.slow  # over 4 s: make test only
def test_a_log_file_keeps_dask_lines_from_every_process_while_the_terminal_is_quiet(tmp_path):
    archive = tmp_path / "archive"
    dicom_loader("synth", str(archive), "--patients", "3")
    log = tmp_path / "out" / "run.log"
    quiet = dicom_loader(
        "--log-file", str(log), "run", str(archive), "--workers", "2",
        "--cluster-min-objects", "0", "--out", str(tmp_path / "out"), "--target", "none",
    )  # fmt: skip
    assert "listed = loaded + duplicates + errors" in quiet.stdout
    assert "Nanny" not in quiet.stderr and "Start worker" not in quiet.stderr
    lines = log.read_text().splitlines()
    assert any("Start Nanny" in line for line in lines)
    assert sum("Start worker" in line for line in lines) == 2  # from each worker process
    # A record's first line carries its process id; a message may run over more lines
    # (a worker's warning with its traceback, under load).
    records = [re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ (\d+) ", line) for line in lines]
    assert len({r.group(1) for r in records if r}) >= 3  # the driver's and two workers'
    (tmp_path / "a-file").write_text("")
    unwritable = dicom_loader(
        "--log-file", str(tmp_path / "a-file" / "run.log"), "run", str(archive), check=False
    )
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("error: cannot write")
    assert len(unwritable.stderr.strip().splitlines()) == 1
