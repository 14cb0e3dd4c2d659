"""The sequences extract/ builds rows from, by tag.

They are never left out for their size, and never skipped unread: a 3,000-frame
enhanced CT's per-frame groups, or a dose report's content tree, run to megabytes,
and the frame, dose and segment rows come from them. test_decode checks that every
sequence extract/ names is here, or in SIZE_GUARDED.
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

EXTRACTED_SEQUENCES = frozenset(
    tag_for_keyword(keyword)
    for keyword in (
        "AnatomicRegionSequence",
        "CardiacSynchronizationSequence",
        "CodingSchemeIdentificationSequence",
        "ConceptCodeSequence",
        "ConceptNameCodeSequence",
        "ContentSequence",
        "ContentTemplateSequence",
        "CTExposureSequence",
        "CurrentRequestedProcedureEvidenceSequence",
        "DerivationImageSequence",
        "FrameContentSequence",
        "FrameVOILUTSequence",
        "MeasuredValueSequence",
        "MeasurementUnitsCodeSequence",
        "NumericValueQualifierCodeSequence",
        "OtherPatientIDsSequence",
        "PerformedProtocolCodeSequence",
        "PerFrameFunctionalGroupsSequence",
        "PertinentOtherEvidenceSequence",
        "PixelMeasuresSequence",
        "PixelValueTransformationSequence",
        "PlaneOrientationSequence",
        "PlanePositionSequence",
        "ProcedureCodeSequence",
        "ReferencedFrameOfReferenceSequence",
        "ReferencedInstanceSequence",
        "ReferencedSeriesSequence",
        "ReferencedSOPSequence",
        "RequestAttributesSequence",
        "RequestedProcedureCodeSequence",
        "RTReferencedSeriesSequence",
        "RTReferencedStudySequence",
        "RTROIObservationsSequence",
        "SegmentedPropertyCategoryCodeSequence",
        "SegmentedPropertyTypeCodeSequence",
        "SegmentIdentificationSequence",
        "SegmentSequence",
        "SharedFunctionalGroupsSequence",
        "SourceImageSequence",
        "StructureSetROISequence",
    )
)

# Sequences extract/ reads only when they are within the element limit: an RT
# structure set's contours (rt.py counts them) are its point data, megabytes a
# header-only reader skips unread past the limit rather than pays for.
SIZE_GUARDED = frozenset(
    tag_for_keyword(keyword) for keyword in ("ROIContourSequence", "ContourSequence")
)
