-- dicom-loader sql --pattern validation (rendered by `make sql`; do not edit)

USE ROLE "DICOM_LOADER";

CREATE OR REPLACE VIEW dicom_study_completeness AS
SELECT st.study_key, st.study_instance_uid, st.number_of_instances,
  count(i.instance_key) AS instances_loaded,
  (CASE WHEN st.patient_key IS NULL THEN 0 ELSE 1 END + CASE WHEN st.study_date IS NULL THEN 0 ELSE 1 END + CASE WHEN st.accession_number IS NULL THEN 0 ELSE 1 END + CASE WHEN count(i.instance_key) > 0 THEN 1 ELSE 0 END) / 4.0 AS completeness
FROM dicom_study st
LEFT JOIN dicom_series se ON se.study_key = st.study_key
LEFT JOIN dicom_instance i ON i.series_key = se.series_key
GROUP BY st.study_key, st.study_instance_uid, st.number_of_instances, st.patient_key, st.study_date, st.accession_number;

CREATE OR REPLACE VIEW dicom_validation_summary AS
SELECT (SELECT count(*) FROM dicom_patient) AS patient_rows, (SELECT count(*) FROM dicom_study) AS study_rows, (SELECT count(*) FROM dicom_series) AS series_rows, (SELECT count(*) FROM dicom_instance) AS instance_rows,
  (SELECT count(*) FROM dicom_study s LEFT JOIN dicom_patient p ON p.patient_key = s.patient_key WHERE p.patient_key IS NULL) AS orphan_studies, (SELECT count(*) FROM dicom_series s LEFT JOIN dicom_study st ON st.study_key = s.study_key WHERE st.study_key IS NULL) AS orphan_series, (SELECT count(*) FROM dicom_instance i LEFT JOIN dicom_series s ON s.series_key = i.series_key WHERE s.series_key IS NULL) AS orphan_instances,
  (SELECT count(DISTINCT sop_instance_uid) FROM dicom_raw) AS raw_instances, (SELECT count(DISTINCT sop_instance_uid) FROM dicom_instance) AS model_instances,
  (SELECT avg(completeness) FROM dicom_study_completeness) AS mean_completeness;

