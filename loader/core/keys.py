"""Deterministic surrogate keys that Python, DuckDB and Snowflake compute alike.

A key is the lower 64 bits of the MD5 of the natural key's text, read as an
unsigned big-endian integer (docs/MODEL.md "Keys"). Composite natural keys join their
parts with a backslash, DICOM's value delimiter, which no single DICOM string
value can contain; NULL parts become empty text.
"""

from __future__ import annotations

import hashlib

import numpy as np

SEPARATOR = "\\"

# The same key in SQL, for text expression `s` (used by validation and tests).
SQL_KEY_EXPRESSION = {
    "duckdb": "('0x' || substr(md5({s}), 17, 16))::UBIGINT",
    "snowflake": "MD5_NUMBER_LOWER64({s})",
}


try:  # CPython's own MD5 hashes short texts ~1.5x faster than OpenSSL's context set-up
    from _md5 import md5 as fast_md5
except ImportError:  # other interpreters
    fast_md5 = hashlib.md5


def key_of(*parts: str | int | None) -> int:
    """The 64-bit key of a natural key made of `parts`."""
    return key_of_text(SEPARATOR.join("" if p is None else str(p) for p in parts))


def key_of_text(text: str) -> int:
    """`key_of` for a natural key already joined with SEPARATOR (the hot path)."""
    return int.from_bytes(fast_md5(text.encode("utf-8")).digest()[8:], "big")


def keys_of_texts(prefix: str, suffixes: list[str]) -> list[int]:
    """`key_of_text(prefix + s)` of every suffix: the digests are read as one array
    of big-endian 64-bit words (every second word is a key), not one int each."""
    md5 = fast_md5
    digests = b"".join([md5((prefix + s).encode("utf-8")).digest() for s in suffixes])
    keys: list[int] = np.frombuffer(digests, ">u8")[1::2].tolist()
    return keys


def sql_key(dialect: str, *part_sql: str) -> str:
    """SQL computing `key_of` over SQL expressions `part_sql` in `dialect`."""
    joined = " || chr(92) || ".join(f"coalesce(CAST({p} AS VARCHAR), '')" for p in part_sql)
    return SQL_KEY_EXPRESSION[dialect].format(s=joined)
