"""A number a generator adds to while it is consumed, read by its caller once the
generator has ended (how many listed entries were repeats, how many unchanged)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Count:
    value: int = 0
