"""Per-table extraction on real files: pure functions, dataset in, rows out."""

import datetime as dt
from io import BytesIO
from pathlib import Path

import orjson
import pydicom
import pytest

from loader.core.keys import key_of
from loader.dicom.decode import decode_elements, decode_header
from loader.dicom.value_store import ValueStore
from loader.extract import extract_object
from loader.extract.context import ObjectFacts
from loader.headers.dataset_bytes import from_pydicom
from loader.headers.reader import HeaderReader, parse_header
from tests.conftest import real_file

NOW = dt.datetime(2026, 1, 1)


def facts(uri: str, size: int = 0) -> ObjectFacts:
    return ObjectFacts(
        uri=uri,
        size=size,
        modified_at=NOW,
        ingestion_source="test",
        storage_provider="file",
        storage_container=None,
        object_key=uri,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        header_bytes=0,
        bytes_read=0,
        pixel_data_offset=None,
        pixel_data_length=None,
        checksum="",
        ingested_at=NOW,
    )


# The tests' worker: objects extracted here share decoded elements, as a worker's do.
STORE = ValueStore()


def extract_bytes(data: bytes, uri: str = "mem://x"):
    parsed = parse_header(uri, HeaderReader(lambda start, end: data[start:end], len(data)))
    return extract_object(decode_header(parsed, uri, store=STORE), facts(uri, len(data)))


def extract_path(path: str | Path):
    return extract_bytes(Path(path).read_bytes(), str(path))


def as_rows(columns):
    """Columnar rows (dicom_element, dicom_sequence_item) as a list of dicts; a key
    that is a tuple of names holds row tuples of those columns."""
    named = {}
    for key, values in columns.items():
        if isinstance(key, tuple):
            named.update({name: [row[at] for row in values] for at, name in enumerate(key)})
        else:
            named[key] = values
    names = list(named)
    return [dict(zip(names, values, strict=True)) for values in zip(*named.values(), strict=True)]


def one(rows, table):
    assert len(rows[table]) == 1, rows[table]
    return rows[table][0]


def test_ct_hierarchy_equals_pydicom():
    path = real_file("CT_small.dcm")
    ref = pydicom.dcmread(path)
    rows, errors = extract_path(path)
    assert errors == []
    patient = one(rows, "dicom_patient")
    assert patient["patient_id"] == ref.PatientID
    assert patient["patient_name"] == str(ref.PatientName)
    assert patient["patient_key"] == key_of(ref.PatientID, None)
    study = one(rows, "dicom_study")
    assert study["study_instance_uid"] == ref.StudyInstanceUID
    assert study["study_date"] == dt.date(2004, 1, 19)
    assert study["study_key"] == key_of(ref.StudyInstanceUID)
    assert study["patient_key"] == patient["patient_key"]
    series = one(rows, "dicom_series")
    assert series["modality"] == "CT"
    assert series["study_key"] == study["study_key"]
    instance = one(rows, "dicom_instance")
    assert instance["sop_instance_uid"] == ref.SOPInstanceUID
    assert instance["series_key"] == series["series_key"]
    assert instance["image_type"] == list(ref.ImageType)
    pixel = one(rows, "dicom_image_pixel")
    assert (pixel["image_rows"], pixel["image_columns"]) == (ref.Rows, ref.Columns)
    assert pixel["bits_allocated"] == ref.BitsAllocated
    assert pixel["rescale_slope"] == float(ref.RescaleSlope)
    plane = one(rows, "dicom_image_plane")
    assert plane["pixel_spacing"] == [float(v) for v in ref.PixelSpacing]
    assert plane["image_position_patient"] == [float(v) for v in ref.ImagePositionPatient]
    assert plane["frame_key"] is None
    equipment = one(rows, "dicom_equipment")
    assert equipment["manufacturer"] == ref.Manufacturer
    dose = one(rows, "dicom_dose_summary")
    assert dose["kvp"] == float(ref.KVP)


def test_elements_cover_every_element_including_private_and_nested():
    path = real_file("CT_small.dcm")
    ref = pydicom.dcmread(path, stop_before_pixels=True)
    rows, _ = extract_path(path)
    expected = sum(1 for _ in ref.iterall())
    assert len(as_rows(rows["dicom_element"])) == expected
    private = [e for e in as_rows(rows["dicom_element"]) if e["is_private"]]
    assert private and all(e["tag_group"] % 2 == 1 for e in private)
    keys = [e["element_key"] for e in as_rows(rows["dicom_element"])]
    assert len(keys) == len(set(keys))


def test_equal_private_bytes_under_another_creator_get_that_creator():
    """Decoded elements are shared by their bytes (see decode); a private element's
    creator and name come from its own object's item."""
    found = {}
    for creator in ("GEMS_IDEN_01", "SIEMENS CSA HEADER", "GEMS_IDEN_01"):
        ds = pydicom.dcmread(real_file("CT_small.dcm"))
        for tag in [e.tag for e in ds if e.tag.group == 0x0009]:
            del ds[tag]
        ds.private_block(0x0009, creator, create=True).add_new(0x01, "LO", "same bytes")
        out = BytesIO()
        ds.save_as(out)
        rows, _ = extract_bytes(out.getvalue())
        (row,) = [r for r in as_rows(rows["dicom_element"]) if r["tag_hex"] == "00091001"]
        found[creator] = (row["private_creator"], row["name"], row["value_string"])
    gems, siemens = found["GEMS_IDEN_01"], found["SIEMENS CSA HEADER"]
    assert gems[0] == "GEMS_IDEN_01" and siemens[0] == "SIEMENS CSA HEADER"
    assert gems[1] != siemens[1] and gems[2] == siemens[2] == "same bytes"


def test_sequence_items_link_to_their_parent_elements():
    rows, _ = extract_path(real_file("rtplan.dcm"))
    elements = {e["element_key"]: e for e in as_rows(rows["dicom_element"])}
    items = as_rows(rows["dicom_sequence_item"])
    assert items
    for item in items:
        parent = elements[item["parent_element_key"]]
        assert parent["vr"] == "SQ"
        assert item["sequence_path"].startswith(
            (parent["sequence_path"] + "." if parent["sequence_path"] else "") + parent["tag_hex"]
        )
    nested = [e for e in as_rows(rows["dicom_element"]) if e["sequence_item_key"] is not None]
    assert {e["sequence_item_key"] for e in nested} <= {i["sequence_item_key"] for i in items}


def test_element_and_item_keys_hash_instance_and_path():
    """The documented key: SQL can recompute it from the row's own columns."""
    path = real_file("rtplan.dcm")
    sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    rows, _ = extract_path(path)
    elements = as_rows(rows["dicom_element"])
    assert any(e["sequence_path"] for e in elements)
    for e in elements:
        where = (e["sequence_path"] + "." if e["sequence_path"] else "") + e["tag_hex"]
        assert e["element_key"] == key_of(sop, where), where
    for item in as_rows(rows["dicom_sequence_item"]):
        assert item["sequence_item_key"] == key_of(sop, item["sequence_path"])


def test_rt_dose_multiframe_pixel_rows():
    path = real_file("rtdose.dcm")
    ref = pydicom.dcmread(path)
    rows, _ = extract_path(path)
    assert one(rows, "dicom_image_pixel")["number_of_frames"] == int(ref.NumberOfFrames)
    assert one(rows, "dicom_series")["modality"] == "RTDOSE"


def test_structured_report_header():
    path = real_file("test-SR.dcm")
    ref = pydicom.dcmread(path)
    rows, _ = extract_path(path)
    header = one(rows, "dicom_structured_report_header")
    assert header["completion_flag"] == ref.CompletionFlag
    assert header["verification_flag"] == ref.VerificationFlag
    assert header["document_title"] == ref.ConceptNameCodeSequence[0].CodeMeaning
    schemes = ref.get("CodingSchemeIdentificationSequence")
    held = header["coding_scheme_identification"]
    if schemes:
        designators = [item["CodingSchemeDesignator"] for item in orjson.loads(held)]
        assert designators == [s.CodingSchemeDesignator for s in schemes]
    else:
        assert held is None


def _synth_file(archive, modality: str, sop_class: str | None = None) -> Path:
    root, _ = archive
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "bad" in path.parts or "duplicates" in path.parts:
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality == modality and (sop_class is None or ds.SOPClassUID == sop_class):
            return path
    raise AssertionError(f"synth archive has no {modality}")


def test_enhanced_multiframe_frames_and_planes(synth_archive):
    path = _synth_file(synth_archive, "MR", "1.2.840.10008.5.1.4.1.1.4.1")
    ref = pydicom.dcmread(path)
    rows, _ = extract_path(path)
    frames = rows["dicom_frame"]
    assert len(frames) == int(ref.NumberOfFrames)
    per_frame = ref.PerFrameFunctionalGroupsSequence
    for frame in frames:
        source = per_frame[frame["frame_number"] - 1]
        position = source.PlanePositionSequence[0].ImagePositionPatient
        assert frame["image_position_patient"] == [float(v) for v in position]
        assert frame["frame_key"] == key_of(ref.SOPInstanceUID, frame["frame_number"])
        assert (
            frame["temporal_position_index"] == source.FrameContentSequence[0].TemporalPositionIndex
        )
    planes = rows["dicom_image_plane"]
    assert len(planes) == len(frames)
    assert [p["frame_key"] for p in planes] == [f["frame_key"] for f in frames]
    shared = ref.SharedFunctionalGroupsSequence[0]
    assert planes[0]["pixel_spacing"] == [
        float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing
    ]
    pixel = one(rows, "dicom_image_pixel")
    assert pixel["window_center"] == [float(shared.FrameVOILUTSequence[0].WindowCenter)]
    frame_elements = [e for e in as_rows(rows["dicom_element"]) if e["frame_number"] == 3]
    assert frame_elements


def test_segmentation_rows(synth_archive):
    path = _synth_file(synth_archive, "SEG")
    ref = pydicom.dcmread(path)
    rows, _ = extract_path(path)
    segments = rows["dicom_segmentation_metadata"]
    assert [s["segment_label"] for s in segments] == [s.SegmentLabel for s in ref.SegmentSequence]
    referenced = ref.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert all(s["referenced_series_key"] == key_of(referenced) for s in segments)
    category = orjson.loads(segments[0]["property_category_code_seq"])
    assert category[0]["CodeValue"] == "123037004"
    for row, segment in zip(segments, ref.SegmentSequence, strict=True):
        kind = orjson.loads(row["property_type_code_seq"])
        assert kind[0]["CodeValue"] == segment.SegmentedPropertyTypeCodeSequence[0].CodeValue
        region = segment.get("AnatomicRegionSequence")
        held = row["anatomic_region_code_seq"]
        assert (orjson.loads(held)[0]["CodeValue"] if held else None) == (
            region[0].CodeValue if region else None
        )
        grayscale = segment.get("RecommendedDisplayGrayscaleValue")
        shown = row["recommended_display_grayscale"]
        assert (shown is not None) == (
            grayscale is not None or "RecommendedDisplayCIELabValue" in segment
        )


def test_dose_report_dlp(synth_archive):
    path = _synth_file(synth_archive, "SR", "1.2.840.10008.5.1.4.1.1.88.67")
    ref = pydicom.dcmread(path)
    rows, _ = extract_path(path)
    dose = one(rows, "dicom_dose_summary")
    total = ref.ContentSequence[0].ContentSequence[0].MeasuredValueSequence[0].NumericValue
    assert dose["dose_length_product"] == float(total)
    header = one(rows, "dicom_structured_report_header")
    evidence = ref.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    uids = [s.ReferencedSOPInstanceUID for series in evidence for s in series.ReferencedSOPSequence]
    assert header["referenced_instance_keys"] == [key_of(u) for u in uids]


def test_procedure_step(synth_archive):
    path = _synth_file(synth_archive, "CT")
    ref = pydicom.dcmread(path, stop_before_pixels=True)
    rows, _ = extract_path(path)
    step = one(rows, "dicom_procedure_step")
    request = ref.RequestAttributesSequence[0]
    assert step["requested_procedure_id"] == request.RequestedProcedureID
    assert step["performed_procedure_step_id"] == ref.PerformedProcedureStepID
    codes = orjson.loads(step["requested_procedure_code_seq"])
    assert codes[0]["CodeValue"] == request.RequestedProcedureCodeSequence[0].CodeValue
    performed = orjson.loads(step["performed_procedure_code_seq"])
    assert performed[0]["CodeValue"] == ref.ProcedureCodeSequence[0].CodeValue
    assert step["procedure_step_key"] == key_of(
        ref.StudyInstanceUID, request.RequestedProcedureID, ref.PerformedProcedureStepID
    )


def _with(path: str, **changes) -> bytes:
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_unparseable_date_is_null_plus_type_cast_error():
    rows, errors = extract_bytes(_with(real_file("CT_small.dcm"), StudyDate="20231399"))
    assert one(rows, "dicom_study")["study_date"] is None
    assert [(e["error_category"], e["tag"]) for e in errors] == [("TYPE_CAST_ERROR", "00080020")]
    assert one(rows, "dicom_instance")["sop_instance_uid"]


@pytest.mark.parametrize("missing", ["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"])
def test_missing_identifier_is_validation_error(missing):
    rows, errors = extract_bytes(_with(real_file("CT_small.dcm"), **{missing: None}))
    assert [e["error_category"] for e in errors] == ["VALIDATION_ERROR"]
    assert missing in errors[0]["error_message"]
    assert set(rows) == {"dicom_raw"}


def _with_oversized_private_values() -> bytes:
    """CT_small with a 2 MiB private text, a private sequence of ~1.2 MiB, a small
    private value, and a public sequence over 1 MiB."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    block = ds.private_block(0x0011, "HOSTILE VENDOR", create=True)
    block.add_new(0x01, "UT", "x" * (2 << 20))
    items = []
    for n in range(1200):
        item = Dataset()
        item.add_new(0x00110010, "LO", "HOSTILE VENDOR")  # creator inside the item
        item.add_new(0x00111002, "UT", f"{n:04d}" * 250)
        items.append(item)
    block.add_new(0x02, "SQ", Sequence(items))
    block.add_new(0x03, "LO", "small")
    references = []
    for n in range(12_000):
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = f"1.2.3.4.5.6.7.8.9.{n}.{'1' * 40}"
        references.append(ref)
    ds.ReferencedImageSequence = Sequence(references)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _hostile_tags(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    block = ds.private_block(0x0011, "HOSTILE VENDOR")
    return tuple(f"{block.get_tag(n):08X}" for n in (1, 2, 3))  # type: ignore[return-value]


def test_private_values_over_the_element_limit_are_omitted_with_a_warning():
    data = _with_oversized_private_values()
    text, sequence, small = _hostile_tags(data)
    rows, errors = extract_bytes(data)
    doc = orjson.loads(one(rows, "dicom_raw")["metadata"])
    assert doc[text] == {"vr": "UT", "length": 2 << 20, "omitted": True}
    assert doc[sequence]["omitted"] is True and doc[sequence]["vr"] == "SQ"
    assert doc[sequence]["length"] > 1 << 20
    assert doc[small] == "small"
    references = doc["ReferencedImageSequence"]  # public values obey the limit too
    assert references["omitted"] is True and references["length"] > 1 << 20
    elements = {
        r["tag_hex"]: r for r in as_rows(rows["dicom_element"]) if r["sequence_path"] is None
    }
    assert elements[text]["value_binary_ref"] == f"omitted length={2 << 20}"
    assert elements[text]["value_string"] is None and elements[text]["vm"] == 0
    assert elements[sequence]["value_binary_ref"].startswith("omitted length=")
    assert elements[small]["value_string"] == "small"
    nested = [
        r for r in as_rows(rows["dicom_element"]) if (r["sequence_path"] or "").startswith(sequence)
    ]
    assert not nested  # nothing of the omitted sequence leaks into element rows
    warnings = sorted((e["error_category"], e["tag"]) for e in errors)
    public = "00081140"  # ReferencedImageSequence
    assert warnings == sorted(("TYPE_CAST_ERROR", t) for t in (text, sequence, public))
    assert all("element limit" in e["error_message"] for e in errors)


def test_element_limit_is_configurable():
    data = _with_oversized_private_values()
    text, sequence, small = _hostile_tags(data)
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    whole = decode_elements(from_pydicom(ds._dict, "x"), "x", 4 << 20, implicit=False, little=True)
    assert whole.cast_errors == []
    assert len(whole.root[int(text, 16)].value) == 2 << 20
    tight = decode_elements(from_pydicom(ds._dict, "x"), "x", 4, implicit=False, little=True)
    assert {text, sequence, small} <= {tag for tag, _ in tight.cast_errors}


def test_integer_strings_no_column_holds_are_cast_errors():
    """An IS of 25 digits would overflow every integer column and fail its shard."""
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    data = BytesIO()
    ds.save_as(data, enforce_file_format=True)
    raw = data.getvalue()
    original = ds["InstanceNumber"].value
    at = raw.index(b"\x20\x00\x13\x00IS")
    length = int.from_bytes(raw[at + 6 : at + 8], "little")
    huge = b"9" * 24
    raw = (
        raw[:at]
        + b"\x20\x00\x13\x00IS"
        + len(huge).to_bytes(2, "little")
        + huge
        + raw[at + 8 + length :]
    )
    rows, errors = extract_bytes(raw)
    assert original and rows["dicom_instance"][0]["instance_number"] is None
    assert [(e["error_category"], e["tag"]) for e in errors] == [("TYPE_CAST_ERROR", "00200013")]
    assert errors[0]["error_message"] == f"IS value {'9' * 24!r} is out of range"
