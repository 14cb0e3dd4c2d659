"""Named fault points for crash tests: DICOM_LOADER_FAIL_AT=<point> fails the run there.

Tests use it to stop a load at a precise moment (say, between COPY and MERGE)
in a real process, then check that a rerun ends with the same tables.
"""

from __future__ import annotations

import os

from loader.errors import LoaderError


class InjectedFault(LoaderError):
    """The failure DICOM_LOADER_FAIL_AT asked for."""


def maybe_fail(point: str) -> None:
    if os.environ.get("DICOM_LOADER_FAIL_AT") == point:
        raise InjectedFault(f"fault injected at {point}")
