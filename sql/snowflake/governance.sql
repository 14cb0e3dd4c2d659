-- dicom-loader sql --pattern governance (rendered by `make sql`; do not edit)

CREATE ROLE IF NOT EXISTS "DICOM_PHI_READER";

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_string AS (v STRING) RETURNS STRING ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE '***MASKED***' END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_date AS (v DATE) RETURNS DATE ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE DATE_TRUNC('YEAR', v) END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_array AS (v ARRAY) RETURNS ARRAY ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE NULL END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_metadata AS (v VARIANT) RETURNS VARIANT ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') THEN v ELSE OBJECT_DELETE(v, 'PatientID', 'PatientName', 'PatientBirthDate', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') END;

CREATE MASKING POLICY IF NOT EXISTS dicom_phi_element AS (v STRING, name STRING) RETURNS STRING ->
  CASE WHEN IS_ROLE_IN_SESSION('DICOM_PHI_READER') OR name NOT IN ('PatientID', 'PatientName', 'PatientBirthDate', 'OtherPatientIDs', 'OtherPatientIDsSequence', 'OtherPatientNames', 'ReferringPhysicianName', 'PatientAddress', 'PatientTelephoneNumbers') THEN v ELSE '***MASKED***' END;

ALTER TABLE dicom_patient MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE dicom_patient MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE dicom_patient MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER TABLE dicom_patient MODIFY COLUMN other_patient_ids SET MASKING POLICY dicom_phi_array FORCE;

ALTER TABLE dicom_patient MODIFY COLUMN other_patient_names SET MASKING POLICY dicom_phi_array FORCE;

ALTER TABLE dicom_study MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_instance MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_instance MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_instance MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER DYNAMIC TABLE dt_dicom_instance MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_study MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_patient MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_patient MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER DYNAMIC TABLE dt_dicom_patient MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER TABLE dicom_raw MODIFY COLUMN metadata SET MASKING POLICY dicom_phi_metadata FORCE;

ALTER TABLE dicom_element MODIFY COLUMN value_string SET MASKING POLICY dicom_phi_element USING (value_string, name) FORCE;

