"""Validation views: completeness per study and a summary of counts, orphans (a NULL
foreign key is an orphan), raw-vs-model distinct instances and mean completeness."""

from __future__ import annotations

from loader.warehouse.patterns.names import Names


def validation(names: Names) -> list[str]:
    t = names.table
    counts = ", ".join(
        f"(SELECT count(*) FROM {t(name)}) AS {name.removeprefix('dicom_')}_rows"
        for name in ("dicom_patient", "dicom_study", "dicom_series", "dicom_instance")
    )
    orphans = (
        f"(SELECT count(*) FROM {t('dicom_study')} s LEFT JOIN {t('dicom_patient')} p "
        "ON p.patient_key = s.patient_key WHERE p.patient_key IS NULL) AS orphan_studies, "
        f"(SELECT count(*) FROM {t('dicom_series')} s LEFT JOIN {t('dicom_study')} st "
        "ON st.study_key = s.study_key WHERE st.study_key IS NULL) AS orphan_series, "
        f"(SELECT count(*) FROM {t('dicom_instance')} i LEFT JOIN {t('dicom_series')} s "
        "ON s.series_key = i.series_key WHERE s.series_key IS NULL) AS orphan_instances"
    )
    raw = (
        f"(SELECT count(DISTINCT sop_instance_uid) FROM {t('dicom_raw')}) AS raw_instances, "
        f"(SELECT count(DISTINCT sop_instance_uid) FROM {t('dicom_instance')}) "
        "AS model_instances"
    )
    completeness = (
        f"CREATE OR REPLACE VIEW {t('dicom_study_completeness')} AS\n"
        "SELECT st.study_key, st.study_instance_uid, st.number_of_instances,\n"
        "  count(i.instance_key) AS instances_loaded,\n"
        "  (CASE WHEN st.patient_key IS NULL THEN 0 ELSE 1 END + "
        "CASE WHEN st.study_date IS NULL THEN 0 ELSE 1 END + "
        "CASE WHEN st.accession_number IS NULL THEN 0 ELSE 1 END + "
        "CASE WHEN count(i.instance_key) > 0 THEN 1 ELSE 0 END) / 4.0 AS completeness\n"
        f"FROM {t('dicom_study')} st\n"
        f"LEFT JOIN {t('dicom_series')} se ON se.study_key = st.study_key\n"
        f"LEFT JOIN {t('dicom_instance')} i ON i.series_key = se.series_key\n"
        "GROUP BY st.study_key, st.study_instance_uid, st.number_of_instances, "
        "st.patient_key, st.study_date, st.accession_number"
    )
    summary = (
        f"CREATE OR REPLACE VIEW {t('dicom_validation_summary')} AS\n"
        f"SELECT {counts},\n  {orphans},\n  {raw},\n"
        f"  (SELECT avg(completeness) FROM {t('dicom_study_completeness')}) AS mean_completeness"
    )
    return [completeness, summary]
