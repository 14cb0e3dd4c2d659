"""Archives packed in containers: zip, tar and tar.gz members load as the loose files
do, on disk and from the S3 server (a zip's members by ranged reads, its bytes
counted by the server), and what cannot be loaded ends as rows."""

import datetime as dt
import gzip
import io
import os
import shutil
import tarfile
import uuid
import zipfile
from pathlib import Path

import duckdb
import orjson
import pydicom
import pytest
import s3fs
from pydicom.uid import ExplicitVRLittleEndian

from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.sources.listing import list_source
from tests.conftest import real_file

NAMES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "JPEG2000.dcm",
    "badVR.dcm",
    "SC_rgb.dcm",
    "US1_J2KR.dcm",
    "emri_small.dcm",
    "waveform_ecg.dcm",
    "MR_truncated.dcm",
)
# Columns that say where an object is, not what it holds.
WHERE = {
    "file_path",
    "storage_uri",
    "location_key",
    "storage_provider",
    "storage_container",
    "object_key",
    "checksum",
    "ingestion_source",
    "modified_at",
    "_source_order",
    "_shard_id",
    "detected_at",
    "ingested_at",
    "bytes_read",
    "error_message",
    "_run_id",
    "_loaded_at",
}


def _loose(tmp_path: Path) -> Path:
    """Real files, a text file, and two large ones (2 MB of pixels after the header)."""
    root = tmp_path / "loose"
    (root / "real").mkdir(parents=True)
    for name in NAMES:
        shutil.copy(real_file(name), root / "real" / name)
    (root / "readme.txt").write_text("not DICOM\n")
    for n in range(2):
        ds = pydicom.dcmread(real_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{n + 1}"
        ds.Rows = ds.Columns = 1024
        ds.PixelData = bytes(2 * 1024 * 1024)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(root / f"large{n}.dcm", enforce_file_format=True)
    _exports(root / "exports")
    return root


def _exports(folder: Path) -> None:
    """DICOM JSON exports beside the files (pydicom writes them): an array of two
    instances, and one instance a line gzipped; new SOP Instance UIDs, so each is
    an instance of its own."""
    folder.mkdir()
    instances = []
    for n, name in enumerate(("MR_small.dcm", "rtplan.dcm", "CT_small.dcm")):
        ds = pydicom.dcmread(real_file(name), stop_before_pixels=True)
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.9{n + 1}"
        instances.append(ds.to_json_dict())
    (folder / "study.json").write_bytes(orjson.dumps(instances[:2]))
    (folder / "more.ndjson.gz").write_bytes(gzip.compress(orjson.dumps(instances[2]) + b"\n"))


def _zip(loose: Path, path: Path, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for file in sorted(p for p in loose.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(loose).as_posix())
    return path


def _tar(loose: Path, path: Path, mode: str) -> Path:
    with tarfile.open(path, mode) as archive:
        for file in sorted(p for p in loose.rglob("*") if p.is_file()):
            archive.add(file, file.relative_to(loose).as_posix())
    return path


def _run(source, tmp_path: Path, name: str, **kw):
    return run(
        RunSettings(
            source=str(source),
            out=tmp_path / f"{name}-pq",
            target=Target.parse(f"duckdb:///{tmp_path / name}.duckdb"),
            workers=kw.pop("workers", 0),
            **kw,
        )
    )


def _what(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows without the columns that say where an object is."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = {}
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'dicom_%' "
            "AND table_name <> 'dicom_load_history'"
        ).fetchall():
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                    [table],
                ).fetchall()
                if c not in WHERE
            ]
            rows = con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            found[table] = sorted(rows, key=repr)
        return found
    finally:
        con.close()


def _errors(db: Path) -> list[tuple[str, str, str | None]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT file_path, error_category, tag FROM dicom_ingestion_errors"
        ).fetchall()
    finally:
        con.close()
    return sorted(
        (p.rpartition("::")[0].partition("://")[2] or Path(p).name, c, t) for p, c, t in rows
    )


def _dated(loose: Path) -> None:
    """Each loose file modified at a time of its own (a day apart, at even seconds:
    what a zip's date and time can hold), so that a member's time is its own."""
    for n, path in enumerate(sorted(p for p in loose.rglob("*") if p.is_file())):
        stamp = dt.datetime(2011, 3, 1, 8, 30, tzinfo=dt.UTC) + dt.timedelta(days=n, seconds=2 * n)
        os.utime(path, (stamp.timestamp(), stamp.timestamp()))


def _members_dated(bundle: Path) -> dict[str, dt.datetime]:
    """Each member's modification time as the archive itself records it (zipfile,
    tarfile): a zip's date and time read as UTC (it holds no zone), a tar's POSIX
    seconds."""
    if bundle.suffix == ".zip":
        with zipfile.ZipFile(bundle) as archive:
            return {i.filename: dt.datetime(*i.date_time) for i in archive.infolist()}
    with tarfile.open(bundle) as archive:
        return {
            i.name: dt.datetime.fromtimestamp(i.mtime, dt.UTC).replace(tzinfo=None)
            for i in archive.getmembers()
            if i.isfile()
        }


@pytest.fixture(scope="module")
def dated_loose_load(tmp_path_factory) -> tuple[Path, dict, dict[str, list[tuple]]]:
    """The loose files, each dated, loaded once: the folder, the run's report and its
    tables' rows, which each kind of container must give again."""
    tmp_path = tmp_path_factory.mktemp("dated-loose")
    loose = _loose(tmp_path)
    _dated(loose)
    expected = _run(loose, tmp_path, "loose")
    return loose, expected, _what(tmp_path / "loose.duckdb")


@pytest.mark.parametrize("kind", ["zip-deflated", "zip-stored", "tar", "tar.gz"])
def test_members_load_as_the_loose_files_do(tmp_path, kind, dated_loose_load):
    loose, expected, loose_rows = dated_loose_load
    if kind.startswith("zip"):
        method = zipfile.ZIP_STORED if kind == "zip-stored" else zipfile.ZIP_DEFLATED
        bundle = _zip(loose, tmp_path / "bundle.zip", method)
    else:
        suffix, mode = (".tar", "w") if kind == "tar" else (".tar.gz", "w:gz")
        bundle = _tar(loose, tmp_path / f"bundle{suffix}", mode)
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.move(bundle, folder / bundle.name)  # found inside a folder it lists
    report = _run(folder, tmp_path, "bundle", workers=2, cluster_min_objects=0)
    for key in ("listed", "loaded", "duplicates", "error_files", "errors"):
        assert report[key] == expected[key], key
    assert report["validation"]["accounting"]["balanced"]
    assert _what(tmp_path / "bundle.duckdb") == loose_rows
    member_errors = _errors(tmp_path / "bundle.duckdb")
    assert ("readme.txt", "NOT_DICOM", None) in member_errors
    assert not [e for e in member_errors if "exports/" in e[0]]  # read as exports
    assert expected["loaded"] >= len(NAMES) + 3  # the three exported instances among them
    con = duckdb.connect(str(tmp_path / "bundle.duckdb"), read_only=True)
    (uri,) = con.execute(
        "SELECT storage_uri FROM dicom_file_location WHERE storage_uri LIKE '%large0.dcm%'"
    ).fetchone()
    con.close()
    prefix = "zip" if kind.startswith("zip") else "tar"
    assert uri == f"{prefix}://large0.dcm::{folder.resolve() / bundle.name}"
    # Each member's modification time is the archive's own record of it.
    recorded = _members_dated(folder / bundle.name)
    assert len(set(recorded.values())) == len(recorded)  # each its own
    loaded = _member_times(tmp_path / "bundle.duckdb", prefix)
    assert {name: recorded[name] for name in loaded} == loaded
    assert set(recorded) - set(loaded) == NOT_LOADED


# Members that load no instance (not DICOM): no location to carry a time.
NOT_LOADED = {"readme.txt"}


def _member_times(db: Path, prefix: str) -> dict[str, dt.datetime]:
    """Each member's modified_at as loaded, by its name in the container (an
    export's instances by the export's)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT storage_uri, modified_at FROM dicom_file_location WHERE storage_uri LIKE ?",
            [f"{prefix}://%"],
        ).fetchall()
    finally:
        con.close()
    found: dict[str, set[dt.datetime]] = {}
    for uri, at in rows:
        name = uri.partition("://")[2].partition("::")[0]
        found.setdefault(name, set()).add(at)
    assert all(len(times) == 1 for times in found.values()), found  # one time per member
    return {name: times.pop() for name, times in found.items()}


def _uploaded(options, bundle: Path) -> str:
    """`bundle` put in a new bucket of the S3 server; the folder holding it."""
    bucket = f"bundle-{uuid.uuid4().hex[:8]}"
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    fs.put(str(bundle), f"{bucket}/in/{bundle.name}")
    return f"s3://{bucket}/in/"


def test_a_zip_on_s3_costs_its_directory_and_headers(s3, tmp_path):
    """The server serves the zip's directory and each member's first bytes, never the
    whole object; the report counts the workers' part of it, exactly (the listing's
    driver reads the directory too)."""
    options, traffic = s3
    loose = _loose(tmp_path)
    bundle = _zip(loose, tmp_path / "bundle.zip", zipfile.ZIP_STORED)
    folder = _uploaded(options, bundle)
    local = _run(bundle, tmp_path, "local-zip")
    traffic.reset()
    listed = list(list_source(folder, options))
    listing = sum(traffic.bytes.values())  # the driver's reads of the directory
    assert len(listed) > len(NAMES) and listing > 0
    traffic.reset()
    report = _run(folder, tmp_path, "s3-zip", storage_options=options)
    served = sum(traffic.bytes.values())
    size = bundle.stat().st_size
    assert served < size / 3, (served, size)  # 4 MB of pixels never fetched
    # What the server served is the listing's part and the workers' (the directory
    # again, then each member's first bytes), which the report counts: exactly.
    assert served == listing + report["bytes_read"]
    assert report["loaded"] == local["loaded"] and report["errors"] == local["errors"]
    assert _what(tmp_path / "s3-zip.duckdb") == _what(tmp_path / "local-zip.duckdb")


def test_a_tar_gz_on_s3_is_streamed_once(s3, tmp_path):
    """A compressed tar can only be read from its start: the server serves it once,
    whole, to one worker (the listing reads none of it), and the report says so."""
    options, traffic = s3
    loose = _loose(tmp_path)
    bundle = _tar(loose, tmp_path / "bundle.tar.gz", "w:gz")
    folder = _uploaded(options, bundle)
    local = _run(loose, tmp_path, "loose")
    traffic.reset()
    report = _run(folder, tmp_path, "s3-tgz", storage_options=options)
    assert sum(traffic.bytes.values()) == report["bytes_read"] == bundle.stat().st_size
    assert report["listed"] == local["listed"] and report["loaded"] == local["loaded"]
    assert _what(tmp_path / "s3-tgz.duckdb") == _what(tmp_path / "loose.duckdb")


def test_what_cannot_be_loaded_from_a_container_ends_as_rows(tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "corrupt.zip").write_bytes(b"PK\x03\x04 this is no zip at all" * 10)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.write(real_file("CT_small.dcm"), "ct.dcm")
    with zipfile.ZipFile(folder / "outer.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner.zip", inner.getvalue())
        archive.writestr("bomb.dcm", bytes(3 << 20))  # 3 MB of zeros: a few KB stored
        archive.write(real_file("MR_small.dcm"), "mr.dcm")
    # A compression method zipfile does not implement (99: AES) on one member.
    with zipfile.ZipFile(folder / "aes.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.write(real_file("CT_small.dcm"), "aes.dcm")
    data = bytearray((folder / "aes.zip").read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 8 : local + 10] = data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    (folder / "aes.zip").write_bytes(bytes(data))
    cut = tmp_path / "whole.tar.gz"
    _tar(_loose(tmp_path), cut, "w:gz")
    data = cut.read_bytes()
    (folder / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    report = _run(folder, tmp_path, "bad", member_limit=1 << 20)
    errors = _errors(tmp_path / "bad.duckdb")
    assert ("corrupt.zip", "CONTAINER_ERROR", None) in [(Path(p).name, c, t) for p, c, t in errors]
    by_member = {p: c for p, c, _ in errors}
    assert by_member["inner.zip"] == "CONTAINER_ERROR"  # nested: not opened
    assert by_member["bomb.dcm"] == "CONTAINER_ERROR"  # declares 3 MB, over 1 MB
    assert by_member["aes.dcm"] == "CONTAINER_ERROR"  # a method zipfile cannot read
    con = duckdb.connect(str(tmp_path / "bad.duckdb"), read_only=True)
    located = {p for (p,) in con.execute("SELECT storage_uri FROM dicom_file_location").fetchall()}
    con.close()
    assert f"zip://mr.dcm::{folder.resolve() / 'outer.zip'}" in located  # its neighbour loads
    assert by_member["large0.dcm"] == "CONTAINER_ERROR"  # 2 MB in the tar, over 1 MB
    assert any(c == "CONTAINER_ERROR" and "cut.tar.gz" in p for p, c, _ in errors)
    assert report["loaded"] >= 2  # mr.dcm, and the cut tar's members before the cut
    assert report["validation"]["accounting"]["balanced"], report["validation"]["accounting"]


def test_members_of_a_removed_container_are_recorded_deleted(tmp_path):
    """--incremental from a folder of bundles: the members of a zip that went are
    stamped deleted; those of a tar still there stay live."""
    loose = _loose(tmp_path)
    folder = tmp_path / "incoming"
    folder.mkdir()
    _zip(loose / "real", folder / "a.zip")
    _tar(loose, folder / "b.tgz", "w:gz")
    first = _run(folder, tmp_path, "sync", incremental=True)
    con = duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True)
    in_zip = con.execute(
        "SELECT count(*) FROM dicom_file_location WHERE storage_uri LIKE 'zip://%'"
    ).fetchone()[0]
    con.close()
    assert in_zip > 0 and first["loaded"] > 0
    again = _run(folder, tmp_path, "sync", incremental=True)
    assert again["deleted"]["objects"] == 0, again["deleted"]
    # A zip's members are known by the listing: unchanged ones are not read again. A
    # tar has no directory to compare: it is read again.
    assert again["unchanged"] == len(list((loose / "real").iterdir()))
    (folder / "a.zip").unlink()
    gone = _run(folder, tmp_path, "sync", incremental=True)
    assert gone["deleted"]["objects"] == in_zip
    con = duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True)
    live_tar = con.execute(
        "SELECT count(*) FROM dicom_file_location WHERE storage_uri LIKE 'tar://%' "
        "AND deleted_at IS NULL"
    ).fetchone()[0]
    con.close()
    assert live_tar > 0
    assert gone["validation_passed"], gone["validation_failed"]


def test_scan_profiles_containers_as_the_loose_files(tmp_path):
    from loader.jobs.scan import scan

    loose = _loose(tmp_path)
    folder = tmp_path / "incoming"
    folder.mkdir()
    _zip(loose / "real", folder / "a.zip")
    _tar(loose, folder / "b.tar.gz", "w:gz")
    both = tmp_path / "both"
    shutil.copytree(loose / "real", both / "a")
    shutil.copytree(loose, both / "b")
    ours, theirs = scan(str(folder)), scan(str(both))
    for key in ("patients", "studies", "series", "instances", "errors", "modality", "sop_class"):
        assert ours[key] == theirs[key], key
    assert ours["bytes_read"] < sum(p.stat().st_size for p in folder.iterdir())


@pytest.mark.parametrize("newest", ["loose", "member"])
def test_a_loose_copy_and_a_member_copy_resolve_to_the_newest(tmp_path, newest):
    """One instance, loose and in a zip: the most recently modified copy wins (the
    member's time is the zip's own record of it), the other is its DUPLICATE, and
    both are located."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    loose = folder / "ct.dcm"
    shutil.copy(real_file("CT_small.dcm"), loose)
    older, newer = (2015, 6, 1, 12, 0, 0), (2019, 6, 1, 12, 0, 0)
    member_time, loose_time = (newer, older) if newest == "member" else (older, newer)
    at = dt.datetime(*loose_time, tzinfo=dt.UTC).timestamp()
    os.utime(loose, (at, at))
    with zipfile.ZipFile(folder / "bundle.zip", "w") as archive:
        archive.writestr(zipfile.ZipInfo("copy.dcm", member_time), loose.read_bytes())
    member = f"zip://copy.dcm::{(folder / 'bundle.zip').resolve()}"
    winner, loser = (member, str(loose)) if newest == "member" else (str(loose), member)
    report = _run(folder, tmp_path, "copies")
    assert report["loaded"] == 1 and report["duplicates"] == 1
    con = duckdb.connect(str(tmp_path / "copies.duckdb"), read_only=True)
    try:
        (file_path,) = con.execute("SELECT file_path FROM dicom_instance").fetchone()
        duplicates = con.execute(
            "SELECT file_path FROM dicom_ingestion_errors WHERE error_category = 'DUPLICATE'"
        ).fetchall()
        located = dict(
            con.execute("SELECT storage_uri, modified_at FROM dicom_file_location").fetchall()
        )
    finally:
        con.close()
    assert file_path == winner
    assert duplicates == [(loser,)]
    assert located == {member: dt.datetime(*member_time), str(loose): dt.datetime(*loose_time)}
