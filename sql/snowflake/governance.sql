-- dicom-loader sql --pattern governance (rendered by `make sql`; do not edit)

CREATE ROLE IF NOT EXISTS "DICOM_PHI_READER";

GRANT ROLE "DICOM_PHI_READER" TO ROLE "DICOM_LOADER";

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

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_metadata AS (v VARIANT) RETURNS VARIANT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE OBJECT_DELETE(v, 'PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') END;

ALTER MASKING POLICY dicom_phi_metadata SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE OBJECT_DELETE(v, 'PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_dicom_json AS (v VARIANT) RETURNS VARIANT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE OBJECT_DELETE(v, '00100020', '00100010', '00100030', '00100032', '00101000', '00101002', '00101001', '00101005', '00101060', '00080090', '00101040', '00102154') END;

ALTER MASKING POLICY dicom_phi_dicom_json SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE OBJECT_DELETE(v, '00100020', '00100010', '00100030', '00100032', '00101000', '00101002', '00101001', '00101005', '00101060', '00080090', '00101040', '00102154') END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element_string AS (v STRING, name STRING) RETURNS STRING ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE '***MASKED***' END;

ALTER MASKING POLICY dicom_phi_element_string SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE '***MASKED***' END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element_number AS (v FLOAT, name STRING) RETURNS FLOAT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE NULL END;

ALTER MASKING POLICY dicom_phi_element_number SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE NULL END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element_datetime AS (v TIMESTAMP_NTZ, name STRING) RETURNS TIMESTAMP_NTZ ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE NULL END;

ALTER MASKING POLICY dicom_phi_element_datetime SET BODY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name IS NULL OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientBirthTime', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName', 'PatientMotherBirthName', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE NULL END;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN other_patient_ids SET MASKING POLICY dicom_phi_array FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN other_patient_names SET MASKING POLICY dicom_phi_array FORCE;

ALTER TABLE IF EXISTS dicom_study MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_raw MODIFY COLUMN metadata SET MASKING POLICY dicom_phi_metadata FORCE;

ALTER TABLE IF EXISTS dicom_element MODIFY COLUMN value_string SET MASKING POLICY dicom_phi_element_string USING (value_string, name) FORCE;

ALTER TABLE IF EXISTS dicom_element MODIFY COLUMN value_number SET MASKING POLICY dicom_phi_element_number USING (value_number, name) FORCE;

ALTER TABLE IF EXISTS dicom_element MODIFY COLUMN value_datetime SET MASKING POLICY dicom_phi_element_datetime USING (value_datetime, name) FORCE;

ALTER TABLE IF EXISTS dicom_raw_changes MODIFY COLUMN metadata SET MASKING POLICY dicom_phi_metadata FORCE;

ALTER TABLE IF EXISTS dicom_json_landing MODIFY COLUMN instance SET MASKING POLICY dicom_phi_dicom_json FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_instance MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_study MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_patient MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_patient MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE IF EXISTS dt_dicom_patient MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

