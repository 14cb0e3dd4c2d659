"""Patient → study → series → instance rows, and the series' equipment.

Patient, study, series and equipment rows are built from root elements alone and
repeat along a series (see repeated); keys are hashed from the same elements.
"""

from __future__ import annotations

from loader.core.keys import key_of
from loader.dicom.decode import Item
from loader.extract.context import Extraction, Row
from loader.extract.repeated import repeated
from loader.extract.values import Typed, integer, items, text, texts


def patient_key(root: Item) -> int:
    return key_of(text(root, "PatientID"), text(root, "IssuerOfPatientID"))


@repeated
def patient(root: Item, typed: Typed) -> Row:
    other_ids: list[str | None] = [
        text(i, "PatientID") for i in items(root, "OtherPatientIDsSequence")
    ]
    if not other_ids:
        other_ids = list(texts(root, "OtherPatientIDs") or [])
    return {
        "patient_key": patient_key(root),
        "patient_id": text(root, "PatientID"),
        "issuer_of_patient_id": text(root, "IssuerOfPatientID"),
        "patient_name": text(root, "PatientName"),
        "patient_sex": text(root, "PatientSex"),
        "patient_birth_date": typed.date(root, "PatientBirthDate"),
        "patient_age": text(root, "PatientAge"),
        "other_patient_ids": [i for i in other_ids if i] or None,
        "other_patient_names": texts(root, "OtherPatientNames"),
        "comments": text(root, "PatientComments"),
        "source_system": text(root, "IssuerOfPatientID") or text(root, "InstitutionName"),
    }


@repeated
def study(root: Item, typed: Typed) -> Row:
    day, clock, stamp = typed.date_time(root, "StudyDate", "StudyTime")
    uid = text(root, "StudyInstanceUID")
    return {
        "study_key": key_of(uid),
        "study_instance_uid": uid,
        "patient_key": patient_key(root),
        "accession_number": text(root, "AccessionNumber"),
        "study_id": text(root, "StudyID"),
        "study_datetime": stamp,
        "study_date": day,
        "study_time": clock,
        "study_description": text(root, "StudyDescription"),
        "referring_physician": text(root, "ReferringPhysicianName"),
        "admitting_diagnosis": text(root, "AdmittingDiagnosesDescription"),
        "number_of_series": None,
        "number_of_instances": None,
        "modalities_in_study": None,
    }


@repeated
def series(root: Item, typed: Typed) -> Row:
    uid = text(root, "SeriesInstanceUID")
    return {
        "series_key": key_of(uid),
        "series_instance_uid": uid,
        "study_key": key_of(text(root, "StudyInstanceUID")),
        "series_number": integer(root, "SeriesNumber"),
        "modality": text(root, "Modality"),
        "body_part_examined": text(root, "BodyPartExamined"),
        "laterality": text(root, "Laterality") or text(root, "ImageLaterality"),
        "series_description": text(root, "SeriesDescription"),
        "frame_of_reference_uid": text(root, "FrameOfReferenceUID"),
        "patient_position": text(root, "PatientPosition"),
        "performed_station_name": text(root, "PerformedStationName") or text(root, "StationName"),
        "performed_location": text(root, "PerformedLocation"),
        "series_date": typed.date(root, "SeriesDate"),
        "series_time": typed.time(root, "SeriesTime"),
        "protocol_name": text(root, "ProtocolName"),
        "number_of_instances": None,
    }


def instance(ex: Extraction) -> Row:
    root = ex.decoded.root
    facts = ex.facts
    acq_day, acq_clock, acq_stamp = ex.typed.date_time(root, "AcquisitionDate", "AcquisitionTime")
    content_day, content_clock, content_stamp = ex.typed.date_time(
        root, "ContentDate", "ContentTime"
    )
    return {
        "instance_key": ex.instance_key,
        "sop_instance_uid": ex.sop_instance_uid,
        "series_key": ex.series_key,
        "sop_class_uid": text(root, "SOPClassUID"),
        "instance_number": integer(root, "InstanceNumber"),
        "image_type": texts(root, "ImageType"),
        "acquisition_datetime": ex.typed.datetime(root, "AcquisitionDateTime") or acq_stamp,
        "content_datetime": content_stamp,
        "acquisition_date": acq_day,
        "acquisition_time": acq_clock,
        "content_date": content_day,
        "content_time": content_clock,
        "number_of_frames": integer(root, "NumberOfFrames"),
        "specific_character_set": "\\".join(texts(root, "SpecificCharacterSet") or []) or None,
        "burned_in_annotation": text(root, "BurnedInAnnotation"),
        "presentation_intent": text(root, "PresentationIntentType"),
        "file_path": facts.uri,
        "file_size_bytes": facts.size,
        "transfer_syntax_uid": facts.transfer_syntax_uid,
    }


@repeated
def equipment(root: Item, typed: Typed) -> Row | None:
    row: Row = {
        "series_key": key_of(text(root, "SeriesInstanceUID")),
        "manufacturer": text(root, "Manufacturer"),
        "manufacturer_model_name": text(root, "ManufacturerModelName"),
        "device_serial_number": text(root, "DeviceSerialNumber"),
        "software_versions": "\\".join(texts(root, "SoftwareVersions") or []) or None,
        "institution_name": text(root, "InstitutionName"),
        "institution_address": text(root, "InstitutionAddress"),
        "station_name": text(root, "StationName"),
        "institutional_dept_name": text(root, "InstitutionalDepartmentName"),
    }
    return row if any(v is not None for k, v in row.items() if k != "series_key") else None
