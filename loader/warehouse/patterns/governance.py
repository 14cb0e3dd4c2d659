"""Masking policies wherever a PHI value can be: every PHI column of the model and of
the dynamic tables, the PHI attributes of whole headers at every depth
(`dicom_raw.metadata`, the change log's copy, the landed DICOM JSON: a JavaScript UDF
walks them, so RequestingPhysician inside RequestAttributesSequence goes as
PatientName does), and every value column of `dicom_element` rows of PHI attributes
(text, number and date-time alike, nested rows included), with a role that sees clear
values. PHI is every person name (VR PN) and the patient's identifiers.

The policies use IS_ROLE_IN_SESSION. Tasks and dynamic tables read as their owner
role, so that role is granted the PHI role: what the loader's own objects read (a
stream on dicom_raw, a dynamic table's refresh) is never masked, and patient keys
are never computed from masked IDs. Re-deploying updates each policy's body
(ALTER MASKING POLICY … SET BODY); the first deploy creates it.
"""

from __future__ import annotations

from pydicom.datadict import DicomDictionary, tag_for_keyword

from loader.core.identifiers import quoted
from loader.core.model import BY_NAME, ColumnType, phi_columns
from loader.core.model import ColumnType as T
from loader.warehouse.patterns.dynamic_tables import dynamic_table_columns
from loader.warehouse.patterns.names import Names

MASKED = "'***MASKED***'"
_POLICY_TYPES = {T.TEXT: "STRING", T.DATE: "DATE", T.TEXT_ARRAY: "ARRAY"}
_MASKS = {T.TEXT: MASKED, T.DATE: "DATE_TRUNC('YEAR', v)", T.TEXT_ARRAY: "NULL"}
# DICOM keywords whose values are PHI, as dicom_raw.metadata and dicom_element name them,
# at any depth: identifiers, dates of birth, addresses, and the sequences that hold
# another patient's identity (Other Patient IDs, Referenced Patient).
_IDENTIFYING = (
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "ReferencedPatientSequence",
    "PatientAddress",
    "PatientTelephoneNumbers",
)
# Every person name (VR PN) the DICOM dictionary defines: patients', physicians' and
# operators', wherever they sit (RequestingPhysician inside RequestAttributesSequence
# as much as PatientName at the top), as pseudonymisation rewrites every PN.
PERSON_NAMES = tuple(
    sorted(entry[4] for entry in DicomDictionary.values() if entry[0] == "PN" and entry[4])
)
PHI_KEYWORDS = tuple(sorted({*_IDENTIFYING, *PERSON_NAMES}))
# The same attributes as DICOM JSON names them: by tag, in hex.
PHI_TAGS = tuple(f"{tag_for_keyword(k):08X}" for k in PHI_KEYWORDS)
STRIP_FUNCTION = "dicom_phi_strip"
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


def role_statements(names: Names) -> list[str]:
    """The PHI role and the owner's grant of it: run by the role deploy connects as
    (creating a role needs CREATE ROLE on the account; granting it, the role's
    OWNERSHIP or MANAGE GRANTS), before it takes the owner role."""
    return [
        f"CREATE ROLE IF NOT EXISTS {quoted(names.phi_role, '--phi-role')}",
        f"GRANT ROLE {quoted(names.phi_role)} TO ROLE {names.owner()}",
    ]


# The body of dicom_phi_strip: a JavaScript UDF (Snowflake's JavaScript UDFs take a
# VARIANT as a JavaScript value and may recurse; their arguments are upper case).
# A whole header, keyword-keyed (dicom_raw.metadata) or tag-keyed DICOM JSON (the
# landed exports), loses every PHI attribute at every depth, and in DICOM JSON every
# element whose VR is PN, private ones included.
_STRIP_BODY = """
var PHI = {%s};
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
"""


def strip_body() -> str:
    """The JavaScript of dicom_phi_strip, its keys rendered from PHI_KEYWORDS."""
    keys = ", ".join(f'"{k}": 1' for k in (*PHI_KEYWORDS, *PHI_TAGS))
    return _STRIP_BODY % keys


def strip_function(names: Names) -> str:
    """The UDF the header policies call; replaced on every deploy, so a changed list
    of PHI attributes reaches it (its signature never changes)."""
    return (
        f"CREATE OR REPLACE SECURE FUNCTION {names.table(STRIP_FUNCTION)}(V VARIANT)\n"
        "  RETURNS VARIANT LANGUAGE JAVASCRIPT\n"
        f"AS $${strip_body()}$$"
    )


def policies(names: Names) -> list[str]:
    """Every masking policy, created by the owner role."""
    clear = _clear(names)
    statements: list[str] = []
    for column_type, sql_type in _POLICY_TYPES.items():
        statements += _policy(
            policy_name(names, sql_type.lower()),
            f"v {sql_type}",
            sql_type,
            f"CASE WHEN {clear} THEN v ELSE {_MASKS[column_type]} END",
        )
    keywords = ", ".join(f"'{k}'" for k in PHI_KEYWORDS)
    strip = names.table(STRIP_FUNCTION)
    statements.append(strip_function(names))
    for kind in ("metadata", "dicom_json"):
        statements += _policy(
            policy_name(names, kind),
            "v VARIANT",
            "VARIANT",
            f"CASE WHEN {clear} THEN v ELSE {strip}(v) END",
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
    """Everything the owner role creates (role_statements come first, run by the
    role deploy connects as)."""
    return [
        *policies(names),
        *model_masking(names),
        *header_copy_masking(names),
        *dynamic_table_masking(names),
    ]
