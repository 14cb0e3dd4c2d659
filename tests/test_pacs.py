"""PACS sources against a real PACS (Orthanc with its DICOMweb plugin) and DICOM JSON
exports: the same archive loaded from files, from the PACS and from its exports
gives the same tables apart from storage columns."""

from __future__ import annotations

import base64
import gzip
import http.server
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pydicom
import pytest

from loader.core.errors import ConfigError, ListingError
from loader.dicom.decode import decode_elements, decode_header
from loader.dicom.from_json import decode_json, instances_in
from loader.headers.dataset_bytes import from_pydicom
from loader.headers.reader import read_local
from loader.jobs.pipeline import run
from loader.jobs.scan import scan
from loader.jobs.settings import RunSettings, Target
from loader.sources.dicomweb import with_filters
from loader.synth import synthesize
from tests.conftest import loadable_real_files, real_file, running_orthanc, stored_in_orthanc

REAL = (
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "chrFren.dcm",
)
# Where an object is and how it was encoded: expected to differ between sources.
STORAGE_COLUMNS = frozenset(
    {
        "file_path",
        "storage_uri",
        "storage_provider",
        "storage_container",
        "object_key",
        "location_key",
        "file_size_bytes",
        "header_bytes",
        "pixel_data_offset",
        "pixel_data_length",
        # Where a frame's bytes are in a Part 10 file; a PACS instance has none.
        "frame_offset",
        "frame_length",
        "frame_offset_source",
        "frame_offset_missing",
        "checksum",
        "transfer_syntax_uid",
        "ingestion_source",
        "modified_at",
        "ingested_at",
        "_source_order",
        "_run_id",
        "_loaded_at",
        "_shard_id",
    }
)
# Bookkeeping of the run, not the archive's content.
RUN_TABLES = frozenset({"dicom_load_history", "dicom_ingestion_errors"})
# One row per series from whichever instance wins by source order (newest object,
# then URL: storage facts); the generated CT instances carry per-instance dose values.
BY_KEY_ONLY = frozenset({"dicom_dose_summary"})


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated archive plus real files, one object per SOP Instance UID."""
    root = tmp_path_factory.mktemp("pacs") / "archive"
    synthesize(root, patients=3, seed=23, duplicate_fraction=0)
    (root / "real").mkdir()
    for name in REAL:
        shutil.copy(real_file(name), root / "real" / name)
    return root


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def pacs(orthanc: str, archive: Path) -> str:
    """The archive stored in Orthanc; the DICOMweb source URL."""
    return stored_in_orthanc(orthanc, _files(archive))


def _load(source: str, tmp_path: Path, name: str, **kw: Any) -> tuple[dict[str, Any], Path]:
    db = tmp_path / f"{name}.duckdb"
    report = run(
        RunSettings(
            source=source,
            out=tmp_path / f"{name}-pq",
            target=Target.parse(f"duckdb:///{db}"),
            workers=0,
            run_id=name,
            **kw,
        )
    )
    return report, db


Content = dict[str, list[tuple[Any, ...]]]


def _content(db: Path, varying: dict[str, set[str]] | None = None) -> Content:
    """Every model table's rows without storage columns (nor the `varying` columns
    of a table), sorted."""
    con = duckdb.connect(str(db), read_only=True)
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'dicom_%'"
        ).fetchall()
        if r[0] not in RUN_TABLES
    ]
    content = {}
    for table in tables:
        columns = _columns(con, table, (varying or {}).get(table, set()))
        if table in BY_KEY_ONLY:
            columns = columns[:1]
        rows = con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        content[table] = sorted(rows, key=repr)
    con.close()
    return content


@pytest.fixture(scope="module")
def from_files(archive: Path, tmp_path_factory: pytest.TempPathFactory):
    """The file load: its report, and its content without the attributes the
    archive's own objects disagree on (a patient's age across studies): which object
    wins those depends on storage facts, newest first."""
    report, db = _load(str(archive), tmp_path_factory.mktemp("files"), "files")
    assert report["validation_passed"] and not report["error_files"]
    varying = {
        table: set(found["columns"]) for table, found in report["validation"]["conflicts"].items()
    }
    return report, _content(db, varying), varying


def _columns(con: Any, table: str, left_out: set[str] | None = None) -> list[str]:
    """A table's columns in order, without storage columns nor `left_out`."""
    found = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in found if r[0] not in STORAGE_COLUMNS and r[0] not in (left_out or ())]


def _columns_of(db: Path, table: str) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return _columns(con, table)


def _assert_same_apart_from_bulk_data(db: Path, ours: Content, files: Content) -> None:
    """Equal tables, except what a PACS gives as BulkDataURIs: no length, no VR
    (Orthanc), and nothing inside (a private sequence of unknown VR). The elements
    the files hold inside such values are the only ones the PACS may lack."""
    for table in files:
        if table not in ("dicom_element", "dicom_sequence_item", "dicom_raw"):
            assert ours[table] == files[table], table
    names = _columns_of(db, "dicom_element")
    path_at, tag_at, ref_at = (
        names.index(n) for n in ("sequence_path", "tag_hex", "value_binary_ref")
    )

    def where(row: tuple[Any, ...]) -> tuple[int, str]:
        return row[1], (f"{row[path_at]}." if row[path_at] else "") + row[tag_at]

    bulk = {where(r) for r in ours["dicom_element"] if r[ref_at] == "length unknown"}
    bulk_paths: dict[int, list[str]] = {}
    for instance, path in bulk:
        bulk_paths.setdefault(instance, []).append(path)

    def inside_bulk(instance: int, path: str | None) -> bool:
        found = bulk_paths.get(instance, [])
        return bool(path) and any(path == b or path.startswith(b + "[") for b in found)

    pacs_rows = {r[0]: r for r in ours["dicom_element"] if where(r) not in bulk}
    file_rows = {r[0]: r for r in files["dicom_element"] if not inside_bulk(*where(r))}
    assert pacs_rows == file_rows
    item_path_at = _columns_of(db, "dicom_sequence_item").index("sequence_path")
    assert ours["dicom_sequence_item"] == [
        r for r in files["dicom_sequence_item"] if not inside_bulk(r[1], r[item_path_at])
    ]
    raw_names = _columns_of(db, "dicom_raw")
    uid_at, doc_at = raw_names.index("sop_instance_uid"), raw_names.index("metadata")
    pacs_docs = {r[uid_at]: orjson.loads(r[doc_at]) for r in ours["dicom_raw"]}
    file_docs = {r[uid_at]: orjson.loads(r[doc_at]) for r in files["dicom_raw"]}
    assert pacs_docs.keys() == file_docs.keys()
    for uid, doc in pacs_docs.items():
        assert _like(doc, file_docs[uid]) == _like(doc, doc), uid


def _like(guide: Any, doc: Any) -> Any:
    """`doc` with every value that `guide` holds as bulk data ({"vr", "length": null})
    replaced by a marker."""
    if isinstance(guide, dict) and guide.keys() == {"vr", "length"} and guide["length"] is None:
        return "<bulk data>"
    if isinstance(guide, dict) and isinstance(doc, dict):
        return {k: _like(guide.get(k), v) for k, v in doc.items()}
    if isinstance(guide, list) and isinstance(doc, list) and len(guide) == len(doc):
        return [_like(g, d) for g, d in zip(guide, doc, strict=True)]
    return doc


def test_pacs_load_equals_file_load(pacs, from_files, archive, tmp_path):
    files_report, files_content, varying = from_files
    report, db = _load(pacs, tmp_path, "pacs")
    assert report["validation_passed"]
    assert report["listed"] == files_report["listed"] == len(_files(archive))
    assert report["loaded"] == files_report["loaded"]
    assert not report["error_files"]
    con = duckdb.connect(str(db), read_only=True)
    providers = con.execute("SELECT DISTINCT storage_provider FROM dicom_file_location").fetchall()
    uris = [r[0] for r in con.execute("SELECT storage_uri FROM dicom_file_location").fetchall()]
    con.close()
    assert providers == [("dicomweb",)]
    assert all("/dicom-web/studies/" in u and "/instances/" in u for u in uris)
    ours = _content(db, varying)
    _assert_same_apart_from_bulk_data(db, ours, files_content)
    assert len(ours["dicom_element"]) > 0.9 * len(files_content["dicom_element"])


def test_json_exports_load_like_files(pacs, from_files, archive, tmp_path):
    """An export written by pydicom (one array per series, InlineBinary kept) and one
    of the PACS's own WADO-RS metadata (NDJSON, gzipped)."""
    _, files_content, varying = from_files
    exports = tmp_path / "exports"
    exports.mkdir()
    by_series: dict[str, list[dict[str, Any]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in _files(archive / "PAT023000001"):
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            by_series.setdefault(ds.SeriesInstanceUID, []).append(ds.to_json_dict())
    for index, instances in enumerate(by_series.values()):
        (exports / f"series-{index}.json").write_bytes(orjson.dumps(instances))
    report, db = _load(str(exports), tmp_path, "exports")
    assert report["validation_passed"] and not report["error_files"]
    assert report["listed"] == report["loaded"] == sum(len(v) for v in by_series.values())
    content = _content(db, varying)
    patient = [r for r in files_content["dicom_patient"] if "PAT023000001" in repr(r)]
    assert content["dicom_patient"] == patient
    keys = {r[0] for r in content["dicom_element"]}
    expected = [r for r in files_content["dicom_element"] if r[0] in keys]
    assert sorted(content["dicom_element"], key=repr) == expected  # binary lengths included

    wado = tmp_path / "wado"
    wado.mkdir()
    lines = []
    root = pacs.removeprefix("dicomweb+")
    for study in orjson.loads(urllib.request.urlopen(f"{root}/studies").read()):
        uid = study["0020000D"]["Value"][0]
        for series in orjson.loads(urllib.request.urlopen(f"{root}/studies/{uid}/series").read()):
            series_uid = series["0020000E"]["Value"][0]
            metadata = urllib.request.urlopen(
                f"{root}/studies/{uid}/series/{series_uid}/metadata"
            ).read()
            lines += [orjson.dumps(i) for i in orjson.loads(metadata)]
    (wado / "pacs.ndjson.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    report, db = _load(str(wado / "pacs.ndjson.gz"), tmp_path, "wado")
    assert report["validation_passed"] and not report["error_files"]
    assert report["listed"] == report["loaded"] == len(_files(archive))
    _assert_same_apart_from_bulk_data(db, _content(db, varying), files_content)


def test_dicom_json_decodes_like_the_bytes():
    """pydicom's JSON of real files decodes to the tree their bytes decode to."""
    compared = 0
    for name in REAL:
        path = real_file(name)
        parsed = read_local(path, Path(path).stat().st_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = pydicom.dcmread(path, stop_before_pixels=True, force=True).to_json_dict()
        ours = decode_json(doc, path).root
        binary = decode_header(parsed, path).root
        # pydicom's JSON writer re-types private UN values it recognises; keep to
        # what both sides typed alike.
        same_type = {t for t in binary if t in ours and binary[t].vr == ours[t].vr}
        assert {t: ours[t] for t in same_type} == {t: binary[t] for t in same_type}, name
        assert len(same_type) >= 0.9 * len(binary), name
        compared += len(same_type)
    assert compared > 500


def test_bad_exports_are_error_rows_and_the_run_goes_on(tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "truncated.json").write_bytes(b'[{"00080018": {"vr": "UI", "Value": ["1.2')
    (exports / "not-dicom.json").write_bytes(orjson.dumps({"name": "not DICOM"}))
    path = real_file("CT_small.dcm")
    good = pydicom.dcmread(path, stop_before_pixels=True, force=True).to_json_dict()
    no_uids = {k: v for k, v in good.items() if k != "00080018"}
    (exports / "mixed.ndjson").write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(no_uids))
    report, db = _load(str(exports), tmp_path, "bad")
    assert report["listed"] == 4  # two failed exports + two instances of the mixed one
    assert report["loaded"] == 1
    con = duckdb.connect(str(db), read_only=True)
    errors = dict(
        con.execute("SELECT file_path, error_category FROM dicom_ingestion_errors").fetchall()
    )
    con.close()
    assert errors == {
        str(exports / "truncated.json"): "NOT_DICOM",
        str(exports / "not-dicom.json"): "NOT_DICOM",
        f"{exports / 'mixed.ndjson'}#1": "VALIDATION_ERROR",
    }


def test_scan_profiles_the_pacs_and_exports(pacs, archive, tmp_path):
    profile = scan(pacs)
    assert profile["instances"] == len(_files(archive))
    assert profile["studies"] == len(
        {
            pydicom.dcmread(p, stop_before_pixels=True, force=True).StudyInstanceUID
            for p in _files(archive)
        }
    )


def test_since_lists_only_newer_studies(pacs, archive, tmp_path):
    dates = {}
    for path in _files(archive):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if ds.get("StudyDate"):
            dates[ds.StudyInstanceUID] = ds.StudyDate
    newest = max(dates.values())
    _, db = _load(f"{pacs}?since={newest}", tmp_path, "since")
    con = duckdb.connect(str(db), read_only=True)
    loaded = {r[0] for r in con.execute("SELECT study_instance_uid FROM dicom_study").fetchall()}
    con.close()
    assert loaded == {uid for uid, date in dates.items() if date >= newest}
    assert 0 < len(loaded) < len(dates)


def _forward(handler: http.server.BaseHTTPRequestHandler, upstream: str) -> None:
    """Answer a GET with what the PACS answers."""
    with urllib.request.urlopen(upstream + handler.path, timeout=30) as response:
        body = response.read()
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.headers.get("Content-Type", ""))
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class _FaultyProxy(http.server.ThreadingHTTPServer):
    """Forwards to the PACS, but each request's first attempt gets a 503, the second
    attempt of every third request is held until the test releases it (the client's
    timeout fires for certain), and one study's series metadata always fails. Faults
    are per request, so a request that is retried as it should be always gets
    through by its third attempt."""

    daemon_threads = True

    def __init__(self, upstream: str, broken_study: str) -> None:
        self.upstream = upstream
        self.broken_study = broken_study
        self.attempts: dict[str, tuple[int, int]] = {}  # path → (its order, attempts)
        self.lock = threading.Lock()
        self.released = threading.Event()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _ProxyHandler(_QuietHandler):
    server: _FaultyProxy

    def do_GET(self) -> None:
        with self.server.lock:
            request, attempt = self.server.attempts.get(self.path, (len(self.server.attempts), 0))
            attempt += 1
            self.server.attempts[self.path] = (request, attempt)
        if self.server.broken_study in self.path and "/metadata" in self.path:
            self.send_error(500)
            return
        if attempt == 1:
            self.send_error(503)
            return
        if attempt == 2 and request % 3 == 0:
            self.server.released.wait(120)  # the loader's 1 s timeout fires, it retries
            self.send_error(504)
            return
        _forward(self, self.server.upstream)


def test_pacs_faults_are_retried_and_a_lost_series_is_an_error_row_per_instance(
    pacs, orthanc, archive, tmp_path
):
    studies = sorted(
        {
            pydicom.dcmread(p, stop_before_pixels=True, force=True).StudyInstanceUID
            for p in _files(archive)
        }
    )
    broken = studies[0]
    broken_instances = sum(
        1
        for p in _files(archive)
        if pydicom.dcmread(p, stop_before_pixels=True, force=True).StudyInstanceUID == broken
    )
    proxy = _FaultyProxy(orthanc, broken)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        source = f"dicomweb+http://127.0.0.1:{proxy.server_address[1]}/dicom-web"
        report, db = _load(
            source, tmp_path, "faulty", storage_options={"timeout": 1, "page_size": 4}
        )
    finally:
        proxy.released.set()
        proxy.shutdown()
    # The study falls short of the instances the server reports: named, exit 3.
    assert report["validation_failed"] == ["incomplete_studies"]
    short = report["validation"]["incomplete_studies"]
    assert short["count"] == 1 and short["examples"][0]["study"] == broken
    assert short["examples"][0]["loaded"] == 0
    assert short["examples"][0]["reported"] == broken_instances
    assert sum(s["reported"] for s in short["examples"][0]["series"]) == broken_instances
    assert report["loaded"] == len(_files(archive)) - broken_instances
    assert report["error_files"] == broken_instances
    con = duckdb.connect(str(db), read_only=True)
    errors = con.execute(
        "SELECT file_path, error_category, error_message FROM dicom_ingestion_errors"
    ).fetchall()
    con.close()
    # The study's series are listed; the series whose metadata keeps failing gives one
    # READ_ERROR row per instance QIDO-RS lists for it.
    assert len(errors) == broken_instances
    for path, category, message in errors:
        assert f"/studies/{broken}/series/" in path and "/instances/" in path
        assert category == "READ_ERROR" and "500" in message


def test_pydicom_elements_and_json_agree_on_a_charset_file():
    path = real_file("chrH31.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    implicit, little = ds.original_encoding
    binary = decode_elements(from_pydicom(ds._dict, path), path, implicit=implicit, little=little)
    export = instances_in(orjson.dumps(ds.to_json_dict()), "x.json")[0]
    assert decode_json(export, path).root[0x00100010] == binary.root[0x00100010]


class _GuardedProxy(http.server.ThreadingHTTPServer):
    """Forwards to the PACS only requests carrying the expected Authorization
    header; records the ones it saw."""

    daemon_threads = True

    def __init__(self, upstream: str, authorization: str) -> None:
        self.upstream = upstream
        self.authorization = authorization
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _GuardHandler)


class _GuardHandler(_QuietHandler):
    server: _GuardedProxy

    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization", ""))
        if self.headers.get("Authorization") != self.server.authorization:
            self.send_error(401)
            return
        _forward(self, self.server.upstream)


def test_bearer_token_from_env_or_file_and_never_written(
    pacs, orthanc, archive, tmp_path, monkeypatch
):
    token = "tok-7f3a9c-not-for-reports"
    proxy = _GuardedProxy(orthanc, f"Bearer {token}")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    source = f"dicomweb+http://127.0.0.1:{proxy.server_address[1]}/dicom-web"
    try:
        with pytest.raises(ListingError, match="401"):
            _load(source, tmp_path, "anonymous")
        monkeypatch.setenv("DICOMWEB_TOKEN", token)
        report, _ = _load(source, tmp_path, "env")
        assert report["loaded"] == len(_files(archive))
        monkeypatch.delenv("DICOMWEB_TOKEN")
        (tmp_path / "token").write_text(token + "\n")
        report, _ = _load(
            source, tmp_path, "file", storage_options={"token_file": str(tmp_path / "token")}
        )
        assert report["loaded"] == len(_files(archive))
    finally:
        proxy.shutdown()
    assert f"Bearer {token}" in proxy.seen
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "token"]
    assert written and not [p for p in written if token.encode() in p.read_bytes()]


def test_resume_skips_committed_study_shards(pacs, archive, tmp_path):
    first, _ = _load(pacs, tmp_path, "resume", shard_size=2)
    assert first["shards"] > 1
    again, _ = _load(pacs, tmp_path, "resume", shard_size=2, resume=True)
    assert again["resumed_shards"] == first["shards"]
    assert again["loaded"] == first["loaded"] == len(_files(archive))


def test_filters_only_for_dicomweb_and_dates_checked():
    source = "dicomweb+https://pacs.example/dicom-web"
    assert with_filters(source, "2024-01-31", "CT") == f"{source}?since=2024-01-31&modality=CT"
    assert with_filters(source, None, None) == source
    with pytest.raises(ConfigError, match="not a date"):
        with_filters(source, "last week", None)
    with pytest.raises(ConfigError, match="dicomweb"):
        with_filters("/archive", "20240101", None)


def test_scan_profiles_exports(archive, tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    instances = [
        pydicom.dcmread(p, stop_before_pixels=True, force=True).to_json_dict()
        for p in _files(archive / "real")
    ]
    (exports / "real.json").write_bytes(orjson.dumps(instances))
    profile = scan(str(exports))
    assert profile["instances"] == len(instances)
    assert profile["modality"]["CT"] >= 1


def test_basic_auth_from_env(pacs, orthanc, archive, tmp_path, monkeypatch):
    credentials = base64.b64encode(b"loader:pw-41c2-not-for-reports").decode()
    proxy = _GuardedProxy(orthanc, f"Basic {credentials}")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv("DICOMWEB_USER", "loader")
    monkeypatch.setenv("DICOMWEB_PASSWORD", "pw-41c2-not-for-reports")
    try:
        report, _ = _load(
            f"dicomweb+http://127.0.0.1:{proxy.server_address[1]}/dicom-web", tmp_path, "basic"
        )
    finally:
        proxy.shutdown()
    assert report["loaded"] == len(_files(archive))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if b"pw-41c2" in p.read_bytes()]


def test_modality_lists_only_studies_holding_it(pacs, archive, tmp_path):
    modalities: dict[str, set[str]] = {}
    for path in _files(archive):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        modalities.setdefault(ds.StudyInstanceUID, set()).add(ds.get("Modality", ""))
    _, db = _load(f"{pacs}?modality=MR", tmp_path, "mr")
    con = duckdb.connect(str(db), read_only=True)
    loaded = {r[0] for r in con.execute("SELECT study_instance_uid FROM dicom_study").fetchall()}
    con.close()
    assert loaded == {uid for uid, found in modalities.items() if "MR" in found}
    assert 0 < len(loaded) < len(modalities)


def test_exports_in_a_bucket(s3, archive, tmp_path):
    import s3fs

    options, traffic = s3
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("exports")
    instances = [
        pydicom.dcmread(p, stop_before_pixels=True, force=True).to_json_dict()
        for p in _files(archive / "real")
    ]
    fs.pipe("exports/pacs/real.json.gz", gzip.compress(orjson.dumps(instances)))
    traffic.reset()
    report, db = _load("s3://exports/pacs", tmp_path, "bucket", storage_options=options)
    assert report["validation_passed"] and report["loaded"] == len(instances)
    con = duckdb.connect(str(db), read_only=True)
    located = con.execute(
        "SELECT DISTINCT storage_provider, storage_container FROM dicom_file_location"
    ).fetchall()
    con.close()
    assert located == [("s3", "exports")]


@pytest.mark.server
def test_a_series_uid_shared_by_two_studies_is_read_instance_by_instance(tmp_path):
    """Two studies holding a series of the same UID: Orthanc does not serve that
    series' metadata in either (HTTP 404), but serves each of its instances' own
    metadata (PS3.18 defines both). Every instance loads, the report counts those
    read one by one, and the keys equal the same files loaded from disk. Orthanc runs
    on its own here: the shared UID would change every other PACS test's content."""
    generated = tmp_path / "generated"
    synthesize(generated, patients=6, seed=31, duplicate_fraction=0)
    by_study: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(p for p in generated.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        by_study.setdefault(ds.StudyInstanceUID, {}).setdefault(ds.SeriesInstanceUID, []).append(
            path
        )
    first, second = [study for study in by_study.values() if len(study) >= 2][:2]
    shared = "2.25.1234567890123456789012345678901234"
    files = tmp_path / "files"
    files.mkdir()
    one_by_one = 0
    for study in (first, second):
        lost_series = sorted(study)[0]  # each study's first series takes the shared UID
        for uid, paths in study.items():
            for path in paths:
                ds = pydicom.dcmread(path)
                if uid == lost_series:
                    ds.SeriesInstanceUID = shared
                    one_by_one += 1
                ds.save_as(files / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    uploaded = sorted(files.iterdir())
    (tmp_path / "orthanc").mkdir()
    with running_orthanc(tmp_path / "orthanc") as root:
        source = stored_in_orthanc(root, uploaded)
        study = next(
            ds.StudyInstanceUID
            for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in uploaded)
            if ds.SeriesInstanceUID == shared
        )
        with pytest.raises(urllib.error.HTTPError) as refused:  # the premise: not served
            urllib.request.urlopen(
                f"{root}/dicom-web/studies/{study}/series/{shared}/metadata", timeout=30
            )
        assert refused.value.code == 404
        report, db = _load(source, tmp_path, "shared")
    assert one_by_one >= 2
    assert report["listed"] == report["loaded"] == len(uploaded)
    assert report["error_files"] == 0 and "READ_ERROR" not in report["errors"]
    assert report["instance_metadata_fallbacks"] == one_by_one
    assert report["validation"]["accounting"]["balanced"], report["validation"]
    # The model keys a series by its UID alone, so the shared series belongs to one
    # of its two studies: the other falls short of what Orthanc reports for it, by
    # that series only, as a load of the same files from disk would.
    assert report["validation_failed"] == ["incomplete_studies"]
    short = report["validation"]["incomplete_studies"]
    assert short["count"] == 1
    assert {s["series"] for e in short["examples"] for s in e["series"]} == {shared}
    files_report, files_db = _load(str(files), tmp_path, "shared-files")
    assert files_report["loaded"] == len(uploaded)
    keys = (
        "SELECT i.instance_key, i.series_key, se.study_key, st.patient_key, i.sop_instance_uid "
        "FROM dicom_instance i JOIN dicom_series se ON se.series_key = i.series_key "
        "JOIN dicom_study st ON st.study_key = se.study_key ORDER BY 1"
    )
    with duckdb.connect(str(db), read_only=True) as pacs_con:
        from_pacs = pacs_con.execute(keys).fetchall()
    with duckdb.connect(str(files_db), read_only=True) as files_con:
        from_disk = files_con.execute(keys).fetchall()
    assert from_pacs == from_disk
    assert {pydicom.dcmread(p).SOPInstanceUID for p in uploaded} == {r[4] for r in from_pacs}


class _PagingProxy(http.server.ThreadingHTTPServer):
    """Forwards to the PACS, but answers QIDO-RS study queries as a server may:
    `ignore_offset` sends the first page for every offset; otherwise pages are cut
    to `cap` studies whatever `limit` asks."""

    daemon_threads = True

    def __init__(self, upstream: str, ignore_offset: bool, cap: int) -> None:
        self.upstream, self.ignore_offset, self.cap = upstream, ignore_offset, cap
        super().__init__(("127.0.0.1", 0), _PagingHandler)


class _PagingHandler(_QuietHandler):
    server: _PagingProxy

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if not parts.path.endswith("/studies"):
            _forward(self, self.server.upstream)
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        if self.server.ignore_offset:
            query["offset"] = "0"
        query["limit"] = str(min(int(query.get("limit", self.server.cap)), self.server.cap))
        self.path = f"{parts.path}?{urllib.parse.urlencode(query)}"
        _forward(self, self.server.upstream)


@pytest.mark.parametrize("ignore_offset", [True, False])
def test_a_server_that_caps_pages_or_ignores_offset(
    pacs, orthanc, archive, tmp_path, ignore_offset
):
    """Pages cut below page_size are followed to the end (every study is loaded); a
    server that ignores offset stops the run with one clear error instead of a loop
    or a partial load."""
    proxy = _PagingProxy(orthanc, ignore_offset=ignore_offset, cap=2)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        source = f"dicomweb+http://127.0.0.1:{proxy.server_address[1]}/dicom-web"
        if ignore_offset:
            with pytest.raises(ListingError, match="ignores QIDO-RS offset"):
                _load(source, tmp_path, "paging", storage_options={"page_size": 5})
            return
        report, _ = _load(source, tmp_path, "paging", storage_options={"page_size": 5})
    finally:
        proxy.shutdown()
    assert report["loaded"] == len(_files(archive))
    assert report["validation_passed"]


class _GateProxy(http.server.ThreadingHTTPServer):
    """Forwards to the PACS, holding each study's series request until `gate` of them
    wait together: a worker that fetched one study at a time would stay held (until
    the test ends), so the test waits on no timer. Counts them in flight."""

    daemon_threads = True

    def __init__(self, upstream: str, gate: int) -> None:
        self.upstream = upstream
        self.gate = gate
        self.waiting = self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        self.opened = threading.Event()
        super().__init__(("127.0.0.1", 0), _GateHandler)


class _GateHandler(_QuietHandler):
    server: _GateProxy

    def do_GET(self) -> None:
        proxy = self.server
        if not self.path.split("?")[0].endswith("/series"):
            _forward(self, proxy.upstream)
            return
        with proxy.lock:
            proxy.in_flight += 1
            proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
            proxy.waiting += 1
            if proxy.waiting >= proxy.gate:
                proxy.opened.set()
        try:
            proxy.opened.wait(120)  # set by the test at its end, too
            _forward(self, proxy.upstream)
        finally:
            with proxy.lock:
                proxy.in_flight -= 1


def test_studies_are_fetched_ahead_while_earlier_ones_are_parsed(pacs, orthanc, tmp_path):
    """Each study costs round trips (its series, their metadata): a worker keeps many
    in flight. The proxy holds the series requests until 4 studies ask together."""
    proxy = _GateProxy(orthanc, gate=4)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        source = f"dicomweb+http://127.0.0.1:{proxy.server_address[1]}/dicom-web"
        ahead, _ = _load(source, tmp_path, "ahead")
    finally:
        proxy.opened.set()
        proxy.shutdown()
    direct, _ = _load(pacs, tmp_path, "direct")
    assert proxy.most_in_flight >= 4
    for key in ("listed", "loaded", "error_files", "errors", "rows"):
        assert ahead[key] == direct[key], key
    assert ahead["validation_passed"]


def _accepted_by(orthanc: str, files: list[str], folder: Path) -> list[Path]:
    """`files` POSTed to Orthanc; copies of those it stored, in `folder`."""
    folder.mkdir()
    kept = []
    for index, name in enumerate(files):
        request = urllib.request.Request(
            f"{orthanc}/instances", data=Path(name).read_bytes(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60):
                pass
        except urllib.error.HTTPError:
            continue  # Orthanc refuses it: not on the PACS, nothing to account for
        kept.append(folder / f"{index:04d}-{Path(name).name}")
        shutil.copy(name, kept[-1])
    return kept


@pytest.mark.slow  # over 4 s: make test only
def test_every_real_file_on_a_pacs_is_accounted_for_once_with_the_files_keys(tmp_path):
    """Every loadable real file the project tests with, stored in Orthanc and loaded
    through DICOMweb: the run balances, each instance the server holds ends as one
    loaded instance or one READ_ERROR row (and the server truly serves no metadata
    for those), and the keys equal a load of the same files from disk."""
    (tmp_path / "orthanc").mkdir()
    with running_orthanc(tmp_path / "orthanc") as root:
        files = _accepted_by(root, loadable_real_files(), tmp_path / "files")
        source = "dicomweb+" + root.removeprefix("http://").join(("http://", "/dicom-web"))
        report, db = _load(source, tmp_path, "pacs")
        with duckdb.connect(str(db), read_only=True) as con:
            unread = con.execute(
                "SELECT file_path, error_category FROM dicom_ingestion_errors "
                "WHERE error_category IN ('READ_ERROR', 'NOT_DICOM', 'PARSE_ERROR', "
                "'TRUNCATED', 'VALIDATION_ERROR')"
            ).fetchall()
            loaded = {
                r[0] for r in con.execute("SELECT sop_instance_uid FROM dicom_instance").fetchall()
            }
        for url, category in unread:
            assert category == "READ_ERROR", url
            with pytest.raises(urllib.error.HTTPError):  # the server cannot serve it
                urllib.request.urlopen(
                    root + url.split("/dicom-web", 1)[1].join(("/dicom-web", "/metadata")),
                    timeout=30,
                )
    assert len(files) > 200
    assert report["validation"]["accounting"]["balanced"], report["validation"]["accounting"]
    assert len({url for url, _ in unread}) == len(unread) == report["error_files"]
    uids = [pydicom.dcmread(p, stop_before_pixels=True, force=True).SOPInstanceUID for p in files]
    unread_uids = {url.rsplit("/instances/", 1)[1] for url, _ in unread}
    assert loaded | unread_uids == set(uids) and not loaded & unread_uids
    _, files_db = _load(str(tmp_path / "files"), tmp_path, "files")
    keys = (
        "SELECT i.sop_instance_uid, i.instance_key, i.series_key, se.study_key, "
        "st.patient_key FROM dicom_instance i "
        "JOIN dicom_series se ON se.series_key = i.series_key "
        "JOIN dicom_study st ON st.study_key = se.study_key"
    )
    with duckdb.connect(str(db), read_only=True) as con:
        from_pacs = {r[0]: r for r in con.execute(keys).fetchall()}
    with duckdb.connect(str(files_db), read_only=True) as con:
        from_disk = {r[0]: r for r in con.execute(keys).fetchall()}
    once = {uid for uid in uids if uids.count(uid) == 1}  # one file: one answer
    assert once & loaded
    for uid in once & loaded:
        assert from_pacs[uid] == from_disk[uid], uid
