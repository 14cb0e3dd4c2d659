"""Validation after every run: counts, integrity, completeness, accounting.

The queries are plain SQL over the model, so every warehouse answers them.
"""

from __future__ import annotations

import typing
from typing import Any, Literal, TypedDict

from loader.warehouse.base import Warehouse

# Required attributes of an instance's hierarchy: keyword → column of the join
# of instance (i), series (se), study (st) and patient (p).
REQUIRED = {
    "PatientID": "p.patient_id",
    "StudyDate": "st.study_date",
    "AccessionNumber": "st.accession_number",
    "Modality": "se.modality",
    "SeriesNumber": "se.series_number",
    "SOPClassUID": "i.sop_class_uid",
    "InstanceNumber": "i.instance_number",
}


class Accounting(TypedDict):
    """The invariant of a run's report: every listed entry is accounted for once."""

    listed: int
    loaded: int
    duplicates: int
    error_files: int
    unchanged: int
    repeated_entries: int
    balanced: bool


class Checks(TypedDict, total=False):
    """What validation found. A warehouse's checks (`warehouse_checks`) always have
    the keys down to `masked_phi_rows`; a run adds its accounting, the load's
    conflicts and, for a DICOMweb source, its incomplete studies. A Parquet-only
    run has only the accounting."""

    total_records: int
    unique_patients: int
    unique_studies: int
    unique_series: int
    earliest_study_date: str | None
    latest_study_date: str | None
    orphan_series: int
    orphan_instances: int
    orphan_studies: int
    duplicate_natural_keys: int
    deleted_instances: int
    instances_not_following_their_files: int
    completeness: dict[str, float | None]  # keyword of REQUIRED → share of instances
    masked_phi_rows: int
    accounting: Accounting
    conflicts: dict[str, dict[str, Any]]  # table → natural keys and columns in conflict
    incomplete_studies: dict[str, Any]  # dicomweb.incomplete_studies


# What the governance pattern's text policy returns to a role without the PHI role.
MASKED_TEXT = "***MASKED***"


def _one(warehouse: Warehouse, sql: str) -> Any:
    rows = warehouse.query(sql)
    return rows[0][0] if rows else None


def warehouse_checks(warehouse: Warehouse) -> Checks:
    """Counts, date range, orphans and completeness of what the warehouse holds."""
    instances = int(
        _one(warehouse, "SELECT count(*) FROM dicom_instance WHERE deleted_at IS NULL") or 0
    )
    first, last = warehouse.query("SELECT min(study_date), max(study_date) FROM dicom_study")[0]
    completeness: dict[str, float | None] = {}
    for label, column in REQUIRED.items():
        present = _one(
            warehouse,
            "SELECT count(*) FROM dicom_instance i "
            "JOIN dicom_series se ON se.series_key = i.series_key "
            "JOIN dicom_study st ON st.study_key = se.study_key "
            "JOIN dicom_patient p ON p.patient_key = st.patient_key "
            f"WHERE {column} IS NOT NULL AND i.deleted_at IS NULL",
        )
        completeness[label] = round(int(present or 0) / instances, 4) if instances else None
    return {
        "total_records": instances,
        "unique_patients": int(_one(warehouse, "SELECT count(*) FROM dicom_patient") or 0),
        "unique_studies": int(_one(warehouse, "SELECT count(*) FROM dicom_study") or 0),
        "unique_series": int(_one(warehouse, "SELECT count(*) FROM dicom_series") or 0),
        "earliest_study_date": first.isoformat() if first else None,
        "latest_study_date": last.isoformat() if last else None,
        "orphan_series": int(
            _one(
                warehouse,
                "SELECT count(*) FROM dicom_series se WHERE se.study_key IS NULL OR NOT EXISTS "
                "(SELECT 1 FROM dicom_study st WHERE st.study_key = se.study_key)",
            )
            or 0
        ),
        "orphan_instances": int(
            _one(
                warehouse,
                "SELECT count(*) FROM dicom_instance i WHERE i.series_key IS NULL OR NOT EXISTS "
                "(SELECT 1 FROM dicom_series se WHERE se.series_key = i.series_key)",
            )
            or 0
        ),
        "orphan_studies": int(
            _one(
                warehouse,
                "SELECT count(*) FROM dicom_study st WHERE st.patient_key IS NULL OR NOT EXISTS "
                "(SELECT 1 FROM dicom_patient p WHERE p.patient_key = st.patient_key)",
            )
            or 0
        ),
        "duplicate_natural_keys": int(
            _one(
                warehouse,
                "SELECT (SELECT count(*) - count(DISTINCT sop_instance_uid) FROM dicom_instance) + "
                "(SELECT count(*) - count(DISTINCT series_instance_uid) FROM dicom_series) + "
                "(SELECT count(*) - count(DISTINCT study_instance_uid) FROM dicom_study)",
            )
            or 0
        ),
        "deleted_instances": int(
            _one(warehouse, "SELECT count(*) FROM dicom_instance WHERE deleted_at IS NOT NULL") or 0
        ),
        # An instance is deleted exactly when none of its objects is left, and a live
        # one's loaded file is one of them (warehouse/deletions.py, merge.follow_live_locations).
        "instances_not_following_their_files": int(
            _one(
                warehouse,
                "SELECT count(*) FROM dicom_instance i WHERE (i.deleted_at IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM dicom_file_location l WHERE l.instance_key = i.instance_key "
                "AND l.deleted_at IS NULL)) OR (i.deleted_at IS NULL AND NOT EXISTS ("
                "SELECT 1 FROM dicom_file_location l WHERE l.storage_uri = i.file_path "
                "AND l.instance_key = i.instance_key AND l.deleted_at IS NULL))",
            )
            or 0
        ),
        "completeness": completeness,
        # Rows whose PHI this session reads masked: the loader's MERGE then compares
        # and writes masked values, and its conflicts are not the data's. The role
        # that loads must hold the PHI role (sql/snowflake/README.md, "Governance").
        "masked_phi_rows": int(
            _one(
                warehouse,
                f"SELECT count(*) FROM dicom_patient WHERE patient_id = '{MASKED_TEXT}' "
                f"OR patient_name = '{MASKED_TEXT}'",
            )
            or 0
        ),
    }


def accounting(
    listed: int,
    loaded: int,
    duplicates: int,
    error_files: int,
    *,
    unchanged: int = 0,
    repeated: int = 0,
) -> Accounting:
    """The invariant: every listed entry is a loaded object, a duplicate, an error
    file, (with --incremental) unchanged since an earlier load, or a repeat of an
    entry listed before it in the same listing (read once)."""
    return {
        "listed": listed,
        "loaded": loaded,
        "duplicates": duplicates,
        "error_files": error_files,
        "unchanged": unchanged,
        "repeated_entries": repeated,
        "balanced": listed == loaded + duplicates + error_files + unchanged + repeated,
    }


# Checks that must be zero on a warehouse; a missing one fails, it never passes.
ZeroCheck = Literal[
    "orphan_series",
    "orphan_instances",
    "orphan_studies",
    "duplicate_natural_keys",
    "masked_phi_rows",
    "instances_not_following_their_files",
]
ZERO_CHECKS: tuple[ZeroCheck, ...] = typing.get_args(ZeroCheck)


def failed(checks: Checks, warehouse: bool = True) -> list[str]:
    """The names of the checks that failed: a warehouse's zero checks (when
    `warehouse`: a Parquet-only run has none) and the run's accounting (when the
    checks are a run's), each missing one included."""
    names: list[str] = [n for n in ZERO_CHECKS if checks.get(n) != 0] if warehouse else []
    if "accounting" in checks and not checks["accounting"]["balanced"]:
        names.append("accounting")
    if checks.get("incomplete_studies", {}).get("count"):  # a DICOMweb source's
        names.append("incomplete_studies")
    return names


def passed(checks: Checks, warehouse: bool = True) -> bool:
    return not failed(checks, warehouse)
