"""Datasets of the object types an imaging archive holds, with realistic headers.

Each builder fills the modules a real device writes for its IOD (patient, study,
series, equipment, image pixel/plane, functional groups, SR content, segments,
RT structures) so that every table of the model has something to extract.
Pixel Data is zeros of the size the object would really have.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from loader.synth import content as content_trees
from loader.synth.codes import code, uid

PRIVATE_CREATOR = "ACME_IMAGING 1.0"

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "ENHANCED_CT": "1.2.840.10008.5.1.4.1.1.2.1",
    "ENHANCED_MR": "1.2.840.10008.5.1.4.1.1.4.1",
    "SEG": "1.2.840.10008.5.1.4.1.1.66.4",
    "SR": "1.2.840.10008.5.1.4.1.1.88.33",
    "DOSE_SR": "1.2.840.10008.5.1.4.1.1.88.67",
    "MEASUREMENT_SR": "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "RTSTRUCT": "1.2.840.10008.5.1.4.1.1.481.3",
    "RTPLAN": "1.2.840.10008.5.1.4.1.1.481.5",
    "RTDOSE": "1.2.840.10008.5.1.4.1.1.481.2",
}

# (rows, columns, samples, bits) of realistic images; "tiny" shrinks to 16x16.
REALISTIC_MATRIX = {
    "CT": (512, 512, 1, 16),
    "MR": (256, 256, 1, 16),
    "CR": (2048, 2500, 1, 16),
    "DX": (3000, 3000, 1, 16),
    "MG": (4096, 3328, 1, 16),
    "US": (480, 640, 3, 8),
    "PT": (128, 128, 1, 16),
    "NM": (128, 128, 1, 16),
    "ENHANCED_CT": (512, 512, 1, 16),
    "ENHANCED_MR": (256, 256, 1, 16),
    "SEG": (512, 512, 1, 1),
    "RTDOSE": (64, 64, 1, 32),
}

MANUFACTURERS = {
    "CT": ("SIEMENS", "SOMATOM Force"),
    "MR": ("GE MEDICAL SYSTEMS", "SIGNA Premier"),
    "CR": ("FUJIFILM Corporation", "FCR Profect"),
    "DX": ("Philips", "DigitalDiagnost C90"),
    "MG": ("HOLOGIC, Inc.", "Selenia Dimensions"),
    "US": ("Canon Medical", "Aplio i800"),
    "PT": ("SIEMENS", "Biograph Vision"),
    "NM": ("GE HEALTHCARE", "Discovery NM/CT 670"),
}


@dataclass(frozen=True)
class Person:
    patient_id: str
    issuer: str
    name: str
    charset: list[str]
    birth_date: str
    sex: str


def patient_study(ds: Dataset, person: Person, study: dict) -> None:
    ds.SpecificCharacterSet = person.charset
    ds.PatientName = person.name
    ds.PatientID = person.patient_id
    ds.IssuerOfPatientID = person.issuer
    ds.PatientBirthDate = person.birth_date
    ds.PatientSex = person.sex
    ds.PatientAge = study["age"]
    ds.OtherPatientIDs = [f"MRN{person.patient_id[-6:]}"]
    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = study["date"]
    ds.StudyTime = study["time"]
    ds.AccessionNumber = study["accession"]
    ds.StudyID = study["study_id"]
    ds.StudyDescription = study["description"]
    ds.ReferringPhysicianName = study["referring"]
    ds.AdmittingDiagnosesDescription = study["diagnosis"]
    request = Dataset()
    request.RequestedProcedureID = study["accession"][-6:]
    request.RequestedProcedureDescription = study["description"]
    request.ScheduledProcedureStepID = f"SPS{study['accession'][-4:]}"
    request.RequestedProcedureCodeSequence = Sequence(
        [code("RPID17", "RADLEX", study["description"])]
    )
    ds.RequestAttributesSequence = Sequence([request])
    ds.PerformedProcedureStepID = f"PPS{study['accession'][-4:]}"
    ds.PerformedProcedureStepDescription = study["description"]
    ds.ProcedureCodeSequence = Sequence([code("24627-2", "LN", study["description"])])


def series_equipment(ds: Dataset, series: dict, modality: str) -> None:
    ds.Modality = series["modality"]
    ds.SeriesInstanceUID = series["uid"]
    ds.SeriesNumber = series["number"]
    ds.SeriesDescription = series["description"]
    ds.SeriesDate = series["date"]
    ds.SeriesTime = series["time"]
    ds.BodyPartExamined = series["body_part"]
    ds.ProtocolName = series["protocol"]
    ds.FrameOfReferenceUID = series["frame_of_reference"]
    if series["laterality"]:
        ds.Laterality = series["laterality"]
    maker, model = MANUFACTURERS.get(modality, ("ACME", "Workstation 9"))
    ds.Manufacturer = maker
    ds.ManufacturerModelName = model
    ds.DeviceSerialNumber = series["serial"]
    ds.SoftwareVersions = ["VE11C", "syngo 2.1"]
    ds.InstitutionName = series["institution"]
    ds.InstitutionAddress = "1 Hospital Way, Springfield"
    ds.StationName = series["station"]
    ds.InstitutionalDepartmentName = "Radiology"


def private_block(ds: Dataset, rng: random.Random) -> None:
    """A private block with text, a number and a nested private sequence."""
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", "reconstruction: iterative")
    block.add_new(0x02, "DS", f"{rng.uniform(0, 5):.3f}")
    inner = Dataset()
    inner_block = inner.private_block(0x0009, PRIVATE_CREATOR, create=True)
    inner_block.add_new(0x10, "SH", "kernel")
    inner_block.add_new(0x11, "US", rng.randint(1, 40))
    nested = Dataset()
    nested.add_new(0x00091010, "LO", PRIVATE_CREATOR)
    nested.add_new(0x00091020, "LT", "nested private note")
    inner_block.add_new(0x12, "SQ", Sequence([nested]))
    block.add_new(0x03, "SQ", Sequence([inner]))


def image_pixel(ds: Dataset, kind: str, pixels: str, frames: int = 1) -> None:
    rows, cols, samples, bits = REALISTIC_MATRIX.get(kind, (64, 64, 1, 16))
    if pixels == "tiny":
        rows, cols = 16, 16
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    size = rows * cols * samples * max(bits, 8) // 8 * frames
    if bits == 1:
        size = (rows * cols * frames + 7) // 8
    ds.PixelData = bytes(size + size % 2)


def image_plane(ds: Dataset, index: int, spacing: float) -> None:
    ds.PixelSpacing = [0.703125, 0.703125]
    ds.SliceThickness = spacing
    ds.SpacingBetweenSlices = spacing
    ds.ImagePositionPatient = [-180.0, -180.0, round(-100.0 + index * spacing, 3)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = round(-100.0 + index * spacing, 3)
    ds.PositionReferenceIndicator = "IC"


def instance_base(ds: Dataset, sop_class: str, sop_uid: str, number: int, series: dict) -> None:
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = number
    ds.ContentDate = series["date"]
    ds.ContentTime = series["time"]
    ds.AcquisitionDate = series["date"]
    ds.AcquisitionTime = series["time"]
    ds.InstanceCreationDate = series["date"]
    ds.BurnedInAnnotation = "NO"


def ct_dose(ds: Dataset, rng: random.Random) -> None:
    ds.KVP = rng.choice([80, 100, 120, 140])
    ds.XRayTubeCurrent = rng.randint(80, 400)
    ds.ExposureTime = rng.randint(500, 1000)
    ds.Exposure = rng.randint(50, 300)
    ds.CTDIvol = round(rng.uniform(2, 25), 2)


def enhanced_functional_groups(ds: Dataset, frames: int, series: dict, mr: bool) -> None:
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    measures.SliceThickness = 1.0
    measures.SpacingBetweenSlices = 1.0
    shared.PixelMeasuresSequence = Sequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = Sequence([orientation])
    transform = Dataset()
    transform.RescaleIntercept = 0 if mr else -1024
    transform.RescaleSlope = 1
    transform.RescaleType = "US" if mr else "HU"
    shared.PixelValueTransformationSequence = Sequence([transform])
    voi = Dataset()
    voi.WindowCenter = [40, 400] if not mr else [600]
    voi.WindowWidth = [400, 1500] if not mr else [1200]
    shared.FrameVOILUTSequence = Sequence([voi])
    if not mr:
        exposure = Dataset()
        exposure.CTDIvol = 12.5
        exposure.ExposureTimeInms = 500.0
        exposure.XRayTubeCurrentInmA = 250.0
        exposure.ExposureInmAs = 125.0
        shared.CTExposureSequence = Sequence([exposure])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for index in range(frames):
        frame = Dataset()
        content = Dataset()
        content.FrameAcquisitionDateTime = f"{series['date']}{series['time'][:6]}.{index:06d}"
        content.FrameAcquisitionNumber = index + 1
        content.TemporalPositionIndex = index % 4 + 1
        content.DimensionIndexValues = [1, index + 1]
        frame.FrameContentSequence = Sequence([content])
        position = Dataset()
        position.ImagePositionPatient = [-128.0, -128.0, float(index)]
        frame.PlanePositionSequence = Sequence([position])
        if mr:
            cardiac = Dataset()
            cardiac.NominalPercentageOfCardiacPhase = float(index * 100 // frames)
            cardiac.NominalCardiacTriggerDelayTime = float(index * 40)
            frame.CardiacSynchronizationSequence = Sequence([cardiac])
        per_frame.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.PresentationIntentType = "FOR PRESENTATION" if mr else "FOR PROCESSING"


def segmentation(
    ds: Dataset, referenced_series: str, referenced_sops: list[str]
) -> list[content_trees.Segment]:
    """Three segments, one frame each, each frame derived from one source image (as
    PS3.3 C.8.20.3's per-frame groups say); returns what a report says of each."""
    ds.SegmentationType = "BINARY"
    segments = []
    described = []
    for number, (label, region) in enumerate(
        [
            ("Liver", ("10200004", "Liver")),
            ("Spleen", ("78961009", "Spleen")),
            ("Tumor", ("108369006", "Neoplasm")),
        ],
        start=1,
    ):
        segment = Dataset()
        segment.SegmentNumber = number
        segment.SegmentLabel = label
        segment.SegmentDescription = f"{label} segmentation"
        segment.SegmentAlgorithmType = "SEMIAUTOMATIC"
        segment.SegmentAlgorithmName = "nnU-Net"
        segment.RecommendedDisplayCIELabValue = [21169, 53249, 5176 + number]
        segment.SegmentedPropertyCategoryCodeSequence = Sequence(
            [code("123037004", "SCT", "Anatomical Structure")]
        )
        segment.SegmentedPropertyTypeCodeSequence = Sequence([code(region[0], "SCT", region[1])])
        segment.AnatomicRegionSequence = Sequence([code("818981001", "SCT", "Abdomen")])
        segment.TrackingID = f"{label} {number}"
        segment.TrackingUID = uid(ds.SOPInstanceUID, "segment", number)
        segments.append(segment)
        described.append(
            content_trees.Segment(
                number,
                segment.TrackingID,
                segment.TrackingUID,
                (region[0], "SCT", region[1]),
                ("818981001", "SCT", "Abdomen"),
            )
        )
    ds.SegmentSequence = Sequence(segments)
    frames = []
    for number in range(1, len(segments) + 1):
        frame = Dataset()
        identification = Dataset()
        identification.ReferencedSegmentNumber = number
        frame.SegmentIdentificationSequence = Sequence([identification])
        source = _sop_ref(SOP_CLASSES["CT"], referenced_sops[(number - 1) % len(referenced_sops)])
        source.PurposeOfReferenceCodeSequence = Sequence(
            [code("121322", "DCM", "Source image for image processing operation")]
        )
        derivation = Dataset()
        derivation.DerivationCodeSequence = Sequence([code("113076", "DCM", "Segmentation")])
        derivation.SourceImageSequence = Sequence([source])
        frame.DerivationImageSequence = Sequence([derivation])
        position = Dataset()
        position.ImagePositionPatient = [-125.0, -125.0, -2.5 * (number - 1)]
        frame.PlanePositionSequence = Sequence([position])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    measures.SliceThickness = 2.5
    shared.PixelMeasuresSequence = Sequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    reference = Dataset()
    reference.SeriesInstanceUID = referenced_series
    reference.ReferencedInstanceSequence = Sequence(
        [_sop_ref(SOP_CLASSES["CT"], sop) for sop in referenced_sops[:3]]
    )
    ds.ReferencedSeriesSequence = Sequence([reference])
    return described


def _sop_ref(sop_class: str, sop_uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = sop_uid
    return ref


def _num(concept: tuple[str, str, str], value: float, unit: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "NUM"
    item.ConceptNameCodeSequence = Sequence([code(*concept)])
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = Sequence([code(*unit)])
    item.MeasuredValueSequence = Sequence([measured])
    return item


def structured_report(
    ds: Dataset, study: dict, evidence: list[tuple[str, str, str]], dose: bool, rng: random.Random
) -> None:
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED" if not dose else "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    title = (
        ("113701", "DCM", "X-Ray Radiation Dose Report")
        if dose
        else ("18748-4", "LN", "Diagnostic Imaging Report")
    )
    ds.ConceptNameCodeSequence = Sequence([code(*title)])
    scheme = Dataset()
    scheme.CodingSchemeDesignator = "DCM"
    scheme.CodingSchemeName = "DICOM Controlled Terminology"
    scheme.CodingSchemeUID = "1.2.840.10008.2.16.4"
    ds.CodingSchemeIdentificationSequence = Sequence([scheme])
    content = []
    if dose:
        accumulated = Dataset()
        accumulated.RelationshipType = "CONTAINS"
        accumulated.ValueType = "CONTAINER"
        accumulated.ConceptNameCodeSequence = Sequence(
            [code("113811", "DCM", "CT Accumulated Dose Data")]
        )
        accumulated.ContentSequence = Sequence(
            [
                _num(
                    ("113813", "DCM", "CT Dose Length Product Total"),
                    round(rng.uniform(100, 1200), 1),
                    ("mGy.cm", "UCUM", "mGy.cm"),
                ),
            ]
        )
        # The events' values come from their own generator: one draw here, so the
        # archive's other values do not move with the number of events.
        events = random.Random(rng.random())
        started = study["date"] + study["time"]
        content = [accumulated] + [
            content_trees.ct_acquisition(study["uid"], index, started, study["description"], events)
            for index in range(events.randint(2, 3))
        ]
    else:
        finding = Dataset()
        finding.RelationshipType = "CONTAINS"
        finding.ValueType = "TEXT"
        finding.ConceptNameCodeSequence = Sequence([code("121071", "DCM", "Finding")])
        finding.TextValue = f"No acute abnormality. {study['description']}."
        content = [finding]
    ds.ContentSequence = Sequence(content)
    references(ds, study["uid"], evidence)


def references(ds: Dataset, study_uid: str, evidence: list[tuple[str, str, str]]) -> None:
    """The report's evidence: the instances its content refers to (PS3.3 C.17.2)."""
    by_series: dict[str, list[Dataset]] = {}
    for series_uid, sop_class, sop_uid in evidence:
        by_series.setdefault(series_uid, []).append(_sop_ref(sop_class, sop_uid))
    series_items = []
    for series_uid, refs in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedSOPSequence = Sequence(refs)
        series_items.append(item)
    study_item = Dataset()
    study_item.StudyInstanceUID = study_uid
    study_item.ReferencedSeriesSequence = Sequence(series_items)
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([study_item])


def rt_structure_set(
    ds: Dataset, frame_of_reference: str, rois: int, study_uid: str, series_uid: str
) -> None:
    """`rois` ROIs contoured on the planning CT (`series_uid`, in `frame_of_reference`)."""
    ds.StructureSetLabel = "RT Plan Contours"
    ds.StructureSetDate = ds.ContentDate
    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = series_uid
    referenced_study = Dataset()
    referenced_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study
    referenced_study.ReferencedSOPInstanceUID = study_uid
    referenced_study.RTReferencedSeriesSequence = Sequence([referenced_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_of_reference
    frame.RTReferencedStudySequence = Sequence([referenced_study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi_items, contour_items, observations = [], [], []
    for number in range(1, rois + 1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_of_reference
        roi.ROIName = ["PTV", "CTV", "Bladder", "Rectum", "Femur_L"][number % 5]
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(roi)
        contour = Dataset()
        contour.ReferencedROINumber = number
        contour.ROIDisplayColor = [255, number * 40 % 255, 0]
        polygon = Dataset()
        polygon.ContourGeometricType = "CLOSED_PLANAR"
        polygon.NumberOfContourPoints = 4
        polygon.ContourData = [
            0.0,
            0.0,
            float(number),
            10.0,
            0.0,
            float(number),
            10.0,
            10.0,
            float(number),
            0.0,
            10.0,
            float(number),
        ]
        contour.ContourSequence = Sequence([polygon])
        contour_items.append(contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN" if number > 2 else "PTV"
        observations.append(observation)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observations)


def rt_plan(ds: Dataset, beams: int) -> None:
    ds.RTPlanLabel = "Prostate VMAT"
    ds.RTPlanGeometry = "PATIENT"
    ds.RTPlanDate = ds.ContentDate
    beam_items = []
    for number in range(1, beams + 1):
        beam = Dataset()
        beam.BeamNumber = number
        beam.BeamName = f"Arc {number}"
        beam.BeamType = "DYNAMIC"
        beam.RadiationType = "PHOTON"
        beam.TreatmentMachineName = "TrueBeam"
        beam.NumberOfControlPoints = 2
        points = []
        for index in range(2):
            point = Dataset()
            point.ControlPointIndex = index
            point.GantryAngle = 181.0 if index == 0 else 179.0
            point.NominalBeamEnergy = 6
            point.CumulativeMetersetWeight = float(index)
            points.append(point)
        beam.ControlPointSequence = Sequence(points)
        beam_items.append(beam)
    ds.BeamSequence = Sequence(beam_items)
    fraction = Dataset()
    fraction.FractionGroupNumber = 1
    fraction.NumberOfFractionsPlanned = 39
    fraction.NumberOfBeams = beams
    ds.FractionGroupSequence = Sequence([fraction])


def rt_dose(ds: Dataset, frames: int) -> None:
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = 1.5e-05
    ds.GridFrameOffsetVector = [float(i * 2.5) for i in range(frames)]
    ds.FrameIncrementPointer = 0x3004000C
