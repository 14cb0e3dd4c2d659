"""`RangedFile`, the file a zip or tar is read through: it must read as a file in
memory does (Python's `io.BytesIO` is the reference), fetch only what a read needs
plus its block ahead, and count exactly the bytes and requests the store served."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.core.errors import ContainerError, ObjectReadError
from loader.sources.containers import OpenZips, RangedFile, open_container, split_member

_operations = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.one_of(st.none(), st.integers(-2, 700))),
        st.tuples(st.just("readinto"), st.integers(0, 700)),
        st.tuples(st.just("seek"), st.integers(0, 3500), st.just(0)),
        st.tuples(st.just("seek"), st.integers(-3500, 3500), st.sampled_from([1, 2])),
    ),
    max_size=25,
)


class _Store:
    """What a store would serve: the ranges asked for, each recorded."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[tuple[int, int]] = []

    def fetch(self, start: int, end: int) -> bytes:
        self.asked.append((start, end))
        return self.data[start:end]


@given(data=st.binary(max_size=3000), block=st.integers(1, 512), operations=_operations)
def test_a_ranged_file_reads_as_a_file_in_memory_does(data, block, operations):
    store = _Store(data)
    ranged, reference = RangedFile(store.fetch, len(data), block), io.BytesIO(data)
    held: tuple[int, int] = (0, 0)  # the range the last fetch returned
    for operation in operations:
        before = len(store.asked)
        position = reference.tell()
        if operation[0] == "seek":
            _, offset, whence = operation
            assert ranged.seek(offset, whence) == reference.seek(offset, whence)
            assert len(store.asked) == before  # seeking reads nothing
            continue
        if operation[0] == "read":
            got, expected = ranged.read(operation[1]), reference.read(operation[1])
        else:
            buffer, wanted = bytearray(operation[1]), bytearray(operation[1])
            count = ranged.readinto(buffer)
            assert count == reference.readinto(wanted)
            got, expected = bytes(buffer[:count]), bytes(wanted[:count])
        assert got == expected
        assert ranged.tell() == reference.tell()
        needed = (position, position + len(expected))
        if not expected or (held[0] <= needed[0] and needed[1] <= held[1]):
            assert len(store.asked) == before  # nothing, or what is held: no request
        else:
            (start, end) = store.asked[-1]
            assert len(store.asked) == before + 1
            # From where the read starts, at least a block ahead (or to the end).
            assert start == position and end == min(len(data), max(needed[1], start + block))
            held = (start, end)
    assert ranged.requests == len(store.asked)
    assert ranged.bytes_read == sum(len(data[s:e]) for s, e in store.asked)


def test_closing_lets_go_once():
    released = []
    ranged = RangedFile(lambda s, e: b"", 0, 1, lambda: released.append(1))
    assert ranged.readable() and ranged.seekable()
    ranged.close()
    assert released == [1] and ranged.closed
    ranged.close()
    assert released == [1]


def test_a_read_of_nothing_fetches_nothing():
    """read(0), and a read at or past the end: empty, and no request."""
    store = _Store(b"abcdef")
    ranged = RangedFile(store.fetch, 6, 4)
    assert ranged.read(0) == b"" and ranged.read() == b"abcdef" and store.asked == [(0, 6)]
    ranged.seek(0)
    ranged.seek(10, 1)
    assert ranged.read() == b"" and ranged.read(3) == b""
    fresh = _Store(b"abcdef")
    at_end = RangedFile(fresh.fetch, 6, 4)
    at_end.seek(0, 2)
    assert at_end.read(5) == b"" and at_end.read() == b"" and fresh.asked == []
    assert RangedFile(fresh.fetch, 6, 4).read(0) == b"" and fresh.asked == []


def test_a_local_container_is_read_through_its_file(tmp_path):
    path = tmp_path / "bundle.zip"
    path.write_bytes(bytes(range(256)) * 4)
    ranged = open_container(str(path), 0, {}, 100)  # size 0: found from the file
    assert ranged.size == 1024
    ranged.seek(1000)
    assert ranged.read() == (bytes(range(256)) * 4)[1000:]
    assert (ranged.requests, ranged.bytes_read) == (1, 24)
    ranged.close()


def test_a_container_that_is_gone_is_a_read_error(tmp_path):
    with pytest.raises(ObjectReadError, match="cannot open: No such file or directory"):
        open_container(str(tmp_path / "gone.zip"), 0, {}, 100)


def test_a_container_in_a_store_is_read_by_ranges_its_size_asked_when_not_listed():
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem().pipe_file("/bundles/b.zip", b"z" * 5000)
    ranged = open_container("memory://bundles/b.zip", 0, {}, 1000)
    assert ranged.size == 5000
    assert open_container("memory://bundles/b.zip", 1, {}, 1000).size == 1  # as listed
    ranged.seek(4500)
    assert ranged.read(10) == b"z" * 10 and ranged.bytes_read == 500  # to the end


def test_open_zips_reads_a_directory_once_and_refuses_what_is_not_there(tmp_path):
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("a/1.dcm", b"one")
        bundle.writestr("a/2.dcm", b"two")
    (tmp_path / "not.zip").write_bytes(b"not a zip at all")
    zips = OpenZips({})
    opened = []
    for name, content in (("a/1.dcm", b"one"), ("a/2.dcm", b"two")):
        ranged, member, size = zips.member(split_member(f"zip://{name}::{path}"))
        assert (member.read(), size) == (content, len(content))
        opened.append(ranged)
        assert (zips.requests(str(path)), zips.served(str(path))) == (
            ranged.requests,
            ranged.bytes_read,
        )
    assert opened[0] is opened[1] and opened[0].requests > 0  # one zip, opened once
    with pytest.raises(ObjectReadError, match="no such member any more"):
        zips.member(split_member(f"zip://a/3.dcm::{path}"))
    with pytest.raises(ContainerError, match="not a readable zip"):
        zips.member(split_member(f"zip://x.dcm::{tmp_path / 'not.zip'}"))
    assert zips.served(str(path)) == 0  # closed when another zip was opened
    assert zips.requests(str(path)) == 0
    zips.close()
