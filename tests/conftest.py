"""Shared fixtures: pydicom's real test files, generated archives, pydicom settings."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_files

from loader.synth import SynthSummary, synthesize

# The GCS emulator speaks JSON over HTTP only; gcsfs's experimental gRPC bucket-type
# probe would wait a minute per bucket for it. Set before gcsfs is first imported.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
REPO = Path(__file__).resolve().parent.parent
AZURITE_KEY = (  # Azurite's published development-account key, not a secret
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process=None, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# pydicom's test files: those in its wheel and those of `pydicom-data` (installed by
# the dev extra, never downloaded). The suite must cover at least this many, so that a
# missing package or a lost file fails here rather than shrinking the tests unseen.
REAL_FILES_AT_LEAST = 262

# The real files the loader refuses, each with its category and why, known from the
# file itself: test_decode checks that exactly these are refused, as said, and that
# pydicom (without force) refuses the non-DICOM ones too.
REJECTED_REAL_FILES = {
    "FileInfo.txt": ("NOT_DICOM", "text: the charset files' index"),
    "README.txt": ("NOT_DICOM", "text"),
    "README": ("NOT_DICOM", "text"),
    "crayons.icc": ("NOT_DICOM", "an ICC colour profile"),
    "rtplan.dump": ("NOT_DICOM", "text: pydicom's dump of rtplan.dcm"),
    "rtstruct.dump": ("NOT_DICOM", "text: pydicom's dump of rtstruct.dcm"),
    "test1.json": ("NOT_DICOM", "DICOM JSON, not a Part 10 object"),
    "test_PN.json": ("NOT_DICOM", "DICOM JSON, not a Part 10 object"),
    "zipMR.gz": ("NOT_DICOM", "gzip of MR_small.dcm"),
    "no_meta.dcm": ("NOT_DICOM", "no preamble, no file meta, a stray byte before (0008,0005)"),
    "rtplan_truncated.dcm": ("TRUNCATED", "rtplan.dcm cut short inside its header"),
}


def real_files() -> list[str]:
    """Every file pydicom ships for its tests (DICOM or not), charset files included."""
    found = {f for f in get_testdata_files() + get_charset_files() if os.path.isfile(f)}
    return sorted(found)


def loadable_real_files() -> list[str]:
    """The real files the loader must read: all but REJECTED_REAL_FILES."""
    return [p for p in real_files() if os.path.basename(p) not in REJECTED_REAL_FILES]


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
    """A fakesnow server on 127.0.0.1, reached by the real snowflake-connector-python,
    with what it lacks of Snowflake supplied server-side (tests/fakesnow_gaps.py)."""
    import fakesnow
    import fakesnow_gaps

    serve = fakesnow.server  # the function, before the gaps layer imports the module
    fakesnow_gaps.install()
    with serve() as connection:
        yield connection


@pytest.fixture
def snowflake_target(fakesnow_server, request):
    """A --target URL (password included, as users may type it) for a fresh schema."""
    import snowflake.connector

    # Reached through request.getfixturevalue, a test escapes the collection rule
    # below: it must say it starts a server, or `make check` would run it.
    assert request.node.get_closest_marker("server"), f"{request.node.name}: mark it server"

    schema = "S_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60].upper()
    params = {k: v for k, v in fakesnow_server.items() if k != "session_parameters"}
    with snowflake.connector.connect(**params) as con:
        con.cursor().execute("CREATE DATABASE IF NOT EXISTS DICOM")
        con.cursor().execute(f"CREATE OR REPLACE SCHEMA DICOM.{schema}")
    return (
        f"snowflake://{params['user']}:{params['password']}@{params['account']}/DICOM/{schema}"
        f"?host={params['host']}&port={params['port']}&protocol=http&network_timeout=5"
        "&warehouse=TEST_WH"
    )


def as_admin(target: str, *statements: str) -> None:
    """Run what an account administrator would, before a deploy or a doctor."""
    from loader.jobs.settings import Target
    from loader.jobs.targets import open_warehouse

    warehouse = open_warehouse(Target.parse(target))
    try:
        for statement in statements:
            warehouse.query(statement)
    finally:
        warehouse.close()


class S3Traffic:
    """Counts object reads on the server side and injects failures and holds on demand.

    A held read gets no answer until the test calls `release()` (reset does too): a
    client's timeout then fires for certain, with no race between a sleep here and a
    timeout there. A gate (`gate = n`) holds the first reads until n of them wait
    together, then answers them all: a client that never keeps n reads in flight
    stays held until `release()`, so a test of concurrency waits on no timer.
    `throttle_first` answers the first reads with S3's 503 SlowDown, `fail_lists`
    every listing request."""

    def __init__(self, app):
        self.app = app
        self.released = threading.Event()
        self.reset()

    def release(self) -> None:
        """Answer every held read (they fail or are ignored: their client gave up)."""
        self.released.set()
        if gate := getattr(self, "_gate_open", None):
            gate.set()

    def reset(self) -> None:
        self.release()
        self.released = threading.Event()
        self.gets: dict[str, int] = {}  # reads answered, per object
        self.attempts: dict[str, int] = {}  # reads asked for, answered or not
        self.bytes: dict[str, int] = {}
        self.fail_every = 0
        self.fail_lists = False  # every listing request answered 503
        self.always_fail: set[str] = set()
        self.hold_every = 0  # every n-th read is held until release()
        self.always_hold: set[str] = set()
        self.list_delay = 0.0  # seconds each listing request takes
        self.lists_in_flight = self.max_lists_in_flight = 0
        self.lists = 0  # listing requests answered (LIST pages)
        self.read_delay = 0.0  # seconds before each read is answered
        self.gate = 0  # the first reads wait until this many wait together
        self.throttle_first = 0  # the first reads are answered 503 SlowDown
        self.reads_in_flight = self.max_reads_in_flight = 0
        self.in_flight_at_arrival: list[int] = []  # per read, in arrival order
        self._waiting = 0
        self._gate_open = threading.Event()
        self._lock = threading.Lock()
        self._seen = 0

    def _through_gate(self) -> None:
        with self._lock:
            if not self.gate or self._gate_open.is_set():
                return
            self._waiting += 1
            if self._waiting >= self.gate:
                self._gate_open.set()
        self._gate_open.wait(120)  # release() opens it too; a bound for a forgetful test

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        reading = (
            environ["REQUEST_METHOD"] == "GET"
            and path.count("/") >= 2
            and not (environ.get("QUERY_STRING"))
        )
        if reading:
            with self._lock:
                self._seen += 1
                seen = self._seen
                self.attempts[path] = self.attempts.get(path, 0) + 1
                self.reads_in_flight += 1
                self.max_reads_in_flight = max(self.max_reads_in_flight, self.reads_in_flight)
                self.in_flight_at_arrival.append(self.reads_in_flight)
            try:
                return self._read(environ, start_response, path, seen)
            finally:
                with self._lock:
                    self.reads_in_flight -= 1
        return self._answer(environ, start_response, path, reading)

    def _read(self, environ, start_response, path: str, seen: int):
        self._through_gate()
        if self.read_delay:
            time.sleep(self.read_delay)
        if seen <= self.throttle_first:
            start_response("503 Slow Down", [("Content-Type", "application/xml")])
            return [b"<Error><Code>SlowDown</Code><Message>throttled</Message></Error>"]
        failing = any(part in path for part in self.always_fail) or (
            self.fail_every and seen % self.fail_every == 0
        )
        if failing:
            start_response("503 Slow Down", [("Content-Type", "application/xml")])
            return [b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"]
        if any(part in path for part in self.always_hold) or (
            self.hold_every and seen % self.hold_every == 0
        ):
            self.released.wait(120)  # a bound only for a test that forgets release()
        return self._answer(environ, start_response, path, True)

    def _answer(self, environ, start_response, path: str, reading: bool):
        listing = "list-type" in environ.get("QUERY_STRING", "")
        if listing and self.fail_lists:
            start_response("503 Slow Down", [("Content-Type", "application/xml")])
            return [b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"]
        if listing:
            self.lists += 1
            self.lists_in_flight += 1
            self.max_lists_in_flight = max(self.max_lists_in_flight, self.lists_in_flight)
            time.sleep(self.list_delay)
        try:
            body = b"".join(self.app(environ, start_response))
        finally:
            if listing:
                self.lists_in_flight -= 1
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
        # botocore's configuration is the loader's own defaults (storage.S3_TIMEOUTS):
        # what users get, retries included.
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


@pytest.fixture(scope="session")
def gcs_server():
    """gcp-storage-emulator on 127.0.0.1 (GCS's JSON API over real HTTP), for gcsfs."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield {"endpoint_url": f"http://127.0.0.1:{port}", "token": "anon", "project": "test"}
    finally:
        server.stop()


def azurite_connection(root: str) -> str:
    """The connection string of Azurite's development account at `root` (http://HOST:PORT)."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={root}/devstoreaccount1;"
    )


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory):
    """Azurite's Blob service on 127.0.0.1, for adlfs (installed by `npm ci`)."""
    import subprocess

    binary = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail(f"Azurite is missing ({binary}): run `npm ci` in {REPO} (make test does)")
    port = free_port()
    data = tmp_path_factory.mktemp("azurite")
    log = (data / "azurite.log").open("w")
    process = subprocess.Popen(
        [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
         str(data), "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield {"connection_string": azurite_connection(f"http://127.0.0.1:{port}")}
    finally:
        process.kill()  # its data folder is temporary; a graceful stop waits on clients
        process.wait()
        log.close()


ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


@contextlib.contextmanager
def running_orthanc(folder: Path) -> Iterator[str]:
    """Orthanc (Debian's `orthanc` and `orthanc-dicomweb`, installed by `make test`)
    on 127.0.0.1 with its storage in `folder`; yields its HTTP root."""
    import json
    import subprocess
    import urllib.request

    missing = [p for p in (ORTHANC, ORTHANC_DICOMWEB) if not os.path.exists(p)]
    if missing:
        pytest.fail(
            f"Orthanc is missing ({', '.join(missing)}): `apt-get install orthanc "
            "orthanc-dicomweb` (make test does)"
        )
    port, dicom_port = free_port(), free_port()
    config = {
        "Name": "dicom-loader-tests",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpsVerifyPeers": False,
        "Plugins": [ORTHANC_DICOMWEB],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("w")
    process = subprocess.Popen(
        [ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
    )
    root = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process)
        deadline = time.time() + 30
        while True:  # the port opens before the plugins have registered their routes
            try:
                with urllib.request.urlopen(f"{root}/dicom-web/studies", timeout=5):
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield root
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def stored_in_orthanc(orthanc: str, files: list[Path]) -> str:
    """`files` stored in Orthanc (its REST API); the DICOMweb source URL."""
    import urllib.request

    for path in files:
        request = urllib.request.Request(
            f"{orthanc}/instances", data=path.read_bytes(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200, path
    return "dicomweb+" + orthanc.removeprefix("http://").join(("http://", "/dicom-web"))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tests' PACS: Orthanc with its DICOMweb plugin; yields its HTTP root."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as root:
        yield root


# Tests that start a server (a fixture above, asked for by name or by a parameter) are
# marked `server`. `make check` runs the others but those marked `slow`, unit and
# DuckDB tests (Dask worker processes included), for the edit-test loop.
SERVER_FIXTURES = frozenset(
    {
        "fakesnow_server",
        "snowflake_target",
        "s3_server",
        "s3",
        "gcs_server",
        "azure_server",
        "orthanc",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        named = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            named |= {v for v in callspec.params.values() if isinstance(v, str)}
        if SERVER_FIXTURES & named:
            item.add_marker(pytest.mark.server)


@pytest.fixture(params=["duckdb", pytest.param("snowflake", marks=pytest.mark.server)])
def empty_model(request, tmp_path):
    """An empty model in either warehouse: embedded DuckDB, or Snowflake's connector
    against the fakesnow server."""
    from loader.jobs.settings import Target
    from loader.jobs.targets import open_warehouse

    if request.param == "duckdb":
        target = f"duckdb:///{tmp_path / 'w.duckdb'}"
    else:
        target = request.getfixturevalue("snowflake_target")
    opened = open_warehouse(Target.parse(target))
    opened.create_model()
    yield opened
    opened.close()
