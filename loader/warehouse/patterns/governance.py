"""Masking policies on every PHI column of the model and of the dynamic tables, on the
PHI keys of `dicom_raw.metadata` and on element values of PHI tags, with a role that
sees clear values. The policies use IS_ROLE_IN_SESSION, which dynamic tables support
on their base tables: the role that owns the dynamic tables must hold the PHI role."""

from __future__ import annotations

from loader.identifiers import quoted
from loader.model import BY_NAME, ColumnType, phi_columns
from loader.model import ColumnType as T
from loader.warehouse.patterns.dynamic_tables import dynamic_table_columns
from loader.warehouse.patterns.names import Names

MASKED = "'***MASKED***'"
_POLICY_TYPES = {T.TEXT: "STRING", T.DATE: "DATE", T.TEXT_ARRAY: "ARRAY"}
_MASKS = {T.TEXT: MASKED, T.DATE: "DATE_TRUNC('YEAR', v)", T.TEXT_ARRAY: "NULL"}
# DICOM keywords whose values are PHI, as dicom_raw.metadata and dicom_element name them.
PHI_KEYWORDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "ReferringPhysicianName",
    "PatientAddress",
    "PatientTelephoneNumbers",
)


def governance(names: Names) -> list[str]:
    role = quoted(names.phi_role, "--phi-role")
    clear = f"IS_ROLE_IN_SESSION('{names.phi_role.upper()}')"
    statements = [f"CREATE ROLE IF NOT EXISTS {role}"]
    policies = {}
    for column_type, sql_type in _POLICY_TYPES.items():
        policy = names.table(f"dicom_phi_{sql_type.lower()}")
        policies[column_type] = policy
        statements.append(
            f"CREATE MASKING POLICY IF NOT EXISTS {policy} "
            f"AS (v {sql_type}) RETURNS {sql_type} ->\n"
            f"  CASE WHEN {clear} THEN v ELSE {_MASKS[column_type]} END"
        )
    keys = ", ".join(f"'{k}'" for k in PHI_KEYWORDS)
    statements.append(
        f"CREATE MASKING POLICY IF NOT EXISTS {names.table('dicom_phi_metadata')} "
        f"AS (v VARIANT) RETURNS VARIANT ->\n"
        f"  CASE WHEN {clear} THEN v ELSE OBJECT_DELETE(v, {keys}) END"
    )
    statements.append(
        f"CREATE MASKING POLICY IF NOT EXISTS {names.table('dicom_phi_element')} "
        f"AS (v STRING, name STRING) RETURNS STRING ->\n"
        f"  CASE WHEN {clear} OR name NOT IN ({keys}) THEN v ELSE {MASKED} END"
    )
    types: dict[str, ColumnType] = {}
    for table, columns in phi_columns().items():
        for column in columns:
            types[column] = BY_NAME[table].column(column).type
            statements.append(
                f"ALTER TABLE {names.table(table)} MODIFY COLUMN {column} "
                f"SET MASKING POLICY {policies[types[column]]} FORCE"
            )
    for name, dt_columns in dynamic_table_columns().items():
        for column in dt_columns:
            if column in types:
                statements.append(
                    f"ALTER DYNAMIC TABLE {names.table(name)} MODIFY COLUMN {column} "
                    f"SET MASKING POLICY {policies[types[column]]} FORCE"
                )
    statements.append(
        f"ALTER TABLE {names.table('dicom_raw')} MODIFY COLUMN metadata "
        f"SET MASKING POLICY {names.table('dicom_phi_metadata')} FORCE"
    )
    statements.append(
        f"ALTER TABLE {names.table('dicom_element')} MODIFY COLUMN value_string "
        f"SET MASKING POLICY {names.table('dicom_phi_element')} USING (value_string, name) FORCE"
    )
    return statements
