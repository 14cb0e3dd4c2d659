"""Typed errors: one root, one class per ingestion error category.

The category a failed object lands in is decided by the class of the error,
never by its message, and so is whether to retry: a `Transient` error (or one of
the storage clients' transient classes, `storage.TRANSIENT`) is retried with
backoff; anything else is terminal and becomes a row in dicom_ingestion_errors at
once. Every category's name is written in one place: `Category`.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """The error categories of dicom_ingestion_errors (docs/MODEL.md)."""

    NOT_DICOM = "NOT_DICOM"
    PARSE_ERROR = "PARSE_ERROR"
    TRUNCATED = "TRUNCATED"
    READ_ERROR = "READ_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"  # a missing SOP, Series or Study Instance UID
    DUPLICATE = "DUPLICATE"
    TYPE_CAST_ERROR = "TYPE_CAST_ERROR"  # a value kept as NULL
    REFERENTIAL_ERROR = "REFERENTIAL_ERROR"
    # a corrupt container, a member over the member limit, a container in a container
    CONTAINER_ERROR = "CONTAINER_ERROR"
    # what a library (pydicom) warned while reading an object; the object loads
    PARSE_WARNING = "PARSE_WARNING"


class LoaderError(Exception):
    """Root of every error the loader raises on purpose."""


class Transient(LoaderError):
    """Worth retrying: throttling, timeouts, a dropped connection."""


class Terminal(LoaderError):
    """Retrying cannot help."""


class ObjectError(Terminal):
    """One object cannot be loaded; the run goes on and records it."""

    category = Category.PARSE_ERROR
    # What reading the object cost before it failed: the store served those bytes
    # all the same, and the report counts them (the header reader says, `spent`).
    bytes_read = 0
    read_requests = 0

    def __init__(self, path: str, reason: str, tag: str | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.tag = tag

    def spent(self, bytes_read: int, read_requests: int) -> None:
        """Record what reading the object cost before it failed."""
        self.bytes_read, self.read_requests = bytes_read, read_requests


class NotDicomError(ObjectError):
    category = Category.NOT_DICOM


class TruncatedError(ObjectError):
    category = Category.TRUNCATED


class HeaderParseError(ObjectError):
    category = Category.PARSE_ERROR


class ObjectReadError(ObjectError):
    category = Category.READ_ERROR


class ContainerError(ObjectError):
    """A zip or tar cannot be opened, or one of its members must not be (sources/containers.py)."""

    category = Category.CONTAINER_ERROR


class ConfigError(Terminal):
    """A setting or argument that cannot work (bad URL, bad identifier)."""


class ListingError(Terminal):
    """The source cannot be listed: unreachable store, refused credentials, no bucket."""


class LoadError(Terminal):
    """The warehouse did not end with what the run wrote."""


class WarehouseMemoryError(LoadError):
    """The warehouse ran out of the memory it was given (DuckDB's memory limit): a
    setting to raise, not a bug; the batches committed before stay loaded."""


class StatementError(LoadError):
    """The warehouse refused a statement: its message says which and why, in one line."""

    def __init__(self, statement: str, message: str) -> None:
        first = " ".join(statement.split())
        shown = first if len(first) <= 100 else first[:97] + "..."
        super().__init__(f"{' '.join(message.split())} (in: {shown})")
        self.statement = statement


def object_failure(exc: Exception) -> tuple[Category, str, str | None]:
    """The one error policy of every per-object path (run, scan, init's sample,
    rebuild): the category, reason and tag an object's failure is recorded with. A
    failure of the loader's own code on one object (not an ObjectError) is that
    object's PARSE_ERROR, never the end of its shard."""
    if isinstance(exc, ObjectError):
        return exc.category, exc.reason, exc.tag
    return Category.PARSE_ERROR, f"unexpected {type(exc).__name__}: {exc}"[:1000], None


# Categories that mean "this object was not loaded" (an error file); the others
# (TYPE_CAST_ERROR, DUPLICATE, REFERENTIAL_ERROR) annotate loaded objects.
FILE_ERROR_CATEGORIES = frozenset(
    {
        Category.NOT_DICOM,
        Category.PARSE_ERROR,
        Category.TRUNCATED,
        Category.READ_ERROR,
        Category.VALIDATION_ERROR,
        Category.CONTAINER_ERROR,
    }
)
