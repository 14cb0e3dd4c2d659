"""Objects built with highdicom, the independent writer and reader of SR and SEG
content: a small CT series, a segmentation of it (two segments on different
slices, tracked, made by a named algorithm) and a TID 1500 measurement report
referring to both (a volumetric group on a segment, a planar group on an image
region, an observer named, a time point). tests/test_content_tables.py loads them
and compares the content tables with what highdicom reads back."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

UCUM_MM3 = hd.sr.CodedConcept("mm3", "UCUM", "cubic millimeter")
UCUM_MM2 = hd.sr.CodedConcept("mm2", "UCUM", "square millimeter")
UCUM_HU = hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
MEAN = hd.sr.CodedConcept("373098007", "SCT", "Mean")
MANUAL = hd.sr.CodedConcept("258104002", "SCT", "Measured")  # a method
SHAPE = hd.sr.CodedConcept("300842002", "SCT", "Shape")  # a qualitative evaluation
IRREGULAR = hd.sr.CodedConcept("49608001", "SCT", "Irregular")
DEVICE = {
    "manufacturer": "dicom-loader tests",
    "manufacturer_model_name": "highdicom",
    "software_versions": hd.__version__,
    "device_serial_number": "1",
}


@dataclass(frozen=True)
class Built:
    ct: list[Path]
    seg: Path
    sr: Path
    tracking_uids: tuple[str, str]  # the volumetric group's, the planar group's


def _ct_series(folder: Path, slices: int) -> list[pydicom.Dataset]:
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid, frame_of_reference = generate_uid(), generate_uid()
    out = []
    for index in range(slices):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference
        ds.InstanceNumber = index + 1
        x, y, z = template.ImagePositionPatient
        ds.ImagePositionPatient = [x, y, float(z) + index * float(template.SliceThickness)]
        ds.PatientName = "Roe^Richard"
        ds.SeriesDescription = "Abdomen with contrast"
        ds.save_as(folder / f"ct{index}.dcm", enforce_file_format=True)
        out.append(ds)
    return out


def _segmentation(cts: list[pydicom.Dataset]) -> hd.seg.Segmentation:
    rows, columns = cts[0].Rows, cts[0].Columns
    labels = np.zeros((len(cts), rows, columns), dtype=np.uint8)
    labels[0:2, 20:40, 20:40] = 1  # segment 1 on the first two slices
    labels[2, 50:60, 50:60] = 2  # segment 2 on the third
    algorithm = hd.AlgorithmIdentificationSequence(
        name="nnU-Net", family=codes.cid7162.ArtificialIntelligence, version="2.4"
    )
    segments = [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Liver",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id="liver",
            anatomic_regions=[codes.SCT.Abdomen],
        ),
        hd.seg.SegmentDescription(
            segment_number=2,
            segment_label="Lesion",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=generate_uid(),
            tracking_id="lesion-1",
        ),
    ]
    return hd.seg.Segmentation(
        source_images=cts,
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        series_instance_uid=generate_uid(),
        series_number=20,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        **DEVICE,
    )


def _report(cts: list[pydicom.Dataset], seg: hd.seg.Segmentation) -> hd.sr.Comprehensive3DSR:
    volumetric_uid, planar_uid = generate_uid(), generate_uid()
    volume = hd.sr.Measurement(
        name=codes.SCT.Volume,
        value=1234.5,
        unit=UCUM_MM3,
        method=MANUAL,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Liver)],
    )
    density = hd.sr.Measurement(
        name=hd.sr.CodedConcept("112031", "DCM", "Attenuation Coefficient"),
        value=-12.25,
        unit=UCUM_HU,
        derivation=MEAN,
    )
    volumetric = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=volumetric_uid, identifier="liver"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=1,
            source_series=hd.sr.SourceSeriesForSegmentation(cts[0].SeriesInstanceUID),
        ),
        finding_type=codes.SCT.Liver,
        finding_category=codes.SCT.AnatomicalStructure,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Abdomen)],
        session="baseline",
        time_point_context=hd.sr.TimePointContext(time_point="week 0"),
        measurements=[volume, density],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(SHAPE, IRREGULAR)],
    )
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[10.0, 10.0], [30.5, 10.0], [30.5, 30.0], [10.0, 10.0]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(cts[2]),
    )
    planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=planar_uid, identifier="lesion-1"),
        referenced_region=region,
        finding_type=codes.SCT.Neoplasm,
        measurements=[hd.sr.Measurement(name=codes.SCT.Area, value=402.5, unit=UCUM_MM2)],
    )
    observer = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name="Doe^Jane"
            ),
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[volumetric, planar],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*cts, seg],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=30,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=DEVICE["manufacturer"],
    )
    sr.tracking = (volumetric_uid, planar_uid)  # type: ignore[attr-defined]
    return sr


def build(folder: Path) -> Built:
    cts = _ct_series(folder, 3)
    seg = _segmentation(cts)
    seg_path = folder / "seg.dcm"
    seg.save_as(seg_path)
    sr = _report(cts, seg)
    sr_path = folder / "sr.dcm"
    tracking = sr.tracking  # type: ignore[attr-defined]
    sr.save_as(sr_path)
    return Built(sorted(folder.glob("ct*.dcm")), seg_path, sr_path, tracking)
