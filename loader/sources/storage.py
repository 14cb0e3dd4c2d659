"""URL → fsspec filesystem, storage options, and reads that retry what is transient.

Local paths stay plain files (the fastest path). Every other URL (`s3://`,
`gs://`, `az://`, `abfs://`, …) goes through fsspec with the user's storage
options, which is also where credentials live: they are passed on, never printed.
"""

from __future__ import annotations

import errno
import functools
import importlib
import json
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import fsspec
from fsspec.core import split_protocol

from loader.core.errors import ConfigError, ObjectReadError, Terminal, Transient

PROVIDERS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "file": "file",
    "memory": "memory",
    "dicomweb+http": "dicomweb",
    "dicomweb+https": "dicomweb",
}
RETRIES = 4
BACKOFF_SECONDS = 0.2
S3_PROTOCOLS = frozenset({"s3", "s3a"})
# botocore's client settings on S3 unless the user's own `config_kwargs` say otherwise:
# timeouts that suit small ranged reads, and one attempt per request (its default
# retries several times with backoff; its `max_attempts` counts retries, so 1 would
# still mean two requests): with_retries' policy is the only one, the two never
# multiply into minutes per object, and a throttled read reaches read_ahead's window.
S3_TIMEOUTS = {"connect_timeout": 10, "read_timeout": 20, "retries": {"total_max_attempts": 1}}
# Reads a worker keeps in flight (read_ahead): 100 ms of first-byte latency at the
# ~1,300 objects/s a worker parses is 130 reads, and a read also waits for the
# worker's event loop to take its answer, so twice that. S3's and GCS's connection
# pools are sized to match (botocore's default, 10, and aiohttp's, 100, would cap
# it); adlfs keeps the Azure SDK's aiohttp pool of 100.
DEFAULT_READ_CONCURRENCY = 256
GCS_PROTOCOLS = frozenset({"gs", "gcs"})
THROTTLE_STATUSES = frozenset({429, 503})
T = TypeVar("T")


def is_remote(url: str) -> bool:
    protocol, _ = split_protocol(url)
    return protocol not in (None, "file", "local")


def parse_storage_options(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` flags → fsspec storage options; values may be JSON (numbers,
    booleans, objects such as client_kwargs)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"storage option {key or pair!r} is not key=value")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def filesystem(
    url: str,
    storage_options: dict[str, Any] | None = None,
    connections: int = DEFAULT_READ_CONCURRENCY,
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of `url` and the path within it (fsspec caches instances).

    On S3, botocore's timeouts default to bounds that suit small ranged reads, its
    connection pool to `connections` (the reads a worker keeps in flight) and its own
    retries are off (the user's own `config_kwargs` win), and so are s3fs's: nested
    inside `with_retries` they would turn one hung request into minutes of waiting.
    """
    protocol = split_protocol(url)[0]
    options = dict(storage_options or {})
    if protocol in S3_PROTOCOLS:
        defaults = {**S3_TIMEOUTS, "max_pool_connections": connections}
        options["config_kwargs"] = {**defaults, **(options.get("config_kwargs") or {})}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot open {protocol}:// storage: {exc}") from None
    if protocol in S3_PROTOCOLS:
        fs.retries = 1
    if protocol in GCS_PROTOCOLS:
        _size_gcs_pool(fs, connections)
    return fs, path


def _size_gcs_pool(fs: Any, connections: int) -> None:
    """gcsfs's aiohttp session pools 100 connections; its documented `session_kwargs`
    may bring a connector, so bring one that pools `connections`, made on gcsfs's own
    event loop (aiohttp binds a connector to the loop that makes it). A connector of
    the user's own, or one set by an earlier call (instances are cached), is kept."""
    kwargs = getattr(fs, "session_kwargs", None)
    if not isinstance(kwargs, dict) or "connector" in kwargs or connections <= 100:
        return
    import aiohttp
    from fsspec.asyn import sync

    async def connector() -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(limit=connections)

    fs.session_kwargs = {**kwargs, "connector": sync(fs.loop, connector)}


def path_of(url: str) -> str:
    """The path of `url` within its filesystem (`s3://b/k` → `b/k`)."""
    return split_protocol(url)[1]


def provider_of(url: str) -> str:
    """Where an object's bytes are: for a container's member, its container's."""
    if "::" in url:
        url = url.rpartition("::")[2]
    protocol, _ = split_protocol(url)
    return PROVIDERS.get(protocol or "file", protocol or "file")


def container_and_key(url: str) -> tuple[str | None, str]:
    """(bucket or container, object key) of an object-store URL; (None, path) locally.
    A zip or tar member's are its container's, with `::member` after the key."""
    if "::" in url:
        member, _, holder = url.rpartition("::")
        bucket, key = container_and_key(holder)
        return bucket, f"{key}::{member.partition('://')[2]}"
    protocol, path = split_protocol(url)
    if protocol in (None, "file", "local"):
        return None, path
    bucket, _, key = path.partition("/")
    return bucket, key


# The storage clients' exception classes for a timeout or a dropped connection, by
# module: imported when first needed (a run that never retries never loads them).
_CLIENT_TRANSIENT = (
    (
        "botocore.exceptions",
        ("ConnectionError", "HTTPClientError", "ReadTimeoutError", "ConnectTimeoutError"),
    ),
    ("aiohttp", ("ClientConnectionError", "ClientPayloadError", "ServerTimeoutError")),
    ("requests.exceptions", ("ConnectionError", "Timeout", "ChunkedEncodingError")),
    ("urllib3.exceptions", ("ProtocolError", "TimeoutError")),
    ("azure.core.exceptions", ("ServiceRequestError", "ServiceResponseError")),
    ("google.auth.exceptions", ("TransportError",)),
)


@functools.cache
def transient_classes() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "try again": the loader's `Transient`, the standard
    library's timeouts and dropped connections, and the storage clients' own."""
    found: list[type[BaseException]] = [Transient, TimeoutError, ConnectionError]
    for module_name, names in _CLIENT_TRANSIENT:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [getattr(module, name) for name in names if hasattr(module, name)]
    return tuple(found)


def is_transient(exc: BaseException) -> bool:
    """Decided by the exception's class: throttling and 5xx (which the fsspec stores
    raise as OSError), timeouts and dropped connections are worth retrying; a missing
    object, a refused permission or any terminal error of the loader's is not."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, Terminal)):
        return False
    return isinstance(exc, (OSError, *transient_classes()))


def is_throttled(exc: BaseException) -> bool:
    """Whether the store asked for fewer requests (503 SlowDown, 429): s3fs raises
    these as OSError(EBUSY); gcsfs's HttpError and Azure's HttpResponseError carry
    the HTTP status."""
    if isinstance(exc, OSError) and exc.errno == errno.EBUSY:
        return True
    for name in ("status_code", "code", "status"):
        status = getattr(exc, name, None)
        if isinstance(status, int) and status in THROTTLE_STATUSES:
            return True
    return False


def retry_transient(action: Callable[[], T], attempts: int = RETRIES) -> T:
    """Run `action`, retrying transient failures with jittered exponential backoff;
    the last failure is raised as it is."""
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:  # storage clients raise many types
            attempt += 1
            if not is_transient(exc) or attempt >= attempts:
                raise
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1) * (0.5 + random.random()))


def with_retries(path: str, action: Callable[[], T], attempts: int = RETRIES) -> T:
    """`retry_transient` for reads of one object: what still fails becomes an
    ObjectReadError (a READ_ERROR row)."""
    try:
        return retry_transient(action, attempts)
    except Exception as exc:  # re-raised typed
        raise ObjectReadError(path, f"read failed: {type(exc).__name__}: {exc}") from exc
