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


class Collected:
    """What libraries say while objects are read, kept until `take()`: installed once
    around a loop over objects (a shard), each object then takes what was said while
    it was read. Entering and leaving costs more than reading a small object's
    header, so a shard pays it once. Not thread-safe, as `warnings.catch_warnings` is
    not: objects are parsed one at a time."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._handler = _Collect(self.messages)
        self._loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
        self._propagate: list[bool] = []
        self._warnings = warnings.catch_warnings(record=True)
        self._caught: list[warnings.WarningMessage] = []

    def __enter__(self) -> Collected:
        self._propagate = [logger.propagate for logger in self._loggers]
        for logger in self._loggers:
            logger.addHandler(self._handler)
            logger.propagate = False
        caught = self._warnings.__enter__()  # record=True: the list warnings go to
        self._caught = caught if caught is not None else []
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(None, None, None)
        for logger, propagate in zip(self._loggers, self._propagate, strict=True):
            logger.removeHandler(self._handler)
            logger.propagate = propagate

    def take(self) -> list[str]:
        """What was logged (WARNING and up), then warned, since the last take."""
        if not self.messages and not self._caught:
            return []
        found = [*self.messages, *(str(w.message) for w in self._caught)]
        self.messages.clear()
        self._caught.clear()
        return found


@contextmanager
def captured(collected: Collected | None = None) -> Iterator[list[str]]:
    """The warnings raised and logged by libraries inside the block, in order;
    complete once the block has ended. `collected`: the loop's own collection (what
    was said before the block is dropped), else one for this block alone."""
    found: list[str] = []
    if collected is not None:
        collected.take()  # said between objects: no object's
        try:
            yield found
        finally:
            found.extend(collected.take())
        return
    with Collected() as own:
        try:
            yield found
        finally:
            found.extend(own.take())


def summary(messages: list[str]) -> str | None:
    """One row's message for an object's warnings: each distinct one once, in order
    (pydicom logs and warns the same words), None when there were none."""
    if not messages:
        return None
    return "; ".join(dict.fromkeys(messages))[:MESSAGE_LIMIT]
