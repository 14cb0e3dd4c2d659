"""`--target snowflake:NAME` or `snowflake://USER@ACCOUNT/DB/SCHEMA?k=v` → connector kwargs.

Authentication stays the connector's: a named connection from its own
connections.toml (SNOWFLAKE_HOME honoured), or URL parameters it understands
(authenticator, private_key_file, ...). A password may come from the URL's user
info or SNOWFLAKE_PASSWORD; it is kept out of every repr, log line and error.
One parameter is the loader's own, on either form: `stage` (the internal stage to
use).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from loader.core.credentials import SNOWFLAKE_SECRETS
from loader.core.errors import ConfigError
from loader.core.identifiers import identifier

_CLOUD_URL = re.compile(r"(s3|s3compat|gcs|azure)://[A-Za-z0-9._~:/=+@%-]+")


def external_stage_url(url: str) -> str:
    """A cloud storage URL safe to render in CREATE STAGE."""
    if not _CLOUD_URL.fullmatch(url):
        raise ConfigError(f"stage URL {url!r} is not an s3://, gcs:// or azure:// location")
    return url if url.endswith("/") else url + "/"


# URL parameters passed to snowflake.connector.connect as they are.
CONNECTOR_PARAMETERS = frozenset(
    {
        "warehouse",
        "role",
        "host",
        "port",
        "protocol",
        "authenticator",
        "private_key_file",
        "private_key_file_pwd",
        "token",
        "token_file_path",
        "login_timeout",
        "network_timeout",
        "client_session_keep_alive",
        "region",
        "passcode",
    }
)
SECRET_PARAMETERS = SNOWFLAKE_SECRETS
_NUMERIC = frozenset({"port", "login_timeout", "network_timeout"})
DEFAULT_STAGE = "DICOM_LOADER_STAGE"


@dataclass(frozen=True)
class SnowflakeTarget:
    """What to connect to; `connect_kwargs` holds secrets and is never printed."""

    description: str  # safe to print
    connection_name: str | None = None
    connect_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    stage: str = DEFAULT_STAGE

    def __repr__(self) -> str:
        return f"SnowflakeTarget({self.description})"

    def scrub(self, text: str) -> str:
        """`text` with every secret of this target replaced by ***."""
        for key in SECRET_PARAMETERS:
            secret = self.connect_kwargs.get(key)
            if secret:
                text = text.replace(str(secret), "***")
        return text


def _redacted_query(query: str) -> str:
    return "&".join(f"{k}={'***' if k in SECRET_PARAMETERS else v}" for k, v in parse_qsl(query))


def _redacted(text: str) -> str:
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = _redacted_query(parts.query)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _options(pairs: list[tuple[str, str]], connector: bool) -> tuple[str, dict]:
    """The loader's stage and, when allowed, connector kwargs."""
    stage, kwargs = DEFAULT_STAGE, {}
    for key, value in pairs:
        if key == "stage":
            stage = identifier(value, "stage")
        elif connector and key in CONNECTOR_PARAMETERS:
            kwargs[key] = int(value) if key in _NUMERIC else value
        else:
            raise ConfigError(f"unknown Snowflake target parameter {key!r}")
    return stage, kwargs


def parse_snowflake_target(text: str) -> SnowflakeTarget:
    """Parse a Snowflake target; raise ConfigError (without secrets) when it is wrong."""
    if text.startswith("snowflake:") and not text.startswith("snowflake://"):
        name, _, query = text[len("snowflake:") :].partition("?")
        if not name:
            raise ConfigError("snowflake:NAME needs the name of a connection")
        stage, _ = _options(parse_qsl(query), connector=False)
        return SnowflakeTarget(
            description=f"snowflake:{name}" + (f"?{query}" if query else ""),
            connection_name=name,
            stage=stage,
        )
    parts = urlsplit(text)
    if parts.scheme != "snowflake" or not parts.hostname:
        raise ConfigError(f"not a Snowflake target: {_redacted(text)}")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if len(path) != 2:
        raise ConfigError(
            "a Snowflake URL names DATABASE/SCHEMA: "
            "snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=WH"
        )
    stage, kwargs = _options(parse_qsl(parts.query), connector=True)
    kwargs |= {
        "account": parts.hostname,
        "database": identifier(path[0], "database"),
        "schema": identifier(path[1], "schema"),
    }
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    password = unquote(parts.password) if parts.password else os.environ.get("SNOWFLAKE_PASSWORD")
    if password:
        kwargs["password"] = password
    for key in ("warehouse", "role"):
        if key in kwargs:
            identifier(kwargs[key], key)
    return SnowflakeTarget(description=_redacted(text), connect_kwargs=kwargs, stage=stage)
