"""Rows that repeat from object to object: each object of a series carries the
same patient, study, series, equipment and procedure step.

Objects of a series arrive together and share their decoded elements (see
decode), so a row built from root elements alone is kept with the very elements
its building read. The next object holding those same elements gets the same row,
and the same warning rows, without building it again. Which elements to compare
is learnt while building, so a builder cannot read one that the comparison misses.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from loader.dicom.decode import Element, Item
from loader.extract.context import Extraction, Row
from loader.extract.values import Typed

R = TypeVar("R", bound=Row | None)


class _Reads:
    """A root that notes every tag asked of it (present or not). Builders read by
    tag; anything else would escape the comparison, so it is refused."""

    __slots__ = ("root", "tags")

    def __init__(self, root: Item) -> None:
        self.root = root
        self.tags: dict[int, None] = {}

    def get(self, tag: int, default: Any = None) -> Any:
        self.tags[tag] = None
        return self.root.get(tag, default)

    def __getitem__(self, tag: int) -> Element:
        self.tags[tag] = None
        return self.root[tag]

    def __contains__(self, tag: int) -> bool:
        self.tags[tag] = None
        return tag in self.root

    def __iter__(self) -> Any:
        raise TypeError("a repeated row reads its root by tag only")

    keys = values = items = __iter__


class RepeatedRow(Generic[R]):
    """`build(root, typed)` with its last row kept (one per process: objects of a
    series come one after another). A kept entry is replaced whole, so shards on
    threads of one worker never see half of one."""

    def __init__(self, build: Callable[[Item, Typed], R]) -> None:
        self.build = build
        self.kept: tuple[tuple[int, ...], list[Element | None], R, list[Any]] | None = None

    def __call__(self, ex: Extraction) -> R:
        root = ex.decoded.root
        warnings = ex.decoded.cast_errors
        kept = self.kept
        if kept is not None:
            tags, elements, row, raised = kept
            if all(map(operator.is_, map(root.get, tags), elements)):
                warnings.extend(raised)
                return row
        reads = _Reads(root)
        before = len(warnings)
        row = self.build(cast(Item, reads), ex.typed)  # read like the dict it wraps
        tags = tuple(reads.tags)
        self.kept = (tags, [root.get(tag) for tag in tags], row, warnings[before:])
        return row


def repeated(build: Callable[[Item, Typed], R]) -> RepeatedRow[R]:
    """Decorate a builder of a row that objects of a series repeat."""
    return RepeatedRow(build)
