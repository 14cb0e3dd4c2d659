"""What pydicom warns about an object belongs to that object: a PARSE_WARNING row,
counted in the report, never a line on the terminal."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import pydicom
import pytest

from loader.jobs.library_warnings import captured, summary

CLI = [sys.executable, "-m", "loader"]


def _pydicom_warnings(path: Path) -> set[str]:
    """What pydicom itself warns reading `path` (its reference reading), by message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A file pydicom refuses: what it warned before refusing still counts.
        with contextlib.suppress(Exception):
            pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return {str(w.message) for w in caught}


@pytest.fixture(scope="module")
def loaded(real_archive: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real files run through the CLI as a user runs it, output captured."""
    folder = tmp_path_factory.mktemp("warned")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_LOADER_")}
    done = subprocess.run(
        [*CLI, "run", str(real_archive), "--target", f"duckdb:///{folder / 'w.duckdb'}",
         "--out", str(folder / "pq"), "--workers", "0", "--report", str(folder / "r.json")],
        capture_output=True, text=True, timeout=600, env=env, cwd=folder,
    )  # fmt: skip
    return done, folder


def test_a_run_over_real_files_prints_only_its_summary(loaded):
    done, _ = loaded
    assert done.returncode in (0, 3), done.stderr
    assert done.stderr.strip() == "" or done.stderr.startswith("validation failed"), done.stderr
    title, *table = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    assert title.startswith("dicom-loader run ")
    assert all(line[0] in "┌│├└" for line in table), done.stdout  # the summary, nothing else
    assert "objects listed" in done.stdout


def test_each_warning_is_its_objects_row_as_pydicom_words_it(loaded, real_archive):
    _, folder = loaded
    with duckdb.connect(str(folder / "w.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT file_path, error_message FROM dicom_ingestion_errors "
            "WHERE error_category = 'PARSE_WARNING'"
        ).fetchall()
    assert rows, "pydicom warns about some real files (SC_rgb_jpeg.dcm)"
    assert len({path for path, _ in rows}) == len(rows)  # one row per object
    for path, message in rows:
        said = _pydicom_warnings(Path(path))
        assert said and set(message.split("; ")) <= said, (path, message, said)
    report = json.loads((folder / "r.json").read_text())
    assert report["errors"]["PARSE_WARNING"] == len(rows)


def test_captured_takes_both_channels_and_restores_them():
    logger = logging.getLogger("pydicom")
    before = (list(logger.handlers), logger.propagate)
    with captured() as said:
        logger.warning("logged %s", "once")
        warnings.warn("warned once", UserWarning, stacklevel=1)
        logger.warning("warned once")  # pydicom says the same words both ways
    assert said == ["logged once", "warned once", "warned once"]
    assert summary(said) == "logged once; warned once" and summary([]) is None
    assert (list(logger.handlers), logger.propagate) == before
