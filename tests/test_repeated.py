"""Series-level rows built once per run of objects sharing their elements."""

import orjson
import pytest

from loader.dicom.decode import decode_elements
from loader.extract.context import Extraction
from loader.extract.repeated import repeated
from loader.extract.values import Typed, text
from tests.conftest import real_file
from tests.test_extract import _with, extract_bytes, facts, one

CT = real_file("CT_small.dcm")


def test_objects_of_a_series_share_its_rows_and_keep_their_own():
    first_rows, _ = extract_bytes(_with(CT, SOPInstanceUID="1.2.3.1", InstanceNumber=1))
    second_rows, _ = extract_bytes(_with(CT, SOPInstanceUID="1.2.3.2", InstanceNumber=2))
    for table in ("dicom_patient", "dicom_study", "dicom_series", "dicom_equipment"):
        assert one(second_rows, table) is one(first_rows, table), table
    assert [one(r, "dicom_instance")["instance_number"] for r in (first_rows, second_rows)] == [
        1,
        2,
    ]
    documents = [orjson.loads(one(r, "dicom_raw")["metadata"]) for r in (first_rows, second_rows)]
    assert [d["SOPInstanceUID"] for d in documents] == ["1.2.3.1", "1.2.3.2"]


def test_an_element_a_row_was_built_from_changing_rebuilds_that_row_only():
    before, _ = extract_bytes(_with(CT, SOPInstanceUID="1.2.3.1"))
    after, _ = extract_bytes(_with(CT, SOPInstanceUID="1.2.3.2", PatientName="Other^Name"))
    assert one(after, "dicom_patient") is not one(before, "dicom_patient")
    assert one(after, "dicom_patient")["patient_name"] == "Other^Name"
    assert one(after, "dicom_study") is one(before, "dicom_study")  # reads no PatientName


def test_every_object_gets_the_warning_rows_of_a_repeated_row():
    bad_date = {"StudyDate": "20231399"}
    outcomes = [extract_bytes(_with(CT, SOPInstanceUID=f"1.2.3.{n}", **bad_date)) for n in (1, 2)]
    for rows, errors in outcomes:
        assert one(rows, "dicom_study")["study_date"] is None
        assert [(e["error_category"], e["tag"]) for e in errors] == [
            ("TYPE_CAST_ERROR", "00080020")
        ]
    assert one(outcomes[1][0], "dicom_study") is one(outcomes[0][0], "dicom_study")


def test_a_builder_that_looks_past_the_tags_it_reads_is_refused():
    @repeated
    def every_tag(root, typed):
        return {"tags": len(list(root.items()))}

    @repeated
    def modality(root, typed):
        return {"modality": text(root, "Modality")}

    decoded = decode_elements({0x00080060: ("CS", b"CT")}, "mem://x", implicit=False, little=True)
    ex = Extraction(decoded, facts("mem://x"), "1.1", "1.2", "1.3", Typed(decoded))
    assert modality(ex) == {"modality": "CT"}
    with pytest.raises(TypeError, match="by tag only"):
        every_tag(ex)
