"""What an extractor knows about the object besides its header."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from loader.core.keys import SEPARATOR, key_of_text, keys_of_texts
from loader.dicom.decode import Decoded
from loader.extract.sr_tree import Node, walk
from loader.extract.values import Typed
from loader.headers.frame_offsets import OffsetTables

Row = dict[str, object]
# Tables of many rows per object come as columns: a column's name → its values, or
# a tuple of names → row tuples of those columns. Many rows may hold the very same
# tuple (a remembered element's values, see decode); the writer converts it once.
Columns = dict[str | tuple[str, ...], list[Any]]
Rows = dict[str, list[Row] | Columns]


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    """Where an object lives and what reading its header found."""

    uri: str
    size: int
    modified_at: dt.datetime | None
    ingestion_source: str
    storage_provider: str
    storage_container: str | None
    object_key: str
    transfer_syntax_uid: str | None
    header_bytes: int
    bytes_read: int
    pixel_data_offset: int | None
    pixel_data_length: int | None
    checksum: str
    ingested_at: dt.datetime
    frame_offsets: bool = False  # a dicom_frame row for every frame (frame_offsets.py)
    offset_tables: OffsetTables | None = None  # read for encapsulated Pixel Data


@dataclass(slots=True)
class Extraction:
    """The decoded header plus the keys every table of one object shares (hashed
    once: a dozen tables read them)."""

    decoded: Decoded
    facts: ObjectFacts
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    typed: Typed
    instance_key: int = field(init=False)
    series_key: int = field(init=False)
    study_key: int = field(init=False)
    _frame_keys: list[int] = field(init=False, default_factory=list)
    _content: list[Node] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.instance_key = key_of_text(self.sop_instance_uid)
        self.series_key = key_of_text(self.series_instance_uid)
        self.study_key = key_of_text(self.study_instance_uid)

    def frame_keys(self, count: int) -> list[int]:
        """Keys of frames 1..count, hashed in one pass: dicom_frame and the frames'
        dicom_image_plane rows both carry them."""
        if len(self._frame_keys) < count:
            numbers = [str(number) for number in range(1, count + 1)]
            self._frame_keys = keys_of_texts(self.sop_instance_uid + SEPARATOR, numbers)
        return self._frame_keys

    def content_nodes(self) -> list[Node]:
        """The SR content tree in document order (empty for any other object), walked
        once: the content, measurement and dose tables all read it."""
        if self._content is None:
            self._content = walk(self.decoded.root)
        return self._content
