"""The two builders every synth dataset uses: deterministic UIDs and code items."""

from __future__ import annotations

import hashlib

from pydicom.dataset import Dataset


def uid(*parts: object) -> str:
    """A deterministic 2.25 UID (PS3.5 B.2) derived from `parts`."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
