"""What a library says about one object, kept with that object, off the terminal.

pydicom reports oddities it reads past (`Expected explicit VR, but found implicit
VR`, a value of the wrong length) twice: with `warnings.warn` and on its `pydicom`
logger, which reaches whatever handler the process has (the terminal's, a Dask
worker's stderr). Both belong to the object being read, not to the run's output:
`captured()` takes them while one object is read and decoded, and the shard writes
them as one PARSE_WARNING row of that object (counted in the report like any
category). Nothing passes through to the terminal.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# The loggers of the libraries that read objects and log what they read past.
LIBRARY_LOGGERS = ("pydicom",)
MESSAGE_LIMIT = 1000  # characters of a warning row's message


class _Collect(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def captured() -> Iterator[list[str]]:
    """The warnings raised and logged (WARNING and up) by libraries inside the
    block, in order; complete once the block has ended. Not thread-safe, as
    `warnings.catch_warnings` is not: use it where objects are parsed, one at a time."""
    messages: list[str] = []
    handler = _Collect(messages)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    kept = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield messages
            finally:
                messages.extend(str(w.message) for w in caught)
    finally:
        for logger, propagate in zip(loggers, kept, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate


def summary(messages: list[str]) -> str | None:
    """One row's message for an object's warnings: each distinct one once, in order
    (pydicom logs and warns the same words), None when there were none."""
    if not messages:
        return None
    return "; ".join(dict.fromkeys(messages))[:MESSAGE_LIMIT]
