"""A stream on `dicom_raw` and a task tree: the root (gated by SYSTEM$STREAM_HAS_DATA)
moves new rows into a change log (not the rows an incremental run stamps deleted);
each child reads its own stream on the log, never a time window: error routing
(every category SQL can tell from a header, once per object) and the CDC MERGE of
amended studies. Children resume before the root.

A re-deploy suspends the root, replaces every task (so a changed body reaches it)
and resumes them; streams and the change log are created once, so their offsets
and rows survive it."""

from __future__ import annotations

from loader.core.errors import Category
from loader.core.identifiers import quoted
from loader.core.keys import sql_key
from loader.core.model import ColumnType as T
from loader.warehouse.patterns.dialects import SNOWFLAKE, PatternDialect
from loader.warehouse.patterns.dynamic_tables import INSTANCE_FIELDS, winner
from loader.warehouse.patterns.names import ERROR_COLUMNS, Names


def _text(dialect: PatternDialect, keyword: str, row: str = "r") -> str:
    return dialect.text(keyword).replace("metadata", f"{row}.metadata")


def routed_errors(dialect: PatternDialect, changes: str, raw: str, errors: str, batch: str) -> str:
    """Error rows for the changed raw rows `changes`, of every category SQL can tell
    from a header (validation, duplicate, type cast, referential), each object and
    category at most once: rows `errors` already holds are not routed again. Only
    objects still in the archive count as the other copy (`deleted_at` NULL).
    `batch` is the SQL of the routing run's id."""
    keywords = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
    uid = {k: _text(dialect, k) for k in keywords}
    missing = " OR ".join(f"{sql} IS NULL" for sql in uid.values())
    other = {k: _text(dialect, k, "o") for k in keywords}
    date = _text(dialect, "StudyDate")
    found = [
        f"SELECT r.file_path, '{Category.VALIDATION_ERROR}' AS error_category, "
        "'missing SOPInstanceUID, SeriesInstanceUID or StudyInstanceUID' AS error_message, "
        f"CAST(NULL AS VARCHAR) AS tag FROM {changes} r WHERE {missing}",
        f"SELECT r.file_path, '{Category.DUPLICATE}', "
        f"'SOP Instance UID ' || {uid['SOPInstanceUID']} "
        f"|| ' is loaded from another object', '00080018' FROM {changes} r "
        f"WHERE EXISTS (SELECT 1 FROM {raw} o WHERE o.deleted_at IS NULL "
        f"AND {other['SOPInstanceUID']} = {uid['SOPInstanceUID']} "
        "AND (o._source_order > r._source_order OR "
        "(o._source_order = r._source_order AND o.file_path > r.file_path)))",
        f"SELECT r.file_path, '{Category.TYPE_CAST_ERROR}', 'StudyDate value is not valid', "
        "'00080020' "
        f"FROM {changes} r WHERE {date} IS NOT NULL AND {dialect.cast[T.DATE](date)} IS NULL",
        f"SELECT r.file_path, '{Category.REFERENTIAL_ERROR}', "
        f"'series ' || {uid['SeriesInstanceUID']} "
        f"|| ' belongs to more than one study', '0020000E' FROM {changes} r "
        f"WHERE EXISTS (SELECT 1 FROM {raw} o WHERE o.deleted_at IS NULL "
        f"AND {other['SeriesInstanceUID']} = {uid['SeriesInstanceUID']} "
        f"AND {other['StudyInstanceUID']} <> {uid['StudyInstanceUID']})",
    ]
    union = "\nUNION ALL\n".join(found)
    return (
        f"INSERT INTO {errors} ({ERROR_COLUMNS})\n"
        "SELECT DISTINCT f.file_path, f.error_category, f.error_message, f.tag, "
        f"{dialect.now}, NULL, {batch}, {dialect.now}\n"
        f"FROM (\n{union}\n) f\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM {errors} e WHERE e.file_path = f.file_path "
        "AND e.error_category = f.error_category)"
    )


STUDY_CDC = (
    "accession_number",
    "study_id",
    "study_date",
    "study_description",
    "referring_physician",
)


def study_merge(dialect: PatternDialect, changes: str, study: str) -> str:
    """CDC MERGE of amended studies: the newest changed row of each study updates
    every attribute that differs (not only counts) and inserts studies not yet there."""
    fields = {f.column: f for f in INSTANCE_FIELDS}
    columns = [
        f"{dialect.cast[fields[c].type](_text(dialect, fields[c].keyword))} AS {c}"
        for c in STUDY_CDC
    ]
    uid = _text(dialect, "StudyInstanceUID")
    key = sql_key(dialect.name, uid)
    patient = sql_key(
        dialect.name, _text(dialect, "PatientID"), _text(dialect, "IssuerOfPatientID")
    )
    identified = " AND ".join(
        f"{_text(dialect, k)} IS NOT NULL"
        for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
    )
    source = (
        f"SELECT {key} AS study_key, {uid} AS study_instance_uid, {patient} AS patient_key, "
        f"{', '.join(columns)}, r._source_order, r.file_path\n"
        f"  FROM {changes} r WHERE {identified}\n  {winner('study_key')}"
    )
    compared = ("patient_key", *STUDY_CDC)
    changed = " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in compared)
    updates = ", ".join(f"{c} = s.{c}" for c in (*compared, "_source_order"))
    inserted = ("study_key", "study_instance_uid", *compared, "_source_order")
    return (
        f"MERGE INTO {study} t\nUSING (\n  {source}\n) s\nON t.study_key = s.study_key\n"
        f"WHEN MATCHED AND s._source_order >= t._source_order AND ({changed}) THEN\n"
        f"  UPDATE SET {updates}\n"
        f"WHEN NOT MATCHED THEN\n  INSERT ({', '.join(inserted)})\n"
        f"  VALUES ({', '.join(f's.{c}' for c in inserted)})"
    )


def stream_task(names: Names) -> list[str]:
    """A stream on dicom_raw, a root task that moves new rows into a change log
    (gated by SYSTEM$STREAM_HAS_DATA), and child tasks that each read their own stream
    on the log: error routing and the study CDC merge. Children resume first."""
    t = names.table
    warehouse = quoted(names.warehouse_for("stream-task"))
    log, raw_stream, root = t("dicom_raw_changes"), t("dicom_raw_stream"), t("dicom_ingest_changes")
    batch = "SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID')"
    children = {
        "dicom_route_errors": (
            "dicom_changes_for_errors",
            lambda stream: routed_errors(
                SNOWFLAKE, stream, t("dicom_raw"), t("dicom_ingestion_errors"), batch
            ),
        ),
        "dicom_merge_studies": (
            "dicom_changes_for_studies",
            lambda stream: study_merge(SNOWFLAKE, stream, t("dicom_study")),
        ),
    }
    statements = [
        f"CREATE TABLE IF NOT EXISTS {log} (file_path VARCHAR, metadata VARIANT, "
        "_source_order VARCHAR, _run_id VARCHAR, batch_id VARCHAR, captured_at TIMESTAMP_NTZ) "
        "CHANGE_TRACKING = TRUE",
        f"CREATE STREAM IF NOT EXISTS {raw_stream} ON TABLE {t('dicom_raw')} APPEND_ONLY = FALSE",
        *(
            f"CREATE STREAM IF NOT EXISTS {t(stream)} ON TABLE {log} APPEND_ONLY = TRUE"
            for stream, _ in children.values()
        ),
        f"ALTER TASK IF EXISTS {root} SUSPEND",
        f"CREATE OR REPLACE TASK {root}\n  WAREHOUSE = {warehouse}\n"
        f"  SCHEDULE = '{names.schedule}'\n"
        f"  WHEN SYSTEM$STREAM_HAS_DATA('{raw_stream.replace(chr(34), '')}')\nAS\n"
        f"INSERT INTO {log} (file_path, metadata, _source_order, _run_id, batch_id, captured_at)\n"
        f"SELECT file_path, metadata, _source_order, _run_id, {batch}, {SNOWFLAKE.now}\n"
        f"FROM {raw_stream} WHERE METADATA$ACTION = 'INSERT' AND deleted_at IS NULL",
    ]
    for task, (stream, body) in children.items():
        statements.append(
            f"CREATE OR REPLACE TASK {t(task)}\n  WAREHOUSE = {warehouse}\n"
            f"  AFTER {root}\nAS\n{body(t(stream))}"
        )
    statements += [f"ALTER TASK {t(task)} RESUME" for task in children]
    statements.append(f"ALTER TASK {root} RESUME")
    return statements
