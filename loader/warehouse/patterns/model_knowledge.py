"""The model described as rows, where users' assistants look a schema up: a table of
every column's type, constraints, DICOM tag and relationships, rendered from
loader/core/model.py, and (Snowflake) a Cortex Search service over it.

Snowflake's imaging skills find the target schema through such a service; DuckDB
users get the same table from `dicom-loader sql --dialect duckdb`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword

from loader.core.model import BY_NAME, DIALECT_TYPES, TABLES, Column, ColumnType, Table
from loader.warehouse.patterns.names import Names

KNOWLEDGE_TABLE = "dicom_model_knowledge"
SEARCH_SERVICE = "dicom_model_search"
KNOWLEDGE_COLUMNS = (
    "table_name",
    "column_name",
    "data_type",
    "constraints",
    "dicom_tag",
    "relationships",
    "table_description",
)
# The natural keys the loader keeps unique (docs/MODEL.md, "Uniqueness and conflicts").
_UNIQUE = {
    ("dicom_patient", "patient_id"): "UNIQUE (patient_id, issuer_of_patient_id)",
    ("dicom_patient", "issuer_of_patient_id"): "UNIQUE (patient_id, issuer_of_patient_id)",
    ("dicom_study", "study_instance_uid"): "UNIQUE",
    ("dicom_series", "series_instance_uid"): "UNIQUE",
    ("dicom_instance", "sop_instance_uid"): "UNIQUE",
}
_TOKEN = re.compile(r"[|+>()]")


def dicom_tag_text(spec: str) -> str | None:
    """A column's `tag` with each keyword's tag before it: `PatientID|OtherPatientIDs`
    → `(0010,0020) PatientID | (0010,1000) OtherPatientIDs`. Words that are not
    keywords (`frame number`) stay as they are; a misspelt keyword is refused."""
    if not spec:
        return None
    parts = []
    for token, separator in zip(_TOKEN.split(spec), [*_TOKEN.findall(spec), ""], strict=True):
        if " " in token or not token:
            parts.append(token)
        else:
            tag = tag_for_keyword(token)
            if tag is None:
                raise ValueError(f"{token!r} is not a DICOM keyword")
            parts.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {token}")
        if separator in "()":
            parts.append(separator)
        else:
            parts.append(f" {separator} ")
    return "".join(parts)


@dataclass(frozen=True)
class KnowledgeRow:
    table_name: str
    column_name: str
    data_type: str
    constraints: str | None
    dicom_tag: str | None
    relationships: str | None
    table_description: str

    def values(self) -> tuple[str | None, ...]:
        return tuple(getattr(self, name) for name in KNOWLEDGE_COLUMNS)


def _constraints(table: Table, column: Column) -> str | None:
    found = []
    if column.name in table.key:
        found.append("PRIMARY KEY" + (f" ({', '.join(table.key)})" if len(table.key) > 1 else ""))
    if (table.name, column.name) in _UNIQUE:
        found.append(_UNIQUE[(table.name, column.name)])
    if column.references:
        found.append(f"FOREIGN KEY REFERENCES {column.references}")
    if column.name in table.computed:
        found.append("computed by the warehouse after each load")
    if column.phi:
        found.append("PHI: masked by the governance pattern")
    return "; ".join(found) or None


def _relationships(table: Table, column: Column) -> str | None:
    found = []
    if column.references:
        target = BY_NAME[column.references]
        many = " (each element)" if column.type is ColumnType.KEY_ARRAY else ""
        found.append(f"references {target.name}.{target.key[0]}{many}")
    if table.key == (column.name,):
        found.extend(
            f"referenced by {other.name}.{c.name}"
            for other in TABLES
            for c in other.columns
            if c.references == table.name
        )
    return "; ".join(found) or None


def knowledge_rows(dialect: str = "snowflake") -> list[KnowledgeRow]:
    """One row per column of every table of the model, in the model's order."""
    types = DIALECT_TYPES[dialect]
    return [
        KnowledgeRow(
            table_name=table.name,
            column_name=column.name,
            data_type=types[column.type],
            constraints=_constraints(table, column),
            dicom_tag=dicom_tag_text(column.tag),
            relationships=_relationships(table, column),
            table_description=table.doc,
        )
        for table in TABLES
        for column in table.columns
    ]


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _insert(verb: str, table: str, dialect: str) -> str:
    rows = ",\n".join(
        "(" + ", ".join(_literal(v) for v in row.values()) + ")" for row in knowledge_rows(dialect)
    )
    return f"{verb} {table} ({', '.join(KNOWLEDGE_COLUMNS)}) VALUES\n{rows}"


def _create(table: str, dialect: str, verb: str, options: str = "") -> str:
    text = DIALECT_TYPES[dialect][ColumnType.TEXT]
    columns = ",\n".join(f"    {name} {text}" for name in KNOWLEDGE_COLUMNS)
    return f"{verb} {table} (\n{columns}\n){options}"


def model_knowledge(names: Names) -> list[str]:
    """Snowflake: the table (change tracking on: Cortex Search reads its changes),
    its rows replaced in one statement, and the search service over it. The
    service is created once; it follows the table's rows within TARGET_LAG."""
    table = names.table(KNOWLEDGE_TABLE)
    searched = " || ' ' || ".join(f"coalesce({c}, '')" for c in KNOWLEDGE_COLUMNS)
    service = (
        f"CREATE CORTEX SEARCH SERVICE IF NOT EXISTS {names.table(SEARCH_SERVICE)}\n"
        "  ON search_text\n"
        "  ATTRIBUTES table_name, column_name, dicom_tag\n"
        f"  WAREHOUSE = {names.warehouse_for('model-knowledge')}\n"
        f"  TARGET_LAG = '{names.lag}'\n"
        f"AS\nSELECT {', '.join(KNOWLEDGE_COLUMNS)},\n  {searched} AS search_text\n"
        f"FROM {table}"
    )
    return [
        _create(table, "snowflake", "CREATE TABLE IF NOT EXISTS", " CHANGE_TRACKING = TRUE"),
        _insert("INSERT OVERWRITE INTO", table, "snowflake"),
        service,
    ]


def duckdb_model_knowledge() -> str:
    """The same table for DuckDB, appended to `dicom-loader sql --dialect duckdb`."""
    statements = [
        _create(KNOWLEDGE_TABLE, "duckdb", "CREATE OR REPLACE TABLE"),
        _insert("INSERT INTO", KNOWLEDGE_TABLE, "duckdb"),
    ]
    header = f"-- {KNOWLEDGE_TABLE}: the model described, one row per column\n"
    return header + "".join(f"{s};\n" for s in statements)
