"""Sizes and durations as people read them, for what the CLI prints and the HTML
report shows (`init`'s estimate, a run's phases)."""

from __future__ import annotations


def size_text(count: float) -> str:
    """Bytes in decimal units: `4.3 GB`."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,.0f} bytes"


def duration_text(seconds: float) -> str:
    """Seconds under two minutes (to a tenth), minutes under two hours, then hours."""
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.2f} h"
