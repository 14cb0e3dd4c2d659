"""Object identities for --incremental: pure, no I/O."""

import datetime as dt

from loader.incremental import KnownObjects, changed_only, identity_of, identity_of_row
from loader.listing import ObjectRef

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


def test_changed_only_keeps_new_and_changed_in_order():
    old = [ObjectRef(f"/x/{n}", n, STAMP) for n in range(20_000)]
    known = KnownObjects(identity_of(r) for r in old[::2])
    assert len(known) == 10_000
    listing = [*old, ObjectRef("/x/0", 1, STAMP), ObjectRef("/y/new", 5, None)]
    unchanged = [0]
    kept = list(changed_only(listing, known, unchanged))
    assert unchanged == [10_000]
    assert kept == [*old[1::2], listing[-2], listing[-1]]
    assert list(changed_only(listing, KnownObjects([]), unchanged)) == listing
