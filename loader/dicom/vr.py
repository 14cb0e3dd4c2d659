"""Value representations grouped by how a value is decoded, and what makes a tag
private: the one table the binary decoder (decode.py) and the DICOM JSON decoder
(dicom/from_json.py) both read, so they cannot disagree (PS3.5 6.2, PS3.18 F.2).
"""

from __future__ import annotations

# Binary numbers: their struct format codes.
NUMERIC_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "L",
    "SL": "l",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
# Bytes kept by length only.
BINARY = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
# Numbers written as text (DICOM JSON gives them as JSON numbers).
NUMBER_STRINGS = frozenset({"DS", "IS"})
# Several values split on backslashes, in the default repertoire.
ASCII_MULTI = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"}) | NUMBER_STRINGS
# Several values split on backslashes, in the Specific Character Set.
CHARSET_MULTI = frozenset({"SH", "LO", "UC"})
# One value that may hold backslashes, in the Specific Character Set.
CHARSET_SINGLE = frozenset({"ST", "LT", "UT"})
# One value that may hold backslashes, in the default repertoire (a URI).
ASCII_SINGLE = frozenset({"UR"})

MULTI_TEXT = ASCII_MULTI | CHARSET_MULTI  # text values split on backslashes
SINGLE_TEXT = CHARSET_SINGLE | ASCII_SINGLE  # text values never split
TEXT = MULTI_TEXT | SINGLE_TEXT

# A tag is private when its group is odd; a private data element (not a Private
# Creator, which reserves a block) has an element number of 0x1000 or more.
PRIVATE_GROUP_BIT = 0x10000
FIRST_PRIVATE_DATA_ELEMENT = 0x1000


def is_private(tag: int) -> bool:
    """An odd group: a private tag (a Private Creator or private data)."""
    return bool(tag & PRIVATE_GROUP_BIT)


def is_private_data(tag: int) -> bool:
    """A private data element: what the element limit applies to."""
    return bool(tag & PRIVATE_GROUP_BIT) and tag & 0xFFFF >= FIRST_PRIVATE_DATA_ELEMENT
