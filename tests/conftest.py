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


class S3Traffic:
    """Counts object reads on the server side and injects failures on demand."""

    def __init__(self, app):
        self.app = app
        self.reset()

    def reset(self) -> None:
        self.gets: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.fail_every = 0
        self.always_fail: set[str] = set()
        self._seen = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        reading = (
            environ["REQUEST_METHOD"] == "GET"
            and path.count("/") >= 2
            and not (environ.get("QUERY_STRING"))
        )
        if reading:
            self._seen += 1
            failing = any(part in path for part in self.always_fail) or (
                self.fail_every and self._seen % self.fail_every == 0
            )
            if failing:
                start_response("503 Slow Down", [("Content-Type", "application/xml")])
                return [b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"]
        body = b"".join(self.app(environ, start_response))
        if reading:
            self.gets[path] = self.gets.get(path, 0) + 1
            self.bytes[path] = self.bytes.get(path, 0) + len(body)
        return [body]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (a real HTTP endpoint), with server-side counters."""
    import threading

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    traffic = S3Traffic(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, traffic, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    options = {
        "key": "testing",
        "secret": "testing",
        "endpoint_url": f"http://127.0.0.1:{server.server_port}",
        # No botocore retries, so the loader's own retry policy is what is tested.
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    try:
        yield options, traffic
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def s3(s3_server):
    options, traffic = s3_server
    traffic.reset()
    return options, traffic
