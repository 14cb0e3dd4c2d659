"""Typed reads of a decoded item by keyword: the vocabulary of every extractor.

A value that cannot take its column's type becomes None and a cast error naming
its tag, so a bad date never costs the object.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.datadict import tag_for_keyword

from loader.dicom.decode import Decoded, Item

# Attributes whose values identify a person: error messages never quote them.
PHI_KEYWORDS = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "ReferringPhysicianName",
    }
)


class _TagTable(dict[str, int]):
    """Keyword → tag, filled on first use; lookups stay a plain dict access."""

    def __missing__(self, keyword: str) -> int:
        number = tag_for_keyword(keyword)
        if number is None:
            raise KeyError(f"unknown DICOM keyword {keyword}")
        self[keyword] = number
        return number


_TAGS = _TagTable()


def tag(keyword: str) -> int:
    return _TAGS[keyword]


def value(item: Item, keyword: str) -> Any:
    elem = item.get(_TAGS[keyword])
    return None if elem is None else elem.value


def text(item: Item, keyword: str) -> str | None:
    """The first value as text (multi-valued elements give their first value)."""
    elem = item.get(_TAGS[keyword])
    found = None if elem is None else elem.value
    if isinstance(found, list):
        found = found[0] if found else None
    if found is None or found == "":
        return None
    return found if isinstance(found, str) else str(found)


def texts(item: Item, keyword: str) -> list[str] | None:
    found = value(item, keyword)
    if found is None:
        return None
    return [str(v) for v in found] if isinstance(found, list) else [str(found)]


def number(item: Item, keyword: str) -> float | None:
    found = value(item, keyword)
    if isinstance(found, list):
        found = found[0] if found else None
    return float(found) if isinstance(found, (int, float)) else None


def integer(item: Item, keyword: str) -> int | None:
    found = value(item, keyword)
    if isinstance(found, list):
        found = found[0] if found else None
    if isinstance(found, float):
        return int(found) if found.is_integer() else None
    return found if isinstance(found, int) else None


def numbers(item: Item, keyword: str) -> list[float] | None:
    found = value(item, keyword)
    if found is None:
        return None
    values = found if isinstance(found, list) else [found]
    out = [float(v) for v in values if isinstance(v, (int, float))]
    return out or None


def items(item: Item, keyword: str) -> list[Item]:
    found = value(item, keyword)
    return found if isinstance(found, list) and found and isinstance(found[0], dict) else []


def first_item(item: Item, keyword: str) -> Item | None:
    found = items(item, keyword)
    return found[0] if found else None


def parse_date(text_value: str) -> dt.date:
    digits = text_value.replace(".", "") if len(text_value) == 10 else text_value
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError(text_value)
    return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))


def parse_time(text_value: str) -> dt.time:
    body = text_value.replace(":", "")
    whole, _, fraction = body.partition(".")
    if len(whole) not in (2, 4, 6) or not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(text_value)
    hour, minute, second = int(whole[:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return dt.time(hour, minute, min(second, 59), micro)


def parse_datetime(text_value: str) -> dt.datetime:
    body = text_value
    for sign in ("+", "-"):
        at = body.find(sign, 4)
        if at > 0:
            body = body[:at]  # UTC offset dropped: TIMESTAMP_NTZ keeps local time
    digits = body.partition(".")[0]
    if len(digits) < 4 or len(digits) % 2 or not digits.isdigit():
        raise ValueError(text_value)
    day = parse_date(
        (digits[:8] + "0101"[max(0, len(digits) - 4) :])[:8] if len(digits) < 8 else digits[:8]
    )
    clock = parse_time(body[8:]) if len(digits) > 8 else dt.time()
    return dt.datetime.combine(day, clock)


class Typed:
    """Typed reads that record a cast error for a value that will not type."""

    def __init__(self, decoded: Decoded) -> None:
        self.decoded = decoded

    def _typed(self, item: Item, keyword: str, parse: Any) -> Any:
        raw = text(item, keyword)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError:
            shown = "(value withheld: PHI)" if keyword in PHI_KEYWORDS else repr(raw[:64])
            self.decoded.cast_error(tag(keyword), f"{keyword} value {shown} is not valid")
            return None

    def date(self, item: Item, keyword: str) -> dt.date | None:
        return self._typed(item, keyword, parse_date)  # type: ignore[no-any-return]

    def time(self, item: Item, keyword: str) -> dt.time | None:
        return self._typed(item, keyword, parse_time)  # type: ignore[no-any-return]

    def datetime(self, item: Item, keyword: str) -> dt.datetime | None:
        return self._typed(item, keyword, parse_datetime)  # type: ignore[no-any-return]

    def date_time(
        self, item: Item, date_keyword: str, time_keyword: str
    ) -> tuple[dt.date | None, dt.time | None, dt.datetime | None]:
        """A date, a time and their combination (midnight when the time is absent)."""
        day = self.date(item, date_keyword)
        clock = self.time(item, time_keyword)
        return day, clock, None if day is None else dt.datetime.combine(day, clock or dt.time())
