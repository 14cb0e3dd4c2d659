"""The one declarative warehouse model: tables, columns, types, PHI flags, keys.

Arrow schemas (Parquet), every dialect's DDL and docs/MODEL.md are rendered from
here, so they cannot drift. Table and column names are a contract: users' queries,
the Snowflake patterns and validation depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa


class ColumnType(Enum):
    KEY = "key"  # deterministic unsigned 64-bit hash (keys.py, docs/MODEL.md "Keys")
    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TEXT_ARRAY = "text_array"
    FLOAT_ARRAY = "float_array"
    INT_ARRAY = "int_array"
    KEY_ARRAY = "key_array"
    VARIANT = "variant"  # JSON text in Parquet; JSON / VARIANT in the warehouse


class LoadMode(Enum):
    """How a table's rows meet the rows already in the warehouse."""

    ENTITY = "entity"  # upsert on the natural key; greatest _source_order wins
    INSTANCE_CHILD = "instance_child"  # rows follow their instance's winning object
    OBJECT_ERRORS = "object_errors"  # replaced per object processed by the run
    HISTORY = "history"  # one row per run and shard, upserted
    EMPTY = "empty"  # created with the model, filled by downstream jobs


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    phi: bool = False
    # The DICOM attributes the value comes from, by pydicom keyword: `A>B` is B inside
    # sequence A's items, `A|B` is A or else B, `A+B` is made of both (a key hashes
    # them; a timestamp joins a date and a time); `|` binds looser than `+` unless
    # parentheses group. Words with spaces describe a part that is no attribute
    # ("frame number"). Empty: not read from an attribute
    # (where the object is, what the load counted). `sql --pattern model-knowledge`
    # renders it with the tags; tests/test_model_knowledge.py checks it on real files.
    tag: str = ""
    references: str = ""  # the table whose key this column holds (a foreign key)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    mode: LoadMode
    # Columns the warehouse computes after loading (Parquet carries NULL).
    computed: tuple[str, ...] = ()
    change_tracking: bool = False  # Snowflake streams read it (dicom_raw)
    doc: str = ""  # what one row is, for docs/MODEL.md

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name}")


T = ColumnType
RUN_ID = Column("_run_id", T.TEXT)
LOADED_AT = Column("_loaded_at", T.TIMESTAMP)
# Text that orders the objects a row may come from: "<mtime ISO>\<uri>". The row
# of the greatest value wins, so the most recently written file wins and ties break
# on the URI; the result never depends on load order.
SOURCE_ORDER = Column("_source_order", T.TEXT)
# The shard an object was read in: per-shard duplicate counts in dicom_load_history.
SHARD_ID = Column("_shard_id", T.TEXT)
AUDIT = (RUN_ID, LOADED_AT)


def _c(
    name: str, type_: ColumnType = T.TEXT, phi: bool = False, tag: str = "", ref: str = ""
) -> Column:
    return Column(name, type_, phi, tag, ref)


def _table(
    name: str,
    key: tuple[str, ...],
    mode: LoadMode,
    *columns: Column,
    computed: tuple[str, ...] = (),
    change_tracking: bool = False,
    doc: str = "",
) -> Table:
    extra = (SOURCE_ORDER,) if mode in (LoadMode.ENTITY, LoadMode.INSTANCE_CHILD) else ()
    return Table(name, tuple(columns) + extra + AUDIT, key, mode, computed, change_tracking, doc)


E, CHILD = LoadMode.ENTITY, LoadMode.INSTANCE_CHILD

# Where the content tables' values come from: a content item of the SR tree, not an
# attribute at a fixed place (extract/sr_content.py walks the tree).
_ITEM = "content item: "
_ITEM_POSITION = "content item: its position in the tree"
_GROUP = "measurement group: "
_MEASUREMENT = "measurement (NUM item): "
_EVALUATION = "qualitative evaluation (CODE item): "
_EVENT = "irradiation event: "


def _coded(prefix: str, source: str) -> tuple[Column, Column, Column]:
    """A coded value as its code value, coding scheme designator and code meaning."""
    return (
        _c(f"{prefix}_code_value", tag=f"{source}, CodeValue"),
        _c(f"{prefix}_code_scheme", tag=f"{source}, CodingSchemeDesignator"),
        _c(f"{prefix}_code_meaning", tag=f"{source}, CodeMeaning"),
    )


# fmt: off
TABLES: tuple[Table, ...] = (
    _table(
        "dicom_raw", ("file_path",), E,
        _c("file_path"), _c("metadata", T.VARIANT), _c("metadata_vr", T.VARIANT),
        _c("ingested_at", T.TIMESTAMP),
        _c("sop_instance_uid", tag="SOPInstanceUID"), _c("file_size_bytes", T.INT),
        _c("header_bytes", T.INT),
        _c("transfer_syntax_uid", tag="TransferSyntaxUID"), _c("deleted_at", T.TIMESTAMP),
        computed=("deleted_at",), change_tracking=True,
        doc=(
            'One row per parsed object: the whole header as keyword-keyed JSON (private and '
            'unknown tags by `ggggeeee`, sequences as arrays of objects, binary values as '
            '`{"vr", "length"}`). `metadata_vr`: the VR of each value whose tag does not '
            'imply it (private and unknown tags, a VR the object says otherwise), and the VM '
            'of a value that could not be typed, by path (`{"ggggeeee/0/ggggeeee": "SH"}`): '
            'with it, `dicom-loader rebuild` derives every table from the stored headers. '
            'Change tracking is on in Snowflake: streams read it. '
            '`deleted_at`: when an incremental run found the object gone from its archive '
            '(NULL while it is there).'
        ),
    ),
    _table(
        "dicom_ingestion_errors", ("file_path", "error_category", "tag"),
        LoadMode.OBJECT_ERRORS,
        _c("file_path"), _c("error_category"), _c("error_message"), _c("tag"),
        _c("detected_at", T.TIMESTAMP), _c("bytes_read", T.INT),
        doc=(
            'The dead-letter table: one row per object and category (`NOT_DICOM`, '
            '`PARSE_ERROR`, `TRUNCATED`, `READ_ERROR`, `VALIDATION_ERROR` for a missing SOP, '
            'Series or Study Instance UID, `CONTAINER_ERROR` for a corrupt zip or tar, a '
            'member over the member limit or a container inside a container; `DUPLICATE`, '
            '`TYPE_CAST_ERROR` for a value kept as NULL, `REFERENTIAL_ERROR`, `PARSE_WARNING` '
            'for what pydicom warned while reading it annotate loaded objects), with the tag '
            'when known.'
        ),
    ),
    _table(
        "dicom_load_history", ("run_id", "shard_id"), LoadMode.HISTORY,
        _c("run_id"), _c("shard_id"), _c("status"), _c("listed", T.INT),
        _c("parsed", T.INT), _c("duplicates", T.INT), _c("errors", T.INT),
        _c("error_files", T.INT), _c("rows_per_table", T.VARIANT),
        _c("bytes_listed", T.INT), _c("bytes_read", T.INT), _c("read_requests", T.INT),
        _c("seconds", T.FLOAT), _c("started_at", T.TIMESTAMP),
        _c("finished_at", T.TIMESTAMP),
        doc=(
            'One row per run and shard: objects listed, parsed, duplicates, errors, rows per '
            'table, bytes and requests read, seconds.'
        ),
    ),
    _table(
        "dicom_patient", ("patient_key",), E,
        _c("patient_key", T.KEY, tag="PatientID+IssuerOfPatientID"),
        _c("patient_id", phi=True, tag="PatientID"),
        _c("issuer_of_patient_id", tag="IssuerOfPatientID"),
        _c("patient_name", phi=True, tag="PatientName"), _c("patient_sex", tag="PatientSex"),
        _c("patient_birth_date", T.DATE, phi=True, tag="PatientBirthDate"),
        _c("patient_age", tag="PatientAge"),
        _c(
            "other_patient_ids", T.TEXT_ARRAY, phi=True,
            tag="OtherPatientIDsSequence>PatientID|OtherPatientIDs",
        ),
        _c("other_patient_names", T.TEXT_ARRAY, phi=True, tag="OtherPatientNames"),
        _c("comments", tag="PatientComments"),
        _c("source_system", tag="IssuerOfPatientID|InstitutionName"),
        doc=(
            'One row per patient, keyed by (PatientID, IssuerOfPatientID); objects with '
            'neither share the patient of the empty natural key.'
        ),
    ),
    _table(
        "dicom_study", ("study_key",), E,
        _c("study_key", T.KEY, tag="StudyInstanceUID"),
        _c("study_instance_uid", tag="StudyInstanceUID"),
        _c("patient_key", T.KEY, tag="PatientID+IssuerOfPatientID", ref="dicom_patient"),
        _c("accession_number", tag="AccessionNumber"), _c("study_id", tag="StudyID"),
        _c("study_datetime", T.TIMESTAMP, tag="StudyDate+StudyTime"),
        _c("study_date", T.DATE, tag="StudyDate"), _c("study_time", T.TIME, tag="StudyTime"),
        _c("study_description", tag="StudyDescription"),
        _c("referring_physician", phi=True, tag="ReferringPhysicianName"),
        _c("admitting_diagnosis", tag="AdmittingDiagnosesDescription"),
        _c("number_of_series", T.INT), _c("number_of_instances", T.INT),
        _c("modalities_in_study", T.TEXT_ARRAY),
        computed=("number_of_series", "number_of_instances", "modalities_in_study"),
        doc=(
            'One row per study. The series and instance counts and the modalities are '
            'computed from what was loaded, never read from headers.'
        ),
    ),
    _table(
        "dicom_series", ("series_key",), E,
        _c("series_key", T.KEY, tag="SeriesInstanceUID"),
        _c("series_instance_uid", tag="SeriesInstanceUID"),
        _c("study_key", T.KEY, tag="StudyInstanceUID", ref="dicom_study"),
        _c("series_number", T.INT, tag="SeriesNumber"), _c("modality", tag="Modality"),
        _c("body_part_examined", tag="BodyPartExamined"),
        _c("laterality", tag="Laterality|ImageLaterality"),
        _c("series_description", tag="SeriesDescription"),
        _c("frame_of_reference_uid", tag="FrameOfReferenceUID"),
        _c("patient_position", tag="PatientPosition"),
        _c("performed_station_name", tag="PerformedStationName|StationName"),
        _c("performed_location", tag="PerformedLocation"),
        _c("series_date", T.DATE, tag="SeriesDate"), _c("series_time", T.TIME, tag="SeriesTime"),
        _c("protocol_name", tag="ProtocolName"),
        _c("number_of_instances", T.INT),
        computed=("number_of_instances",),
        doc=(
            'One row per series; its instance count is computed from what was loaded.'
        ),
    ),
    _table(
        "dicom_instance", ("instance_key",), E,
        _c("instance_key", T.KEY, tag="SOPInstanceUID"),
        _c("sop_instance_uid", tag="SOPInstanceUID"),
        _c("series_key", T.KEY, tag="SeriesInstanceUID", ref="dicom_series"),
        _c("sop_class_uid", tag="SOPClassUID"), _c("instance_number", T.INT, tag="InstanceNumber"),
        _c("image_type", T.TEXT_ARRAY, tag="ImageType"),
        _c(
            "acquisition_datetime", T.TIMESTAMP,
            tag="AcquisitionDateTime|AcquisitionDate+AcquisitionTime",
        ),
        _c("content_datetime", T.TIMESTAMP, tag="ContentDate+ContentTime"),
        _c("acquisition_date", T.DATE, tag="AcquisitionDate"),
        _c("acquisition_time", T.TIME, tag="AcquisitionTime"),
        _c("content_date", T.DATE, tag="ContentDate"),
        _c("content_time", T.TIME, tag="ContentTime"),
        _c("number_of_frames", T.INT, tag="NumberOfFrames"),
        _c("specific_character_set", tag="SpecificCharacterSet"),
        _c("burned_in_annotation", tag="BurnedInAnnotation"),
        _c("presentation_intent", tag="PresentationIntentType"), _c("file_path"),
        _c("file_size_bytes", T.INT),
        _c("transfer_syntax_uid", tag="TransferSyntaxUID"), _c("deleted_at", T.TIMESTAMP),
        computed=("deleted_at",),
        doc=(
            "One row per SOP instance, whichever objects hold it (the winning object's "
            'values). `deleted_at`: when the last object holding it was found gone from its '
            'archive; while another copy remains, `file_path` names the newest one left.'
        ),
    ),
    _table(
        "dicom_frame", ("frame_key",), CHILD,
        _c("frame_key", T.KEY, tag="SOPInstanceUID+frame number"),
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("sop_instance_uid", tag="SOPInstanceUID"),
        _c("frame_number", T.INT),
        _c(
            "frame_content_datetime", T.TIMESTAMP,
            tag=(
                "PerFrameFunctionalGroupsSequence>FrameContentSequence>FrameAcquisitionDateTime|"
                "PerFrameFunctionalGroupsSequence>FrameContentSequence>FrameReferenceDateTime"
            ),
        ),
        _c(
            "image_position_patient", T.FLOAT_ARRAY,
            tag=(
                "PerFrameFunctionalGroupsSequence>PlanePositionSequence>ImagePositionPatient|"
                "ImagePositionPatient"
            ),
        ),
        _c(
            "image_orientation_patient", T.FLOAT_ARRAY,
            tag=(
                "PerFrameFunctionalGroupsSequence>PlaneOrientationSequence>ImageOrientationPatient|"
                "SharedFunctionalGroupsSequence>PlaneOrientationSequence>ImageOrientationPatient|"
                "ImageOrientationPatient"
            ),
        ),
        _c(
            "slice_location", T.FLOAT,
            tag="PerFrameFunctionalGroupsSequence>SliceLocation|SliceLocation",
        ),
        _c(
            "temporal_position_index", T.INT,
            tag="PerFrameFunctionalGroupsSequence>FrameContentSequence>TemporalPositionIndex",
        ),
        _c(
            "cardiac_cycle_position", T.FLOAT,
            tag="PerFrameFunctionalGroupsSequence>CardiacSynchronizationSequence>NominalPercentageOfCardiacPhase",
        ),
        _c("frame_offset", T.INT, tag="PixelData|ExtendedOffsetTable"),
        _c("frame_length", T.INT, tag="PixelData|ExtendedOffsetTableLengths"),
        _c("frame_offset_source"), _c("frame_offset_missing"),
        doc=(
            'One row per frame of a multi-frame object, from its per-frame functional groups; '
            'with `--frame-offsets`, one row per frame of every object with pixels. '
            '`frame_offset` and `frame_length`: the bytes of the frame in the object '
            '`dicom_instance.file_path` names, so one ranged read fetches it. Native pixels '
            'are located from the geometry (rows × columns × samples × bits allocated); '
            'encapsulated ones from the Basic Offset Table (read with `--frame-offsets`, '
            'at most one small read per object) or the Extended Offset Table, and their '
            'range holds the frame\'s fragment items, 8-byte item headers included (from the '
            'Basic Offset Table, the last frame\'s runs to the object\'s end: read its items '
            'up to the Sequence Delimitation Item). '
            '`frame_offset_source` says how they were found (`native geometry`, `basic '
            'offset table`, `extended offset table`, `single frame`); when they are NULL, '
            '`frame_offset_missing` says why.'
        ),
    ),
    _table(
        "dicom_equipment", ("series_key",), E,
        _c("series_key", T.KEY, tag="SeriesInstanceUID", ref="dicom_series"),
        _c("manufacturer", tag="Manufacturer"),
        _c("manufacturer_model_name", tag="ManufacturerModelName"),
        _c("device_serial_number", tag="DeviceSerialNumber"),
        _c("software_versions", tag="SoftwareVersions"),
        _c("institution_name", tag="InstitutionName"),
        _c("institution_address", tag="InstitutionAddress"), _c("station_name", tag="StationName"),
        _c("institutional_dept_name", tag="InstitutionalDepartmentName"),
        doc=(
            'One row per series that names its equipment.'
        ),
    ),
    _table(
        "dicom_image_pixel", ("instance_key",), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("image_rows", T.INT, tag="Rows"), _c("image_columns", T.INT, tag="Columns"),
        _c("number_of_frames", T.INT, tag="NumberOfFrames"),
        _c("samples_per_pixel", T.INT, tag="SamplesPerPixel"),
        _c("photometric_interpretation", tag="PhotometricInterpretation"),
        _c("bits_allocated", T.INT, tag="BitsAllocated"),
        _c("bits_stored", T.INT, tag="BitsStored"), _c("high_bit", T.INT, tag="HighBit"),
        _c("pixel_representation", T.INT, tag="PixelRepresentation"),
        _c("planar_configuration", T.INT, tag="PlanarConfiguration"),
        _c(
            "rescale_intercept", T.FLOAT,
            tag=(
                "RescaleIntercept|"
                "SharedFunctionalGroupsSequence>PixelValueTransformationSequence>RescaleIntercept"
            ),
        ),
        _c(
            "rescale_slope", T.FLOAT,
            tag=(
                "RescaleSlope|"
                "SharedFunctionalGroupsSequence>PixelValueTransformationSequence>RescaleSlope"
            ),
        ),
        _c(
            "window_center", T.FLOAT_ARRAY,
            tag="WindowCenter|SharedFunctionalGroupsSequence>FrameVOILUTSequence>WindowCenter",
        ),
        _c(
            "window_width", T.FLOAT_ARRAY,
            tag="WindowWidth|SharedFunctionalGroupsSequence>FrameVOILUTSequence>WindowWidth",
        ),
        doc=(
            'The image pixel module of an instance (never the pixels).'
        ),
    ),
    _table(
        "dicom_image_plane", ("instance_key", "frame_number"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("frame_key", T.KEY, tag="SOPInstanceUID+frame number", ref="dicom_frame"),
        _c("frame_number", T.INT),
        _c(
            "pixel_spacing", T.FLOAT_ARRAY,
            tag=(
                "PixelSpacing|"
                "PerFrameFunctionalGroupsSequence>PixelMeasuresSequence>PixelSpacing|"
                "SharedFunctionalGroupsSequence>PixelMeasuresSequence>PixelSpacing"
            ),
        ),
        _c(
            "slice_thickness", T.FLOAT,
            tag=(
                "SliceThickness|"
                "PerFrameFunctionalGroupsSequence>PixelMeasuresSequence>SliceThickness|"
                "SharedFunctionalGroupsSequence>PixelMeasuresSequence>SliceThickness"
            ),
        ),
        _c(
            "image_position_patient", T.FLOAT_ARRAY,
            tag=(
                "ImagePositionPatient|"
                "PerFrameFunctionalGroupsSequence>PlanePositionSequence>ImagePositionPatient|"
                "SharedFunctionalGroupsSequence>PlanePositionSequence>ImagePositionPatient"
            ),
        ),
        _c(
            "image_orientation_patient", T.FLOAT_ARRAY,
            tag=(
                "ImageOrientationPatient|"
                "PerFrameFunctionalGroupsSequence>PlaneOrientationSequence>ImageOrientationPatient|"
                "SharedFunctionalGroupsSequence>PlaneOrientationSequence>ImageOrientationPatient"
            ),
        ),
        _c(
            "spacing_between_slices", T.FLOAT,
            tag=(
                "SpacingBetweenSlices|"
                "PerFrameFunctionalGroupsSequence>PixelMeasuresSequence>SpacingBetweenSlices|"
                "SharedFunctionalGroupsSequence>PixelMeasuresSequence>SpacingBetweenSlices"
            ),
        ),
        _c("position_reference_indicator", tag="PositionReferenceIndicator"),
        doc=(
            'Image plane per instance, and per frame of a multi-frame object (`frame_key` '
            'NULL for a single frame).'
        ),
    ),
    _table(
        "dicom_procedure_step", ("procedure_step_key",), E,
        _c(
            "procedure_step_key", T.KEY,
            tag=(
                "StudyInstanceUID+(RequestAttributesSequence>RequestedProcedureID|"
                "RequestedProcedureID)+PerformedProcedureStepID"
            ),
        ),
        _c("study_key", T.KEY, tag="StudyInstanceUID", ref="dicom_study"),
        _c(
            "requested_procedure_id",
            tag="RequestAttributesSequence>RequestedProcedureID|RequestedProcedureID",
        ),
        _c(
            "requested_procedure_description",
            tag=(
                "RequestAttributesSequence>RequestedProcedureDescription|"
                "RequestedProcedureDescription"
            ),
        ),
        _c(
            "requested_procedure_code_seq", T.VARIANT,
            tag=(
                "RequestAttributesSequence>RequestedProcedureCodeSequence|"
                "RequestedProcedureCodeSequence"
            ),
        ),
        _c("performed_procedure_step_id", tag="PerformedProcedureStepID"),
        _c("performed_procedure_description", tag="PerformedProcedureStepDescription"),
        _c("performed_procedure_type", tag="PerformedProcedureTypeDescription"),
        _c(
            "performed_procedure_code_seq", T.VARIANT,
            tag="PerformedProtocolCodeSequence|ProcedureCodeSequence",
        ),
        doc=(
            'Requested and performed procedure steps of a study.'
        ),
    ),
    _table(
        "dicom_dose_summary", ("series_key",), E,
        _c("series_key", T.KEY, tag="SeriesInstanceUID", ref="dicom_series"),
        _c("study_key", T.KEY, tag="StudyInstanceUID", ref="dicom_study"),
        _c(
            "ctdi_vol", T.FLOAT,
            tag=(
                "CTDIvol|"
                "SharedFunctionalGroupsSequence>CTExposureSequence>CTDIvol|"
                "ContentSequence>MeasuredValueSequence>NumericValue"
            ),
        ),
        _c(
            "dose_length_product", T.FLOAT,
            tag="ContentSequence>MeasuredValueSequence>NumericValue",
        ),
        _c(
            "exposure_time", T.FLOAT,
            tag=(
                "ExposureTime|"
                "SharedFunctionalGroupsSequence>CTExposureSequence>ExposureTimeInms"
            ),
        ),
        _c("kvp", T.FLOAT, tag="KVP"),
        _c(
            "xray_tube_current", T.FLOAT,
            tag=(
                "XRayTubeCurrent|"
                "SharedFunctionalGroupsSequence>CTExposureSequence>XRayTubeCurrentInmA"
            ),
        ),
        _c(
            "exposure", T.FLOAT,
            tag="Exposure|SharedFunctionalGroupsSequence>CTExposureSequence>ExposureInmAs",
        ),
        _c("acquisition_protocol", tag="AcquisitionProtocolName|ProtocolName"),
        doc=(
            'CT dose and exposure values per series.'
        ),
    ),
    _table(
        "dicom_segmentation_metadata", ("instance_key", "segment_number"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c(
            "referenced_series_key", T.KEY,
            tag="ReferencedSeriesSequence>SeriesInstanceUID",
            ref="dicom_series",
        ),
        _c("segment_number", T.INT, tag="SegmentSequence>SegmentNumber"),
        _c("segment_label", tag="SegmentSequence>SegmentLabel"),
        _c("segment_description", tag="SegmentSequence>SegmentDescription"),
        _c("segmentation_type", tag="SegmentationType"),
        _c("segmentation_fractional_type", tag="SegmentationFractionalType"),
        _c(
            "recommended_display_grayscale", T.VARIANT,
            tag="SegmentSequence>RecommendedDisplayGrayscaleValue+SegmentSequence>RecommendedDisplayCIELabValue",
        ),
        _c("anatomic_region_code_seq", T.VARIANT, tag="SegmentSequence>AnatomicRegionSequence"),
        _c(
            "property_category_code_seq", T.VARIANT,
            tag="SegmentSequence>SegmentedPropertyCategoryCodeSequence",
        ),
        _c(
            "property_type_code_seq", T.VARIANT,
            tag="SegmentSequence>SegmentedPropertyTypeCodeSequence",
        ),
        _c("algorithm_type", tag="SegmentSequence>SegmentAlgorithmType"),
        _c("algorithm_name", tag="SegmentSequence>SegmentAlgorithmName"),
        _c("tracking_id", tag="SegmentSequence>TrackingID"),
        _c("tracking_uid", tag="SegmentSequence>TrackingUID"),
        _c(
            "source_instance_keys", T.KEY_ARRAY,
            tag=(
                "the segment's frames: PerFrameFunctionalGroupsSequence>"
                "DerivationImageSequence>SourceImageSequence>ReferencedSOPInstanceUID"
            ),
            ref="dicom_instance",
        ),
        doc=(
            'One row per segment of a segmentation (SEG) instance: what it is, how it was '
            'made, what it tracks, and the source images its frames were derived from '
            '(those of the whole object where its frames do not say).'
        ),
    ),
    _table(
        "dicom_structured_report_header", ("instance_key",), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("completion_flag", tag="CompletionFlag"),
        _c("verification_flag", tag="VerificationFlag"),
        _c("document_title", tag="ConceptNameCodeSequence>CodeMeaning"),
        _c("coding_scheme_identification", T.VARIANT, tag="CodingSchemeIdentificationSequence"),
        _c(
            "referenced_instance_keys", T.KEY_ARRAY,
            tag=(
                "CurrentRequestedProcedureEvidenceSequence>ReferencedSeriesSequence>ReferencedSOPSequence>ReferencedSOPInstanceUID|"
                "PertinentOtherEvidenceSequence>ReferencedSeriesSequence>ReferencedSOPSequence>ReferencedSOPInstanceUID"
            ),
            ref="dicom_instance",
        ),
        doc=(
            'The document header of a structured report instance, with the instances it '
            'references.'
        ),
    ),
    _table(
        "dicom_sr_content", ("instance_key", "content_path"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("content_path", tag=_ITEM_POSITION),
        _c("parent_path", tag=_ITEM_POSITION),
        _c("depth", T.INT, tag=_ITEM_POSITION),
        _c("relationship_type", tag=_ITEM + "RelationshipType"),
        _c("value_type", tag=_ITEM + "ValueType"),
        *_coded("concept", _ITEM + "ConceptNameCodeSequence"),
        _c("template_id", tag=_ITEM + "ContentTemplateSequence>TemplateIdentifier"),
        _c("observation_uid", tag=_ITEM + "ObservationUID"),
        _c("text_value", phi=True, tag=_ITEM + "TextValue"),
        *_coded("code", _ITEM + "ConceptCodeSequence"),
        _c(
            "numeric_value", T.FLOAT,
            tag=_ITEM + "MeasuredValueSequence>FloatingPointValue|NumericValue",
        ),
        *_coded("unit", _ITEM + "MeasuredValueSequence>MeasurementUnitsCodeSequence"),
        *_coded("numeric_qualifier", _ITEM + "NumericValueQualifierCodeSequence"),
        _c("date_value", T.DATE, tag=_ITEM + "Date"),
        _c("time_value", T.TIME, tag=_ITEM + "Time"),
        _c("datetime_value", T.TIMESTAMP, tag=_ITEM + "DateTime"),
        _c("person_name", phi=True, tag=_ITEM + "PersonName"),
        _c("uid_value", tag=_ITEM + "UID"),
        _c(
            "referenced_sop_class_uid",
            tag=_ITEM + "ReferencedSOPSequence>ReferencedSOPClassUID",
        ),
        _c(
            "referenced_sop_instance_uid",
            tag=_ITEM + "ReferencedSOPSequence>ReferencedSOPInstanceUID",
        ),
        _c(
            "referenced_instance_key", T.KEY,
            tag=_ITEM + "ReferencedSOPSequence>ReferencedSOPInstanceUID", ref="dicom_instance",
        ),
        _c(
            "referenced_frame_numbers", T.INT_ARRAY,
            tag=_ITEM + "ReferencedSOPSequence>ReferencedFrameNumber",
        ),
        _c(
            "referenced_segment_numbers", T.INT_ARRAY,
            tag=_ITEM + "ReferencedSOPSequence>ReferencedSegmentNumber",
        ),
        _c("graphic_type", tag=_ITEM + "GraphicType"),
        _c("graphic_data", T.FLOAT_ARRAY, tag=_ITEM + "GraphicData"),
        _c("referenced_frame_of_reference_uid", tag=_ITEM + "ReferencedFrameOfReferenceUID"),
        _c("referenced_content_path", tag=_ITEM + "ReferencedContentItemIdentifier"),
        doc=(
            'One row per content item of a structured report, the document root included '
            '(`content_path` `1`), whatever its template: where it sits, how it relates to '
            'its parent, its concept name and its value in the column of its value type. '
            'A path is the item positions from the root, as DICOM\'s Referenced Content '
            'Item Identifier writes them (`1.2.3`: the third item of the second item of '
            'the root).'
        ),
    ),
    _table(
        "dicom_sr_measurement_group", ("instance_key", "group_path"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("group_path", tag=_GROUP + "its content path"),
        _c("tracking_identifier", tag=_GROUP + "Tracking Identifier (DCM 112039)"),
        _c("tracking_uid", tag=_GROUP + "Tracking Unique Identifier (DCM 112040)"),
        *_coded("finding_category", _GROUP + "Finding Category (SCT 276214006)"),
        *_coded("finding", _GROUP + "Finding (DCM 121071)"),
        *_coded("finding_site", _GROUP + "Finding Site (SCT 363698007)"),
        *_coded("method", _GROUP + "Measurement Method (SCT 370129005)"),
        _c("activity_session", tag=_GROUP + "Activity Session (NCIt C67447)"),
        _c("time_point", tag=_GROUP + "Time Point (UMLS C2348792)"),
        _c(
            "roi_reference_type",
            tag=_GROUP + "the concept name of its region or segment reference",
        ),
        _c("referenced_segmentation_uid", tag=_GROUP + "Referenced Segment (DCM 121191)"),
        _c(
            "referenced_segmentation_key", T.KEY,
            tag=_GROUP + "Referenced Segment (DCM 121191)", ref="dicom_instance",
        ),
        _c(
            "referenced_segment_number", T.INT,
            tag=_GROUP + "Referenced Segment (DCM 121191)",
        ),
        _c(
            "source_series_uid",
            tag=_GROUP + "Source series for segmentation (DCM 121232)",
        ),
        _c(
            "source_series_key", T.KEY,
            tag=_GROUP + "Source series for segmentation (DCM 121232)", ref="dicom_series",
        ),
        _c("region_graphic_type", tag=_GROUP + "Image Region (DCM 111030), its GraphicType"),
        _c(
            "region_instance_key", T.KEY,
            tag=_GROUP + "the image an Image Region (DCM 111030) is selected from",
            ref="dicom_instance",
        ),
        doc=(
            'One row per measurement group of a structured report (TID 1500\'s TID 1410, '
            '1411 and 1501 groups, concept DCM 125007): what is tracked, the finding and '
            'its site, and the segment or image region measured. Keyed by the group\'s '
            '`content_path` in `dicom_sr_content`.'
        ),
    ),
    _table(
        "dicom_sr_measurement", ("instance_key", "measurement_path"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("measurement_path", tag=_MEASUREMENT + "its content path"),
        _c("group_path", tag=_MEASUREMENT + "the content path of its group"),
        *_coded("concept", _MEASUREMENT + "ConceptNameCodeSequence"),
        _c(
            "numeric_value", T.FLOAT,
            tag=_MEASUREMENT + "MeasuredValueSequence>FloatingPointValue|NumericValue",
        ),
        *_coded("unit", _MEASUREMENT + "MeasuredValueSequence>MeasurementUnitsCodeSequence"),
        *_coded("numeric_qualifier", _MEASUREMENT + "NumericValueQualifierCodeSequence"),
        *_coded("derivation", _MEASUREMENT + "Derivation (DCM 121401)"),
        *_coded("method", _MEASUREMENT + "Measurement Method (SCT 370129005)"),
        *_coded("finding_site", _MEASUREMENT + "Finding Site (SCT 363698007)"),
        doc=(
            'One row per numeric measurement (a NUM item) of a measurement group: the '
            'quantity, its value and UCUM unit, and how it was derived. '
            '`numeric_value` is NULL with a `numeric_qualifier` where the value is not a '
            'number (not a number, infinity, not applicable).'
        ),
    ),
    _table(
        "dicom_sr_qualitative_evaluation", ("instance_key", "evaluation_path"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("evaluation_path", tag=_EVALUATION + "its content path"),
        _c("group_path", tag=_EVALUATION + "the content path of its group"),
        *_coded("concept", _EVALUATION + "ConceptNameCodeSequence"),
        *_coded("value", _EVALUATION + "ConceptCodeSequence"),
        doc=(
            'One row per qualitative evaluation (a CODE item) of a measurement group, '
            'other than the group\'s finding, finding category, finding site and method.'
        ),
    ),
    _table(
        "dicom_rt_roi", ("instance_key", "roi_number"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("roi_number", T.INT, tag="the ROI's item: StructureSetROISequence>ROINumber"),
        _c("roi_name", tag="the ROI's item: StructureSetROISequence>ROIName"),
        _c("roi_description", tag="the ROI's item: StructureSetROISequence>ROIDescription"),
        _c(
            "roi_generation_algorithm",
            tag="the ROI's item: StructureSetROISequence>ROIGenerationAlgorithm",
        ),
        _c(
            "referenced_frame_of_reference_uid",
            tag="the ROI's item: StructureSetROISequence>ReferencedFrameOfReferenceUID",
        ),
        _c(
            "interpreted_type",
            tag="the ROI's item: RTROIObservationsSequence>RTROIInterpretedType",
        ),
        _c(
            "observation_label",
            tag="the ROI's item: RTROIObservationsSequence>ROIObservationLabel",
        ),
        _c(
            "referenced_series_keys", T.KEY_ARRAY,
            tag=(
                "the ROI's frame of reference: ReferencedFrameOfReferenceSequence>"
                "RTReferencedStudySequence>RTReferencedSeriesSequence>SeriesInstanceUID"
            ),
            ref="dicom_series",
        ),
        _c("contour_count", T.INT, tag="the ROI's item: ROIContourSequence>ContourSequence"),
        _c(
            "contour_geometric_types", T.TEXT_ARRAY,
            tag="the ROI's item: ROIContourSequence>ContourSequence>ContourGeometricType",
        ),
        doc=(
            'One row per region of interest of an RT structure set: its name, how it was '
            'made, what it is, the image series it was contoured on and how many contours '
            'it has. Contour points stay out (they are bulk); `contour_count` is NULL where '
            'the contours were over the element limit and not read.'
        ),
    ),
    _table(
        "dicom_dose_event", ("instance_key", "event_path"), CHILD,
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("event_path", tag=_EVENT + "its content path"),
        _c("event_kind", tag=_EVENT + "CT Acquisition (DCM 113819) or Irradiation Event "
           "X-Ray Data (DCM 113706)"),
        _c("irradiation_event_uid", tag=_EVENT + "Irradiation Event UID (DCM 113769)"),
        _c("event_datetime", T.TIMESTAMP, tag=_EVENT + "DateTime Started (DCM 111526)"),
        _c("acquisition_protocol", tag=_EVENT + "Acquisition Protocol (DCM 125203)"),
        *_coded("target_region", _EVENT + "Target Region (DCM 123014)"),
        _c("ct_acquisition_type", tag=_EVENT + "CT Acquisition Type (DCM 113820), meaning"),
        _c("ctdi_vol", T.FLOAT, tag=_EVENT + "Mean CTDIvol (DCM 113830), mGy"),
        _c("dlp", T.FLOAT, tag=_EVENT + "DLP (DCM 113838), mGy.cm"),
        _c("phantom_type", tag=_EVENT + "CTDIw Phantom Type (DCM 113835), meaning"),
        _c("scanning_length", T.FLOAT, tag=_EVENT + "Scanning Length (DCM 113825), mm"),
        _c("exposure_time", T.FLOAT, tag=_EVENT + "Exposure Time (DCM 113824), s"),
        _c("pitch_factor", T.FLOAT, tag=_EVENT + "Pitch Factor (DCM 113828)"),
        _c("kvp", T.FLOAT, tag=_EVENT + "KVP (DCM 113733), kV"),
        _c("tube_current", T.FLOAT, tag=_EVENT + "X-Ray Tube Current (DCM 113734), mA"),
        _c("irradiation_event_type", tag=_EVENT + "Irradiation Event Type (DCM 113721), meaning"),
        _c("acquisition_plane", tag=_EVENT + "Acquisition Plane (DCM 113764), meaning"),
        _c("dose_area_product", T.FLOAT, tag=_EVENT + "Dose Area Product (DCM 122130), Gy.m2"),
        _c("dose_rp", T.FLOAT, tag=_EVENT + "Dose at the reference point (DCM 113738), Gy"),
        doc=(
            'One row per irradiation event of a radiation dose structured report: CT '
            'acquisitions (TID 10013 inside TID 10011) and projection X-ray events (TID '
            '10003 inside TID 10001). Values are as recorded, in the units the templates '
            'prescribe (named in each column\'s description).'
        ),
    ),
    _table(
        "dicom_file_location", ("location_key",), E,
        _c("location_key", T.KEY),
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"), _c("storage_uri"),
        _c("storage_provider"), _c("storage_container"), _c("object_key"),
        _c("transfer_syntax_uid", tag="TransferSyntaxUID"), _c("checksum"), _c("ingestion_source"),
        _c("header_bytes", T.INT), _c("pixel_data_offset", T.INT),
        _c("pixel_data_length", T.INT), _c("file_size_bytes", T.INT),
        _c("modified_at", T.TIMESTAMP), _c("deleted_at", T.TIMESTAMP), SHARD_ID,
        computed=("deleted_at",),
        doc=(
            'One row per stored object of an instance (an instance stored twice has two): '
            'where it is, its size, ETag or checksum, and where Pixel Data starts and how '
            'long it is, when known, so pixels can be fetched with one ranged read. '
            '`deleted_at`: when an incremental run found the object gone from the prefix it '
            'listed (the row is kept; NULL while the object is there).'
        ),
    ),
    _table(
        "dicom_element", ("element_key",), CHILD,
        _c("element_key", T.KEY),
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("frame_number", T.INT),
        _c("tag_group", T.INT), _c("tag_element", T.INT), _c("tag_hex"), _c("name"),
        _c("vr"), _c("vm", T.INT), _c("value_string"), _c("value_number", T.FLOAT),
        _c("value_datetime", T.TIMESTAMP), _c("value_binary_ref"),
        _c("is_private", T.BOOL), _c("private_creator"),
        _c("sequence_item_key", T.KEY, ref="dicom_sequence_item"),
        _c("sequence_path"),
        doc=(
            'One row per data element, private tags and sequence items included: typed value '
            'columns, binary values by length only (never bytes).'
        ),
    ),
    _table(
        "dicom_sequence_item", ("sequence_item_key",), CHILD,
        _c("sequence_item_key", T.KEY),
        _c("instance_key", T.KEY, tag="SOPInstanceUID", ref="dicom_instance"),
        _c("parent_element_key", T.KEY, ref="dicom_element"), _c("item_index", T.INT),
        _c("sequence_path"),
        doc=(
            'One row per item of a sequence, with its parent element and path.'
        ),
    ),
    _table(
        "image_embedding", ("embedding_key",), LoadMode.EMPTY,
        _c("embedding_key", T.KEY), _c("instance_key", T.KEY, ref="dicom_instance"),
        _c("frame_key", T.KEY, ref="dicom_frame"),
        _c("model_key", T.KEY, ref="embedding_model"), _c("embedding", T.FLOAT_ARRAY),
        _c("created_at", T.TIMESTAMP),
        doc=(
            'Created empty with the model, for downstream embedding jobs; the loader does not'
            ' fill it.'
        ),
    ),
    _table(
        "embedding_model", ("model_key",), LoadMode.EMPTY,
        _c("model_key", T.KEY), _c("model_name"), _c("model_version"),
        _c("dimensions", T.INT), _c("modality_scope", T.TEXT_ARRAY),
        _c("parameters", T.VARIANT), _c("created_at", T.TIMESTAMP),
        doc=(
            'Created empty with the model, for downstream embedding jobs.'
        ),
    ),
    _table(
        "embedding_evaluation", ("evaluation_key",), LoadMode.EMPTY,
        _c("evaluation_key", T.KEY), _c("model_key", T.KEY, ref="embedding_model"),
        _c("dataset_name"),
        _c("metric_name"), _c("metric_value", T.FLOAT), _c("details", T.VARIANT),
        _c("evaluated_at", T.TIMESTAMP),
        doc=(
            'Created empty with the model, for downstream embedding jobs.'
        ),
    ),
)
# fmt: on

BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
# Tables a shard writes Parquet for (everything the loader fills).
EXTRACTED: tuple[str, ...] = tuple(
    t.name for t in TABLES if t.mode not in (LoadMode.EMPTY, LoadMode.HISTORY)
)

_ARROW: dict[ColumnType, pa.DataType] = {
    T.KEY: pa.uint64(),
    T.TEXT: pa.string(),
    T.INT: pa.int64(),
    T.FLOAT: pa.float64(),
    T.BOOL: pa.bool_(),
    T.DATE: pa.date32(),
    T.TIME: pa.time64("us"),
    T.TIMESTAMP: pa.timestamp("us"),
    T.TEXT_ARRAY: pa.list_(pa.string()),
    T.FLOAT_ARRAY: pa.list_(pa.float64()),
    T.INT_ARRAY: pa.list_(pa.int64()),
    T.KEY_ARRAY: pa.list_(pa.uint64()),
    T.VARIANT: pa.string(),
}

DIALECT_TYPES: dict[str, dict[ColumnType, str]] = {
    "snowflake": {
        T.KEY: "NUMBER(20,0)",
        T.TEXT: "VARCHAR",
        T.INT: "NUMBER(38,0)",
        T.FLOAT: "FLOAT",
        T.BOOL: "BOOLEAN",
        T.DATE: "DATE",
        T.TIME: "TIME",
        T.TIMESTAMP: "TIMESTAMP_NTZ",
        T.TEXT_ARRAY: "ARRAY",
        T.FLOAT_ARRAY: "ARRAY",
        T.INT_ARRAY: "ARRAY",
        T.KEY_ARRAY: "ARRAY",
        T.VARIANT: "VARIANT",
    },
    "duckdb": {
        T.KEY: "UBIGINT",
        T.TEXT: "VARCHAR",
        T.INT: "BIGINT",
        T.FLOAT: "DOUBLE",
        T.BOOL: "BOOLEAN",
        T.DATE: "DATE",
        T.TIME: "TIME",
        T.TIMESTAMP: "TIMESTAMP",
        T.TEXT_ARRAY: "VARCHAR[]",
        T.FLOAT_ARRAY: "DOUBLE[]",
        T.INT_ARRAY: "BIGINT[]",
        T.KEY_ARRAY: "UBIGINT[]",
        T.VARIANT: "JSON",
    },
}


def arrow_schema(table: Table) -> pa.Schema:
    """The Parquet schema of a table: every column but `_loaded_at`, set on load."""
    return pa.schema(
        [pa.field(c.name, _ARROW[c.type]) for c in table.columns if c is not LOADED_AT]
    )


def phi_columns() -> dict[str, list[str]]:
    """PHI columns by table, for masking and pseudonymisation."""
    found: dict[str, list[str]] = {}
    for table in TABLES:
        names = [c.name for c in table.columns if c.phi]
        if names:
            found[table.name] = names
    return found


# How a dialect stores a type, where its default choice costs: DuckDB's own choice
# for JSON documents (dictionary and FSST analysis over every string) took 8.0 s to
# insert dicom_raw's 930 MB of headers at 200,000 objects and stored 465 MB; zstd
# took 1.4 s and stored 8 MB (documents of one archive repeat each other's keys).
STORAGE = {"duckdb": {T.VARIANT: " USING COMPRESSION zstd"}}


def create_table(table: Table, dialect: str) -> str:
    """CREATE TABLE IF NOT EXISTS for one table, PHI columns marked in comments."""
    types = DIALECT_TYPES[dialect]
    storage = STORAGE.get(dialect, {})
    last = len(table.columns) - 1
    cols = "\n".join(
        f"    {c.name} {types[c.type]}{storage.get(c.type, '')}{',' if i < last else ''}"
        f"{' -- PHI' if c.phi else ''}"
        for i, c in enumerate(table.columns)
    )
    tracked = table.change_tracking and dialect == "snowflake"
    options = " CHANGE_TRACKING = TRUE" if tracked else ""
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n{cols}\n){options}"


def added_columns(dialect: str, existing: set[tuple[str, str]]) -> list[str]:
    """ALTER TABLE statements that give tables an earlier version created the columns
    the model has since gained (`existing`: lower-case table and column names, of
    the tables that exist), so a warehouse carries on across upgrades."""
    types = DIALECT_TYPES[dialect]
    tables = {table for table, _ in existing}
    return [
        f"ALTER TABLE {table.name} ADD COLUMN {column.name} {types[column.type]}"
        for table in TABLES
        if table.name in tables
        for column in table.columns
        if (table.name, column.name) not in existing
    ]


def render_ddl(dialect: str) -> str:
    """The DDL file of one dialect: every table of the model, with its key and mode."""
    statements = [
        f"-- {t.name}: key ({', '.join(t.key)}), load mode {t.mode.value}\n"
        f"{create_table(t, dialect)};\n"
        for t in TABLES
    ]
    header = (
        f"-- dicom-loader warehouse model, {dialect} dialect.\n"
        "-- Rendered from loader/core/model.py by `dicom-loader sql --dialect "
        f"{dialect}`. Do not edit by hand.\n\n"
    )
    return header + "\n".join(statements)


_MODE_DOCS = {
    LoadMode.ENTITY: "upserted on its key; the row of the greatest `_source_order` wins",
    LoadMode.INSTANCE_CHILD: "replaced with its instance's winning object",
    LoadMode.OBJECT_ERRORS: "replaced per object a run processes",
    LoadMode.HISTORY: "one row per run and shard, upserted",
    LoadMode.EMPTY: "created empty",
}

MODEL_DOC_PREFACE = """\
# The warehouse model

Rendered from `loader/core/model.py` by `make sql`; `tests/test_model.py` fails when this file
and the code differ. Do not edit by hand: change the model, then render.

Table and column names are the contract: users' queries, the Snowflake patterns
(`sql/snowflake/`) and validation depend on them. Every table also has `_run_id`
(the run that wrote the row) and `_loaded_at` (when the load wrote it); tables whose
rows come from an object have `_source_order` (below).

## Keys

A `*_key` column is the lower 64 bits of the MD5 of its natural key's UTF-8 text, read
as an unsigned big-endian integer: every worker, rerun and warehouse computes the same
key without a lookup, so parallel loads and MERGE stay idempotent. A composite natural
key joins its parts with a backslash (`\\`, DICOM's value delimiter, which no single
value contains); a NULL part is empty text.

| engine | key of text `s` | type |
| --- | --- | --- |
| Python (`loader/core/keys.py`) | `int.from_bytes(md5(s).digest()[8:], "big")` | int |
| DuckDB | `('0x' \\|\\| substr(md5(s), 17, 16))::UBIGINT` | UBIGINT |
| Snowflake | `MD5_NUMBER_LOWER64(s)` | NUMBER(20,0) |
| Parquet, shards | UINT64 | |
| Parquet, staged for Snowflake | DECIMAL(20,0): Snowflake refuses UINT64 above 2^63 − 1 | |

## Uniqueness and conflicts

Natural keys are unique after every load: `sop_instance_uid`, `series_instance_uid`,
`study_instance_uid`, (`patient_id`, `issuer_of_patient_id`). The same SOP instance in
two objects is one instance, two `dicom_file_location` rows and one `DUPLICATE` row for
the object that lost. Among the objects a row could come from, the most recently
modified wins, ties broken by URL: `_source_order` is `<modified, ISO 8601 with
microseconds>\\<url>`, and the greatest wins, whatever the load order.

## Where values come from

The last column of each table names the DICOM attributes a value is read from, by
keyword: `A › B` is B in the items of sequence A, `A or B` is A or else B, `A + B` is
made of both (a key hashes them, a timestamp joins a date and a time); `→ table` names
the table whose key a column holds. `dicom-loader sql --pattern model-knowledge` puts
the same facts, with the tags, in a table a Cortex Search service searches.

## PHI

Columns marked PHI identify a person: the governance pattern masks them (and the PHI
attributes of whole headers and element rows), and `--pseudonymize-key-file` replaces
them in the workers before anything is written.
"""


def _tag_doc(column: Column) -> str:
    text = column.tag.replace("|", " or ").replace(">", " › ").replace("+", " + ")
    reference = f"→ {column.references}" if column.references else ""
    return " ".join(p for p in (f"`{text}`" if text else "", reference) if p)


def render_model_doc() -> str:
    """docs/MODEL.md: every table and column of the model, with its types and rules."""
    parts = [MODEL_DOC_PREFACE]
    snowflake, duckdb = DIALECT_TYPES["snowflake"], DIALECT_TYPES["duckdb"]
    for number, table in enumerate(TABLES, 1):
        parts.append(f"\n## {number}. {table.name}\n\n{table.doc}\n")
        parts.append(
            f"\nKey: ({', '.join(table.key)}). Load: {_MODE_DOCS[table.mode]}."
            + (f" Computed on load: {', '.join(table.computed)}." if table.computed else "")
            + "\n\n| column | Snowflake | DuckDB | Parquet | PHI | from DICOM |\n"
            + "| --- | --- | --- | --- | --- | --- |\n"
        )
        parquet = {f.name: str(f.type) for f in arrow_schema(table)}
        for column in table.columns:
            parts.append(
                f"| `{column.name}` | {snowflake[column.type]} | {duckdb[column.type]} | "
                f"{parquet.get(column.name, 'set on load')} | {'PHI' if column.phi else ''} | "
                f"{_tag_doc(column)} |\n"
            )
    return "".join(parts)
