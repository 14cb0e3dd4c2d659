"""Every credential form the loader accepts, in one place, and how each is kept out
of what it writes and prints.

Credentials reach the loader in these forms only:

- a Snowflake URL's password (`snowflake://USER:PASSWORD@ACCOUNT/…`) or one of its
  secret query parameters (`password`, `private_key_file_pwd`, `token`, `passcode`);
- a storage option that is a credential (`--storage-option secret=…`, or nested in a
  JSON value: `client_kwargs={"aws_secret_access_key": …}`);
- environment variables the connector, the cloud SDKs and the DICOMweb client read
  (SNOWFLAKE_PASSWORD, AWS_SECRET_ACCESS_KEY, DICOMWEB_TOKEN, …).

`redact` replaces each by `***` in any text by its form (a name=value pair, a JSON
member, a URL's user info); `Redaction` also knows the values this command was given
(from its arguments and the environment) and replaces them wherever they appear,
whatever a library's message wrapped them in. The CLI applies it to every line it
prints, every log line, both reports and every error; the settings file refuses
every form (`secret_names`), so it never holds one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from loader.core.errors import ConfigError

MASK = "***"
# Snowflake target parameters that are secrets (snowflake_target.CONNECTOR_PARAMETERS).
SNOWFLAKE_SECRETS = frozenset({"password", "private_key_file_pwd", "token", "passcode"})
# Storage options that are credentials: s3fs, gcsfs and adlfs spell them so, at the
# top level or inside client_kwargs / session_kwargs.
STORAGE_SECRETS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "connection_string",
        "client_secret",
        "credential",
        "credentials",
        "refresh_token",
        "private_key",
        "private_key_id",
        "sig",  # an Azure SAS token's signature
    }
)
# Environment variables whose values are secrets (read by the connector, the SDKs,
# the DICOMweb client): their values are replaced wherever they appear.
SECRET_VARIABLES = (
    "SNOWFLAKE_PASSWORD",
    "SNOWFLAKE_PRIVATE_KEY_FILE_PWD",
    "DICOMWEB_TOKEN",
    "DICOMWEB_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
)
# Words that make any other name a secret's; a name ending in _file or _path names
# the file a secret is in (token_file, private_key_file), not the secret.
_SECRET_WORDS = ("secret", "password", "passwd", "passcode", "passphrase", "token", "credential")
_FILE_NAME = re.compile(r"_(file|path|file_path)$")
_SHORTEST = 4  # a shorter literal is not replaced in free text: it would mangle it

_NAME_EQUALS = re.compile(r"([A-Za-z0-9_.-]+)=")
_VALUE_END = re.compile(r"[&\s'\",;}\]]")
_JSON_MEMBER = re.compile(r"\"([A-Za-z0-9_.-]+)\"(\s*:\s*)\"((?:[^\"\\]|\\.)*)\"")
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):([^@\s/]+)@")


def is_secret_name(name: str) -> bool:
    """Whether a parameter, option or member of this name holds a credential."""
    key = name.strip("-").lower().replace("-", "_")
    if key in SNOWFLAKE_SECRETS or key in STORAGE_SECRETS:
        return True
    return not _FILE_NAME.search(key) and any(word in key for word in _SECRET_WORDS)


def _secrets(text: str) -> Iterable[tuple[str, int, int]]:
    """(name, start, end) of every secret value in `text`, by form."""
    for match in _URL_PASSWORD.finditer(text):
        yield "password", match.start(2), match.end(2)
    for match in _NAME_EQUALS.finditer(text):
        if is_secret_name(match.group(1)):
            end = _VALUE_END.search(text, match.end())
            yield match.group(1).strip("-"), match.end(), end.start() if end else len(text)
    for match in _JSON_MEMBER.finditer(text):
        if is_secret_name(match.group(1)):
            yield match.group(1), match.start(3), match.end(3)


def secret_values(text: str) -> list[str]:
    """The secret values `text` holds, by form (non-empty)."""
    return [text[start:end] for _, start, end in _secrets(text) if end > start]


def secret_names(value: Any) -> list[str]:
    """The names of the credentials a setting's value (text, or a list of them)
    holds, in any form the loader accepts; none for a value that holds none."""
    values = value if isinstance(value, list | tuple) else [value]
    found = [n for v in values if isinstance(v, str) for n, s, e in _secrets(v) if e > s]
    return list(dict.fromkeys(found))


def redact(text: str) -> str:
    """`text` with every credential in a form the loader accepts replaced by ***."""
    spans = sorted((s, e) for _, s, e in _secrets(text) if e > s)
    if not spans:
        return text
    shown, at = [], 0
    for start, end in spans:
        if start < at:
            continue  # inside a span already replaced
        shown += [text[at:start], MASK]
        at = end
    return "".join([*shown, text[at:]])


def refuse_url_password(url: str, what: str) -> None:
    """A URL with a password in its user info would carry it into every object's URL,
    row and report: refused with one line naming where credentials go instead."""
    if _URL_PASSWORD.search(url):
        raise ConfigError(
            f"{what} {redact(url)} holds a password; give credentials through the "
            "environment (DICOMWEB_USER and DICOMWEB_PASSWORD, the cloud SDK's chain)"
        )


@dataclass(frozen=True)
class Redaction:
    """What one command must never show: credentials by form, and the values it was
    given (its arguments', the environment's) wherever they appear."""

    literals: tuple[str, ...] = ()

    @classmethod
    def of(cls, argv: Iterable[str], environ: Mapping[str, str]) -> Redaction:
        found: set[str] = set()
        for arg in argv:
            found.update(secret_values(arg))
        found.update(environ[name] for name in SECRET_VARIABLES if environ.get(name))
        found |= {unquote(value) for value in found}
        # Longest first: a value that holds another is replaced whole.
        kept = sorted((v for v in found if len(v) >= _SHORTEST), key=len, reverse=True)
        return cls(tuple(kept))

    def __call__(self, text: str) -> str:
        text = redact(text)
        for literal in self.literals:
            text = text.replace(literal, MASK)
        return text

    def argv(self, argv: Iterable[str]) -> list[str]:
        return [self(arg) for arg in argv]


class RedactingFilter(logging.Filter):
    """Log records with their message redacted (the handler's filter: every line it
    writes, whichever logger sent it)."""

    def __init__(self, redaction: Redaction) -> None:
        super().__init__()
        self.redaction = redaction

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = self.redaction(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info and record.exc_info[1] is not None:
            text = self.redaction(str(record.exc_info[1]))
            if text != str(record.exc_info[1]):
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg} ({text})"
        return True
