"""The content inside derived objects, checked against independent readers.

SR measurement groups, measurements and qualitative evaluations, and SEG segments,
are compared with what highdicom reads back from objects highdicom built (and from
synth's reports, which highdicom must parse as TID 1500); the flat SR content, RT
ROIs and dose events with what pydicom finds walking the same files. Nothing here
reads the loader's own code to decide what is right.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from loader.core.keys import key_of
from loader.core.model import BY_NAME
from loader.dicom.decode import decode_header
from loader.dicom.pseudonymize import Pseudonymizer
from loader.extract import extract_object
from loader.headers.reader import read_local
from loader.jobs.pipeline import run
from loader.jobs.rebuild import rebuild
from loader.jobs.settings import RunSettings, Target
from loader.jobs.targets import open_warehouse
from tests.conftest import REPO, real_file
from tests.highdicom_objects import Built, build
from tests.test_extract import STORE, extract_path, facts

MEASUREMENT_SR = "1.2.840.10008.5.1.4.1.1.88.34"
DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("highdicom"))


def _synth_files(archive, sop_class: str) -> list[Path]:
    root, _ = archive
    found = []
    for path in sorted(root.rglob("*.dcm")) + sorted(root.rglob("IM*")):
        if "bad" in path.parts or "duplicates" in path.parts:
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.SOPClassUID == sop_class:
            found.append(path)
    assert found, sop_class
    return found


def _code(concept) -> tuple:
    """A highdicom CodedConcept (or None) as the three columns hold it."""
    if concept is None:
        return (None, None, None)
    return (concept.value, concept.scheme_designator, concept.meaning)


def _columns(row: dict, prefix: str) -> tuple:
    return tuple(row[f"{prefix}_code_{part}"] for part in ("value", "scheme", "meaning"))


def _groups_of(path: Path):
    """highdicom's measurement groups of a TID 1500 report, volumetric and planar."""
    report = hd.sr.srread(path).content
    return [
        *report.get_volumetric_roi_measurement_groups(),
        *report.get_planar_roi_measurement_groups(),
    ]


def _check_groups(path: Path) -> int:
    rows, errors = extract_path(path)
    assert errors == []
    by_uid = {r["tracking_uid"]: r for r in rows["dicom_sr_measurement_group"]}
    measurements = rows["dicom_sr_measurement"]
    evaluations = rows["dicom_sr_qualitative_evaluation"]
    groups = _groups_of(path)
    assert len(groups) == len(by_uid) > 0
    for group in groups:
        row = by_uid[group.tracking_uid]
        assert row["tracking_identifier"] == group.tracking_identifier
        assert _columns(row, "finding") == _code(group.finding_type)
        assert _columns(row, "finding_category") == _code(group.finding_category)
        sites = [site.value for site in group.finding_sites]
        assert _columns(row, "finding_site") == _code(sites[0] if sites else None)
        assert _columns(row, "method") == _code(group.method)
        assert row["roi_reference_type"] == group.reference_type.meaning
        ours = [m for m in measurements if m["group_path"] == row["group_path"]]
        theirs = group.get_measurements()
        assert len(ours) == len(theirs) > 0
        for mine, read in zip(ours, theirs, strict=True):
            assert _columns(mine, "concept") == _code(read.name)
            assert mine["numeric_value"] == pytest.approx(read.value)
            assert _columns(mine, "unit") == _code(read.unit)
            assert _columns(mine, "derivation") == _code(read.derivation)
            assert _columns(mine, "method") == _code(read.method)
            read_sites = [site.value for site in read.finding_sites]
            assert _columns(mine, "finding_site") == _code(read_sites[0] if read_sites else None)
        # highdicom counts the finding category among the evaluations; the table
        # holds it in the group's row.
        category = _code(group.finding_category)
        read_evaluations = [
            (_code(e.name), _code(e.value))
            for e in group.get_qualitative_evaluations()
            if _code(e.value) != category
        ]
        assert [
            (_columns(e, "concept"), _columns(e, "value"))
            for e in evaluations
            if e["group_path"] == row["group_path"]
        ] == read_evaluations
        if isinstance(group, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations):
            segment = group.referenced_segment
            assert row["referenced_segmentation_uid"] == segment.referenced_sop_instance_uid
            assert row["referenced_segmentation_key"] == key_of(segment.referenced_sop_instance_uid)
            assert [row["referenced_segment_number"]] == segment.referenced_segment_numbers
            source = segment.source_series_for_segmentation
            assert row["source_series_uid"] == (source.value if source else None)
            assert row["source_series_key"] == (key_of(source.value) if source else None)
        else:
            region = group.roi
            assert row["region_graphic_type"] == region.graphic_type.value
            image = region.ContentSequence[0].ReferencedSOPSequence[0]
            assert row["region_instance_key"] == key_of(image.ReferencedSOPInstanceUID)
    return len(groups)


def test_measurement_groups_of_a_highdicom_report_are_what_highdicom_reads(built):
    assert _check_groups(built.sr) == 2
    rows, _ = extract_path(built.sr)
    groups = {r["tracking_uid"]: r for r in rows["dicom_sr_measurement_group"]}
    volumetric = groups[built.tracking_uids[0]]
    # What highdicom has no getter for, read from the tree with pydicom.
    group = pydicom.dcmread(built.sr).ContentSequence[-1].ContentSequence[0]
    by_concept = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item for item in group.ContentSequence
    }
    assert volumetric["activity_session"] == by_concept["Activity Session"].TextValue
    assert volumetric["time_point"] == by_concept["Time Point"].TextValue == "week 0"
    assert groups[built.tracking_uids[1]]["activity_session"] is None


def test_measurement_groups_of_synth_reports_are_what_highdicom_reads(synth_archive):
    """synth's TID 1500 reports parse in highdicom, and every group, measurement and
    evaluation of every report is what it reads."""
    reports = _synth_files(synth_archive, MEASUREMENT_SR)
    assert sum(_check_groups(path) for path in reports) >= 3 * len(reports)
    rows, _ = extract_path(reports[0])
    groups = rows["dicom_sr_measurement_group"]
    seg_uid = groups[0]["referenced_segmentation_uid"]
    seg_rows = [
        r
        for path in _synth_files(synth_archive, "1.2.840.10008.5.1.4.1.1.66.4")
        if pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID == seg_uid
        for r in extract_path(path)[0]["dicom_segmentation_metadata"]
    ]
    # Each group's tracking UID is its segment's: the report measured that segment.
    by_number = {s["segment_number"]: s for s in seg_rows}
    for group in groups:
        assert (
            by_number[group["referenced_segment_number"]]["tracking_uid"] == (group["tracking_uid"])
        )


def _walk(item, path: str, depth: int, parent: str | None, out: dict) -> None:
    """pydicom's reading of the content tree: path → what the row must hold."""
    concept = item.get("ConceptNameCodeSequence")
    value_type = item.get("ValueType")
    measured = item.get("MeasuredValueSequence")
    measured = measured[0] if measured else None
    code = item.get("ConceptCodeSequence")
    reference = item.get("ReferencedSOPSequence")
    reference = reference[0] if reference else None
    out[path] = {
        "parent_path": parent,
        "depth": depth,
        "relationship_type": item.get("RelationshipType"),
        "value_type": value_type,
        "concept": _code_item(concept[0]) if concept else (None, None, None),
        "text_value": item.get("TextValue") or None,
        "code": _code_item(code[0]) if code else (None, None, None),
        "numeric_value": (
            float(measured.get("FloatingPointValue", measured.get("NumericValue")))
            if measured is not None and measured.get("NumericValue") not in (None, "")
            else None
        ),
        "unit": (
            _code_item(measured.MeasurementUnitsCodeSequence[0])
            if measured is not None
            else (None, None, None)
        ),
        "person_name": str(item.PersonName) if item.get("PersonName") else None,
        "uid_value": item.get("UID") or None,
        "referenced_sop_instance_uid": reference.ReferencedSOPInstanceUID if reference else None,
        "referenced_sop_class_uid": reference.ReferencedSOPClassUID if reference else None,
        "referenced_instance_key": (
            key_of(reference.ReferencedSOPInstanceUID) if reference else None
        ),
        "referenced_frame_numbers": _numbers(reference, "ReferencedFrameNumber"),
        "referenced_segment_numbers": _numbers(reference, "ReferencedSegmentNumber"),
        "template_id": (
            item.ContentTemplateSequence[0].TemplateIdentifier
            if "ContentTemplateSequence" in item
            else None
        ),
        "observation_uid": item.get("ObservationUID") or None,
        "date_value": pydicom.valuerep.DA(item.Date) if item.get("Date") else None,
        "time_value": pydicom.valuerep.TM(item.Time).replace(tzinfo=None)
        if item.get("Time")
        else None,
        "datetime_value": pydicom.valuerep.DT(item.DateTime).replace(tzinfo=None)
        if item.get("DateTime")
        else None,
        "graphic_type": item.get("GraphicType") or None,
        "graphic_data": [float(v) for v in item.GraphicData] if "GraphicData" in item else None,
        "referenced_content_path": (
            ".".join(str(v) for v in item.ReferencedContentItemIdentifier)
            if "ReferencedContentItemIdentifier" in item
            else None
        ),
    }
    for index, child in enumerate(item.get("ContentSequence") or [], start=1):
        _walk(child, f"{path}.{index}", depth + 1, path, out)


def _numbers(reference, keyword: str) -> list[int] | None:
    if reference is None or keyword not in reference:
        return None
    values = reference[keyword].value
    return [
        int(v)
        for v in (
            values if isinstance(values, list | tuple | pydicom.multival.MultiValue) else [values]
        )
    ]


def _code_item(item) -> tuple:
    value = item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue")
    return (value, item.get("CodingSchemeDesignator"), item.get("CodeMeaning"))


def _content_paths(path: Path | str) -> int:
    rows, _ = extract_path(path)
    ds = pydicom.dcmread(path, force=True)
    expected: dict[str, dict] = {}
    _walk(ds, "1", 0, None, expected)
    ours = {r["content_path"]: r for r in rows["dicom_sr_content"]}
    assert list(ours) == list(expected)  # every item, in document order
    for content_path, read in expected.items():
        row = ours[content_path]
        for column, value in read.items():
            if column in ("concept", "code", "unit"):
                assert _columns(row, column) == value, (content_path, column)
            elif column == "graphic_data" and value is not None:
                assert row[column] == pytest.approx(value)
            elif column == "numeric_value" and value is not None:
                assert row[column] == pytest.approx(value), content_path
            else:
                assert row[column] == value, (content_path, column)
    return len(expected)


def test_content_rows_are_every_item_pydicom_walks(built, synth_archive):
    """The flat table holds every content item of every SR in document order, its
    place, relationship, concept and value as pydicom reads them: highdicom's
    report, pydicom's own SR test files, synth's measurement and dose reports."""
    files: list[Path | str] = [
        built.sr,
        real_file("test-SR.dcm"),
        real_file("reportsi.dcm"),
        _synth_files(synth_archive, MEASUREMENT_SR)[0],
        _synth_files(synth_archive, DOSE_SR)[0],
    ]
    counted = [_content_paths(path) for path in files]
    assert min(counted) >= 9, counted


def test_objects_that_are_no_report_have_no_content_rows(built):
    for path in (*built.ct, built.seg, real_file("rtstruct.dcm")):
        rows, _ = extract_path(path)
        for table in (
            "dicom_sr_content",
            "dicom_sr_measurement_group",
            "dicom_sr_measurement",
            "dicom_sr_qualitative_evaluation",
            "dicom_dose_event",
        ):
            assert rows[table] == [], (path, table)


def _segment_sources(ds: pydicom.Dataset) -> dict[int, list[str]]:
    """pydicom: each segment's frames' source images, in order of first mention."""
    found: dict[int, list[str]] = {}
    for frame in ds.PerFrameFunctionalGroupsSequence:
        number = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.SourceImageSequence:
                uids = found.setdefault(number, [])
                if source.ReferencedSOPInstanceUID not in uids:
                    uids.append(source.ReferencedSOPInstanceUID)
    return found


def test_segments_are_what_highdicom_reads(built, synth_archive):
    """highdicom's SEG, pydicom-data's (liver), synth's: every segment's description
    as highdicom reads it; its sources as pydicom finds them frame by frame."""
    segmentations = [
        built.seg,
        Path(real_file("liver.dcm")),
        Path(real_file("liver_1frame.dcm")),
        *_synth_files(synth_archive, "1.2.840.10008.5.1.4.1.1.66.4"),
    ]
    for path in segmentations:
        rows, errors = extract_path(path)
        assert errors == []
        segmentation = hd.seg.segread(path)
        segments = rows["dicom_segmentation_metadata"]
        assert [s["segment_number"] for s in segments] == list(segmentation.segment_numbers)
        sources = _segment_sources(pydicom.dcmread(path))
        for row in segments:
            description = segmentation.get_segment_description(row["segment_number"])
            assert row["segment_label"] == description.segment_label
            assert row["algorithm_type"] == description.algorithm_type.value
            assert row["algorithm_name"] == description.get("SegmentAlgorithmName")
            assert row["tracking_id"] == description.tracking_id
            assert row["tracking_uid"] == description.tracking_uid
            expected = sources[row["segment_number"]]
            assert row["source_instance_keys"] == [key_of(uid) for uid in expected]
        every_source = {uid for _, _, uid in segmentation.get_source_image_uids()}
        assert {k for s in segments for k in s["source_instance_keys"]} == {
            key_of(uid) for uid in every_source
        }


def test_segments_name_different_sources_when_their_frames_do(built):
    rows, _ = extract_path(built.seg)
    first, second = rows["dicom_segmentation_metadata"]
    cts = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in built.ct]
    assert set(first["source_instance_keys"]) == {key_of(u) for u in cts[:2]}
    assert second["source_instance_keys"] == [key_of(cts[2])]


def _rt_expected(ds: pydicom.Dataset) -> list[dict]:
    observations = {o.ReferencedROINumber: o for o in ds.get("RTROIObservationsSequence", [])}
    contours = {c.ReferencedROINumber: c for c in ds.get("ROIContourSequence", [])}
    series: dict[str, list[int]] = {}
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for s in study.get("RTReferencedSeriesSequence", []):
                series.setdefault(frame.FrameOfReferenceUID, []).append(key_of(s.SeriesInstanceUID))
    out = []
    for roi in ds.StructureSetROISequence:
        observation = observations.get(roi.ROINumber)
        polygons = contours[roi.ROINumber].get("ContourSequence", []) if contours else []
        out.append(
            {
                "roi_number": roi.ROINumber,
                "roi_name": roi.get("ROIName") or None,
                "roi_description": roi.get("ROIDescription") or None,
                "roi_generation_algorithm": roi.get("ROIGenerationAlgorithm") or None,
                "referenced_frame_of_reference_uid": roi.ReferencedFrameOfReferenceUID,
                "interpreted_type": (
                    observation.get("RTROIInterpretedType") or None if observation else None
                ),
                "observation_label": (
                    observation.get("ROIObservationLabel") or None if observation else None
                ),
                "referenced_series_keys": series.get(roi.ReferencedFrameOfReferenceUID),
                "contour_count": len(polygons),
                "contour_geometric_types": sorted({p.ContourGeometricType for p in polygons})
                or None,
            }
        )
    return out


def test_rt_rois_are_what_pydicom_reads(synth_archive):
    files = [
        real_file("rtstruct.dcm"),
        *_synth_files(synth_archive, "1.2.840.10008.5.1.4.1.1.481.3"),
    ]
    for path in files:
        rows, _ = extract_path(path)
        expected = _rt_expected(pydicom.dcmread(path, force=True))
        ours = [{k: r[k] for k in expected[0]} for r in rows["dicom_rt_roi"]]
        assert ours == expected, path
    assert any(r["contour_count"] for r in ours)


def test_contours_over_the_element_limit_are_not_read_and_not_counted(synth_archive):
    """A structure set whose contours are over the element limit: its ROIs keep every
    other column, their counts are NULL (unknown, not zero), and the contours are
    left out with a warning row rather than decoded."""
    path = _synth_files(synth_archive, "1.2.840.10008.5.1.4.1.1.481.3")[0]
    parsed = read_local(str(path), os.path.getsize(path))
    decoded = decode_header(parsed, str(path), store=STORE, element_limit=256)
    rows, errors = extract_object(decoded, facts(str(path)))
    assert "30060039" in {e["tag"] for e in errors}  # ROI Contour Sequence, left out
    expected = _rt_expected(pydicom.dcmread(path))
    ours = rows["dicom_rt_roi"]
    assert [r["contour_count"] for r in ours] == [None] * len(expected)
    assert [r["contour_geometric_types"] for r in ours] == [None] * len(expected)
    for column in ("roi_name", "interpreted_type", "referenced_series_keys"):
        assert [r[column] for r in ours] == [e[column] for e in expected], column
    assert all(r["referenced_series_keys"] for r in ours)


_EVENT_CONCEPTS = {
    "irradiation_event_uid": ("113769", "UID"),
    "acquisition_protocol": ("125203", "TextValue"),
    "ctdi_vol": ("113830", "number"),
    "dlp": ("113838", "number"),
    "scanning_length": ("113825", "number"),
    "exposure_time": ("113824", "number"),
    "pitch_factor": ("113828", "number"),
    "kvp": ("113733", "number"),
    "tube_current": ("113734", "number"),
    "ct_acquisition_type": ("113820", "meaning"),
    "phantom_type": ("113835", "meaning"),
    "event_datetime": ("111526", "DateTime"),
    "irradiation_event_type": ("113721", "meaning"),
    "acquisition_plane": ("113764", "meaning"),
    "dose_area_product": ("122130", "number"),
    "dose_rp": ("113738", "number"),
}


def _descendants(item):
    for child in item.get("ContentSequence", []):
        yield child
        yield from _descendants(child)


def _event_expected(event) -> dict:
    out = {}
    for column, (code, how) in _EVENT_CONCEPTS.items():
        found = next(
            (d for d in _descendants(event) if d.ConceptNameCodeSequence[0].CodeValue == code),
            None,
        )
        if found is None:
            out[column] = None
        elif how == "number":
            out[column] = float(found.MeasuredValueSequence[0].NumericValue)
        elif how == "meaning":
            out[column] = found.ConceptCodeSequence[0].CodeMeaning
        elif how == "DateTime":
            out[column] = pydicom.valuerep.DT(found.DateTime).replace(tzinfo=None)
        else:
            out[column] = str(getattr(found, how))
    return out


def test_dose_events_are_what_pydicom_reads(synth_archive):
    reports = _synth_files(synth_archive, DOSE_SR)
    total = 0
    for path in reports:
        rows, _ = extract_path(path)
        ds = pydicom.dcmread(path)
        events = [
            item
            for item in _descendants(ds)
            if item.ValueType == "CONTAINER"
            and item.ConceptNameCodeSequence[0].CodeValue == "113819"
        ]
        assert len(rows["dicom_dose_event"]) == len(events)
        for row, event in zip(rows["dicom_dose_event"], events, strict=True):
            assert row["event_kind"] == "CT"
            expected = _event_expected(event)
            for column, value in expected.items():
                assert row[column] == (pytest.approx(value) if isinstance(value, float) else value)
            target = next(
                d for d in _descendants(event) if d.ConceptNameCodeSequence[0].CodeValue == "123014"
            ).ConceptCodeSequence[0]
            assert _columns(row, "target_region") == _code_item(target)
            total += 1
    assert total >= 2 * len(reports)
    # Each event's UID is unique: the events are told apart across reports.
    uids = [
        r["irradiation_event_uid"]
        for path in reports
        for r in extract_path(path)[0]["dicom_dose_event"]
    ]
    assert len(set(uids)) == len(uids)


def test_pseudonymisation_reaches_the_content_tables(built, synth_archive):
    """Observer names are pseudonymised and content dates shifted with the rest of
    the header: the content tables are built from the rewritten tree."""
    pseudonymizer = Pseudonymizer(b"k" * 32, shift_dates=True, uids=False)
    path = built.sr
    decoded = decode_header(read_local(str(path), os.path.getsize(path)), str(path), store=STORE)
    pseudonymizer.apply(decoded)
    rows, _ = extract_object(decoded, facts(str(path)))
    names = [r["person_name"] for r in rows["dicom_sr_content"] if r["person_name"]]
    assert names == [pseudonymizer.name("Doe^Jane")]

    dose = _synth_files(synth_archive, DOSE_SR)[0]
    plain, _ = extract_path(dose)
    decoded = decode_header(read_local(str(dose), os.path.getsize(dose)), str(dose), store=STORE)
    ds = pydicom.dcmread(dose, stop_before_pixels=True)
    shift = pseudonymizer.shift_of(str(ds.PatientID))  # negative: dates move back
    pseudonymizer.apply(decoded)
    rows, _ = extract_object(decoded, dataclasses.replace(facts(str(dose))))
    before = [r["event_datetime"] for r in plain["dicom_dose_event"]]
    after = [r["event_datetime"] for r in rows["dicom_dose_event"]]
    assert before and all(b is not None for b in before)
    assert after == [b + shift for b in before]


CONTENT_TABLES = (
    "dicom_sr_content",
    "dicom_sr_measurement_group",
    "dicom_sr_measurement",
    "dicom_sr_qualitative_evaluation",
    "dicom_rt_roi",
    "dicom_dose_event",
)
SEGMENT_COLUMNS = ("algorithm_type", "algorithm_name", "tracking_id", "tracking_uid")


def _readme_query() -> str:
    """The example query README.md gives, as a user would paste it; `make demo` prints
    and runs the same (scripts/example_query.py)."""
    text = (REPO / "README.md").read_text()
    start = text.index("```sql\n  SELECT se.series_description")
    query = text[start + len("```sql\n") : text.index("```", start + 6)].strip().rstrip(";")
    spec = importlib.util.spec_from_file_location("example", REPO / "scripts/example_query.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert " ".join(query.split()) == " ".join(example.MEASUREMENTS.split())
    return query


def _content_snapshot(target: str) -> dict[str, list[tuple]]:
    warehouse = open_warehouse(Target.parse(target))
    try:
        out = {}
        for name in (*CONTENT_TABLES, "dicom_segmentation_metadata"):
            columns = [c for c in BY_NAME[name].column_names if c not in ("_run_id", "_loaded_at")]
            rows = warehouse.query(f"SELECT {', '.join(columns)} FROM {name}")
            out[name] = sorted((tuple(str(v) for v in r) for r in rows), key=repr)
        return out
    finally:
        warehouse.close()


@pytest.fixture(params=["duckdb", pytest.param("snowflake", marks=pytest.mark.server)])
def content_target(request, tmp_path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'content.duckdb'}"
    return request.getfixturevalue("snowflake_target")


def test_an_archive_loaded_before_the_content_tables_gains_them_by_a_rebuild(
    built, synth_archive, tmp_path, content_target
):
    """Load highdicom's objects and synth's reports and structure sets; drop the
    content tables and the new segment columns, as a warehouse loaded before them
    has none; remove the archive; a rebuild fills them again, equal, reading nothing.
    The README's example query then gives each measurement beside its series."""
    archive = tmp_path / "archive"
    archive.mkdir()
    for path in (*built.ct, built.seg, built.sr):
        shutil.copy(path, archive / path.name)
    for sop_class in (DOSE_SR, "1.2.840.10008.5.1.4.1.1.481.3"):
        shutil.copy(_synth_files(synth_archive, sop_class)[0], archive / f"{sop_class}.dcm")
    run(
        RunSettings(
            source=str(archive), out=tmp_path / "pq", target=Target.parse(content_target), workers=0
        )
    )
    before = _content_snapshot(content_target)
    assert all(before[name] for name in before), {k: len(v) for k, v in before.items()}

    warehouse = open_warehouse(Target.parse(content_target))
    try:
        for name in CONTENT_TABLES:
            warehouse.query(f"DROP TABLE {name}")
        for column in (*SEGMENT_COLUMNS, "source_instance_keys"):
            warehouse.query(f"ALTER TABLE dicom_segmentation_metadata DROP COLUMN {column}")
    finally:
        warehouse.close()
    shutil.rmtree(archive)
    report = rebuild(
        Target.parse(content_target), str(tmp_path / "rebuilt"), from_run=None, workers=0
    )
    assert report["bytes_read"] == 0 and report["read_requests"] == 0
    assert _content_snapshot(content_target) == before

    warehouse = open_warehouse(Target.parse(content_target))
    try:
        shown = warehouse.query(_readme_query())
    finally:
        warehouse.close()
    description = pydicom.dcmread(built.ct[0], stop_before_pixels=True).SeriesDescription
    volumetric = _groups_of(built.sr)[0]
    expected = sorted(
        (
            description,
            volumetric.tracking_identifier,
            volumetric.finding_type.meaning,
            m.name.meaning,
            pytest.approx(m.value),
            m.unit.value,
        )
        for m in volumetric.get_measurements()
    )
    assert [tuple(row) for row in shown] == expected


def test_a_group_naming_two_segments_keeps_the_first(built, tmp_path):
    """A Referenced Segment may name several segment numbers (ReferencedSegmentNumber
    is 1-n); the group's row keeps the first, the content row all of them."""
    ds = pydicom.dcmread(built.sr)
    group = ds.ContentSequence[-1].ContentSequence[0]
    segment = next(
        item
        for item in group.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "121191"
    )
    segment.ReferencedSOPSequence[0].ReferencedSegmentNumber = [2, 1]
    path = tmp_path / "two-segments.dcm"
    ds.save_as(path)
    rows, _ = extract_path(path)
    groups = {r["tracking_uid"]: r for r in rows["dicom_sr_measurement_group"]}
    assert groups[built.tracking_uids[0]]["referenced_segment_number"] == 2
    content = [r for r in rows["dicom_sr_content"] if r["concept_code_value"] == "121191"]
    assert [r["referenced_segment_numbers"] for r in content] == [[2, 1]]


def _sr_item(relationship: str, value_type: str, concept: tuple, **values) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code_dataset(*concept)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _code_dataset(value: str, scheme: str, meaning: str) -> pydicom.Dataset:
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _measured(value: float, unit: str) -> list[pydicom.Dataset]:
    measured = pydicom.Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = [_code_dataset(unit, "UCUM", unit)]
    return [measured]


def test_projection_xray_events_are_what_pydicom_reads(synth_archive, tmp_path):
    """TID 10003 events (Irradiation Event X-Ray Data) of a projection X-ray dose
    report, written here as PS3.16 lays them out, beside a CT event."""
    ds = pydicom.dcmread(_synth_files(synth_archive, DOSE_SR)[0])
    for index, (plane, dap) in enumerate([("113622", 1.25e-5), ("113620", 3.5e-6)]):
        event = _sr_item("CONTAINS", "CONTAINER", ("113706", "DCM", "Irradiation Event X-Ray Data"))
        event.ContinuityOfContent = "SEPARATE"
        event.ContentSequence = [
            _sr_item(
                "CONTAINS",
                "CODE",
                ("113764", "DCM", "Acquisition Plane"),
                ConceptCodeSequence=[_code_dataset(plane, "DCM", f"Plane {plane}")],
            ),
            _sr_item(
                "CONTAINS",
                "CODE",
                ("113721", "DCM", "Irradiation Event Type"),
                ConceptCodeSequence=[_code_dataset("P56-35001", "SRT", "Fluoroscopy")],
            ),
            _sr_item(
                "CONTAINS",
                "UIDREF",
                ("113769", "DCM", "Irradiation Event UID"),
                UID=f"1.2.3.4.{index}",
            ),
            _sr_item(
                "CONTAINS",
                "DATETIME",
                ("111526", "DCM", "DateTime Started"),
                DateTime=f"2024010209{index}000.5",
            ),
            _sr_item(
                "CONTAINS",
                "NUM",
                ("122130", "DCM", "Dose Area Product"),
                MeasuredValueSequence=_measured(dap, "Gy.m2"),
            ),
            _sr_item(
                "CONTAINS",
                "NUM",
                ("113738", "DCM", "Dose (RP)"),
                MeasuredValueSequence=_measured(0.002 * (index + 1), "Gy"),
            ),
        ]
        ds.ContentSequence.append(event)
    path = tmp_path / "projection.dcm"
    ds.save_as(path)
    rows, errors = extract_path(path)
    assert errors == []
    events = [
        item
        for item in _descendants(ds)
        if item.ValueType == "CONTAINER"
        and item.ConceptNameCodeSequence[0].CodeValue in ("113819", "113706")
    ]
    assert len(rows["dicom_dose_event"]) == len(events)
    projection = 0
    for row, event in zip(rows["dicom_dose_event"], events, strict=True):
        kind = event.ConceptNameCodeSequence[0].CodeValue
        assert row["event_kind"] == ("CT" if kind == "113819" else "projection")
        for column, value in _event_expected(event).items():
            assert row[column] == (pytest.approx(value) if isinstance(value, float) else value)
        projection += kind == "113706"
    assert projection == 2


def test_a_repeated_roi_number_or_series_reference_gives_one_row_and_one_key(
    synth_archive, tmp_path
):
    """The ROI number is the row's key: a structure set repeating one keeps its first
    ROI (and the ROIs after it); a series its frame of reference names twice is one
    key."""
    ds = pydicom.dcmread(_synth_files(synth_archive, "1.2.840.10008.5.1.4.1.1.481.3")[0])
    first = ds.StructureSetROISequence[0]
    repeated = pydicom.Dataset()
    repeated.ROINumber = first.ROINumber
    repeated.ROIName = "Repeated"
    repeated.ReferencedFrameOfReferenceUID = first.ReferencedFrameOfReferenceUID
    ds.StructureSetROISequence.insert(1, repeated)
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    series.RTReferencedSeriesSequence.append(series.RTReferencedSeriesSequence[0])
    path = tmp_path / "repeated.dcm"
    ds.save_as(path)
    rows, _ = extract_path(path)
    names = [r["roi_name"] for r in rows["dicom_rt_roi"]]
    assert names == [roi.ROIName for roi in ds.StructureSetROISequence if roi is not repeated]
    uid = series.RTReferencedSeriesSequence[0].SeriesInstanceUID
    assert all(r["referenced_series_keys"] == [key_of(uid)] for r in rows["dicom_rt_roi"])


def test_an_event_is_a_dcm_container(synth_archive, tmp_path):
    """Only a CONTAINER named CT Acquisition or Irradiation Event X-Ray Data in DCM is
    an event: the same code value in another scheme, or on another value type, is not."""
    ds = pydicom.dcmread(_synth_files(synth_archive, DOSE_SR)[0])
    before = len(extract_path(_synth_files(synth_archive, DOSE_SR)[0])[0]["dicom_dose_event"])
    other_scheme = _sr_item("CONTAINS", "CONTAINER", ("113819", "99LOCAL", "Local"))
    other_scheme.ContinuityOfContent = "SEPARATE"
    other_scheme.ContentSequence = [
        _sr_item(
            "CONTAINS",
            "NUM",
            ("113830", "DCM", "Mean CTDIvol"),
            MeasuredValueSequence=_measured(9.0, "mGy"),
        )
    ]
    not_container = _sr_item("CONTAINS", "TEXT", ("113706", "DCM", "X"), TextValue="x")
    ds.ContentSequence.extend([other_scheme, not_container])
    path = tmp_path / "not-events.dcm"
    ds.save_as(path)
    rows, _ = extract_path(path)
    assert len(rows["dicom_dose_event"]) == before > 0


def test_malformed_codes_and_numbers_read_as_their_first_value(synth_archive, tmp_path):
    """Values PS3.3 allows once (VM 1) but a writer repeated, or left empty: a
    multi-valued Code Value or Numeric Value is read as pydicom's first value, an empty
    first Code Value as absent (so a Long Code Value beside it is the code)."""
    ds = pydicom.dcmread(_synth_files(synth_archive, MEASUREMENT_SR)[0])
    repeated = _code_dataset("A1", "99LOCAL", "Repeated")
    repeated.CodeValue = ["A1", "B2"]
    empty = _code_dataset("", "99LOCAL", "Long")
    empty.CodeValue = ["", "B2"]
    empty.LongCodeValue = "A-CODE-LONGER-THAN-SIXTEEN-CHARACTERS"
    measured = _measured(3.5, "mm")
    measured[0].NumericValue = ["3.5", "7.25"]
    ds.ContentSequence.extend(
        [
            _sr_item("CONTAINS", "CODE", ("C1", "99LOCAL", "c1"), ConceptCodeSequence=[repeated]),
            _sr_item("CONTAINS", "CODE", ("C2", "99LOCAL", "c2"), ConceptCodeSequence=[empty]),
            _sr_item("CONTAINS", "NUM", ("C3", "99LOCAL", "c3"), MeasuredValueSequence=measured),
        ]
    )
    path = tmp_path / "malformed.dcm"
    ds.save_as(path)
    reread = pydicom.dcmread(path)
    *_, code_item, long_item, num_item = reread.ContentSequence
    rows, errors = extract_path(path)
    assert errors == []
    last = len(reread.ContentSequence)
    by_path = {r["content_path"]: r for r in rows["dicom_sr_content"]}
    repeated_code = code_item.ConceptCodeSequence[0]
    assert _columns(by_path[f"1.{last - 2}"], "code") == (
        repeated_code["CodeValue"].value[0],
        repeated_code.CodingSchemeDesignator,
        repeated_code.CodeMeaning,
    )
    long_code = long_item.ConceptCodeSequence[0]
    assert long_code["CodeValue"].value[0] == ""
    assert by_path[f"1.{last - 1}"]["code_code_value"] == long_code.LongCodeValue
    numbers = num_item.MeasuredValueSequence[0]["NumericValue"].value
    assert len(numbers) == 2
    assert by_path[f"1.{last}"]["numeric_value"] == pytest.approx(float(numbers[0]))


def test_a_root_container_without_a_concept_name_is_no_report(synth_archive, tmp_path):
    """An SR document's root names its document title (PS3.3 C.17.3: Concept Name Code
    Sequence, type 1 at the root): a CONTAINER without one is not walked."""
    ds = pydicom.dcmread(_synth_files(synth_archive, MEASUREMENT_SR)[0])
    assert len(extract_path(_synth_files(synth_archive, MEASUREMENT_SR)[0])[0]["dicom_sr_content"])
    del ds.ConceptNameCodeSequence
    path = tmp_path / "untitled.dcm"
    ds.save_as(path)
    rows, _ = extract_path(path)
    assert rows["dicom_sr_content"] == []
