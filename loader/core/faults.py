"""Named fault points for crash tests: DICOM_LOADER_FAIL_AT=<point>[#N][:crash].

Tests use it to stop a load at a precise moment (between two COPYs, between COPY
and MERGE, halfway through the MERGE step of the Nth load batch, inside the
deletions' transaction, a shard's files half published) in a real process, then
check that the tables are exactly as before and that a rerun ends with the same
tables. `<point>` raises there each time it is reached (`#N`: the Nth time in this
process only); `:crash` ends the process on the spot, as a killed driver would,
dropping its warehouse connection.
"""

from __future__ import annotations

import os
from collections import Counter

from loader.core.errors import LoaderError

CRASH_EXIT_CODE = 70


class InjectedFault(LoaderError):
    """The failure DICOM_LOADER_FAIL_AT asked for."""


_reached: Counter[str] = Counter()


def maybe_fail(point: str) -> None:
    wanted, _, mode = os.environ.get("DICOM_LOADER_FAIL_AT", "").partition(":")
    wanted, _, nth = wanted.partition("#")
    if wanted != point:
        return
    if nth:
        _reached[point] += 1
        if _reached[point] != int(nth):
            return
    if mode == "crash":
        os._exit(CRASH_EXIT_CODE)
    raise InjectedFault(f"fault injected at {point}")
