"""Cutting a listing into shards: every object once, in order, the tail cut finer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.core.errors import ConfigError
from loader.sources.listing import ObjectRef, make_shards


def refs(count: int) -> list[ObjectRef]:
    return [ObjectRef(f"/archive/{i:06d}.dcm", 1000 + i, 1.7e9 + i) for i in range(count)]


def sizes(count: int, shard_size: int) -> list[int]:
    return [len(shard.objects) for shard in make_shards(iter(refs(count)), shard_size)]


def test_the_last_shards_are_cut_a_quarter_of_the_size():
    assert sizes(10_000, 2000) == [2000] * 4 + [500] * 4
    assert sizes(9_999, 2000) == [2000] * 3 + [500] * 7 + [499]
    assert sizes(11_999, 2000) == [2000] * 4 + [500] * 7 + [499]


def test_a_listing_smaller_than_a_shard_is_cut_into_quarters():
    assert sizes(300, 2000) == [300]
    assert sizes(1_100, 2000) == [500, 500, 100]
    assert sizes(7, 10) == [3, 3, 1]
    assert sizes(0, 10) == []


def test_shards_of_one_object():
    assert sizes(5, 1) == [1] * 5


def test_the_cut_depends_on_the_listing_only():
    first = [(s.shard_id, s.objects) for s in make_shards(iter(refs(5_321)), 1000)]
    again = [(s.shard_id, s.objects) for s in make_shards(iter(refs(5_321)), 1000)]
    assert first == again
    assert len({shard_id for shard_id, _ in first}) == len(first)


def test_a_shard_size_below_one_is_refused():
    with pytest.raises(ConfigError):
        list(make_shards(iter(refs(3)), 0))


@given(count=st.integers(0, 400), shard_size=st.integers(1, 60))
def test_every_object_once_in_order_whole_shards_then_the_tail(count, shard_size):
    listed = refs(count)
    shards = list(make_shards(iter(listed), shard_size))
    assert [ref for shard in shards for ref in shard.objects] == listed
    whole = max(0, count // shard_size - 1)  # the tail keeps shard_size to 2 × shard_size - 1
    cut = [len(shard.objects) for shard in shards]
    assert cut[:whole] == [shard_size] * whole
    tail, tail_size = cut[whole:], -(-shard_size // 4)
    assert sum(tail) == count - whole * shard_size
    assert tail[:-1] == [tail_size] * (len(tail) - 1)
    assert all(0 < size <= tail_size for size in tail)


def test_retries_are_decided_by_exception_class():
    """Transient by class (ours, the standard library's, the storage clients'),
    never by the words of a class's name."""
    import botocore.exceptions

    from loader.core.errors import ConfigError, ObjectReadError
    from loader.sources.dicomweb import TransientHttpError
    from loader.sources.storage import is_transient

    for transient in (
        TimeoutError("slow"),
        ConnectionResetError("reset"),
        OSError("503 SlowDown"),
        TransientHttpError("HTTP 503"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1"),
    ):
        assert is_transient(transient), transient

    class ThrottlingTimeoutConnectionServerError(ValueError):  # a name that says "retry"
        pass

    for terminal in (
        FileNotFoundError("gone"),
        PermissionError("denied"),
        ValueError("bad"),
        ConfigError("bad setting"),
        ObjectReadError("s3://b/k", "read failed"),
        ThrottlingTimeoutConnectionServerError("but is not"),
    ):
        assert not is_transient(terminal), terminal
