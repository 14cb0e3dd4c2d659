"""Where an undefined-length sequence ends, found without holding it.

A sequence of undefined length (PS3.5 7.5.2) says nothing of its size: only its
Sequence Delimitation Item ends it, and only by walking the item and element
framing inside it can that delimiter be told from bytes that merely look like one.
A structure set's ROI Contour Sequence is commonly written this way and can run to
hundreds of MB before Pixel Data, so when such a sequence is over the element limit
the header reader asks this module where it ends and reads on from there.

The walk reads the sequence's framing through a window of at most
`LARGEST_WINDOW` bytes: element headers are read, values of defined length are
stepped over (a value longer than what the window still holds is never fetched),
and items and sequences of undefined length nest on a stack. Memory is one window,
whatever the sequence's size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from loader.core.errors import TruncatedError
from loader.headers.dataset_bytes import (
    ITEM,
    ITEM_DELIMITER,
    SEQUENCE_DELIMITER,
    UNDEFINED,
    SequenceFormatError,
)

FIRST_WINDOW = 64 * 1024
LARGEST_WINDOW = 4 << 20  # 500 MB of contours: ~130 reads, never more held than this
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_ITEM_TAGS = frozenset({ITEM, ITEM_DELIMITER, SEQUENCE_DELIMITER})


class _Window:
    """The object's bytes around where the walk is: refetched, twice as many each
    time up to LARGEST_WINDOW, when the walk needs bytes it does not hold."""

    def __init__(
        self, fetch: Callable[[int, int], bytes], size: int, path: str, base: int, held: bytes
    ) -> None:
        self._fetch = fetch
        self._size = size
        self._path = path
        self._base = base
        self._bytes = held
        self._next = FIRST_WINDOW

    def at(self, pos: int, n: int) -> bytes:
        """The `n` bytes at object position `pos`."""
        offset = pos - self._base
        if offset < 0 or offset + n > len(self._bytes):
            if pos + n <= self._size:
                self._bytes = b""  # never two windows held at once
                self._bytes = self._fetch(pos, min(pos + self._next, self._size))
                self._base, offset = pos, 0
                self._next = min(self._next * 2, LARGEST_WINDOW)
            if len(self._bytes) - offset < n or pos + n > self._size:
                raise TruncatedError(self._path, "object ends inside an undefined-length sequence")
        return self._bytes[offset : offset + n]


def sequence_end(
    fetch: Callable[[int, int], bytes],
    size: int,
    start: int,
    implicit: bool,
    little: bool,
    path: str,
    held: bytes = b"",
) -> int:
    """The object position just past the delimiter of the undefined-length sequence
    whose value starts at `start`, encoded as `implicit` and `little` say.

    Raises SequenceFormatError on framing it does not understand (the caller leaves
    the object to pydicom, as for any odd framing) and TruncatedError when the object
    ends first. `fetch(start, end)` reads bytes [start, end) of the object; `held`
    are its bytes from `start` on that the caller already read."""
    window = _Window(fetch, size, path, start, held)
    # Each open sequence or item: (is a sequence, implicit VR, little endian).
    stack: list[tuple[bool, bool, bool]] = [(True, implicit, little)]
    pos = start
    while stack:
        in_sequence, implicit, little = stack[-1]
        endian = "<" if little else ">"
        group, number, length = struct.unpack(endian + "HHL", window.at(pos, 8))
        tag = group << 16 | number
        if in_sequence:
            pos += 8
            if tag == SEQUENCE_DELIMITER:
                stack.pop()
            elif tag != ITEM:
                raise SequenceFormatError(f"expected an item tag, found {tag:08X}")
            elif length == UNDEFINED:
                stack.append((False, implicit, little))
            else:
                pos += length
            continue
        if tag == ITEM_DELIMITER:
            pos += 8
            stack.pop()
            continue
        if tag in _ITEM_TAGS:
            raise SequenceFormatError(f"{tag:08X} inside an item")
        vr: bytes | None = None
        value_pos = pos + 8
        if not implicit:
            vr = window.at(pos + 4, 2)
            if vr in _LONG_VRS:
                (length,) = struct.unpack(endian + "L", window.at(pos + 8, 4))
                value_pos = pos + 12
            else:
                (length,) = struct.unpack(endian + "H", window.at(pos + 6, 2))
        if length == UNDEFINED:
            if vr not in (None, b"SQ", b"UN"):
                raise SequenceFormatError(f"undefined length {vr!r} inside an item")
            # An undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2).
            stack.append((True, implicit or vr == b"UN", little or vr == b"UN"))
            pos = value_pos
        else:
            pos = value_pos + length
    return pos
