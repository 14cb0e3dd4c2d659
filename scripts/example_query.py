"""Print one example query over the demo warehouse: studies per modality and year."""

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


def main(path: str) -> None:
    con = duckdb.connect(path, read_only=True)
    print("Example query: instances per modality and study year")
    print(QUERY.strip())
    con.sql(QUERY).show()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "imaging.duckdb")
