"""Masking policies wherever a PHI value can be: every PHI column of the model and of
the dynamic tables, the PHI keys of whole headers (`dicom_raw.metadata`, the change
log's copy, the landed DICOM JSON), and every value column of `dicom_element` rows of
PHI tags (text, number and date-time alike), with a role that sees clear values.

The policies use IS_ROLE_IN_SESSION. Tasks and dynamic tables read as their owner
role, so that role is granted the PHI role: what the loader's own objects read (a
stream on dicom_raw, a dynamic table's refresh) is never masked, and patient keys
are never computed from masked IDs. Re-deploying updates each policy's body
(ALTER MASKING POLICY … SET BODY); the first deploy creates it.
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

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
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ReferringPhysicianName",
    "PatientAddress",
    "PatientTelephoneNumbers",
)
# The same attributes as DICOM JSON names them: by tag, in hex.
PHI_TAGS = tuple(f"{tag_for_keyword(k):08X}" for k in PHI_KEYWORDS)
# dicom_element's value columns: each has a policy of its type, keyed on the row's name.
ELEMENT_VALUES = {
    "value_string": "STRING",
    "value_number": "FLOAT",
    "value_datetime": "TIMESTAMP_NTZ",
}
_ELEMENT_MASKS = {"STRING": MASKED, "FLOAT": "NULL", "TIMESTAMP_NTZ": "NULL"}
# Whole headers outside the model: (table, column, keyed by) — created by other patterns.
HEADER_COPIES = (
    ("dicom_raw_changes", "metadata", "keyword"),  # stream-task's change log
    ("dicom_json_landing", "instance", "tag"),  # batch and snowpipe landing
)


def _clear(names: Names) -> str:
    return f"IS_ROLE_IN_SESSION('{names.phi_role.upper()}')"


def _policy(name: str, signature: str, returns: str, body: str) -> list[str]:
    """Create the policy once; set its body on every deploy, so a change reaches it."""
    return [
        f"CREATE MASKING POLICY IF NOT EXISTS {name} AS ({signature}) RETURNS {returns} ->\n"
        f"  {body}",
        f"ALTER MASKING POLICY {name} SET BODY ->\n  {body}",
    ]


def policy_name(names: Names, kind: str) -> str:
    return names.table(f"dicom_phi_{kind}")


def policies(names: Names) -> list[str]:
    """The PHI role, the owner's grant of it, and every masking policy."""
    clear = _clear(names)
    statements = [
        f"CREATE ROLE IF NOT EXISTS {quoted(names.phi_role, '--phi-role')}",
        f"GRANT ROLE {quoted(names.phi_role)} TO ROLE {quoted(names.owner_role, '--owner-role')}",
    ]
    for column_type, sql_type in _POLICY_TYPES.items():
        statements += _policy(
            policy_name(names, sql_type.lower()),
            f"v {sql_type}",
            sql_type,
            f"CASE WHEN {clear} THEN v ELSE {_MASKS[column_type]} END",
        )
    keywords = ", ".join(f"'{k}'" for k in PHI_KEYWORDS)
    tags = ", ".join(f"'{t}'" for t in PHI_TAGS)
    statements += _policy(
        policy_name(names, "metadata"),
        "v VARIANT",
        "VARIANT",
        f"CASE WHEN {clear} THEN v ELSE OBJECT_DELETE(v, {keywords}) END",
    )
    statements += _policy(
        policy_name(names, "dicom_json"),
        "v VARIANT",
        "VARIANT",
        f"CASE WHEN {clear} THEN v ELSE OBJECT_DELETE(v, {tags}) END",
    )
    for column, sql_type in ELEMENT_VALUES.items():
        statements += _policy(
            policy_name(names, f"element_{column.removeprefix('value_')}"),
            f"v {sql_type}, name STRING",
            sql_type,
            f"CASE WHEN {clear} OR name IS NULL OR name NOT IN ({keywords}) THEN v "
            f"ELSE {_ELEMENT_MASKS[sql_type]} END",
        )
    return statements


def _set(kind: str, table: str, column: str, policy: str, using: str = "") -> str:
    return (
        f"ALTER {kind} IF EXISTS {table} MODIFY COLUMN {column} "
        f"SET MASKING POLICY {policy}{using} FORCE"
    )


def _model_phi_types() -> dict[str, ColumnType]:
    return {
        column: BY_NAME[table].column(column).type
        for table, columns in phi_columns().items()
        for column in columns
    }


def model_masking(names: Names) -> list[str]:
    """Every PHI column of the model, its raw headers and its element values."""
    statements = [
        _set(
            "TABLE",
            names.table(table),
            column,
            policy_name(names, _POLICY_TYPES[BY_NAME[table].column(column).type].lower()),
        )
        for table, columns in phi_columns().items()
        for column in columns
    ]
    statements.append(
        _set("TABLE", names.table("dicom_raw"), "metadata", policy_name(names, "metadata"))
    )
    for column in ELEMENT_VALUES:
        policy = policy_name(names, f"element_{column.removeprefix('value_')}")
        statements.append(
            _set("TABLE", names.table("dicom_element"), column, policy, f" USING ({column}, name)")
        )
    return statements


def header_copy_masking(names: Names) -> list[str]:
    """The copies of whole headers that the batch, snowpipe and stream-task patterns
    keep (IF EXISTS: each pattern creates its own)."""
    kinds = {"keyword": "metadata", "tag": "dicom_json"}
    return [
        _set("TABLE", names.table(table), column, policy_name(names, kinds[keyed]))
        for table, column, keyed in HEADER_COPIES
    ]


def dynamic_table_masking(names: Names) -> list[str]:
    """The PHI columns of the dynamic tables (a replaced dynamic table loses its
    policies, so the dynamic-tables pattern sets them again after each deploy)."""
    types = _model_phi_types()
    return [
        _set(
            "DYNAMIC TABLE",
            names.table(name),
            column,
            policy_name(names, _POLICY_TYPES[types[column]].lower()),
        )
        for name, columns in dynamic_table_columns().items()
        for column in columns
        if column in types
    ]


def governance(names: Names) -> list[str]:
    return [
        *policies(names),
        *model_masking(names),
        *header_copy_masking(names),
        *dynamic_table_masking(names),
    ]
