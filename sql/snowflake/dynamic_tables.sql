-- dicom-loader sql --pattern dynamic-tables (rendered by `make sql`; do not edit)

CREATE ROLE IF NOT EXISTS "DICOM_PHI_READER";

GRANT ROLE "DICOM_PHI_READER" TO ROLE "DICOM_LOADER";

USE ROLE "DICOM_LOADER";

CREATE OR REPLACE DYNAMIC TABLE dt_dicom_instance
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "DICOM_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT
    MD5_NUMBER_LOWER64(coalesce(CAST(IFF(IS_ARRAY(metadata:"SOPInstanceUID"), metadata:"SOPInstanceUID"[0]::STRING, metadata:"SOPInstanceUID"::STRING) AS VARCHAR), '')) AS instance_key,
    MD5_NUMBER_LOWER64(coalesce(CAST(IFF(IS_ARRAY(metadata:"SeriesInstanceUID"), metadata:"SeriesInstanceUID"[0]::STRING, metadata:"SeriesInstanceUID"::STRING) AS VARCHAR), '')) AS series_key,
    MD5_NUMBER_LOWER64(coalesce(CAST(IFF(IS_ARRAY(metadata:"StudyInstanceUID"), metadata:"StudyInstanceUID"[0]::STRING, metadata:"StudyInstanceUID"::STRING) AS VARCHAR), '')) AS study_key,
    MD5_NUMBER_LOWER64(coalesce(CAST(IFF(IS_ARRAY(metadata:"PatientID"), metadata:"PatientID"[0]::STRING, metadata:"PatientID"::STRING) AS VARCHAR), '') || chr(92) || coalesce(CAST(IFF(IS_ARRAY(metadata:"IssuerOfPatientID"), metadata:"IssuerOfPatientID"[0]::STRING, metadata:"IssuerOfPatientID"::STRING) AS VARCHAR), '')) AS patient_key,
    IFF(IS_ARRAY(metadata:"SOPInstanceUID"), metadata:"SOPInstanceUID"[0]::STRING, metadata:"SOPInstanceUID"::STRING) AS sop_instance_uid,
    IFF(IS_ARRAY(metadata:"SeriesInstanceUID"), metadata:"SeriesInstanceUID"[0]::STRING, metadata:"SeriesInstanceUID"::STRING) AS series_instance_uid,
    IFF(IS_ARRAY(metadata:"StudyInstanceUID"), metadata:"StudyInstanceUID"[0]::STRING, metadata:"StudyInstanceUID"::STRING) AS study_instance_uid,
    IFF(IS_ARRAY(metadata:"SOPClassUID"), metadata:"SOPClassUID"[0]::STRING, metadata:"SOPClassUID"::STRING) AS sop_class_uid,
    TRY_TO_NUMBER(IFF(IS_ARRAY(metadata:"InstanceNumber"), metadata:"InstanceNumber"[0]::STRING, metadata:"InstanceNumber"::STRING)) AS instance_number,
    IFF(IS_ARRAY(metadata:"PatientID"), metadata:"PatientID"[0]::STRING, metadata:"PatientID"::STRING) AS patient_id,
    IFF(IS_ARRAY(metadata:"IssuerOfPatientID"), metadata:"IssuerOfPatientID"[0]::STRING, metadata:"IssuerOfPatientID"::STRING) AS issuer_of_patient_id,
    IFF(IS_ARRAY(metadata:"PatientName"), metadata:"PatientName"[0]::STRING, metadata:"PatientName"::STRING) AS patient_name,
    IFF(IS_ARRAY(metadata:"PatientSex"), metadata:"PatientSex"[0]::STRING, metadata:"PatientSex"::STRING) AS patient_sex,
    TRY_TO_DATE(IFF(IS_ARRAY(metadata:"PatientBirthDate"), metadata:"PatientBirthDate"[0]::STRING, metadata:"PatientBirthDate"::STRING), 'YYYYMMDD') AS patient_birth_date,
    IFF(IS_ARRAY(metadata:"AccessionNumber"), metadata:"AccessionNumber"[0]::STRING, metadata:"AccessionNumber"::STRING) AS accession_number,
    IFF(IS_ARRAY(metadata:"StudyID"), metadata:"StudyID"[0]::STRING, metadata:"StudyID"::STRING) AS study_id,
    TRY_TO_DATE(IFF(IS_ARRAY(metadata:"StudyDate"), metadata:"StudyDate"[0]::STRING, metadata:"StudyDate"::STRING), 'YYYYMMDD') AS study_date,
    IFF(IS_ARRAY(metadata:"StudyDescription"), metadata:"StudyDescription"[0]::STRING, metadata:"StudyDescription"::STRING) AS study_description,
    IFF(IS_ARRAY(metadata:"ReferringPhysicianName"), metadata:"ReferringPhysicianName"[0]::STRING, metadata:"ReferringPhysicianName"::STRING) AS referring_physician,
    TRY_TO_NUMBER(IFF(IS_ARRAY(metadata:"SeriesNumber"), metadata:"SeriesNumber"[0]::STRING, metadata:"SeriesNumber"::STRING)) AS series_number,
    IFF(IS_ARRAY(metadata:"Modality"), metadata:"Modality"[0]::STRING, metadata:"Modality"::STRING) AS modality,
    IFF(IS_ARRAY(metadata:"BodyPartExamined"), metadata:"BodyPartExamined"[0]::STRING, metadata:"BodyPartExamined"::STRING) AS body_part_examined,
    IFF(IS_ARRAY(metadata:"SeriesDescription"), metadata:"SeriesDescription"[0]::STRING, metadata:"SeriesDescription"::STRING) AS series_description,
    IFF(IS_ARRAY(metadata:"FrameOfReferenceUID"), metadata:"FrameOfReferenceUID"[0]::STRING, metadata:"FrameOfReferenceUID"::STRING) AS frame_of_reference_uid,
    IFF(IS_ARRAY(metadata:"Manufacturer"), metadata:"Manufacturer"[0]::STRING, metadata:"Manufacturer"::STRING) AS manufacturer,
    IFF(IS_ARRAY(metadata:"ManufacturerModelName"), metadata:"ManufacturerModelName"[0]::STRING, metadata:"ManufacturerModelName"::STRING) AS manufacturer_model_name,
    IFF(IS_ARRAY(metadata:"DeviceSerialNumber"), metadata:"DeviceSerialNumber"[0]::STRING, metadata:"DeviceSerialNumber"::STRING) AS device_serial_number,
    IFF(IS_ARRAY(metadata:"InstitutionName"), metadata:"InstitutionName"[0]::STRING, metadata:"InstitutionName"::STRING) AS institution_name,
    IFF(IS_ARRAY(metadata:"StationName"), metadata:"StationName"[0]::STRING, metadata:"StationName"::STRING) AS station_name,
    _source_order,
    file_path
FROM dicom_raw
WHERE IFF(IS_ARRAY(metadata:"SOPInstanceUID"), metadata:"SOPInstanceUID"[0]::STRING, metadata:"SOPInstanceUID"::STRING) IS NOT NULL AND IFF(IS_ARRAY(metadata:"SeriesInstanceUID"), metadata:"SeriesInstanceUID"[0]::STRING, metadata:"SeriesInstanceUID"::STRING) IS NOT NULL AND IFF(IS_ARRAY(metadata:"StudyInstanceUID"), metadata:"StudyInstanceUID"[0]::STRING, metadata:"StudyInstanceUID"::STRING) IS NOT NULL AND deleted_at IS NULL
QUALIFY ROW_NUMBER() OVER (PARTITION BY sop_instance_uid ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE OR REPLACE DYNAMIC TABLE dt_dicom_series
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "DICOM_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT series_key, study_key, series_instance_uid, series_number, modality, body_part_examined, series_description, frame_of_reference_uid, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY series_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE OR REPLACE DYNAMIC TABLE dt_dicom_study
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "DICOM_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT study_key, patient_key, study_instance_uid, accession_number, study_id, study_date, study_description, referring_physician, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY study_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE OR REPLACE DYNAMIC TABLE dt_dicom_patient
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "DICOM_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT patient_key, patient_id, issuer_of_patient_id, patient_name, patient_sex, patient_birth_date, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY patient_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE OR REPLACE DYNAMIC TABLE dt_dicom_equipment
  TARGET_LAG = '10 minutes'
  WAREHOUSE = "DICOM_WH"
  REFRESH_MODE = INCREMENTAL
AS
SELECT series_key, manufacturer, manufacturer_model_name, device_serial_number, institution_name, station_name, _source_order, file_path
FROM dt_dicom_instance
QUALIFY ROW_NUMBER() OVER (PARTITION BY series_key ORDER BY _source_order DESC, file_path DESC) = 1;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_string AS (v STRING) RETURNS STRING ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE '***MASKED***' END;

ALTER MASKING POLICY dicom_phi_string SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE '***MASKED***' END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_date AS (v DATE) RETURNS DATE ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE DATE_TRUNC('YEAR', v) END;

ALTER MASKING POLICY dicom_phi_date SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE DATE_TRUNC('YEAR', v) END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_array AS (v ARRAY) RETURNS ARRAY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE NULL END;

ALTER MASKING POLICY dicom_phi_array SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE NULL END;

CREATE OR REPLACE SECURE FUNCTION dicom_phi_strip(V VARIANT)
  RETURNS VARIANT LANGUAGE JAVASCRIPT
AS $$
var PHI = {"ConsultingPhysicianName": 1, "ContentCreatorName": 1, "CurrentObserverTrial": 1, "DistributionName": 1, "DocumentAuthorTrial": 1, "EvaluatorName": 1, "HumanPerformerName": 1, "InterpretationAuthor": 1, "InterpretationRecorder": 1, "InterpretationTranscriber": 1, "NameOfPhysiciansReadingStudy": 1, "NamesOfIntendedRecipientsOfResults": 1, "OperatorsName": 1, "OrderEnteredBy": 1, "OtherPatientIDs": 1, "OtherPatientIDsSequence": 1, "OtherPatientNames": 1, "PatientAddress": 1, "PatientBirthDate": 1, "PatientBirthName": 1, "PatientBirthTime": 1, "PatientID": 1, "PatientMotherBirthName": 1, "PatientName": 1, "PatientTelephoneNumbers": 1, "PerformingPhysicianName": 1, "PersonName": 1, "PhysicianApprovingInterpretation": 1, "PhysiciansOfRecord": 1, "ROIInterpreter": 1, "ReferencedPatientSequence": 1, "ReferringPhysicianName": 1, "RequestingPhysician": 1, "ResponsiblePerson": 1, "ReviewerName": 1, "ScheduledPerformingPhysicianName": 1, "SecondaryReviewerName": 1, "SelectorPNValue": 1, "VerbalSourceTrial": 1, "VerifyingObserverName": 1, "0008009C": 1, "00700084": 1, "0040A307": 1, "40080119": 1, "0040A067": 1, "00142006": 1, "00404037": 1, "4008010C": 1, "40080102": 1, "4008010A": 1, "00081060": 1, "00401010": 1, "00081070": 1, "00402008": 1, "00101000": 1, "00101002": 1, "00101001": 1, "00101040": 1, "00100030": 1, "00101005": 1, "00100032": 1, "00100020": 1, "00101060": 1, "00100010": 1, "00102154": 1, "00081050": 1, "0040A123": 1, "40080114": 1, "00081048": 1, "300600A6": 1, "00081120": 1, "00080090": 1, "00321032": 1, "00102297": 1, "300E0008": 1, "00400006": 1, "00140104": 1, "0072006A": 1, "0040A352": 1, "0040A075": 1};
function strip(value) {
  if (Array.isArray(value)) {
    return value.map(strip);
  }
  if (value === null || typeof value !== "object") {
    return value;
  }
  var kept = {};
  for (var key in value) {
    var member = value[key];
    var personName = member !== null && typeof member === "object" && member.vr === "PN";
    if (!PHI.hasOwnProperty(key) && !personName) {
      kept[key] = strip(member);
    }
  }
  return kept;
}
return V === undefined ? V : strip(V);
$$;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_metadata AS (v VARIANT) RETURNS VARIANT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE dicom_phi_strip(v) END;

ALTER MASKING POLICY dicom_phi_metadata SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE dicom_phi_strip(v) END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_dicom_json AS (v VARIANT) RETURNS VARIANT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE dicom_phi_strip(v) END;

ALTER MASKING POLICY dicom_phi_dicom_json SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE dicom_phi_strip(v) END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element_string AS (v STRING, name STRING) RETURNS STRING ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('ConsultingPhysicianName', 'ContentCreatorName', 'CurrentObserverTrial', 'DistributionName', 'DocumentAuthorTrial', 'EvaluatorName', 'HumanPerformerName', 'InterpretationAuthor', 'InterpretationRecorder', 'InterpretationTranscriber', 'NameOfPhysiciansReadingStudy', 'NamesOfIntendedRecipientsOfResults', 'OperatorsName', 'OrderEnteredBy', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientAddress', 'PatientBirthDate', 'PatientBirthName', 'PatientBirthTime', 'PatientID', 'PatientMotherBirthName', 'PatientName', 'PatientTelephoneNumbers', 'PerformingPhysicianName', 'PersonName', 'PhysicianApprovingInterpretation', 'PhysiciansOfRecord', 'ROIInterpreter', 'ReferencedPatientSequence', 'ReferringPhysicianName', 'RequestingPhysician', 'ResponsiblePerson', 'ReviewerName', 'ScheduledPerformingPhysicianName', 'SecondaryReviewerName', 'SelectorPNValue', 'VerbalSourceTrial', 'VerifyingObserverName') THEN v ELSE '***MASKED***' END;

ALTER MASKING POLICY dicom_phi_element_string SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('ConsultingPhysicianName', 'ContentCreatorName', 'CurrentObserverTrial', 'DistributionName', 'DocumentAuthorTrial', 'EvaluatorName', 'HumanPerformerName', 'InterpretationAuthor', 'InterpretationRecorder', 'InterpretationTranscriber', 'NameOfPhysiciansReadingStudy', 'NamesOfIntendedRecipientsOfResults', 'OperatorsName', 'OrderEnteredBy', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientAddress', 'PatientBirthDate', 'PatientBirthName', 'PatientBirthTime', 'PatientID', 'PatientMotherBirthName', 'PatientName', 'PatientTelephoneNumbers', 'PerformingPhysicianName', 'PersonName', 'PhysicianApprovingInterpretation', 'PhysiciansOfRecord', 'ROIInterpreter', 'ReferencedPatientSequence', 'ReferringPhysicianName', 'RequestingPhysician', 'ResponsiblePerson', 'ReviewerName', 'ScheduledPerformingPhysicianName', 'SecondaryReviewerName', 'SelectorPNValue', 'VerbalSourceTrial', 'VerifyingObserverName') THEN v ELSE '***MASKED***' END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element_number AS (v FLOAT, name STRING) RETURNS FLOAT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('ConsultingPhysicianName', 'ContentCreatorName', 'CurrentObserverTrial', 'DistributionName', 'DocumentAuthorTrial', 'EvaluatorName', 'HumanPerformerName', 'InterpretationAuthor', 'InterpretationRecorder', 'InterpretationTranscriber', 'NameOfPhysiciansReadingStudy', 'NamesOfIntendedRecipientsOfResults', 'OperatorsName', 'OrderEnteredBy', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientAddress', 'PatientBirthDate', 'PatientBirthName', 'PatientBirthTime', 'PatientID', 'PatientMotherBirthName', 'PatientName', 'PatientTelephoneNumbers', 'PerformingPhysicianName', 'PersonName', 'PhysicianApprovingInterpretation', 'PhysiciansOfRecord', 'ROIInterpreter', 'ReferencedPatientSequence', 'ReferringPhysicianName', 'RequestingPhysician', 'ResponsiblePerson', 'ReviewerName', 'ScheduledPerformingPhysicianName', 'SecondaryReviewerName', 'SelectorPNValue', 'VerbalSourceTrial', 'VerifyingObserverName') THEN v ELSE NULL END;

ALTER MASKING POLICY dicom_phi_element_number SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('ConsultingPhysicianName', 'ContentCreatorName', 'CurrentObserverTrial', 'DistributionName', 'DocumentAuthorTrial', 'EvaluatorName', 'HumanPerformerName', 'InterpretationAuthor', 'InterpretationRecorder', 'InterpretationTranscriber', 'NameOfPhysiciansReadingStudy', 'NamesOfIntendedRecipientsOfResults', 'OperatorsName', 'OrderEnteredBy', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientAddress', 'PatientBirthDate', 'PatientBirthName', 'PatientBirthTime', 'PatientID', 'PatientMotherBirthName', 'PatientName', 'PatientTelephoneNumbers', 'PerformingPhysicianName', 'PersonName', 'PhysicianApprovingInterpretation', 'PhysiciansOfRecord', 'ROIInterpreter', 'ReferencedPatientSequence', 'ReferringPhysicianName', 'RequestingPhysician', 'ResponsiblePerson', 'ReviewerName', 'ScheduledPerformingPhysicianName', 'SecondaryReviewerName', 'SelectorPNValue', 'VerbalSourceTrial', 'VerifyingObserverName') THEN v ELSE NULL END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element_datetime AS (v TIMESTAMP_NTZ, name STRING) RETURNS TIMESTAMP_NTZ ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('ConsultingPhysicianName', 'ContentCreatorName', 'CurrentObserverTrial', 'DistributionName', 'DocumentAuthorTrial', 'EvaluatorName', 'HumanPerformerName', 'InterpretationAuthor', 'InterpretationRecorder', 'InterpretationTranscriber', 'NameOfPhysiciansReadingStudy', 'NamesOfIntendedRecipientsOfResults', 'OperatorsName', 'OrderEnteredBy', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientAddress', 'PatientBirthDate', 'PatientBirthName', 'PatientBirthTime', 'PatientID', 'PatientMotherBirthName', 'PatientName', 'PatientTelephoneNumbers', 'PerformingPhysicianName', 'PersonName', 'PhysicianApprovingInterpretation', 'PhysiciansOfRecord', 'ROIInterpreter', 'ReferencedPatientSequence', 'ReferringPhysicianName', 'RequestingPhysician', 'ResponsiblePerson', 'ReviewerName', 'ScheduledPerformingPhysicianName', 'SecondaryReviewerName', 'SelectorPNValue', 'VerbalSourceTrial', 'VerifyingObserverName') THEN v ELSE NULL END;

ALTER MASKING POLICY dicom_phi_element_datetime SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('ConsultingPhysicianName', 'ContentCreatorName', 'CurrentObserverTrial', 'DistributionName', 'DocumentAuthorTrial', 'EvaluatorName', 'HumanPerformerName', 'InterpretationAuthor', 'InterpretationRecorder', 'InterpretationTranscriber', 'NameOfPhysiciansReadingStudy', 'NamesOfIntendedRecipientsOfResults', 'OperatorsName', 'OrderEnteredBy', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientAddress', 'PatientBirthDate', 'PatientBirthName', 'PatientBirthTime', 'PatientID', 'PatientMotherBirthName', 'PatientName', 'PatientTelephoneNumbers', 'PerformingPhysicianName', 'PersonName', 'PhysicianApprovingInterpretation', 'PhysiciansOfRecord', 'ROIInterpreter', 'ReferencedPatientSequence', 'ReferringPhysicianName', 'RequestingPhysician', 'ResponsiblePerson', 'ReviewerName', 'ScheduledPerformingPhysicianName', 'SecondaryReviewerName', 'SelectorPNValue', 'VerbalSourceTrial', 'VerifyingObserverName') THEN v ELSE NULL END;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_study MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_patient MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_patient MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_patient MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

