"""A structured report's content tree, walked once per object.

Every SR, whatever its template, is a tree of content items (PS3.3 C.17.3): each
has a relationship to its parent, a concept name and one value whose attribute
depends on its value type. The walk lists the items in document order; the
content, measurement and dose tables (sr_content.py, measurements.py,
dose_events.py) all read that one list, kept on the Extraction.

A path is written as DICOM's Referenced Content Item Identifier writes it: the
root is `1`, its second child `1.2`, that child's third `1.2.3`, so an item
included by reference (`referenced_content_path`) names its target's row.
"""

from __future__ import annotations

from dataclasses import dataclass

from loader.dicom.decode import Item
from loader.extract.values import first_item, items, numbers, tag, text, value

# The code sequences a coded value may be written in (PS3.3 Table 8.8-1): a
# CodeValue of up to 16 characters, or a long one, or a URN.
_CODE_VALUES = ("CodeValue", "LongCodeValue", "URNCodeValue")

Code = tuple[str | None, str | None, str | None]  # code value, scheme designator, meaning
NO_CODE: Code = (None, None, None)


@dataclass(frozen=True, slots=True)
class Node:
    """One content item and where it sits."""

    path: str
    parent: str | None
    depth: int
    item: Item
    concept: Code
    value_type: str | None  # None: an item by reference (ReferencedContentItemIdentifier)

    def names(self, code_value: str, *schemes: str) -> bool:
        """Whether its concept name is this code (in one of `schemes`, or any)."""
        return self.concept[0] == code_value and (not schemes or self.concept[1] in schemes)


_CODE_TAGS = tuple(tag(keyword) for keyword in _CODE_VALUES)
_SCHEME, _MEANING = tag("CodingSchemeDesignator"), tag("CodeMeaning")


def _single(item: Item, number: int) -> str | None:
    """An SH/LO/UC/UR value as text: a dose report reads a few hundred codes, so this
    is text() without the keyword lookup."""
    element = item.get(number)
    found = None if element is None else element.value
    if isinstance(found, list):
        found = found[0] if found else None
    return found if isinstance(found, str) and found else None


def code_of(item: Item | None) -> Code:
    """A code sequence item as (code value, coding scheme designator, code meaning)."""
    if item is None:
        return NO_CODE
    code_value = next((v for t in _CODE_TAGS if (v := _single(item, t)) is not None), None)
    return (code_value, _single(item, _SCHEME), _single(item, _MEANING))


def code_columns(prefix: str, code: Code) -> dict[str, str | None]:
    """A coded value as its table's three columns: `<prefix>_code_value`, `_scheme`,
    `_meaning` (every content table names them so)."""
    return {
        f"{prefix}_code_value": code[0],
        f"{prefix}_code_scheme": code[1],
        f"{prefix}_code_meaning": code[2],
    }


def coded(item: Item, keyword: str) -> Code:
    return code_of(first_item(item, keyword))


def is_structured_report(root: Item) -> bool:
    """An SR document: its root is a CONTAINER content item with a concept name."""
    return text(root, "ValueType") == "CONTAINER" and bool(items(root, "ConceptNameCodeSequence"))


def walk(root: Item) -> list[Node]:
    """Every content item in document order, the root first. Iterative: a hostile
    tree thousands deep must not exhaust the interpreter's stack."""
    if not is_structured_report(root):
        return []
    start = Node("1", None, 0, root, coded(root, "ConceptNameCodeSequence"), "CONTAINER")
    out: list[Node] = []
    stack = [start]
    while stack:
        node = stack.pop()
        out.append(node)
        children = items(node.item, "ContentSequence")
        for index in range(len(children), 0, -1):
            child = children[index - 1]
            stack.append(
                Node(
                    f"{node.path}.{index}",
                    node.path,
                    node.depth + 1,
                    child,
                    coded(child, "ConceptNameCodeSequence"),
                    text(child, "ValueType"),
                )
            )
    return out


def numeric(item: Item) -> tuple[float | None, Code]:
    """A NUM item's value and its unit. The FD Floating Point Value, when present,
    is the value at full precision (PS3.3 C.18.1); the DS Numeric Value otherwise."""
    measured = first_item(item, "MeasuredValueSequence")
    if measured is None:
        return None, NO_CODE
    found = numbers(measured, "FloatingPointValue") or numbers(measured, "NumericValue")
    return (found[0] if found else None), coded(measured, "MeasurementUnitsCodeSequence")


def integers(item: Item, keyword: str) -> list[int] | None:
    found = value(item, keyword)
    if found is None:
        return None
    values = found if isinstance(found, list) else [found]
    out = [int(v) for v in values if isinstance(v, (int, float))]
    return out or None
