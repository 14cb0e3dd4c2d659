"""Content trees of the structured reports synth writes, as their templates lay out.

A measurement report (TID 1500) has one volumetric measurement group (TID 1411)
per segment of the study's segmentation, referring to the segment and to the CT
series it was drawn on, with the segment's volume, mean attenuation and shape; a CT dose
report (TID 10011) has one CT Acquisition (TID 10013) per irradiation event. With
these, `make demo` fills the content tables (dicom_sr_measurement_group,
dicom_dose_event, …) as a real archive's AI results and dose reports would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from loader.synth.codes import code, uid

Concept = tuple[str, str, str]

REPORT = ("126000", "DCM", "Imaging Measurement Report")
GROUP = ("125007", "DCM", "Measurement Group")
VOLUME = ("118565006", "SCT", "Volume")
ATTENUATION = ("112031", "DCM", "Attenuation Coefficient")
MEAN = ("373098007", "SCT", "Mean")
MM3 = ("mm3", "UCUM", "cubic millimeter")
HU = ("[hnsf'U]", "UCUM", "Hounsfield unit")
SHAPE = ("300842002", "SCT", "Shape")
IRREGULAR = ("49608001", "SCT", "Irregular")
ROUND = ("42700002", "SCT", "Round")
NEOPLASM = "108369006"


@dataclass(frozen=True)
class Segment:
    """What a measurement group says of one segment of a segmentation."""

    number: int
    label: str
    tracking_uid: str
    property_type: Concept
    region: Concept


def _item(relationship: str, value_type: str, concept: Concept) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([code(*concept)])
    return item


def _container(relationship: str, concept: Concept, children: list[Dataset]) -> Dataset:
    item = _item(relationship, "CONTAINER", concept)
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = Sequence(children)
    return item


def _template(item: Dataset, identifier: str) -> None:
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = identifier
    item.ContentTemplateSequence = Sequence([template])


def _text(relationship: str, concept: Concept, text: str) -> Dataset:
    item = _item(relationship, "TEXT", concept)
    item.TextValue = text
    return item


def _uidref(relationship: str, concept: Concept, value: str) -> Dataset:
    item = _item(relationship, "UIDREF", concept)
    item.UID = value
    return item


def _code(relationship: str, concept: Concept, value: Concept) -> Dataset:
    item = _item(relationship, "CODE", concept)
    item.ConceptCodeSequence = Sequence([code(*value)])
    return item


def _num(concept: Concept, value: float, unit: Concept, modifiers: list[Dataset]) -> Dataset:
    item = _item("CONTAINS", "NUM", concept)
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = Sequence([code(*unit)])
    item.MeasuredValueSequence = Sequence([measured])
    if modifiers:
        item.ContentSequence = Sequence(modifiers)
    return item


def _datetime(concept: Concept, value: str) -> Dataset:
    item = _item("CONTAINS", "DATETIME", concept)
    item.DateTime = value
    return item


def measurement_report(
    ds: Dataset,
    observer: str,
    segmentation: tuple[str, str],
    source_series: str,
    segments: list[Segment],
    rng: random.Random,
) -> None:
    """TID 1500: the observer, the procedure and one TID 1411 group per segment.
    `segmentation` is the SEG's (SOP class UID, SOP instance UID)."""
    groups = []
    for segment in segments:
        reference = Dataset()
        reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = segmentation
        reference.ReferencedSegmentNumber = segment.number
        referenced_segment = _item("CONTAINS", "IMAGE", ("121191", "DCM", "Referenced Segment"))
        referenced_segment.ReferencedSOPSequence = Sequence([reference])
        group = _container(
            "CONTAINS",
            GROUP,
            [
                _text("HAS OBS CONTEXT", ("112039", "DCM", "Tracking Identifier"), segment.label),
                _uidref(
                    "HAS OBS CONTEXT",
                    ("112040", "DCM", "Tracking Unique Identifier"),
                    segment.tracking_uid,
                ),
                _code("CONTAINS", ("121071", "DCM", "Finding"), segment.property_type),
                _code("HAS CONCEPT MOD", ("363698007", "SCT", "Finding Site"), segment.region),
                referenced_segment,
                _uidref(
                    "CONTAINS",
                    ("121232", "DCM", "Source series for segmentation"),
                    source_series,
                ),
                _num(VOLUME, round(rng.uniform(5_000, 1_800_000), 1), MM3, []),
                _num(
                    ATTENUATION,
                    round(rng.uniform(-20, 90), 2),
                    HU,
                    [_code("HAS CONCEPT MOD", ("121401", "DCM", "Derivation"), MEAN)],
                ),
                _code(
                    "CONTAINS",
                    SHAPE,
                    IRREGULAR if segment.property_type[0] == NEOPLASM else ROUND,
                ),
            ],
        )
        _template(group, "1411")
        groups.append(group)
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([code(*REPORT)])
    _template(ds, "1500")
    observer_name = _item("HAS OBS CONTEXT", "PNAME", ("121008", "DCM", "Person Observer Name"))
    observer_name.PersonName = observer
    ds.ContentSequence = Sequence(
        [
            _code(
                "HAS CONCEPT MOD",
                ("121049", "DCM", "Language of Content Item and Descendants"),
                ("en-US", "RFC5646", "English (United States)"),
            ),
            _code(
                "HAS OBS CONTEXT", ("121005", "DCM", "Observer Type"), ("121006", "DCM", "Person")
            ),
            observer_name,
            _code(
                "HAS CONCEPT MOD",
                ("121058", "DCM", "Procedure reported"),
                ("25045-6", "LN", "CT unspecified body region"),
            ),
            _container("CONTAINS", ("126010", "DCM", "Imaging Measurements"), groups),
        ]
    )


def ct_acquisition(
    study_uid: str, index: int, started: str, protocol: str, rng: random.Random
) -> Dataset:
    """One irradiation event of a CT dose report (TID 10013)."""
    spiral = index > 0  # a localizer first, then spiral acquisitions
    parameters = _container(
        "CONTAINS",
        ("113822", "DCM", "CT Acquisition Parameters"),
        [
            _num(
                ("113824", "DCM", "Exposure Time"),
                round(rng.uniform(2, 12), 2),
                ("s", "UCUM", "s"),
                [],
            ),
            _num(
                ("113825", "DCM", "Scanning Length"),
                round(rng.uniform(200, 600), 1),
                ("mm", "UCUM", "mm"),
                [],
            ),
            _num(
                ("113828", "DCM", "Pitch Factor"),
                0.9 if spiral else 0.0,
                ("{ratio}", "UCUM", "ratio"),
                [],
            ),
            _container(
                "CONTAINS",
                ("113831", "DCM", "CT X-Ray Source Parameters"),
                [
                    _text("CONTAINS", ("113832", "DCM", "Identification of the X-Ray Source"), "A"),
                    _num(
                        ("113733", "DCM", "KVP"),
                        rng.choice([100.0, 120.0]),
                        ("kV", "UCUM", "kV"),
                        [],
                    ),
                    _num(
                        ("113734", "DCM", "X-Ray Tube Current"),
                        float(rng.randint(80, 400)),
                        ("mA", "UCUM", "mA"),
                        [],
                    ),
                ],
            ),
        ],
    )
    dose = _container(
        "CONTAINS",
        ("113829", "DCM", "CT Dose"),
        [
            _num(
                ("113830", "DCM", "Mean CTDIvol"),
                round(rng.uniform(3, 20), 2),
                ("mGy", "UCUM", "mGy"),
                [],
            ),
            _code(
                "CONTAINS",
                ("113835", "DCM", "CTDIw Phantom Type"),
                ("113691", "DCM", "IEC Body Dosimetry Phantom"),
            ),
            _num(
                ("113838", "DCM", "DLP"),
                round(rng.uniform(20, 700), 1),
                ("mGy.cm", "UCUM", "mGy.cm"),
                [],
            ),
        ],
    )
    kind = (
        ("116152004", "SCT", "Spiral Acquisition")
        if spiral
        else ("113805", "DCM", "Constant Angle Acquisition")
    )
    return _container(
        "CONTAINS",
        ("113819", "DCM", "CT Acquisition"),
        [
            _text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), protocol),
            _code("CONTAINS", ("123014", "DCM", "Target Region"), ("51185008", "SCT", "Chest")),
            _code("CONTAINS", ("113820", "DCM", "CT Acquisition Type"), kind),
            _uidref(
                "CONTAINS",
                ("113769", "DCM", "Irradiation Event UID"),
                uid(study_uid, "event", index),
            ),
            _datetime(("111526", "DCM", "DateTime Started"), started),
            parameters,
            dose,
        ],
    )
