"""Print two example queries over the demo warehouse: studies per modality and
year, and each AI measurement beside the series it measured (README.md gives the
second; tests/test_content_tables.py checks that both say the same)."""

from __future__ import annotations

import sys

import duckdb

QUERY = """
SELECT se.modality,
       year(st.study_date) AS year,
       count(DISTINCT st.study_key) AS studies,
       count(i.instance_key) AS instances,
       any_value(d.metadata->>'$.Manufacturer') AS a_manufacturer
FROM dicom_instance i
JOIN dicom_series se USING (series_key)
JOIN dicom_study st ON st.study_key = se.study_key
JOIN dicom_raw d ON d.file_path = i.file_path
GROUP BY ALL
ORDER BY instances DESC
LIMIT 12
"""


MEASUREMENTS = """
SELECT se.series_description, g.tracking_identifier, g.finding_code_meaning AS finding,
       m.concept_code_meaning AS measurement, m.numeric_value, m.unit_code_value AS unit
FROM dicom_sr_measurement m
JOIN dicom_sr_measurement_group g USING (instance_key, group_path)
JOIN dicom_series se ON se.series_key = g.source_series_key
ORDER BY se.series_description, g.tracking_identifier, measurement
"""


def main(path: str) -> None:
    con = duckdb.connect(path, read_only=True)
    print("Example query: instances per modality and study year")
    print(QUERY.strip())
    con.sql(QUERY).show()
    print("Example query: AI measurements (TID 1500) beside the series they measured")
    print(MEASUREMENTS.strip())
    con.sql(MEASUREMENTS).show(max_rows=12)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "imaging.duckdb")
