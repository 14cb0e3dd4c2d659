"""Containers member by member: names, a zip's directory, a tar's stream and what
zipfile and tarfile refuse, each against what Python's own `zipfile`, `tarfile` and
`zlib` say of the same bytes (the end-to-end loads are in test_containers.py)."""

from __future__ import annotations

import datetime as dt
import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from loader.core.errors import ContainerError, ObjectReadError
from loader.sources.containers import (
    TAR,
    ZIP,
    Member,
    OpenZips,
    container_kind,
    is_export,
    member_url,
    open_container,
    split_member,
    tar_members,
    zip_members,
)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("/data/x.zip", ZIP),
        ("s3://b/X.ZIP", ZIP),
        ("/data/a.tar", TAR),
        ("gs://b/a.tar.gz", TAR),
        ("/data/a.TGZ", TAR),
        ("/data/a.gz", None),
        ("/data/a.dcm", None),
        ("zip://inner.zip::/data/outer.zip", None),  # a member named like a container
    ],
)
def test_a_container_is_known_by_its_name(url, kind):
    assert container_kind(url) == kind


@pytest.mark.parametrize(
    ("url", "export"),
    [
        ("/e/a.json", True),
        ("/e/a.JSON.gz", True),
        ("s3://b/a.ndjson", True),
        ("/e/a.ndjson.gz", True),
        ("zip://d/a.json::s3://b/x.zip", True),
        ("zip://d/a.dcm::s3://b/x.json", False),  # the member's name counts, not the zip's
        ("/e/a.jsonl", False),
    ],
)
def test_an_export_is_known_by_its_own_name(url, export):
    assert is_export(url) is export


def test_a_members_url_names_its_kind_name_and_container():
    for kind in (ZIP, TAR):
        url = member_url(kind, "d/1.dcm", "s3://b/x.bundle")
        assert url == f"{kind}://d/1.dcm::s3://b/x.bundle"
        assert split_member(url) == Member(kind, "d/1.dcm", "s3://b/x.bundle")
    assert split_member("zip://no-container") is None
    assert split_member("s3://b/k::x") is None


def _stamp(year: int, *rest: int) -> float:
    return dt.datetime(year, *rest, tzinfo=dt.UTC).timestamp()


def test_a_zips_directory_lists_its_files_from_the_directory_alone(tmp_path):
    """Files only (not folders), each with its inflated size, CRC and time (zip has
    no zone: taken as UTC); the members' data, 300 KB stored, is not read."""
    path = tmp_path / "b.zip"
    big = os.urandom(300_000)
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(zipfile.ZipInfo("d/", (2020, 1, 1, 0, 0, 0)), b"")
        bundle.writestr(zipfile.ZipInfo("d/big.dcm", (2021, 6, 7, 8, 9, 10)), big)
        small = zipfile.ZipInfo("d/small.dcm", (2022, 12, 31, 23, 59, 58))
        small.compress_type = zipfile.ZIP_DEFLATED
        bundle.writestr(small, b"abc" * 1000)
    members, read = zip_members(str(path), path.stat().st_size, {})
    assert [(m.name, m.size, m.crc, m.modified) for m in members] == [
        ("d/big.dcm", 300_000, zlib.crc32(big), _stamp(2021, 6, 7, 8, 9, 10)),
        ("d/small.dcm", 3000, zlib.crc32(b"abc" * 1000), _stamp(2022, 12, 31, 23, 59, 58)),
    ]
    assert 0 < read < path.stat().st_size - 250_000


def test_what_is_not_a_zip_is_a_container_error(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(ContainerError, match="not a readable zip"):
        zip_members(str(path), 9, {})


def _patched_zip(path: Path, field: str, value: int) -> None:
    """A zip of one stored member whose header fields, in its local header and in the
    directory alike, are then set as an archiver zipfile lacks would write them:
    `method` (the compression method) or `flags` (general purpose bits; bit 0:
    encrypted). Offsets per the ZIP specification (APPNOTE 4.3.7 and 4.3.12)."""
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("m.dcm", b"DICM" * 10)
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    at = {"flags": (6, 8), "method": (8, 10)}[field]
    for offset in (local + at[0], central + at[1]):
        data[offset : offset + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("field", "value"), [("flags", 0x1), ("method", 97)])
def test_a_member_zipfile_cannot_read_is_a_container_error(tmp_path, field, value):
    """An encrypted member, or one compressed by a method zipfile does not implement."""
    path = tmp_path / "b.zip"
    _patched_zip(path, field, value)
    with zipfile.ZipFile(path) as bundle, pytest.raises((RuntimeError, NotImplementedError)):
        bundle.open("m.dcm")  # zipfile itself refuses it
    zips = OpenZips({})
    with pytest.raises(ContainerError, match="member cannot be read") as raised:
        zips.member(Member(ZIP, "m.dcm", str(path)))
    assert raised.value.path == f"zip://m.dcm::{path}"
    zips.close()


def test_closing_the_open_zips_closes_their_files(tmp_path):
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("m.dcm", b"x")
    zips = OpenZips({})
    ranged, _, _ = zips.member(Member(ZIP, "m.dcm", str(path)))
    zips.close()
    assert ranged.closed and zips.served(str(path)) == 0


def _tar_of(path: Path, mode: str, files: dict[str, bytes]) -> None:
    with tarfile.open(path, mode) as bundle:
        folder = tarfile.TarInfo("d")
        folder.type = tarfile.DIRTYPE
        bundle.addfile(folder)
        link = tarfile.TarInfo("d/link")
        link.type, link.linkname = tarfile.SYMTYPE, "a.dcm"
        bundle.addfile(link)
        for number, (name, data) in enumerate(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000 + number
            bundle.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(("suffix", "mode"), [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz")])
def test_a_tars_regular_files_pass_in_order_with_their_data(tmp_path, suffix, mode):
    path = tmp_path / f"b{suffix}"
    files = {"d/a.dcm": b"A" * 700, "d/b.dcm": b"B" * 3}
    _tar_of(path, mode, files)
    ranged, members = tar_members(str(path), path.stat().st_size, {})
    seen = [(m.url, m.size, m.modified, m.data.read()) for m in members]
    assert seen == [
        (f"tar://{name}::{path}", len(data), 1_600_000_000 + number, data)
        for number, (name, data) in enumerate(files.items())
    ]
    assert ranged.closed  # the stream ended: its file let go


def test_an_uncompressed_tar_is_read_by_seeking_past_what_is_not_needed(tmp_path):
    path = tmp_path / "b.tar"
    _tar_of(path, "w", {"d/big.dcm": os.urandom(2_000_000), "d/small.dcm": b"s"})
    ranged, members = tar_members(str(path), path.stat().st_size, {})
    assert [m.size for m in members] == [2_000_000, 1]  # data not read
    assert ranged.bytes_read < 200_000


def test_a_compressed_tar_is_streamed_in_blocks_of_4_mib(tmp_path):
    path = tmp_path / "b.tgz"
    noise = 19 << 19  # 9.5 MiB of random bytes, which do not compress
    _tar_of(path, "w:gz", {"d/noise.dcm": os.urandom(noise)})
    size = path.stat().st_size
    ranged, members = tar_members(str(path), size, {})
    assert [m.size for m in members] == [noise]
    assert ranged.requests == -(-size // (4 << 20)) == 3


def test_a_corrupt_tar_is_a_container_error_when_the_stream_meets_it(tmp_path):
    path = tmp_path / "b.tar.gz"
    path.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 40)
    _, members = tar_members(str(path), path.stat().st_size, {})
    with pytest.raises(ContainerError, match="not a readable tar"):
        list(members)


def test_a_listed_size_is_taken_as_the_listing_gives_it(tmp_path):
    path = tmp_path / "b.zip"
    path.write_bytes(b"x" * 1024)
    assert open_container(str(path), 1, {}, 100).size == 1
    assert open_container(str(path), 0, {}, 100).size == 1024


def test_a_members_first_bytes_cost_one_read_of_64_kib_from_its_header(tmp_path):
    """Once the directory is read, opening a member and reading its first bytes
    costs one ranged read: 64 KiB from its local header, which holds the header (30
    bytes and the name) and the bytes read."""
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("d/a.dcm", os.urandom(300_000))
        bundle.writestr("d/b.dcm", os.urandom(300_000))
    zips = OpenZips({})
    ranged, _, _ = zips.member(Member(ZIP, "d/a.dcm", str(path)))  # the directory read
    before = (ranged.requests, ranged.bytes_read)
    _, member, _ = zips.member(Member(ZIP, "d/b.dcm", str(path)))
    assert len(member.read(1000)) == 1000
    assert (ranged.requests - before[0], ranged.bytes_read - before[1]) == (1, 64 * 1024)
    zips.close()


def test_a_local_container_that_fails_mid_read_is_a_read_error():
    """Linux refuses to read the start of a process's own memory map (EIO): a read
    that fails after the open is a READ_ERROR naming the system's reason."""
    ranged = open_container("/proc/self/mem", 100, {}, 10)
    with pytest.raises(ObjectReadError, match=r"read failed: Input/output error$"):
        ranged.read(10)
    ranged.close()


def test_a_zip_whose_directory_cannot_be_decoded_is_a_container_error(tmp_path):
    """A member name flagged UTF-8 (bit 11) that is not UTF-8: zipfile raises a
    UnicodeDecodeError reading the directory, a CONTAINER_ERROR for the listing and
    for a worker alike."""
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("\u00e9.dcm", b"x")  # zipfile flags a non-ASCII name UTF-8
    path.write_bytes(path.read_bytes().replace("\u00e9".encode(), b"\xc3\x28"))
    with pytest.raises(ContainerError, match="not a readable zip"):
        zip_members(str(path), path.stat().st_size, {})
    with pytest.raises(ContainerError, match="not a readable zip"):
        OpenZips({}).member(Member(ZIP, "x.dcm", str(path)))
