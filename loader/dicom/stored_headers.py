"""A decoded header ⇄ what `dicom_raw` stores of it, so tables can be rebuilt unread.

`dicom_raw.metadata` holds every value as the decoder typed it (raw_json.py), and
binary and omitted values as their VR and length; what it cannot say is the VR of a
value whose tag's dictionary does not give it: a private element, an unknown tag,
or a VR the object's explicit encoding says otherwise; nor the value multiplicity
of a value that could not be typed (stored null, its count of values kept).
`dicom_raw.metadata_vr` records those (`{"ggggeeee": "SH", "ggggeeee[0].ggggeeee":
["IS", 2], ...}`: each element's path as `dicom_element` spells it, and its VR, or
its VR and VM). `vr_note` decides what an element needs noted; the element walk
(extract/elements.py), which visits every element anyway, collects the notes (an
object left without element rows stores none, and needs none: its raw row is all
it yields, and that does not depend on VRs). `decoded_from_stored`
turns the two back into the decoded tree the extraction takes, with the values that
could not be typed (the TYPE_CAST_ERROR rows) as its cast errors. Extraction then
gives the rows a fresh read of the objects would, without reading one.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydicom.datadict import tag_for_keyword

from loader.dicom.decode import (
    Binary,
    Decoded,
    Element,
    Item,
    Omitted,
    implied_vr,
)
from loader.dicom.vr import is_private

_PIXEL_REPRESENTATION = 0x00280103
_implied: dict[tuple[int, str | None, int], str] = {}  # public tags: implied VR, cached


def _implied_vr(tag: int, item: Item, pixel_representation: int) -> str:
    """`implied_vr`, cached for public tags (theirs depends on nothing else)."""
    if is_private(tag):
        return implied_vr(tag, item, pixel_representation)
    key = (tag, None, pixel_representation)
    found = _implied.get(key)
    if found is None:
        found = _implied[key] = implied_vr(tag, item, pixel_representation)
    return found


def pixel_representation_of(root: Item) -> int:
    """The Pixel Representation the decoder implied VRs with (0 when absent)."""
    element = root.get(_PIXEL_REPRESENTATION)
    value = element.value if element is not None else None
    return value if isinstance(value, int) else 0


def _vm_of(value: Any) -> int:
    """The VM a stored value implies."""
    kind = type(value)
    if value is None or kind is Omitted:
        return 0
    if kind is list:
        return len(value)
    return 1


_notes_texts: dict[tuple[tuple[str, Any], ...], str] = {}  # an object's notes → its JSON
_NOTES_TEXTS_HELD = 4096


def notes_text(notes: dict[str, Any]) -> str | None:
    """`dicom_raw.metadata_vr` of an object's notes: the objects of a series mostly
    have the same ones, so their text is made once."""
    if not notes:
        return None
    key = tuple(notes.items())
    text = _notes_texts.get(key)
    if text is None:
        if len(_notes_texts) >= _NOTES_TEXTS_HELD:
            _notes_texts.clear()
        text = _notes_texts[key] = orjson.dumps(notes).decode()
    return text


def vr_note(tag: int, elem: Element, item: Item, pixel_representation: int) -> Any:
    """What `dicom_raw.metadata_vr` notes of `elem` (in `item`): (VR, VM) when its
    stored value does not imply its VM, its VR when its tag does not imply that, or
    False. The element walk (extract.elements) keeps it with the element's row."""
    if elem.vm != _vm_of(elem.value):
        return (elem.vr, elem.vm)
    if elem.vr != _implied_vr(tag, item, pixel_representation):
        return elem.vr
    return False


def decoded_from_stored(
    metadata: str, notes: str | None, cast_errors: list[tuple[str, str]]
) -> Decoded:
    """The decoded tree a stored header came from: `metadata` and `notes` as
    dicom_raw holds them, `cast_errors` the (tag, message) of its TYPE_CAST_ERROR rows."""
    document = orjson.loads(metadata)
    vrs: dict[str, Any] = orjson.loads(notes) if notes else {}
    pixel_representation = document.get("PixelRepresentation")
    if not isinstance(pixel_representation, int):
        pixel_representation = 0
    root = _item(document, "", vrs, pixel_representation)
    return Decoded(root, list(cast_errors))


def _tag_of(name: str) -> int:
    tag = tag_for_keyword(name)
    return tag if tag is not None else int(name, 16)


def _item(document: dict[str, Any], prefix: str, vrs: dict[str, Any], pr: int) -> Item:
    """One item, its elements in tag order as a dataset's are (PS3.5 7.1): a stored
    document need not keep its keys' order (a Snowflake VARIANT object does not)."""
    item: Item = {}
    for tag, value in sorted((_tag_of(name), value) for name, value in document.items()):
        path = f"{prefix}{tag:08X}"  # as dicom_element.sequence_path spells it
        if isinstance(value, dict):  # a binary or omitted value: its VR is with it
            vr = value["vr"]
            if value.get("omitted"):
                item[tag] = Element(vr, Omitted(vr, value["length"]), 0)
            else:
                item[tag] = Element(vr, Binary(vr, value["length"]), 1)
            continue
        note = vrs.get(path)
        vm = None
        if type(note) is list:
            note, vm = note
        vr = note or _implied_vr(tag, item, pr)
        if vm is not None:
            item[tag] = Element(vr, value, vm)
        elif vr == "SQ" and isinstance(value, list):
            children = [_item(child, f"{path}[{i}].", vrs, pr) for i, child in enumerate(value)]
            item[tag] = Element("SQ", children, len(children))
        elif value is None:
            item[tag] = Element(vr, None, 0)
        elif isinstance(value, list):
            item[tag] = Element(vr, value, len(value))
        else:
            item[tag] = Element(vr, value, 1)
    return item
