"""The sequences extract/ builds rows from, by tag.

They are never left out for their size, and never skipped unread: a 3,000-frame
enhanced CT's per-frame groups, or a dose report's content tree, run to megabytes,
and the frame, dose and segment rows come from them. test_decode checks that every
sequence extract/ names is here.
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

EXTRACTED_SEQUENCES = frozenset(
    tag_for_keyword(keyword)
    for keyword in (
        "AnatomicRegionSequence",
        "CTExposureSequence",
        "CardiacSynchronizationSequence",
        "CodingSchemeIdentificationSequence",
        "ConceptNameCodeSequence",
        "ContentSequence",
        "CurrentRequestedProcedureEvidenceSequence",
        "FrameContentSequence",
        "FrameVOILUTSequence",
        "MeasuredValueSequence",
        "OtherPatientIDsSequence",
        "PerFrameFunctionalGroupsSequence",
        "PerformedProtocolCodeSequence",
        "PertinentOtherEvidenceSequence",
        "PixelMeasuresSequence",
        "PixelValueTransformationSequence",
        "PlaneOrientationSequence",
        "PlanePositionSequence",
        "ProcedureCodeSequence",
        "ReferencedSOPSequence",
        "ReferencedSeriesSequence",
        "RequestAttributesSequence",
        "RequestedProcedureCodeSequence",
        "SegmentSequence",
        "SegmentedPropertyCategoryCodeSequence",
        "SegmentedPropertyTypeCodeSequence",
        "SharedFunctionalGroupsSequence",
    )
)
