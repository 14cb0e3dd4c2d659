"""Secrets given to the CLI never reach its output, its reports, its files or its tables.

The command runs as users run it (a subprocess), with a Snowflake password and a
private-key passphrase in the target and a storage secret in the storage options,
against a fakesnow server and a moto S3 server; then every byte it printed or
wrote is searched, for a run that works and for runs that fail.
"""

import html
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import s3fs

from loader.synth import synthesize
from loader.warehouse.snowflake import SnowflakeWarehouse

PASSWORD = "Pw-7c1e9b0f-never-print"
PASSPHRASE = "Kp-a41d55e2-never-print"
STORAGE_SECRET = "Ss-93be07aa-never-print"
SECRETS = (PASSWORD, PASSPHRASE, STORAGE_SECRET)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loader", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _storage_flags(options: dict, endpoint: str | None = None) -> list[str]:
    return [
        *("--storage-option", f"key={options['key']}"),
        f"--storage-option=secret={STORAGE_SECRET}",  # the `=` form
        *("--storage-option", f"endpoint_url={endpoint or options['endpoint_url']}"),
        *("--storage-option", 'config_kwargs={"retries": {"max_attempts": 1}}'),
    ]


def _with_secrets(target: str) -> str:
    user_info = re.match(r"snowflake://([^:]+):([^@]+)@", target)
    assert user_info
    target = target.replace(f":{user_info.group(2)}@", f":{PASSWORD}@", 1)
    return f"{target}&private_key_file_pwd={PASSPHRASE}"


def _leaks(*texts: str) -> list[str]:
    return [secret for secret in SECRETS for text in texts if secret in text]


def _files_text(root: Path) -> str:
    """Every file under `root` as text; Parquet decoded (its pages are compressed)."""
    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            texts.append(repr(pq.read_table(path).to_pylist()))
        else:
            texts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(texts)


def test_secrets_reach_no_output_report_file_or_table(s3, snowflake_target, tmp_path):
    options, _ = s3
    archive = tmp_path / "archive"
    synthesize(archive, patients=2, seed=4, bad_fraction=0.1)
    bucket = f"sec-{uuid.uuid4().hex[:8]}"
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    fs.put(str(archive) + "/", f"{bucket}/archive/", recursive=True)
    target = _with_secrets(snowflake_target)
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    page = tmp_path / "report.html"
    log = tmp_path / "run.log"
    done = _cli(
        "--log-file", str(log),
        "run", f"s3://{bucket}/archive", "--out", str(out), "--target", target,
        "--workers", "1", "--cluster-min-objects", "0", "--dashboard", "--report", str(report),
        "--report", str(page), *_storage_flags(options),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Dask dashboard" in done.stderr and "objects listed" in done.stdout
    shown = html.unescape(page.read_text())  # the page as a browser shows it
    assert "--storage-option=secret=***" in shown and "private_key_file_pwd=***" in shown
    assert not _leaks(done.stdout, done.stderr, report.read_text(), _files_text(out), shown)
    assert not _leaks(log.read_text())
    assert '"READ_ERROR"' not in report.read_text()
    warehouse = SnowflakeWarehouse(target)
    try:
        for table in ("dicom_ingestion_errors", "dicom_load_history", "dicom_file_location"):
            rows = warehouse.query(f"SELECT * FROM {table}")
            assert rows and not _leaks(repr(rows)), table
    finally:
        warehouse.close()
    validated = _cli("validate", "--target", target)
    assert validated.returncode == 0 and not _leaks(validated.stdout, validated.stderr)
    checked = _cli(
        "doctor", "--target", target, "--source", f"s3://{bucket}/archive",
        *_storage_flags(options),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]
    assert "storage options (key, secret)" in checked.stdout
    assert not _leaks(checked.stdout, checked.stderr)


def test_secrets_stay_out_of_failures(s3, snowflake_target, tmp_path):
    options, _ = s3
    archive = tmp_path / "archive"
    synthesize(archive, patients=1, seed=4)
    target = _with_secrets(snowflake_target)
    closed = re.sub(r"port=\d+", "port=9", target).replace("network_timeout=5", "network_timeout=1")
    unreachable_store = _cli(
        "run", "s3://no-such-bucket/archive", "--out", str(tmp_path / "a"), "--target", "none",
        "--workers", "0", *_storage_flags(options, "http://127.0.0.1:9"),
    )  # fmt: skip
    unreachable_warehouse = _cli(
        "run", str(archive), "--out", str(tmp_path / "b"), "--target", closed + "&login_timeout=2",
        "--workers", "0", "--report", str(tmp_path / "b.json"),
    )  # fmt: skip
    bad_identifier = _cli(
        "validate", "--target", target.replace("/DICOM/", "/DICOM;DROP/"),
    )  # fmt: skip
    unreachable_doctor = _cli(
        "doctor", "--target", closed + "&login_timeout=2", "--source", "s3://no-such-bucket/a",
        *_storage_flags(options, "http://127.0.0.1:9"),
    )  # fmt: skip
    for failed in (unreachable_store, unreachable_warehouse, bad_identifier, unreachable_doctor):
        assert failed.returncode != 0
        assert "Traceback" not in failed.stderr, failed.stderr[-2000:]
        assert not _leaks(failed.stdout, failed.stderr), failed.stderr[-2000:]
    assert not _leaks(_files_text(tmp_path / "a"), _files_text(tmp_path / "b"))
