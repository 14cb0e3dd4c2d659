-- dicom-loader sql --pattern dynamic-tables (rendered by `make sql`; do not edit)

CREATE DYNAMIC TABLE IF NOT EXISTS dt_dicom_instance
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "COMPUTE_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT
    MD5_NUMBER_LOWER64(coalesce(CAST((IFF(IS_ARRAY(metadata:"SOPInstanceUID"), metadata:"SOPInstanceUID"[0], metadata:"SOPInstanceUID")::STRING) AS VARCHAR), '')) AS instance_key,
    MD5_NUMBER_LOWER64(coalesce(CAST((IFF(IS_ARRAY(metadata:"SeriesInstanceUID"), metadata:"SeriesInstanceUID"[0], metadata:"SeriesInstanceUID")::STRING) AS VARCHAR), '')) AS series_key,
    MD5_NUMBER_LOWER64(coalesce(CAST((IFF(IS_ARRAY(metadata:"StudyInstanceUID"), metadata:"StudyInstanceUID"[0], metadata:"StudyInstanceUID")::STRING) AS VARCHAR), '')) AS study_key,
    MD5_NUMBER_LOWER64(coalesce(CAST((IFF(IS_ARRAY(metadata:"PatientID"), metadata:"PatientID"[0], metadata:"PatientID")::STRING) AS VARCHAR), '') || chr(92) || coalesce(CAST((IFF(IS_ARRAY(metadata:"IssuerOfPatientID"), metadata:"IssuerOfPatientID"[0], metadata:"IssuerOfPatientID")::STRING) AS VARCHAR), '')) AS patient_key,
    (IFF(IS_ARRAY(metadata:"SOPInstanceUID"), metadata:"SOPInstanceUID"[0], metadata:"SOPInstanceUID")::STRING) AS sop_instance_uid,
    (IFF(IS_ARRAY(metadata:"SeriesInstanceUID"), metadata:"SeriesInstanceUID"[0], metadata:"SeriesInstanceUID")::STRING) AS series_instance_uid,
    (IFF(IS_ARRAY(metadata:"StudyInstanceUID"), metadata:"StudyInstanceUID"[0], metadata:"StudyInstanceUID")::STRING) AS study_instance_uid,
    (IFF(IS_ARRAY(metadata:"SOPClassUID"), metadata:"SOPClassUID"[0], metadata:"SOPClassUID")::STRING) AS sop_class_uid,
    TRY_TO_NUMBER((IFF(IS_ARRAY(metadata:"InstanceNumber"), metadata:"InstanceNumber"[0], metadata:"InstanceNumber")::STRING)) AS instance_number,
    (IFF(IS_ARRAY(metadata:"PatientID"), metadata:"PatientID"[0], metadata:"PatientID")::STRING) AS patient_id,
    (IFF(IS_ARRAY(metadata:"IssuerOfPatientID"), metadata:"IssuerOfPatientID"[0], metadata:"IssuerOfPatientID")::STRING) AS issuer_of_patient_id,
    (IFF(IS_ARRAY(metadata:"PatientName"), metadata:"PatientName"[0], metadata:"PatientName")::STRING) AS patient_name,
    (IFF(IS_ARRAY(metadata:"PatientSex"), metadata:"PatientSex"[0], metadata:"PatientSex")::STRING) AS patient_sex,
    TRY_TO_DATE((IFF(IS_ARRAY(metadata:"PatientBirthDate"), metadata:"PatientBirthDate"[0], metadata:"PatientBirthDate")::STRING), 'YYYYMMDD') AS patient_birth_date,
    (IFF(IS_ARRAY(metadata:"AccessionNumber"), metadata:"AccessionNumber"[0], metadata:"AccessionNumber")::STRING) AS accession_number,
    (IFF(IS_ARRAY(metadata:"StudyID"), metadata:"StudyID"[0], metadata:"StudyID")::STRING) AS study_id,
    TRY_TO_DATE((IFF(IS_ARRAY(metadata:"StudyDate"), metadata:"StudyDate"[0], metadata:"StudyDate")::STRING), 'YYYYMMDD') AS study_date,
    (IFF(IS_ARRAY(metadata:"StudyDescription"), metadata:"StudyDescription"[0], metadata:"StudyDescription")::STRING) AS study_description,
    (IFF(IS_ARRAY(metadata:"ReferringPhysicianName"), metadata:"ReferringPhysicianName"[0], metadata:"ReferringPhysicianName")::STRING) AS referring_physician,
    TRY_TO_NUMBER((IFF(IS_ARRAY(metadata:"SeriesNumber"), metadata:"SeriesNumber"[0], metadata:"SeriesNumber")::STRING)) AS series_number,
    (IFF(IS_ARRAY(metadata:"Modality"), metadata:"Modality"[0], metadata:"Modality")::STRING) AS modality,
    (IFF(IS_ARRAY(metadata:"BodyPartExamined"), metadata:"BodyPartExamined"[0], metadata:"BodyPartExamined")::STRING) AS body_part_examined,
    (IFF(IS_ARRAY(metadata:"SeriesDescription"), metadata:"SeriesDescription"[0], metadata:"SeriesDescription")::STRING) AS series_description,
    (IFF(IS_ARRAY(metadata:"FrameOfReferenceUID"), metadata:"FrameOfReferenceUID"[0], metadata:"FrameOfReferenceUID")::STRING) AS frame_of_reference_uid,
    (IFF(IS_ARRAY(metadata:"Manufacturer"), metadata:"Manufacturer"[0], metadata:"Manufacturer")::STRING) AS manufacturer,
    (IFF(IS_ARRAY(metadata:"ManufacturerModelName"), metadata:"ManufacturerModelName"[0], metadata:"ManufacturerModelName")::STRING) AS manufacturer_model_name,
    (IFF(IS_ARRAY(metadata:"DeviceSerialNumber"), metadata:"DeviceSerialNumber"[0], metadata:"DeviceSerialNumber")::STRING) AS device_serial_number,
    (IFF(IS_ARRAY(metadata:"InstitutionName"), metadata:"InstitutionName"[0], metadata:"InstitutionName")::STRING) AS institution_name,
    (IFF(IS_ARRAY(metadata:"StationName"), metadata:"StationName"[0], metadata:"StationName")::STRING) AS station_name,
    _source_order,
    file_path
FROM dicom_raw
WHERE (IFF(IS_ARRAY(metadata:"SOPInstanceUID"), metadata:"SOPInstanceUID"[0], metadata:"SOPInstanceUID")::STRING) IS NOT NULL AND (IFF(IS_ARRAY(metadata:"SeriesInstanceUID"), metadata:"SeriesInstanceUID"[0], metadata:"SeriesInstanceUID")::STRING) IS NOT NULL AND (IFF(IS_ARRAY(metadata:"StudyInstanceUID"), metadata:"StudyInstanceUID"[0], metadata:"StudyInstanceUID")::STRING) IS NOT NULL
QUALIFY ROW_NUMBER() OVER (PARTITION BY sop_instance_uid ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE DYNAMIC TABLE IF NOT EXISTS dt_dicom_series
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "COMPUTE_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT series_key, study_key, series_instance_uid, series_number, modality, body_part_examined, series_description, frame_of_reference_uid, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY series_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE DYNAMIC TABLE IF NOT EXISTS dt_dicom_study
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "COMPUTE_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT study_key, patient_key, study_instance_uid, accession_number, study_id, study_date, study_description, referring_physician, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY study_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE DYNAMIC TABLE IF NOT EXISTS dt_dicom_patient
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "COMPUTE_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT patient_key, patient_id, issuer_of_patient_id, patient_name, patient_sex, patient_birth_date, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY patient_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE DYNAMIC TABLE IF NOT EXISTS dt_dicom_equipment
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "COMPUTE_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT series_key, manufacturer, manufacturer_model_name, device_serial_number, institution_name, station_name, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY series_key ORDER BY _source_order DESC, file_path DESC) = 1;

