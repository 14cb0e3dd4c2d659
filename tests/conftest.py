"""Shared fixtures: pydicom's real test files, generated archives, pydicom settings."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_files

from loader.synth import SynthSummary, synthesize


def real_files() -> list[str]:
    """Every file pydicom ships for its tests (DICOM or not), charset files included."""
    found = {f for f in get_testdata_files() + get_charset_files() if os.path.isfile(f)}
    return sorted(found)


def real_file(name: str) -> str:
    for path in real_files():
        if os.path.basename(path) == name:
            return path
    raise FileNotFoundError(name)


@pytest.fixture(autouse=True)
def _restore_pydicom_settings():
    """Tests must not leak changes to pydicom's global configuration."""
    settings = pydicom.config.settings
    saved = (settings.reading_validation_mode, settings.writing_validation_mode)
    yield
    settings.reading_validation_mode, settings.writing_validation_mode = saved


@pytest.fixture(scope="session")
def real_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a copy of every pydicom test file (names kept unique)."""
    root = tmp_path_factory.mktemp("pydicom-files")
    for path in real_files():
        parent = Path(path).parent.name
        target = root / parent / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(path).read_bytes())
    return root


@pytest.fixture(scope="session")
def synth_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    """A generated archive with every object type, duplicates and bad files."""
    root = tmp_path_factory.mktemp("synth") / "archive"
    summary = synthesize(root, patients=24, seed=11, bad_fraction=0.05)
    return root, summary


@pytest.fixture(scope="session")
def fakesnow_server():
    """A fakesnow server on 127.0.0.1, reached by the real snowflake-connector-python."""
    import fakesnow

    with fakesnow.server() as connection:
        yield connection


@pytest.fixture
def snowflake_target(fakesnow_server, request):
    """A --target URL (password included, as users may type it) for a fresh schema."""
    import snowflake.connector

    schema = "S_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60].upper()
    params = {k: v for k, v in fakesnow_server.items() if k != "session_parameters"}
    with snowflake.connector.connect(**params) as con:
        con.cursor().execute("CREATE DATABASE IF NOT EXISTS DICOM")
        con.cursor().execute(f"CREATE OR REPLACE SCHEMA DICOM.{schema}")
    return (
        f"snowflake://{params['user']}:{params['password']}@{params['account']}/DICOM/{schema}"
        f"?host={params['host']}&port={params['port']}&protocol=http&network_timeout=5"
        "&emulator=fakesnow"
    )
