"""Object identities for --incremental: pure, no I/O."""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from loader.core.count import Count
from loader.jobs.incremental import (
    KnownObjects,
    changed_only,
    identity_of,
    identity_of_row,
    micros_of_seconds,
)
from loader.sources.listing import ObjectRef

STAMP = 1_700_000_000.123456


def test_listing_and_warehouse_agree_on_identity():
    local = ObjectRef("/a/b.dcm", 10, STAMP)
    remote = ObjectRef("s3://b/k.dcm", 10, STAMP, "abc")
    when = dt.datetime.fromtimestamp(STAMP, dt.UTC).replace(tzinfo=None)
    assert identity_of(local) == identity_of_row(("/a/b.dcm", 10, when, "md5-of-bytes", "file"))
    assert identity_of(remote) == identity_of_row(("s3://b/k.dcm", 10, when, "abc", "s3"))
    assert identity_of(remote) != identity_of_row(("s3://b/k.dcm", 10, when, "abd", "s3"))
    assert identity_of(local) != identity_of(ObjectRef("/a/b.dcm", 11, STAMP))
    assert identity_of(local) != identity_of(ObjectRef("/a/b.dcm", 10, STAMP + 1e-6))


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
    assert micros_of_seconds(seconds) == (made - dt.datetime(1970, 1, 1)) // dt.timedelta(
        microseconds=1
    )


def test_a_time_with_its_zone_is_the_same_instant():
    when = dt.datetime.fromtimestamp(STAMP, dt.UTC)
    naive = when.replace(tzinfo=None)
    elsewhere = when.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    row = ("s3://b/k.dcm", 10, naive, "abc", "s3")
    assert identity_of_row(row) == identity_of_row((*row[:2], elsewhere, *row[3:]))


def test_changed_only_keeps_new_and_changed_in_order():
    old = [ObjectRef(f"/x/{n}", n, STAMP) for n in range(20_000)]
    known = KnownObjects(identity_of(r) for r in old[::2])
    assert len(known) == 10_000
    listing = [*old, ObjectRef("/x/0", 1, STAMP), ObjectRef("/y/new", 5, None)]
    unchanged = Count()
    kept = list(changed_only(listing, known, unchanged))
    assert unchanged.value == 10_000
    assert kept == [*old[1::2], listing[-2], listing[-1]]
    assert list(changed_only(listing, KnownObjects([]), unchanged)) == listing


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
    assert known.contains(list(asked)).tolist() == list(asked.values())
    assert KnownObjects([]).contains(list(asked)).tolist() == [False] * len(asked)
    below = KnownObjects([_digest(5, 1), _digest(9, 9)])  # a high half above them all
    assert below.contains([_digest(10, 9), _digest(9, 9)]).tolist() == [False, True]


def test_known_objects_from_the_warehouse_rows():
    when = dt.datetime.fromtimestamp(STAMP, dt.UTC).replace(tzinfo=None)
    rows = [("s3://b/a.dcm", 10, when, "e1", "s3"), ("/x/b.dcm", None, None, "md5", "file")]
    known = KnownObjects.from_rows([rows[:1], rows[1:]])
    listed = [ObjectRef("s3://b/a.dcm", 10, STAMP, "e1"), ObjectRef("/x/b.dcm", 0, None)]
    assert len(known) == 2 and known.contains([identity_of(r) for r in listed]).all()
