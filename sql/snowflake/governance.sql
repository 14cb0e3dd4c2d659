-- dicom-loader sql --pattern governance (rendered by `make sql`; do not edit)

CREATE ROLE IF NOT EXISTS "DICOM_PHI_READER";

GRANT ROLE "DICOM_PHI_READER" TO ROLE "DICOM_LOADER";

USE ROLE "DICOM_LOADER";

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

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN patient_id SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN patient_name SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN patient_birth_date SET MASKING POLICY dicom_phi_date FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN other_patient_ids SET MASKING POLICY dicom_phi_array FORCE;

ALTER TABLE IF EXISTS dicom_patient MODIFY COLUMN other_patient_names SET MASKING POLICY dicom_phi_array FORCE;

ALTER TABLE IF EXISTS dicom_study MODIFY COLUMN referring_physician SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_sr_content MODIFY COLUMN text_value SET MASKING POLICY dicom_phi_string FORCE;

ALTER TABLE IF EXISTS dicom_sr_content MODIFY COLUMN person_name SET MASKING POLICY dicom_phi_string FORCE;

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

