-- dicom-loader sql --pattern stream-task (rendered by `make sql`; do not edit)

CREATE ROLE IF NOT EXISTS "DICOM_PHI_READER";

GRANT ROLE "DICOM_PHI_READER" TO ROLE "DICOM_LOADER";

USE ROLE "DICOM_LOADER";

CREATE TABLE IF NOT EXISTS dicom_raw_changes (file_path VARCHAR, metadata VARIANT, _source_order VARCHAR, _run_id VARCHAR, batch_id VARCHAR, captured_at TIMESTAMP_NTZ) CHANGE_TRACKING = TRUE;

CREATE STREAM IF NOT EXISTS dicom_raw_stream ON TABLE dicom_raw APPEND_ONLY = FALSE;

CREATE STREAM IF NOT EXISTS dicom_changes_for_errors ON TABLE dicom_raw_changes APPEND_ONLY = TRUE;

CREATE STREAM IF NOT EXISTS dicom_changes_for_studies ON TABLE dicom_raw_changes APPEND_ONLY = TRUE;

ALTER TASK IF EXISTS dicom_ingest_changes SUSPEND;

CREATE OR REPLACE TASK dicom_ingest_changes
  WAREHOUSE = "DICOM_WH"
  SCHEDULE = '5 MINUTE'
  WHEN SYSTEM$STREAM_HAS_DATA('dicom_raw_stream')
AS
INSERT INTO dicom_raw_changes (file_path, metadata, _source_order, _run_id, batch_id, captured_at)
SELECT file_path, metadata, _source_order, _run_id, SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID'), SYSDATE()
FROM dicom_raw_stream WHERE METADATA$ACTION = 'INSERT' AND deleted_at IS NULL;

CREATE OR REPLACE TASK dicom_route_errors
  WAREHOUSE = "DICOM_WH"
  AFTER dicom_ingest_changes
AS
INSERT INTO dicom_ingestion_errors (file_path, error_category, error_message, tag, detected_at, bytes_read, _run_id, _loaded_at)
SELECT DISTINCT f.file_path, f.error_category, f.error_message, f.tag, SYSDATE(), NULL, SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID'), SYSDATE()
FROM (
SELECT r.file_path, 'VALIDATION_ERROR' AS error_category, 'missing SOPInstanceUID, SeriesInstanceUID or StudyInstanceUID' AS error_message, CAST(NULL AS VARCHAR) AS tag FROM dicom_changes_for_errors r WHERE IFF(IS_ARRAY(r.metadata:"SOPInstanceUID"), r.metadata:"SOPInstanceUID"[0]::STRING, r.metadata:"SOPInstanceUID"::STRING) IS NULL OR IFF(IS_ARRAY(r.metadata:"SeriesInstanceUID"), r.metadata:"SeriesInstanceUID"[0]::STRING, r.metadata:"SeriesInstanceUID"::STRING) IS NULL OR IFF(IS_ARRAY(r.metadata:"StudyInstanceUID"), r.metadata:"StudyInstanceUID"[0]::STRING, r.metadata:"StudyInstanceUID"::STRING) IS NULL
UNION ALL
SELECT r.file_path, 'DUPLICATE', 'SOP Instance UID ' || IFF(IS_ARRAY(r.metadata:"SOPInstanceUID"), r.metadata:"SOPInstanceUID"[0]::STRING, r.metadata:"SOPInstanceUID"::STRING) || ' is loaded from another object', '00080018' FROM dicom_changes_for_errors r WHERE EXISTS (SELECT 1 FROM dicom_raw o WHERE o.deleted_at IS NULL AND IFF(IS_ARRAY(o.metadata:"SOPInstanceUID"), o.metadata:"SOPInstanceUID"[0]::STRING, o.metadata:"SOPInstanceUID"::STRING) = IFF(IS_ARRAY(r.metadata:"SOPInstanceUID"), r.metadata:"SOPInstanceUID"[0]::STRING, r.metadata:"SOPInstanceUID"::STRING) AND (o._source_order > r._source_order OR (o._source_order = r._source_order AND o.file_path > r.file_path)))
UNION ALL
SELECT r.file_path, 'TYPE_CAST_ERROR', 'StudyDate value is not valid', '00080020' FROM dicom_changes_for_errors r WHERE IFF(IS_ARRAY(r.metadata:"StudyDate"), r.metadata:"StudyDate"[0]::STRING, r.metadata:"StudyDate"::STRING) IS NOT NULL AND TRY_TO_DATE(IFF(IS_ARRAY(r.metadata:"StudyDate"), r.metadata:"StudyDate"[0]::STRING, r.metadata:"StudyDate"::STRING), 'YYYYMMDD') IS NULL
UNION ALL
SELECT r.file_path, 'REFERENTIAL_ERROR', 'series ' || IFF(IS_ARRAY(r.metadata:"SeriesInstanceUID"), r.metadata:"SeriesInstanceUID"[0]::STRING, r.metadata:"SeriesInstanceUID"::STRING) || ' belongs to more than one study', '0020000E' FROM dicom_changes_for_errors r WHERE EXISTS (SELECT 1 FROM dicom_raw o WHERE o.deleted_at IS NULL AND IFF(IS_ARRAY(o.metadata:"SeriesInstanceUID"), o.metadata:"SeriesInstanceUID"[0]::STRING, o.metadata:"SeriesInstanceUID"::STRING) = IFF(IS_ARRAY(r.metadata:"SeriesInstanceUID"), r.metadata:"SeriesInstanceUID"[0]::STRING, r.metadata:"SeriesInstanceUID"::STRING) AND IFF(IS_ARRAY(o.metadata:"StudyInstanceUID"), o.metadata:"StudyInstanceUID"[0]::STRING, o.metadata:"StudyInstanceUID"::STRING) <> IFF(IS_ARRAY(r.metadata:"StudyInstanceUID"), r.metadata:"StudyInstanceUID"[0]::STRING, r.metadata:"StudyInstanceUID"::STRING))
) f
WHERE NOT EXISTS (SELECT 1 FROM dicom_ingestion_errors e WHERE e.file_path = f.file_path AND e.error_category = f.error_category);

CREATE OR REPLACE TASK dicom_merge_studies
  WAREHOUSE = "DICOM_WH"
  AFTER dicom_ingest_changes
AS
MERGE INTO dicom_study t
USING (
  SELECT MD5_NUMBER_LOWER64(coalesce(CAST(IFF(IS_ARRAY(r.metadata:"StudyInstanceUID"), r.metadata:"StudyInstanceUID"[0]::STRING, r.metadata:"StudyInstanceUID"::STRING) AS VARCHAR), '')) AS study_key, IFF(IS_ARRAY(r.metadata:"StudyInstanceUID"), r.metadata:"StudyInstanceUID"[0]::STRING, r.metadata:"StudyInstanceUID"::STRING) AS study_instance_uid, MD5_NUMBER_LOWER64(coalesce(CAST(IFF(IS_ARRAY(r.metadata:"PatientID"), r.metadata:"PatientID"[0]::STRING, r.metadata:"PatientID"::STRING) AS VARCHAR), '') || chr(92) || coalesce(CAST(IFF(IS_ARRAY(r.metadata:"IssuerOfPatientID"), r.metadata:"IssuerOfPatientID"[0]::STRING, r.metadata:"IssuerOfPatientID"::STRING) AS VARCHAR), '')) AS patient_key, IFF(IS_ARRAY(r.metadata:"AccessionNumber"), r.metadata:"AccessionNumber"[0]::STRING, r.metadata:"AccessionNumber"::STRING) AS accession_number, IFF(IS_ARRAY(r.metadata:"StudyID"), r.metadata:"StudyID"[0]::STRING, r.metadata:"StudyID"::STRING) AS study_id, TRY_TO_DATE(IFF(IS_ARRAY(r.metadata:"StudyDate"), r.metadata:"StudyDate"[0]::STRING, r.metadata:"StudyDate"::STRING), 'YYYYMMDD') AS study_date, IFF(IS_ARRAY(r.metadata:"StudyDescription"), r.metadata:"StudyDescription"[0]::STRING, r.metadata:"StudyDescription"::STRING) AS study_description, IFF(IS_ARRAY(r.metadata:"ReferringPhysicianName"), r.metadata:"ReferringPhysicianName"[0]::STRING, r.metadata:"ReferringPhysicianName"::STRING) AS referring_physician, r._source_order, r.file_path
  FROM dicom_changes_for_studies r WHERE IFF(IS_ARRAY(r.metadata:"SOPInstanceUID"), r.metadata:"SOPInstanceUID"[0]::STRING, r.metadata:"SOPInstanceUID"::STRING) IS NOT NULL AND IFF(IS_ARRAY(r.metadata:"SeriesInstanceUID"), r.metadata:"SeriesInstanceUID"[0]::STRING, r.metadata:"SeriesInstanceUID"::STRING) IS NOT NULL AND IFF(IS_ARRAY(r.metadata:"StudyInstanceUID"), r.metadata:"StudyInstanceUID"[0]::STRING, r.metadata:"StudyInstanceUID"::STRING) IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY study_key ORDER BY _source_order DESC, file_path DESC) = 1
) s
ON t.study_key = s.study_key
WHEN MATCHED AND s._source_order >= t._source_order AND (t.patient_key IS DISTINCT FROM s.patient_key OR t.accession_number IS DISTINCT FROM s.accession_number OR t.study_id IS DISTINCT FROM s.study_id OR t.study_date IS DISTINCT FROM s.study_date OR t.study_description IS DISTINCT FROM s.study_description OR t.referring_physician IS DISTINCT FROM s.referring_physician) THEN
  UPDATE SET patient_key = s.patient_key, accession_number = s.accession_number, study_id = s.study_id, study_date = s.study_date, study_description = s.study_description, referring_physician = s.referring_physician, _source_order = s._source_order
WHEN NOT MATCHED THEN
  INSERT (study_key, study_instance_uid, patient_key, accession_number, study_id, study_date, study_description, referring_physician, _source_order)
  VALUES (s.study_key, s.study_instance_uid, s.patient_key, s.accession_number, s.study_id, s.study_date, s.study_description, s.referring_physician, s._source_order);

ALTER TASK dicom_route_errors RESUME;

ALTER TASK dicom_merge_studies RESUME;

ALTER TASK dicom_ingest_changes RESUME;

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

ALTER TABLE IF EXISTS dicom_raw_changes MODIFY COLUMN metadata SET MASKING POLICY dicom_phi_metadata FORCE;

ALTER TABLE IF EXISTS dicom_json_landing MODIFY COLUMN instance SET MASKING POLICY dicom_phi_dicom_json FORCE;

