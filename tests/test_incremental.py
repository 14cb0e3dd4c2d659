"""Object identities for --incremental: pure, no I/O."""

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.core.count import Count
from loader.core.keys import key_of
from loader.jobs.incremental import KnownObjects, identity_sql, to_process
from loader.sources.identity import NO_TIME, _mixed, identities, micros_of
from loader.sources.listed_parts import listed_of
from loader.sources.listing import ObjectRef
from loader.sources.repeats import SeenKeys
from loader.warehouse.base import column_numbers


def identity_of(ref: ObjectRef) -> bytes:
    """One object's identity, as a part of the listing makes it."""
    digests = listed_of([ref], True).digests
    assert digests is not None
    return digests


STAMP = 1_700_000_000.123456


def test_identities_differ_by_every_fact_a_listing_gives():
    local = ObjectRef("/a/b.dcm", 10, STAMP)
    remote = ObjectRef("s3://b/k.dcm", 10, STAMP, "abc")
    assert identity_of(remote) != identity_of(ObjectRef("s3://b/k.dcm", 10, STAMP, "abd"))
    assert identity_of(local) != identity_of(ObjectRef("/a/b.dcm", 11, STAMP))
    assert identity_of(local) != identity_of(ObjectRef("/a/b.dcm", 10, STAMP + 1e-6))
    assert identity_of(local) != identity_of(ObjectRef("/a/c.dcm", 10, STAMP))


def test_every_bit_of_every_fact_changes_the_identity():
    """One URL's versions never share an identity: a change of any single bit of its
    size, time or ETag key gives another, and an unknown time is none of the times a
    file can have (the epoch, before it, the largest)."""
    base = np.array([2**40 + 12345], dtype=np.int64)
    bits = [np.int64(1) << np.int64(b) for b in range(62)]
    key, etag = np.array([7], dtype=np.uint64), np.array([0], dtype=np.uint64)
    made = {
        identities(key, base, base, etag),
        *(identities(key, base ^ bit, base, etag) for bit in bits),
        *(identities(key, base, base ^ bit, etag) for bit in bits),
        *(identities(key, base, base, np.array([1 << b], dtype=np.uint64)) for b in range(64)),
    }
    assert len(made) == 1 + 62 + 62 + 64
    times = [0.0, -1e-6, 2.0**62 / 1e6, 1.0, math.nan]
    micros = micros_of(np.array(times))
    assert len({identities(key, base, micros[i : i + 1], etag) for i in range(5)}) == 5


def _unshifted(word: int, by: int) -> int:
    """The x of `x ^ (x >> by)` (64-bit)."""
    found = word
    for _ in range(64 // by + 1):
        found = word ^ (found >> by)
    return found


def test_the_mix_is_splitmix64s_finaliser_which_loses_nothing():
    """Two versions of one URL share an identity only if their facts do: the mix is
    SplitMix64's finaliser (Steele, Lea and Flood's constants), every step of which
    can be undone, so no two words mix to one. Undone here step by step, with the
    published constants, it gives back every word."""
    words = np.random.default_rng(5).integers(0, 2**64, 5_000, dtype=np.uint64)
    words[:3] = [0, 1, 2**64 - 1]
    whole = 2**64
    undone = []
    for mixed in _mixed(words).tolist():
        word = _unshifted(mixed, 31) * pow(0x94D049BB133111EB, -1, whole) % whole
        word = _unshifted(word, 27) * pow(0xBF58476D1CE4E5B9, -1, whole) % whole
        undone.append(_unshifted(word, 30))
    assert undone == words.tolist()
    # An unknown time is below every time a file system can give in microseconds.
    assert np.iinfo(np.int64).min == NO_TIME


def test_the_warehouse_computes_the_identities_a_listing_gives(empty_model):
    """The target's identities (computed in SQL) are the listing's (identity_of) for
    the same facts: a local file's checksum (a hash of its bytes) left out, an object
    store's ETag kept, a missing size or time as the listing has it."""
    warehouse = empty_model
    when = dt.datetime.fromtimestamp(STAMP, dt.UTC).replace(tzinfo=None)
    stored = [  # storage_uri, file_size_bytes, modified_at, checksum, storage_provider
        ("s3://b/a.dcm", 10, when, "e1", "s3"),
        ("/x/b.dcm", None, None, "md5-of-bytes", "file"),
        ("/x/ü c.dcm", 7, when, "md5-of-bytes", "file"),
        ("gs://b/d.dcm", 3, when, None, "gcs"),
        ("zip://m.dcm::/x/z.zip", 5, when, None, None),
    ]
    mark = warehouse.placeholder
    for row in stored:  # a location's key is its URL's (object_rows.py)
        warehouse.query(
            "INSERT INTO dicom_file_location (location_key, storage_uri, file_size_bytes, "
            f"modified_at, checksum, storage_provider) VALUES ({', '.join([mark] * 6)})",
            [key_of(row[0]), *row],
        )
    known = KnownObjects.from_columns(warehouse.column_batches(identity_sql(warehouse.dialect)))
    listed = [
        ObjectRef("s3://b/a.dcm", 10, STAMP, "e1"),
        ObjectRef("/x/b.dcm", 0, None),
        ObjectRef("/x/ü c.dcm", 7, STAMP),
        ObjectRef("gs://b/d.dcm", 3, STAMP),
        ObjectRef("zip://m.dcm::/x/z.zip", 5, STAMP),
    ]
    assert len(known) == len(stored)
    assert known.contains(b"".join(identity_of(r) for r in listed)).all()
    changed = [
        ObjectRef("s3://b/a.dcm", 10, STAMP, "e2"),  # another ETag
        ObjectRef("s3://b/a.dcm", 11, STAMP, "e1"),  # another size
        ObjectRef("/x/ü c.dcm", 7, STAMP + 1e-6),  # a microsecond later
        ObjectRef("/x/b.dcm", 0, STAMP),  # a time where none was
    ]
    assert not known.contains(b"".join(identity_of(r) for r in changed)).any()


@given(
    st.one_of(
        st.floats(min_value=0, max_value=2**37, allow_nan=False),
        # a fraction on or near half a microsecond: where rounding can go either way
        st.builds(
            lambda s, half: s + half * 5e-7, st.integers(0, 2**33), st.integers(0, 2_000_000)
        ),
    )
)
def test_microseconds_are_those_datetime_rounds_to(seconds):
    """The listing's time, in microseconds, is the one the warehouse stores: what
    `datetime.fromtimestamp` makes of the same float (modified_at is written so)."""
    made = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
    assert micros_of(np.array([seconds, math.nan])).tolist() == [
        (made - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1),
        NO_TIME,
    ]


def _processed(listing: list[ObjectRef], known: KnownObjects | None, unchanged: Count):
    parts = [listed_of(listing[i : i + 4096], True) for i in range(0, len(listing), 4096)]
    return list(to_process(parts, SeenKeys(), Count(), known, unchanged))


def test_only_new_and_changed_objects_are_processed_in_order():
    old = [ObjectRef(f"/x/{n}", n, STAMP) for n in range(20_000)]
    known = KnownObjects(identity_of(r) for r in old[::2])
    assert len(known) == 10_000
    listing = [*old, ObjectRef("/y/new", 5, None), ObjectRef("s3://b/k", 3, STAMP, "e")]
    unchanged = Count()
    assert _processed(listing, known, unchanged) == [*old[1::2], *listing[-2:]]
    assert unchanged.value == 10_000
    assert _processed(listing, KnownObjects([]), unchanged) == listing
    assert _processed(listing, None, unchanged) == listing  # not --incremental
    assert unchanged.value == 10_000
    # The same object rewritten (another size) is processed again.
    again = [ObjectRef("/x/0", 1, STAMP)]
    assert _processed(again, known, unchanged) == again


def _digest(high: int, low: int) -> bytes:
    return high.to_bytes(8, "big") + low.to_bytes(8, "big")


def test_a_digest_is_known_only_when_both_halves_are():
    """Found is never wrong: an object is skipped only when its whole 128-bit
    identity is known, whichever half it shares with others."""
    highest = 2**64 - 1
    known = KnownObjects(
        [
            _digest(5, 1),
            _digest(5, 9),
            _digest(5, 4),
            _digest(7, 2),
            _digest(7, 8),
            _digest(highest, 3),
        ]
    )
    asked = {
        _digest(5, 9): True,  # shares its high half with two others
        _digest(5, 4): True,
        _digest(5, 2): False,  # high half known, low not
        _digest(5, 100): False,  # … and above every low half of that high half
        _digest(7, 8): True,  # shares its high half with one other
        _digest(6, 1): False,  # low half known, high not
        _digest(7, 2): True,
        _digest(0, 0): False,  # below every known one
        _digest(highest, 4): False,  # above every known one
        _digest(highest, 3): True,
    }
    assert known.contains(b"".join(asked)).tolist() == list(asked.values())
    assert KnownObjects([]).contains(b"".join(asked)).tolist() == [False] * len(asked)
    below = KnownObjects([_digest(5, 1), _digest(9, 9)])  # a high half above them all
    assert below.contains(_digest(10, 9) + _digest(9, 9)).tolist() == [False, True]


def test_a_column_of_whole_numbers_with_a_null_is_refused():
    """NumPy would hold a NULL as a float NaN, whose cast to an integer no platform
    defines; the identity SQL coalesces every number, so a NULL here is a defect."""
    assert column_numbers(pa.array([1, 2], pa.int8()), pa.int64()).tolist() == [1, 2]
    with pytest.raises(ValueError, match="1 NULL"):
        column_numbers(pa.array([1, None]), pa.int64())
