"""Object-store sources: s3fs against a moto S3 server on 127.0.0.1."""

import io
import json
import uuid

import duckdb
import pydicom
import pytest
import s3fs

from loader.headers.reader import DEFAULT_HEADER_BYTES
from loader.jobs.load import load
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.output.location import OutputRoot
from loader.sources.listing import list_source, make_shards
from loader.sources.storage import DEFAULT_READ_CONCURRENCY, RETRIES, parse_storage_options
from loader.synth import synthesize


def _upload(options, local, bucket: str) -> str:
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    fs.put(str(local) + "/", f"{bucket}/archive/", recursive=True)
    return f"s3://{bucket}/archive"


def _run(source, tmp_path, name, options=None, **kw):
    return run(
        RunSettings(
            source=str(source),
            out=kw.pop("out", tmp_path / f"{name}-pq"),
            workers=kw.pop("workers", 0),
            target=Target.parse(f"duckdb:///{tmp_path / name}.duckdb"),
            storage_options=options or {},
            run_id=name,
            **kw,
        )
    )


def _keys(db, table, key):
    con = duckdb.connect(str(db), read_only=True)
    return {r[0] for r in con.execute(f"SELECT {key} FROM {table}").fetchall()}


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3-src") / "archive"
    summary = synthesize(root, patients=8, seed=13, bad_fraction=0.05)
    return root, summary


def test_bucket_loads_like_the_folder(small_archive, s3, tmp_path):
    options, _ = s3
    root, summary = small_archive
    url = _upload(options, root, f"b-{uuid.uuid4().hex[:8]}")
    local = _run(root, tmp_path, "local", header_bytes=DEFAULT_HEADER_BYTES)
    remote = _run(url, tmp_path, "remote", options)
    for key in ("listed", "loaded", "duplicates", "error_files", "errors"):
        assert remote[key] == local[key], key
    assert remote["listed"] == summary.files
    for table, key in (
        ("dicom_instance", "instance_key"),
        ("dicom_series", "series_key"),
        ("dicom_study", "study_key"),
        ("dicom_patient", "patient_key"),
    ):
        assert _keys(tmp_path / "remote.duckdb", table, key) == _keys(
            tmp_path / "local.duckdb", table, key
        )
    con = duckdb.connect(str(tmp_path / "remote.duckdb"), read_only=True)
    providers = con.execute(
        "SELECT DISTINCT storage_provider, storage_container FROM dicom_file_location"
    ).fetchall()
    assert providers == [("s3", url.split("/")[2])]
    (etag_like,) = con.execute(
        "SELECT count(*) FROM dicom_file_location WHERE length(checksum) = 32"
    ).fetchone()
    assert etag_like == remote["loaded"] + remote["duplicates"]


def test_prefixes_are_listed_in_parallel_in_a_stable_order(small_archive, s3):
    options, traffic = s3
    root, summary = small_archive
    url = _upload(options, root, f"l-{uuid.uuid4().hex[:8]}")
    traffic.list_delay = 0.05
    remote = [ref.url.removeprefix(url) for ref in list_source(url, options)]
    local = [ref.url.removeprefix(str(root)) for ref in list_source(str(root))]
    assert len(remote) == summary.files
    assert remote == local  # the same order (and so the same shards) as the folder
    assert traffic.max_lists_in_flight > 1


def test_what_reading_an_object_that_fails_cost_is_counted(s3, tmp_path):
    """An object that is not DICOM, or ends inside its header, was still read: the
    bytes the server served for it are in the report's count, which equals the
    server's own."""
    options, traffic = s3
    root = tmp_path / "bad"
    synthesize(root, patients=2, seed=8, bad_fraction=0.3, duplicate_fraction=0)
    url = _upload(options, root, f"f-{uuid.uuid4().hex[:8]}")
    traffic.reset()
    report = _run(url, tmp_path, "failing", options)
    failed = {k: v for k, v in report["errors"].items() if k in ("NOT_DICOM", "TRUNCATED")}
    assert sum(failed.values()) >= 3, report["errors"]
    assert sum(traffic.bytes.values()) == report["bytes_read"]


def test_reads_only_headers_seen_from_the_server(s3, tmp_path):
    options, traffic = s3
    root = tmp_path / "big"
    synthesize(root, patients=4, seed=3, pixels="realistic", duplicate_fraction=0)
    url = _upload(options, root, f"m-{uuid.uuid4().hex[:8]}")
    traffic.reset()
    report = _run(url, tmp_path, "mg", options)
    assert report["error_files"] == 0 and report["loaded"] == report["listed"]
    served = sum(traffic.bytes.values())
    assert served == report["bytes_read"]  # our counters agree with the server's
    listed_bytes = report["bytes_listed"]
    assert served < 0.05 * listed_bytes  # 27 MB mammograms cost one 64 KiB read each
    assert sum(traffic.gets.values()) <= 1.1 * report["listed"]
    con = duckdb.connect(str(tmp_path / "mg.duckdb"), read_only=True)
    for path, header in con.execute(
        "SELECT object_key, header_bytes FROM dicom_file_location"
    ).fetchall():
        got = traffic.bytes[f"/{url.split('/')[2]}/{path}"]
        assert got <= max(64 * 1024, 1.25 * header)


def test_failing_requests_are_retried(small_archive, s3, tmp_path):
    options, traffic = s3
    root, _ = small_archive
    url = _upload(options, root, f"f-{uuid.uuid4().hex[:8]}")
    clean = _run(url, tmp_path, "clean", options)
    traffic.fail_every = 4
    flaky = _run(url, tmp_path, "flaky", options)
    for key in ("listed", "loaded", "duplicates", "error_files", "errors"):
        assert flaky[key] == clean[key], key
    assert _keys(tmp_path / "flaky.duckdb", "dicom_instance", "instance_key") == _keys(
        tmp_path / "clean.duckdb", "dicom_instance", "instance_key"
    )


def test_hanging_requests_time_out_and_are_retried(small_archive, s3, tmp_path):
    options, traffic = s3
    root, summary = small_archive
    url = _upload(options, root, f"h-{uuid.uuid4().hex[:8]}")
    victim = sorted(p for p in root.glob("PAT*/**/*.dcm"))[0]
    options = {**options, "config_kwargs": {"retries": {"max_attempts": 1}, "read_timeout": 1}}
    traffic.hold_every = 7  # held until the run is over: the 1 s read timeout fires
    traffic.always_hold = {"/archive/" + str(victim.relative_to(root))}
    try:
        report = _run(url, tmp_path, "hung", options)
    finally:
        traffic.release()
    assert report["listed"] == summary.files
    assert report["errors"].get("READ_ERROR") == 1  # the object that never answers
    assert report["validation"]["accounting"]["balanced"]
    con = duckdb.connect(str(tmp_path / "hung.duckdb"), read_only=True)
    ((path, message),) = con.execute(
        "SELECT file_path, error_message FROM dicom_ingestion_errors "
        "WHERE error_category = 'READ_ERROR'"
    ).fetchall()
    assert path.endswith(victim.name) and "timeout" in message.lower()


def test_object_that_keeps_failing_is_a_read_error(small_archive, s3, tmp_path):
    options, traffic = s3
    root, summary = small_archive
    url = _upload(options, root, f"e-{uuid.uuid4().hex[:8]}")
    victim = next(
        p
        for p in sorted(root.rglob("*.dcm"))
        if "bad" not in p.parts and "duplicates" not in p.parts
    )
    victim_path = "/archive/" + str(victim.relative_to(root))
    traffic.always_fail = {victim_path}
    report = _run(url, tmp_path, "broken", options)
    assert report["errors"].get("READ_ERROR") == 1
    # botocore's configuration is the loader's default (the fixture sets none): one
    # attempt per request, so the loader's policy alone decides and the two never
    # multiply. The first read fetched ahead, then the reader's RETRIES: 5 requests
    # here, where botocore's default retries made it 25.
    attempts = sum(n for path, n in traffic.attempts.items() if path.endswith(victim_path))
    assert attempts == RETRIES + 1, attempts
    assert report["listed"] == summary.files
    assert report["validation"]["accounting"]["balanced"]
    con = duckdb.connect(str(tmp_path / "broken.duckdb"), read_only=True)
    (path,) = con.execute(
        "SELECT file_path FROM dicom_ingestion_errors WHERE error_category = 'READ_ERROR'"
    ).fetchone()
    assert path.endswith(str(victim.relative_to(root)))
    assert pydicom.dcmread(victim, stop_before_pixels=True).SOPInstanceUID


def test_parquet_and_ledger_in_the_bucket_load_and_resume(small_archive, s3, tmp_path):
    options, _ = s3
    root, _ = small_archive
    bucket = f"o-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    out = f"s3://{bucket}/runs"
    local = _run(root, tmp_path, "local", shard_size=20)
    remote = _run(root, tmp_path, "remote", options, out=out, shard_size=20)
    assert remote["validation_passed"] and remote["out"] == out
    for key in ("listed", "loaded", "duplicates", "errors", "rows"):
        assert remote[key] == local[key], key
    fs = s3fs.S3FileSystem(**options)
    ledger_keys = fs.glob(f"{bucket}/runs/_ledger/run_id=remote/shard-*.json")
    parts = fs.glob(f"{bucket}/runs/dicom_instance/run_id=remote/part-*.parquet")
    assert (
        len(ledger_keys) == remote["shards"] == len(list(make_shards(list_source(str(root)), 20)))
    )
    assert len(parts) == len(list((tmp_path / "local-pq/dicom_instance").glob("*/part-*")))
    assert not list(tmp_path.glob("remote-pq"))  # nothing written locally

    # A crash that lost two shards' commits: --resume redoes exactly those two.
    for key in ledger_keys[:2]:
        fs.rm(key)
    resumed = _run(root, tmp_path, "remote", options, out=out, shard_size=20, resume=True)
    assert resumed["resumed_shards"] == remote["shards"] - 2
    for key in ("listed", "loaded", "duplicates", "errors", "rows"):
        assert resumed[key] == local[key], key

    # The written run loads again from the bucket, into a fresh warehouse.
    again = load(OutputRoot.of(out, options), "remote", Target.parse(f"duckdb:///{tmp_path}/b.db"))
    assert again["loaded"] == local["loaded"]
    assert _keys(tmp_path / "b.db", "dicom_element", "element_key") == _keys(
        tmp_path / "local.duckdb", "dicom_element", "element_key"
    )


def test_incremental_reload_of_a_bucket_reads_only_what_changed(small_archive, s3, tmp_path):
    options, traffic = s3
    root, _ = small_archive
    url = _upload(options, root, f"i-{uuid.uuid4().hex[:8]}")
    first = _run(url, tmp_path, "bucket", options)
    traffic.reset()
    again = _run(url, tmp_path, "bucket", options, incremental=True)
    assert again["unchanged"] == first["loaded"] + first["duplicates"]
    assert traffic.gets and all("/bad/" in p for p in traffic.gets)  # error objects retried
    assert sum(traffic.gets.values()) <= first["error_files"]
    # What a night with no change costs the store: one LIST page per folder, the
    # prefix's own included (each holds fewer than 1,000 keys), and the GETs of the
    # objects that were errors.
    folders = {root, *(p for p in root.rglob("*") if p.is_dir())}
    assert traffic.lists == len(folders)
    fs = s3fs.S3FileSystem(**options)
    victim = sorted(fs.glob(f"{url.removeprefix('s3://')}/PAT*/**/*.dcm"))[0]
    ds = pydicom.dcmread(io.BytesIO(fs.cat_file(victim)))
    ds.InstanceNumber = 999
    rewritten = io.BytesIO()
    ds.save_as(rewritten)
    fs.pipe_file(victim, rewritten.getvalue())  # rewritten in place: a new ETag
    traffic.reset()
    third = _run(url, tmp_path, "bucket", options, incremental=True)
    assert third["unchanged"] == again["unchanged"] - 1
    assert {p for p in traffic.gets if "/bad/" not in p} == {f"/{victim}"}
    assert third["validation_passed"]


@pytest.mark.parametrize(
    ("protocol", "server", "provider", "parquet_in_store"),
    [("gs", "gcs_server", "gcs", False), ("az", "azure_server", "azure", True)],
)
def test_gcs_and_azure_emulators(tmp_path, request, protocol, server, provider, parquet_in_store):
    """Listing and ranged header reads through gcsfs and adlfs, Parquet output to Azure
    (the GCS emulator serves one slow request at a time: it gets a small archive)."""
    import fsspec

    options = request.getfixturevalue(server)
    root = tmp_path / "archive"
    summary = synthesize(root, patients=3, seed=17, bad_fraction=0.05)
    container = f"c{uuid.uuid4().hex[:10]}"
    fs = fsspec.filesystem(protocol, **options)
    fs.mkdir(container)
    fs.put(str(root) + "/", f"{container}/archive/", recursive=True)
    local = _run(root, tmp_path, "local", header_bytes=DEFAULT_HEADER_BYTES)
    remote = _run(
        f"{protocol}://{container}/archive",
        tmp_path,
        provider,
        options,
        out=f"{protocol}://{container}/parquet" if parquet_in_store else tmp_path / "pq",
    )
    for key in ("listed", "loaded", "duplicates", "error_files", "errors", "rows"):
        assert remote[key] == local[key], key
    assert remote["listed"] == summary.files
    assert remote["read_requests_per_object"] <= 1.1
    assert remote["bytes_read"] == local["bytes_read"]  # the same ranges, read remotely
    assert _keys(tmp_path / f"{provider}.duckdb", "dicom_element", "element_key") == _keys(
        tmp_path / "local.duckdb", "dicom_element", "element_key"
    )
    con = duckdb.connect(str(tmp_path / f"{provider}.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT DISTINCT storage_provider, storage_container, checksum IS NOT NULL "
        "FROM dicom_file_location"
    ).fetchall()
    assert rows == [(provider, container, True)]
    if parquet_in_store:
        fs.invalidate_cache()
        assert fs.glob(f"{container}/parquet/_ledger/run_id={provider}/shard-*.json")


def test_storage_options_parse():
    assert parse_storage_options(
        ["anon=true", "endpoint_url=http://h:1", 'client_kwargs={"region_name": "eu-west-1"}']
    ) == {"anon": True, "endpoint_url": "http://h:1", "client_kwargs": {"region_name": "eu-west-1"}}


def test_snowflake_needs_a_stage_for_parquet_in_a_bucket(small_archive, tmp_path):
    from loader.core.errors import ConfigError

    root, _ = small_archive
    target = Target.parse("snowflake://loader@acct/IMAGING/DICOM?warehouse=WH")
    with pytest.raises(ConfigError, match="--stage-url"):
        run(RunSettings(source=str(root), out="s3://runs/out", target=target, workers=0))


def test_reads_run_ahead_with_many_requests_in_flight(small_archive, s3, tmp_path):
    """A worker keeps its first reads in flight while it parses (read_ahead): the
    server holds every read until 64 wait together, which a worker that fetched a
    batch, waited and parsed (or one capped by botocore's pool of 10) never reaches:
    it would stay held until release() and the assertion below would fail."""
    options, traffic = s3
    root, summary = small_archive
    url = _upload(options, root, f"a-{uuid.uuid4().hex[:8]}")
    clean = _run(url, tmp_path, "clean", options)
    traffic.reset()
    traffic.gate = 64
    try:
        ahead = _run(url, tmp_path, "ahead", options)
    finally:
        traffic.release()
    assert traffic.max_reads_in_flight >= 64
    assert traffic.max_reads_in_flight <= DEFAULT_READ_CONCURRENCY + 1  # and a reader's own read
    for key in ("listed", "loaded", "duplicates", "error_files", "errors", "bytes_read"):
        assert ahead[key] == clean[key], key
    assert ahead["listed"] == summary.files
    # The same bound holds when set lower: never more reads in flight than asked for.
    traffic.reset()
    traffic.gate = 8
    try:
        _run(url, tmp_path, "eight", options, read_concurrency=8)
    finally:
        traffic.release()
    assert 8 <= traffic.max_reads_in_flight <= 8 + 1


def test_a_throttling_store_gets_fewer_reads_in_flight(small_archive, s3, tmp_path):
    """S3 answers 503 SlowDown when a prefix gets too many requests
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html):
    the first 32 reads, all in flight together, are throttled; the worker then keeps
    at most half as many in flight, retries each throttled read itself, and loses
    nothing. Each read waits 0.2 s, so a worker that did not back off would have 32
    in flight again at once."""
    options, traffic = s3
    root, summary = small_archive
    url = _upload(options, root, f"t-{uuid.uuid4().hex[:8]}")
    clean = _run(url, tmp_path, "clean", options)
    traffic.reset()
    traffic.gate = traffic.throttle_first = 32
    traffic.read_delay = 0.2
    try:
        throttled = _run(url, tmp_path, "throttled", options, read_concurrency=32)
    finally:
        traffic.release()
    for key in ("listed", "loaded", "duplicates", "error_files", "errors"):
        assert throttled[key] == clean[key], key
    assert throttled["worker_time"]["throttled_reads"] == 32
    assert throttled["worker_time"]["lowest_read_window"] == 16
    wave, after = traffic.in_flight_at_arrival[:32], traffic.in_flight_at_arrival[32:]
    assert max(wave) == 32
    # Until the window has grown back (a quarter per window of successes), at most 16
    # first reads and the reader's own retry are in flight.
    assert max(after[:32]) <= 16 + 1, after[:32]
    assert len(after) >= summary.files - 32


def test_values_over_the_element_limit_are_never_fetched(s3, tmp_path):
    """An 8 MB object whose header holds a 5 MB text and a 3 MB document costs the
    server its header only: the reader skips past both with ranged reads."""
    from tests.test_headers import with_long_values

    options, traffic = s3
    folder = tmp_path / "long"
    folder.mkdir()
    with_long_values(folder / "long.dcm")
    url = _upload(options, folder, f"l-{uuid.uuid4().hex[:8]}")
    traffic.reset()
    report = _run(url, tmp_path, "long", options)
    assert report["loaded"] == 1 and report["errors"] == {"TYPE_CAST_ERROR": 1}
    served = sum(traffic.bytes.values())
    assert served == report["bytes_read"] < 200_000
    con = duckdb.connect(str(tmp_path / "long.duckdb"), read_only=True)
    (metadata,) = con.execute("SELECT metadata FROM dicom_raw").fetchone()
    (offset,) = con.execute("SELECT pixel_data_offset FROM dicom_file_location").fetchone()
    con.close()
    data = (folder / "long.dcm").read_bytes()
    assert offset == data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00") + 12
    document = json.loads(metadata)
    assert document["TextValue"] == {"vr": "UT", "length": 5 << 20, "omitted": True}
    assert document["EncapsulatedDocument"] == {"vr": "OB", "length": 3 << 20}


def test_a_structure_set_over_the_limit_is_walked_from_the_server(s3, tmp_path):
    """A 13 MB ROI Contour Sequence of undefined length: its end can only be found by
    reading it, so the server serves it once (in windows of a few MB), and the row
    records it omitted with its length while the rest of the header loads."""
    from tests.test_headers import _sequence_value_length, with_structure_set

    options, traffic = s3
    folder = tmp_path / "rt"
    folder.mkdir()
    path = with_structure_set(folder / "rtstruct.dcm")
    length = _sequence_value_length(path)
    url = _upload(options, folder, f"rt-{uuid.uuid4().hex[:8]}")
    traffic.reset()
    report = _run(url, tmp_path, "rt", options)
    assert report["loaded"] == 1 and report["errors"] == {"TYPE_CAST_ERROR": 1}
    served = sum(traffic.bytes.values())
    assert served == report["bytes_read"] < length + 200_000
    con = duckdb.connect(str(tmp_path / "rt.duckdb"), read_only=True)
    (metadata,) = con.execute("SELECT metadata FROM dicom_raw").fetchone()
    (offset,) = con.execute("SELECT pixel_data_offset FROM dicom_file_location").fetchone()
    con.close()
    assert offset == path.read_bytes().rindex(b"\xe0\x7f\x10\x00OW\x00\x00") + 12
    document = json.loads(metadata)
    assert document["ROIContourSequence"] == {"vr": "SQ", "length": length, "omitted": True}
    assert document["PatientName"] == str(pydicom.dcmread(path).PatientName)


def test_frame_offsets_cost_one_small_read_and_fetch_a_frame_from_the_server(s3, tmp_path):
    """Encapsulated objects whose first read ends before Pixel Data: each costs one
    more request, of its Basic Offset Table's bytes only, as the server counts them
    and the report says; a ranged read at a frame's offset then gets the frame
    pydicom reads from the whole object."""
    from pydicom.encaps import generate_frames

    from tests.test_frame_offsets import FRAMES, _encapsulated_file, fragments_in

    options, traffic = s3
    folder = tmp_path / "enc"
    folder.mkdir()
    data = _encapsulated_file(FRAMES, "basic")
    (folder / "basic.dcm").write_bytes(data)
    header_end = data.index(b"\xe0\x7f\x10\x00") + 12
    url = _upload(options, folder, f"f-{uuid.uuid4().hex[:8]}")
    traffic.reset()
    report = _run(url, tmp_path, "frames", options, frame_offsets=True, header_bytes=header_end)
    table = 8 + 4 * len(FRAMES)
    assert report["frame_offsets"]["offset_table_reads"] == 1
    assert report["frame_offsets"]["offset_table_bytes"] == table
    assert report["frame_offsets"]["frames_located"] == len(FRAMES)
    assert sum(traffic.bytes.values()) == report["bytes_read"] == header_end + table
    assert list(traffic.gets.values()) == [2]
    con = duckdb.connect(str(tmp_path / "frames.duckdb"), read_only=True)
    third = con.execute(
        "SELECT frame_offset, frame_length FROM dicom_frame WHERE frame_number = 3"
    ).fetchone()
    con.close()
    fs = s3fs.S3FileSystem(**options)
    path = url.removeprefix("s3://") + "/basic.dcm"
    fetched = fs.cat_file(path, start=third[0], end=third[0] + third[1])
    whole = pydicom.dcmread(io.BytesIO(data))
    assert fragments_in(fetched) == list(generate_frames(whole.PixelData, number_of_frames=5))[2]
