"""Pseudonymisation inside the worker: `--pseudonymize-key-file`.

The decoded header is rewritten before any row is built, so no clear identifier
reaches Parquet, the ledger or the warehouse. Identifiers become keyed HMAC-SHA256
values: the same input and key give the same pseudonym in every file and run, so
rows still join (a patient's key is the key of its pseudonymous ID). Rewritten,
wherever they sit (nested items and private elements included):

- every person name (VR PN): the PHI name columns of the model and everyone else's;
- identifiers: PatientID, OtherPatientIDs (and the IDs inside
  OtherPatientIDsSequence), PatientAddress, PatientTelephoneNumbers, and the
  request identifiers AccessionNumber, StudyID, RequestedProcedureID and
  PerformedProcedureStepID (PS3.15 Basic Profile);
- PatientBirthDate: its year only (YYYY0101), or, with date shifting, shifted.

With `shift_dates`, every date (DA) and date-time (DT) of an object moves back by
the same number of days (1–365, from the key and the patient's ID), so intervals
within a patient survive; a date that does not parse is dropped.

With `uids` (`--pseudonymize-uids`), the instance UIDs PS3.15's Basic Profile
replaces (study, series, SOP instance, frame of reference, and every reference to
them inside sequences, `UID_TAGS`) become keyed UIDs under the `2.25.` root (an
integer of 128 bits from the key and the UID, PS3.5 B.2): the same UID gives the
same pseudonym in every object, file and run, so a reference still names what it
referred to and the model's keys, derived from the new UIDs, still join. UIDs that
name no instance (SOP classes, transfer syntaxes, coding schemes) are kept.

Storage paths are not header values and are kept: an archive whose folder names
carry identifiers must be listed from neutral names, and a DICOMweb source's URLs
carry the study, series and instance UIDs the PACS knows them by.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from functools import partial
from pathlib import Path

from loader.core.errors import ConfigError
from loader.dicom.decode import Decoded, Element, Item

PATIENT_ID = 0x00100020
BIRTH_DATE = 0x00100030
IDENTIFIER_TAGS = frozenset(  # identifiers PS3.15's Basic Profile replaces, that rows carry
    {
        PATIENT_ID,
        0x00101000,  # OtherPatientIDs
        0x00101040,  # PatientAddress
        0x00102154,  # PatientTelephoneNumbers
        0x00080050,  # AccessionNumber
        0x00200010,  # StudyID (archives often reuse the patient's ID for it)
        0x00401001,  # RequestedProcedureID
        0x00400253,  # PerformedProcedureStepID
    }
)
# Instance UIDs PS3.15 Table E.1-1 replaces ("U"): each names one study, series,
# instance, frame of reference or other instance, wherever it is referenced.
UID_TAGS = frozenset(
    {
        0x00080014,  # InstanceCreatorUID
        0x00080018,  # SOPInstanceUID
        0x00081155,  # ReferencedSOPInstanceUID
        0x00081195,  # TransactionUID
        0x00083010,  # IrradiationEventUID
        0x0020000D,  # StudyInstanceUID
        0x0020000E,  # SeriesInstanceUID
        0x00200052,  # FrameOfReferenceUID
        0x00200200,  # SynchronizationFrameOfReferenceUID
        0x00209161,  # ConcatenationUID
        0x00209164,  # DimensionOrganizationUID
        0x00281199,  # PaletteColorLookupTableUID
        0x00281214,  # LargePaletteColorLookupTableUID
        0x0040A124,  # UID (SR)
        0x0040A171,  # ObservationUID
        0x0040A402,  # ObservationSubjectUIDTrial (retired, from the SR trial templates)
        0x00880140,  # StorageMediaFileSetUID
        0x30060024,  # ReferencedFrameOfReferenceUID
        0x300600C2,  # RelatedFrameOfReferenceUID
        0x300A0013,  # DoseReferenceUID
        0x00041511,  # ReferencedSOPInstanceUIDInFile
        0x00620021,  # TrackingUID
    }
)
UID_ROOT = "2.25."
_DATE_VRS = frozenset({"DA", "DT"})


def read_key(path: str) -> bytes:
    """The secret key of a key file (its bytes, surrounding whitespace removed)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the pseudonymisation key file: {exc.strerror}") from None
    if len(key) < 16:
        raise ConfigError("the pseudonymisation key file holds fewer than 16 bytes")
    return key


class Pseudonymizer:
    def __init__(self, key: bytes, *, shift_dates: bool, uids: bool) -> None:
        self._key = key
        self.shift_dates = shift_dates
        self.uids = uids

    def __repr__(self) -> str:  # never the key
        return f"Pseudonymizer(shift_dates={self.shift_dates}, uids={self.uids})"

    def _digest(self, kind: bytes, value: str) -> bytes:
        return hmac.new(self._key, kind + b"\0" + value.encode(), hashlib.sha256).digest()

    def identifier(self, value: str) -> str:
        return "ID" + self._digest(b"id", value).hex()[:24].upper()

    def name(self, value: str) -> str:
        return "ANON^" + self._digest(b"name", value).hex()[:16].upper()

    def uid(self, value: str) -> str:
        """A keyed UID under 2.25 (at most 44 characters): 128 bits of the HMAC of
        the UID, so two UIDs collide with negligible probability."""
        return UID_ROOT + str(int.from_bytes(self._digest(b"uid", value.strip())[:16], "big"))

    def shift_of(self, patient_id: str) -> dt.timedelta:
        days = int.from_bytes(self._digest(b"shift", patient_id)[:4], "big") % 365 + 1
        return dt.timedelta(days=-days)

    def apply(self, decoded: Decoded) -> None:
        """Give `decoded` a rewritten tree. Items that change are copied, never
        changed in place: decoded elements and items are shared between objects."""
        patient = decoded.root.get(PATIENT_ID)
        patient_id = patient.value if patient is not None and isinstance(patient.value, str) else ""
        shift = self.shift_of(patient_id) if self.shift_dates else None
        decoded.root = self._item(decoded.root, shift)

    def _item(self, item: Item, shift: dt.timedelta | None) -> Item:
        changed: Item | None = None
        for tag, element in item.items():
            rewritten = self._element(tag, element, shift)
            if rewritten is not element:
                if changed is None:
                    changed = dict(item)
                changed[tag] = rewritten
        return item if changed is None else changed

    def _element(self, tag: int, element: Element, shift: dt.timedelta | None) -> Element:
        if element.value is None:
            return element
        if element.vr == "SQ":
            if not isinstance(element.value, list):
                return element  # omitted: nothing of it is kept
            children = [self._item(child, shift) for child in element.value]
            if all(new is old for new, old in zip(children, element.value, strict=True)):
                return element
            return Element("SQ", children, element.vm)
        if element.vr == "PN":
            return _rewritten(element, self.name)
        if tag in IDENTIFIER_TAGS:
            return _rewritten(element, self.identifier)
        if self.uids and tag in UID_TAGS:
            return _rewritten(element, self.uid)
        if tag == BIRTH_DATE and shift is None:
            return _rewritten(element, _year_only)
        if shift is not None and element.vr in _DATE_VRS:
            return _rewritten(element, partial(_shifted, shift=shift))
        return element


def _rewritten(element: Element, change: Callable[[str], str | None]) -> Element:
    """`element` with each text value changed, a value changed to None dropped; a
    new element, as decoded elements are shared between objects."""
    values = element.value if isinstance(element.value, list) else [element.value]
    changed = [change(v) if isinstance(v, str) and v else v for v in values]
    kept = [v for v in changed if v is not None]
    return Element(element.vr, None if not kept else kept[0] if len(kept) == 1 else kept, len(kept))


def _year_only(value: str) -> str | None:
    year = value[:4]
    return f"{year}0101" if year.isdigit() else None


def _shifted(value: str, shift: dt.timedelta) -> str | None:
    """A DA, or a DT's date part, moved by `shift`; None when it is no date."""
    digits = value.replace(".", "") if len(value) == 10 and value[4] == "." else value
    if len(digits) < 8 or not digits[:8].isdigit():
        return None
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
    return (day + shift).strftime("%Y%m%d") + digits[8:]
