"""Validation's checks against a warehouse holding known faults: each count equals
the faults put in, computed by hand from the rows below, on both warehouses; and
which checks fail, including the accounting of a run."""

from __future__ import annotations

import datetime as dt

import pytest

from loader.jobs import validate

MASKED = validate.MASKED_TEXT
CLASS = "1.2.840.10008.5.1.4.1.1.2"
GONE = dt.datetime(2026, 1, 2, 3, 4, 5)

PATIENTS = [  # patient_key, patient_id, patient_name
    (1, "A", "Doe^J"),
    (2, MASKED, "Roe^R"),  # read masked: the session lacks the PHI role
    (3, None, MASKED),
]
STUDIES = [  # study_key, study_instance_uid, patient_key, study_date, accession_number
    (10, "1.1", 1, dt.date(2020, 1, 2), "X1"),
    (11, "1.2", 2, dt.date(2021, 5, 6), None),
    (12, "1.2", 99, None, "X3"),  # a second 1.2; its patient is not there
    (13, "1.4", None, dt.date(2022, 1, 1), "X4"),  # no patient
]
SERIES = [  # series_key, series_instance_uid, study_key, series_number, modality
    (20, "2.1", 10, 1, "CT"),
    (21, "2.2", 11, None, "MR"),
    (22, "2.3", 77, 3, "CT"),  # its study is not there
    (23, "2.1", None, 4, "CT"),  # a second 2.1, without a study
]
INSTANCES = [  # instance_key, sop_instance_uid, series_key, sop_class_uid, number, file, deleted_at
    (30, "3.1", 20, CLASS, 1, "/f/1", None),
    (31, "3.2", 21, None, None, "/f/2", None),
    (32, "3.3", 20, CLASS, 3, "/f/3", None),  # live, and no location at all
    (33, "3.4", 20, CLASS, 4, "/f/4", GONE),  # deleted, yet a live location
    (34, "3.1", 66, CLASS, 5, "/f/5", None),  # a second 3.1; its series is not there
    (35, "3.6", None, CLASS, 6, "/f/6", None),  # no series
    (36, "3.7", 21, CLASS, 7, "/f/7", None),  # live; its file is not among its locations
    (37, "3.8", 20, CLASS, 8, "/f/8", None),  # live; its only location deleted
    (38, "3.9", 20, CLASS, 9, "/f/9", GONE),  # deleted with its locations: as it should
]
LOCATIONS = [  # location_key, instance_key, storage_uri, deleted_at
    (40, 30, "/f/1", None),
    (41, 31, "/f/2", None),
    (42, 33, "/f/4-copy", None),
    (43, 34, "/f/5", None),
    (44, 35, "/f/6", None),
    (45, 36, "/f/other", None),
    (46, 37, "/f/8", GONE),
    (47, 38, "/f/9", GONE),
]


@pytest.fixture
def warehouse(empty_model):
    """Both warehouses (conftest.empty_model), faults put in by each test."""
    return empty_model


def _insert(warehouse, table: str, columns: str, rows: list[tuple]) -> None:
    marks = ", ".join([warehouse.placeholder] * len(rows[0]))
    for row in rows:
        warehouse.query(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row))


def test_each_check_counts_the_faults_the_warehouse_holds(warehouse):
    _insert(warehouse, "dicom_patient", "patient_key, patient_id, patient_name", PATIENTS)
    _insert(
        warehouse,
        "dicom_study",
        "study_key, study_instance_uid, patient_key, study_date, accession_number",
        STUDIES,
    )
    _insert(
        warehouse,
        "dicom_series",
        "series_key, series_instance_uid, study_key, series_number, modality",
        SERIES,
    )
    _insert(
        warehouse,
        "dicom_instance",
        "instance_key, sop_instance_uid, series_key, sop_class_uid, instance_number, "
        "file_path, deleted_at",
        INSTANCES,
    )
    _insert(
        warehouse,
        "dicom_file_location",
        "location_key, instance_key, storage_uri, deleted_at",
        LOCATIONS,
    )
    checks = validate.warehouse_checks(warehouse)
    # Seven live instances; five of them reach a patient through series and study
    # (30, 31, 32, 36, 37), so no share of them is above 5/7.
    assert checks == {
        "total_records": 7,
        "unique_patients": 3,
        "unique_studies": 4,
        "unique_series": 4,
        "earliest_study_date": "2020-01-02",
        "latest_study_date": "2022-01-01",
        "orphan_series": 2,  # 22, 23
        "orphan_instances": 2,  # 34, 35
        "orphan_studies": 2,  # 12, 13
        "duplicate_natural_keys": 3,  # 3.1, 2.1, 1.2
        "deleted_instances": 2,  # 33, 38
        "instances_not_following_their_files": 4,  # 32, 33, 36, 37
        "completeness": {
            "PatientID": round(5 / 7, 4),  # a masked ID is there
            "StudyDate": round(5 / 7, 4),
            "AccessionNumber": round(3 / 7, 4),  # study 11 has none
            "Modality": round(5 / 7, 4),
            "SeriesNumber": round(3 / 7, 4),  # series 21 has none
            "SOPClassUID": round(4 / 7, 4),  # instance 31 has none
            "InstanceNumber": round(4 / 7, 4),
        },
        "masked_phi_rows": 2,  # patients 2 and 3
    }
    assert checks["completeness"]["PatientID"] == 0.7143  # four places, rounded
    assert validate.failed(checks) == [
        "orphan_series",
        "orphan_instances",
        "orphan_studies",
        "duplicate_natural_keys",
        "masked_phi_rows",
        "instances_not_following_their_files",
    ]


def test_an_empty_warehouse_passes_with_nothing_to_measure(warehouse):
    checks = validate.warehouse_checks(warehouse)
    counts = ("total_records", "unique_patients", "unique_studies", "unique_series")
    assert [checks[name] for name in counts] == [0, 0, 0, 0]
    assert checks["deleted_instances"] == 0
    assert checks["earliest_study_date"] is None and checks["latest_study_date"] is None
    assert set(checks["completeness"].values()) == {None}
    assert all(checks[name] == 0 for name in validate.ZERO_CHECKS)
    assert validate.passed(checks)


@pytest.mark.parametrize("term", ["loaded", "duplicates", "error_files", "unchanged", "repeated"])
def test_the_accounting_balances_only_when_every_term_is_counted(term):
    counts = {"loaded": 5, "duplicates": 4, "error_files": 3, "unchanged": 2, "repeated": 1}
    whole = validate.accounting(
        15, counts["loaded"], counts["duplicates"], counts["error_files"], unchanged=2, repeated=1
    )
    assert whole == {
        "listed": 15,
        "loaded": 5,
        "duplicates": 4,
        "error_files": 3,
        "unchanged": 2,
        "repeated_entries": 1,
        "balanced": True,
    }
    less = {**counts, term: counts[term] - 1}
    short = validate.accounting(
        15,
        less["loaded"],
        less["duplicates"],
        less["error_files"],
        unchanged=less["unchanged"],
        repeated=less["repeated"],
    )
    assert not short["balanced"]
    assert validate.failed({"accounting": short}, warehouse=False) == ["accounting"]
    assert validate.passed({"accounting": whole}, warehouse=False)
    # Unchanged objects and repeated entries are none unless counted.
    assert validate.accounting(6, 3, 2, 1)["balanced"]
    assert validate.accounting(6, 3, 2, 1) == {
        **validate.accounting(6, 3, 2, 1, unchanged=0, repeated=0)
    }


def test_a_check_missing_fails_and_a_dicomweb_sources_incomplete_studies_fail():
    clean = {name: 0 for name in validate.ZERO_CHECKS}
    assert validate.passed(clean)
    for name in validate.ZERO_CHECKS:
        missing = {k: v for k, v in clean.items() if k != name}
        assert validate.failed(missing) == [name]
    assert validate.passed({}, warehouse=False)  # a Parquet-only run: no zero checks
    assert not validate.passed({})  # a warehouse's checks, every one missing
    assert validate.failed({**clean, "incomplete_studies": {"count": 2}}) == ["incomplete_studies"]
    assert validate.passed({**clean, "incomplete_studies": {"count": 0}})


def test_an_attribute_no_instance_has_is_complete_for_none_of_them(warehouse):
    """Two live instances whose hierarchy is whole and carries none of the required
    attributes: each share is 0, not a count of one."""
    _insert(warehouse, "dicom_patient", "patient_key", [(1,)])
    _insert(warehouse, "dicom_study", "study_key, patient_key", [(10, 1)])
    _insert(warehouse, "dicom_series", "series_key, study_key", [(20, 10)])
    _insert(warehouse, "dicom_instance", "instance_key, series_key", [(30, 20), (31, 20)])
    checks = validate.warehouse_checks(warehouse)
    assert checks["total_records"] == 2
    assert checks["completeness"] == dict.fromkeys(validate.REQUIRED, 0.0)
