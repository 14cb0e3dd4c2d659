"""Snowflake SQL for keeping a migrated archive current and governed:
`dicom-loader sql --pattern P` prints it, `dicom-loader deploy --pattern P` runs it.

- `dynamic-tables`: cascading dynamic tables over `dicom_raw`: instances (one row per
  SOP Instance UID) → series, studies, patients and equipment. Each keeps the row of
  the greatest `_source_order` (then file path) per natural key, the loader's own rule,
  and computes keys with the loader's expression (DESIGN.md "Keys"), so dynamic-table
  rows join loader rows. No CURRENT_TIMESTAMP or other volatile function in a body:
  every table can refresh incrementally.
- `stream-task`: a stream on `dicom_raw` and a task tree: the root (gated by
  SYSTEM$STREAM_HAS_DATA) moves new rows into a change log; each child reads its own
  stream on the log, never a time window: error routing (every category SQL can
  detect, once per object) and the CDC MERGE of amended studies. Children are
  resumed before the root.
- `governance`: masking policies on every PHI column of the model (and on the PHI
  keys of `dicom_raw.metadata`, and element values of PHI tags), with a role that sees
  clear values.
- `validation`: a validation-summary view: counts, orphans (a NULL foreign key is an
  orphan), completeness per study, raw-vs-model distinct counts.

The dynamic tables' columns are declared once and rendered for Snowflake and for
DuckDB; the tests run the DuckDB rendering on a loaded archive. Identifiers are
validated and quoted before any SQL exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import DicomDictionary

from loader.errors import ConfigError
from loader.identifiers import identifier, quoted
from loader.keys import sql_key
from loader.model import BY_NAME, ColumnType, phi_columns
from loader.model import ColumnType as T

_STAGE_URL = re.compile(r"(s3|gcs|azure)://[A-Za-z0-9._/-]+")
PATTERNS = ("batch", "dynamic-tables", "stream-task", "snowpipe", "governance", "validation")
DT_PREFIX = "dt_"


@dataclass(frozen=True)
class Names:
    """Where the patterns go and what runs them; every name a plain identifier."""

    database: str | None = None
    schema: str | None = None
    warehouse: str = "COMPUTE_WH"
    lag: str = "10 minutes"
    phi_role: str = "DICOM_PHI_READER"
    schedule: str = "5 MINUTE"
    stage_url: str | None = None  # where exports land: s3://, gcs:// or azure://
    storage_integration: str | None = None
    notification_integration: str | None = None

    def __post_init__(self) -> None:
        for what, name in (
            ("--database", self.database),
            ("--schema", self.schema),
            ("--warehouse", self.warehouse),
            ("--phi-role", self.phi_role),
            ("--storage-integration", self.storage_integration),
            ("--notification-integration", self.notification_integration),
        ):
            if name is not None:
                identifier(name, what)
        number, _, unit = self.lag.partition(" ")
        if not number.isdigit() or unit.rstrip("s") not in ("second", "minute", "hour", "day"):
            raise ConfigError(f"--lag {self.lag!r} is not like '10 minutes'")
        if self.stage_url is not None and not _STAGE_URL.fullmatch(self.stage_url):
            raise ConfigError(
                f"--stage-url {self.stage_url!r} is not an s3://, gcs:// or azure:// URL"
            )
        number, _, unit = self.schedule.partition(" ")
        if not number.isdigit() or unit.upper() not in ("MINUTE", "MINUTES", "SECONDS", "HOURS"):
            raise ConfigError(f"--schedule {self.schedule!r} is not like '5 MINUTE'")

    def table(self, name: str) -> str:
        parts = [p for p in (self.database, self.schema) if p]
        return ".".join([*(quoted(p) for p in parts), name])


@dataclass(frozen=True)
class Field:
    """A dynamic-table column read from `dicom_raw.metadata` (first value of a
    multi-valued element), typed as the model types it."""

    column: str
    keyword: str
    type: ColumnType = T.TEXT


INSTANCE_FIELDS = (
    Field("sop_instance_uid", "SOPInstanceUID"),
    Field("series_instance_uid", "SeriesInstanceUID"),
    Field("study_instance_uid", "StudyInstanceUID"),
    Field("sop_class_uid", "SOPClassUID"),
    Field("instance_number", "InstanceNumber", T.INT),
    Field("patient_id", "PatientID"),
    Field("issuer_of_patient_id", "IssuerOfPatientID"),
    Field("patient_name", "PatientName"),
    Field("patient_sex", "PatientSex"),
    Field("patient_birth_date", "PatientBirthDate", T.DATE),
    Field("accession_number", "AccessionNumber"),
    Field("study_id", "StudyID"),
    Field("study_date", "StudyDate", T.DATE),
    Field("study_description", "StudyDescription"),
    Field("referring_physician", "ReferringPhysicianName"),
    Field("series_number", "SeriesNumber", T.INT),
    Field("modality", "Modality"),
    Field("body_part_examined", "BodyPartExamined"),
    Field("series_description", "SeriesDescription"),
    Field("frame_of_reference_uid", "FrameOfReferenceUID"),
    Field("manufacturer", "Manufacturer"),
    Field("manufacturer_model_name", "ManufacturerModelName"),
    Field("device_serial_number", "DeviceSerialNumber"),
    Field("institution_name", "InstitutionName"),
    Field("station_name", "StationName"),
)
# Each level: its key, the instance columns it keeps, the table it reads.
LEVELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dicom_series": (
        "series_key",
        (
            *("study_key", "series_instance_uid", "series_number", "modality"),
            *("body_part_examined", "series_description", "frame_of_reference_uid"),
        ),
    ),
    "dicom_study": (
        "study_key",
        (
            *("patient_key", "study_instance_uid", "accession_number", "study_id"),
            *("study_date", "study_description", "referring_physician"),
        ),
    ),
    "dicom_patient": (
        "patient_key",
        ("patient_id", "issuer_of_patient_id", "patient_name", "patient_sex", "patient_birth_date"),
    ),
    "dicom_equipment": (
        "series_key",
        (
            *("manufacturer", "manufacturer_model_name", "device_serial_number"),
            *("institution_name", "station_name"),
        ),
    ),
}
MASKED = "'***MASKED***'"


@dataclass(frozen=True)
class Dialect:
    name: str
    text: Callable[[str], str]  # keyword → its first value as text
    cast: dict[ColumnType, Callable[[str], str]]  # text SQL → typed SQL


SNOWFLAKE = Dialect(
    "snowflake",
    lambda k: f'(IFF(IS_ARRAY(metadata:"{k}"), metadata:"{k}"[0], metadata:"{k}")::STRING)',
    {
        T.TEXT: lambda s: s,
        T.INT: lambda s: f"TRY_TO_NUMBER({s})",
        T.DATE: lambda s: f"TRY_TO_DATE({s}, 'YYYYMMDD')",
    },
)
DUCKDB = Dialect(
    "duckdb",
    lambda k: (
        f"(CASE WHEN json_type(metadata, '$.\"{k}\"') = 'ARRAY' "
        f"THEN json_extract_string(metadata, '$.\"{k}\"[0]') "
        f"ELSE json_extract_string(metadata, '$.\"{k}\"') END)"
    ),
    {
        T.TEXT: lambda s: s,
        T.INT: lambda s: f"TRY_CAST({s} AS BIGINT)",
        T.DATE: lambda s: f"CAST(try_strptime({s}, '%Y%m%d') AS DATE)",
    },
)


def _winner(key: str) -> str:
    """The loader's rule: greatest _source_order wins, then file path."""
    order = "_source_order DESC, file_path DESC"
    return f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {order}) = 1"


def instance_select(dialect: Dialect, raw: str) -> str:
    """One row per SOP Instance UID of `raw`, with the keys of every level."""
    text = {f.column: dialect.text(f.keyword) for f in INSTANCE_FIELDS}
    columns = [f"{dialect.cast[f.type](text[f.column])} AS {f.column}" for f in INSTANCE_FIELDS]
    keys = {
        "instance_key": sql_key(dialect.name, text["sop_instance_uid"]),
        "series_key": sql_key(dialect.name, text["series_instance_uid"]),
        "study_key": sql_key(dialect.name, text["study_instance_uid"]),
        "patient_key": sql_key(dialect.name, text["patient_id"], text["issuer_of_patient_id"]),
    }
    required = " AND ".join(
        f"{text[c]} IS NOT NULL"
        for c in ("sop_instance_uid", "series_instance_uid", "study_instance_uid")
    )
    return (
        "SELECT\n    "
        + ",\n    ".join([*(f"{sql} AS {name}" for name, sql in keys.items()), *columns])
        + ",\n    _source_order,\n    file_path\n"
        + f"FROM {raw}\nWHERE {required}\n{_winner('sop_instance_uid')}"
    )


def level_select(level: str, instances: str) -> str:
    key, columns = LEVELS[level]
    listed = ", ".join([key, *columns, "_source_order", "file_path"])
    return f"SELECT {listed}\nFROM {instances}\n{_winner(key)}"


def dynamic_tables(names: Names) -> list[str]:
    instances = names.table(f"{DT_PREFIX}dicom_instance")
    bodies = {f"{DT_PREFIX}dicom_instance": instance_select(SNOWFLAKE, names.table("dicom_raw"))}
    for level in LEVELS:
        bodies[f"{DT_PREFIX}{level}"] = level_select(level, instances)
    return [
        f"CREATE DYNAMIC TABLE IF NOT EXISTS {names.table(name)}\n"
        f"  TARGET_LAG = '{names.lag}'\n  WAREHOUSE = {quoted(names.warehouse)}\n"
        f"  REFRESH_MODE = INCREMENTAL\nAS\n{body}"
        for name, body in bodies.items()
    ]


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
    for name, dt_columns in _dynamic_table_columns().items():
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


def _dynamic_table_columns() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {
        f"{DT_PREFIX}dicom_instance": tuple(f.column for f in INSTANCE_FIELDS)
    }
    found.update({f"{DT_PREFIX}{level}": columns for level, (_, columns) in LEVELS.items()})
    return found


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


def _text(dialect: Dialect, keyword: str, row: str = "r") -> str:
    return dialect.text(keyword).replace("metadata", f"{row}.metadata")


def routed_errors(dialect: Dialect, changes: str, raw: str, errors: str, batch: str) -> str:
    """Error rows for the changed raw rows `changes`, of every category SQL can tell
    from a header (validation, duplicate, type cast, referential), each object and
    category at most once: rows `errors` already holds are not routed again.
    `batch` is the SQL of the routing run's id."""
    keywords = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
    uid = {k: _text(dialect, k) for k in keywords}
    missing = " OR ".join(f"{sql} IS NULL" for sql in uid.values())
    other = {k: _text(dialect, k, "o") for k in keywords}
    date = _text(dialect, "StudyDate")
    found = [
        "SELECT r.file_path, 'VALIDATION_ERROR' AS error_category, "
        "'missing SOPInstanceUID, SeriesInstanceUID or StudyInstanceUID' AS error_message, "
        f"CAST(NULL AS VARCHAR) AS tag FROM {changes} r WHERE {missing}",
        f"SELECT r.file_path, 'DUPLICATE', 'SOP Instance UID ' || {uid['SOPInstanceUID']} "
        f"|| ' is loaded from another object', '00080018' FROM {changes} r "
        f"WHERE EXISTS (SELECT 1 FROM {raw} o "
        f"WHERE {other['SOPInstanceUID']} = {uid['SOPInstanceUID']} "
        "AND (o._source_order > r._source_order OR "
        "(o._source_order = r._source_order AND o.file_path > r.file_path)))",
        "SELECT r.file_path, 'TYPE_CAST_ERROR', 'StudyDate value is not valid', '00080020' "
        f"FROM {changes} r WHERE {date} IS NOT NULL AND {dialect.cast[T.DATE](date)} IS NULL",
        f"SELECT r.file_path, 'REFERENTIAL_ERROR', 'series ' || {uid['SeriesInstanceUID']} "
        f"|| ' belongs to more than one study', '0020000E' FROM {changes} r "
        f"WHERE EXISTS (SELECT 1 FROM {raw} o "
        f"WHERE {other['SeriesInstanceUID']} = {uid['SeriesInstanceUID']} "
        f"AND {other['StudyInstanceUID']} <> {uid['StudyInstanceUID']})",
    ]
    union = "\nUNION ALL\n".join(found)
    return (
        f"INSERT INTO {errors} (file_path, error_category, error_message, tag, detected_at, "
        "bytes_read, _run_id, _loaded_at)\n"
        "SELECT DISTINCT f.file_path, f.error_category, f.error_message, f.tag, "
        f"CURRENT_TIMESTAMP, NULL, {batch}, CURRENT_TIMESTAMP\n"
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


def study_merge(dialect: Dialect, changes: str, study: str) -> str:
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
        f"  FROM {changes} r WHERE {identified}\n  {_winner('study_key')}"
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
    warehouse = quoted(names.warehouse)
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
        f"CREATE TASK IF NOT EXISTS {root}\n  WAREHOUSE = {warehouse}\n"
        f"  SCHEDULE = '{names.schedule}'\n"
        f"  WHEN SYSTEM$STREAM_HAS_DATA('{raw_stream.replace(chr(34), '')}')\nAS\n"
        f"INSERT INTO {log} (file_path, metadata, _source_order, _run_id, batch_id, captured_at)\n"
        f"SELECT file_path, metadata, _source_order, _run_id, {batch}, CURRENT_TIMESTAMP\n"
        f"FROM {raw_stream} WHERE METADATA$ACTION = 'INSERT'",
    ]
    for task, (stream, body) in children.items():
        statements.append(
            f"CREATE TASK IF NOT EXISTS {t(task)}\n  WAREHOUSE = {warehouse}\n"
            f"  AFTER {root}\nAS\n{body(t(stream))}"
        )
    statements += [f"ALTER TASK {t(task)} RESUME" for task in children]
    statements.append(f"ALTER TASK {root} RESUME")
    return statements


@dataclass(frozen=True)
class JsonOps:
    """How a dialect walks a DICOM JSON instance's attributes (`f.key`, `f.value`)."""

    each: Callable[[str], str]  # instance SQL → FROM item yielding f.key, f.value
    field: Callable[[str], str]  # "Value" → that field of f.value, as JSON
    text: Callable[[str], str]  # "vr" → that field of f.value, as text
    size: str  # how many values f.value's Value holds
    first: str  # f.value's first value, as JSON
    name_group: Callable[[str], str]  # "Alphabetic" → that group of the first name
    attribute: Callable[[str], str]  # tag → the instance's first value of it, as text
    binary: Callable[[str, str], str]  # (VR SQL, length SQL) → {"vr", "length"}
    json_text: Callable[[str], str]  # text SQL → a JSON string
    group: Callable[[str, str], str]  # (key SQL, value SQL) → their object
    null: str  # JSON null


JSON_OPS = {
    "snowflake": JsonOps(
        each=lambda i: f"LATERAL FLATTEN(input => {i}) f",
        field=lambda k: f'f.value:"{k}"',
        text=lambda k: f'f.value:"{k}"::STRING',
        size='ARRAY_SIZE(f.value:"Value")',
        first='f.value:"Value"[0]',
        name_group=lambda g: f'f.value:"Value"[0]:"{g}"::STRING',
        attribute=lambda tag: f'l.instance:"{tag}":"Value"[0]::STRING',
        binary=lambda vr, n: f"OBJECT_CONSTRUCT_KEEP_NULL('vr', {vr}, 'length', {n})",
        json_text=lambda s: f"TO_VARIANT({s})",
        group=lambda k, v: f"OBJECT_AGG({k}, {v})",
        null="PARSE_JSON('null')",
    ),
    "duckdb": JsonOps(
        each=lambda i: f"json_each({i}) f",
        field=lambda k: f"json_extract(f.value, '$.{k}')",
        text=lambda k: f"json_extract_string(f.value, '$.{k}')",
        size="json_array_length(f.value, '$.Value')",
        first="json_extract(f.value, '$.Value[0]')",
        name_group=lambda g: f"json_extract_string(f.value, '$.Value[0].{g}')",
        attribute=lambda tag: f"json_extract_string(l.instance, '$.\"{tag}\".Value[0]')",
        binary=lambda vr, n: f"json_object('vr', {vr}, 'length', {n})",
        json_text=lambda s: f"to_json({s})",
        group=lambda k, v: f"json_group_object({k}, {v})",
        null="'null'::JSON",
    ),
}


def converted_instances(dialect: str, landing: str, raw: str, dictionary: str, where: str) -> str:
    """INSERT of one batch's landed DICOM JSON instances into `raw` as the loader
    writes them: attributes keyed by keyword (the dictionary table; private tags by
    hex), one value a scalar and several an array, person names as "A=I=P" (several
    names keep the first), binary values as {"vr", "length"} (a BulkDataURI's length
    null), sequences as their DICOM JSON items; the File Meta group and what follows
    Pixel Data left out, as the binary path leaves them. `where` picks the landed
    rows (a batch's)."""
    j = JSON_OPS[dialect]
    inline, vr = j.text("InlineBinary"), j.text("vr")
    padding = f"LENGTH({inline}) - LENGTH(REGEXP_REPLACE({inline}, '=+$', ''))"
    length = f"FLOOR(LENGTH({inline}) / 4) * 3 - ({padding})"
    groups = ", ".join(
        f"COALESCE({j.name_group(g)}, '')" for g in ("Alphabetic", "Ideographic", "Phonetic")
    )
    name = f"REGEXP_REPLACE(CONCAT_WS('=', {groups}), '=+$', '')"
    value = (
        f"CASE WHEN {inline} IS NOT NULL THEN {j.binary(vr, length)}\n"
        f"    WHEN {j.text('BulkDataURI')} IS NOT NULL THEN {j.binary(vr, 'NULL')}\n"
        f"    WHEN {j.size} IS NULL OR {j.size} = 0 THEN {j.null}\n"
        f"    WHEN {vr} = 'SQ' THEN {j.field('Value')}\n"
        f"    WHEN {vr} = 'PN' THEN {j.json_text(name)}\n"
        f"    WHEN {j.size} = 1 THEN {j.first} ELSE {j.field('Value')} END"
    )
    path = "l.file_path || '#' || CAST(l.row_number AS VARCHAR)"
    return (
        f"INSERT INTO {raw} (file_path, metadata, ingested_at, sop_instance_uid, "
        "file_size_bytes, header_bytes, transfer_syntax_uid, _source_order, _run_id, _loaded_at)\n"
        f"SELECT {path},\n  {j.group('COALESCE(d.keyword, f.key)', value)},\n"
        f"  max(l.loaded_at), max({j.attribute('00080018')}), NULL, NULL, "
        f"max({j.attribute('00020010')}),\n"
        f"  max(CAST(l.loaded_at AS VARCHAR) || chr(92) || {path}), l.batch_id, max(l.loaded_at)\n"
        f"FROM {landing} l, {j.each('l.instance')}\n"
        f"LEFT JOIN {dictionary} d ON d.tag = f.key\n"
        f"WHERE ({where}) AND f.key NOT LIKE '0002%' AND f.key < '7FE00008'\n"
        "GROUP BY l.file_path, l.row_number, l.batch_id"
    )


def dictionary_rows() -> list[tuple[str, str]]:
    """(tag, keyword) of every public tag of the DICOM dictionary pydicom carries."""
    return sorted((f"{tag:08X}", entry[4]) for tag, entry in DicomDictionary.items() if entry[4])


def batch(names: Names) -> list[str]:
    """JSON exports that Snowflake copies itself: stage and file format, landing table
    (change tracking on, a per-run batch id in a session variable), COPY that rejects
    nothing silently (every rejected row into dicom_ingestion_errors through VALIDATE),
    then the instances converted into dicom_raw, where the stream and tasks take them."""
    t = names.table
    landing, dictionary = t("dicom_json_landing"), t("dicom_dictionary")
    values = ", ".join(f"('{tag}', '{keyword}')" for tag, keyword in dictionary_rows())
    return [
        f"CREATE FILE FORMAT IF NOT EXISTS {t('dicom_json_format')} TYPE = JSON "
        "STRIP_OUTER_ARRAY = TRUE",
        _exports_stage(names),
        f"CREATE TABLE IF NOT EXISTS {landing} (file_path VARCHAR, row_number NUMBER, "
        "instance VARIANT, batch_id VARCHAR, loaded_at TIMESTAMP_NTZ) CHANGE_TRACKING = TRUE",
        f"CREATE OR REPLACE TABLE {dictionary} (tag VARCHAR, keyword VARCHAR) AS "
        f"SELECT column1, column2 FROM VALUES {values}",
        "SET dicom_batch = UUID_STRING()",
        f"COPY INTO {landing} (file_path, row_number, instance, batch_id, loaded_at)\n"
        f"FROM (SELECT METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, $1, $dicom_batch, "
        f"CURRENT_TIMESTAMP FROM @{t('dicom_exports')})\n"
        f"FILE_FORMAT = (FORMAT_NAME = {t('dicom_json_format')})\nON_ERROR = CONTINUE",
        f"INSERT INTO {t('dicom_ingestion_errors')} (file_path, error_category, error_message, "
        "tag, detected_at, bytes_read, _run_id, _loaded_at)\n"
        "SELECT FILE || '#' || CAST(ROW_NUMBER AS VARCHAR), 'PARSE_ERROR', ERROR, NULL, "
        f"CURRENT_TIMESTAMP, NULL, $dicom_batch, CURRENT_TIMESTAMP\n"
        f"FROM TABLE(VALIDATE({landing}, JOB_ID => '_last'))",
        converted_instances(
            "snowflake", landing, t("dicom_raw"), dictionary, "l.batch_id = $dicom_batch"
        ),
    ]


def _exports_stage(names: Names) -> str:
    stage = names.table("dicom_exports")
    fmt = f"FILE_FORMAT = (FORMAT_NAME = {names.table('dicom_json_format')})"
    if not names.stage_url:
        return f"CREATE STAGE IF NOT EXISTS {stage} {fmt}"
    integration = quoted(names.storage_integration or "", "--storage-integration")
    return (
        f"CREATE STAGE IF NOT EXISTS {stage} URL = '{names.stage_url}' "
        f"STORAGE_INTEGRATION = {integration} {fmt}"
    )


def snowpipe(names: Names) -> list[str]:
    """Auto-ingest of exports as they land in the bucket: S3 through the pipe's SQS
    queue (SNS or bucket notifications point at it), Azure Blob through an Event Grid
    notification integration, GCS through a Pub/Sub notification integration. A
    stream on the landing table and a task convert new instances into dicom_raw;
    another task records files the pipe rejected (COPY_HISTORY), once each."""
    if not names.stage_url:
        raise ConfigError("snowpipe needs --stage-url (and --storage-integration)")
    t = names.table
    landing, warehouse = t("dicom_json_landing"), quoted(names.warehouse)
    scheme = names.stage_url.split("://", 1)[0]
    integration = ""
    if scheme in ("azure", "gcs"):
        if not names.notification_integration:
            raise ConfigError(f"a {scheme}:// pipe needs --notification-integration")
        integration = f" INTEGRATION = '{identifier(names.notification_integration).upper()}'"
    stream = t("dicom_landing_stream")
    return [
        *batch(names)[:4],
        f"CREATE PIPE IF NOT EXISTS {t('dicom_exports_pipe')} AUTO_INGEST = TRUE{integration} AS\n"
        f"COPY INTO {landing} (file_path, row_number, instance, batch_id, loaded_at)\n"
        "FROM (SELECT METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, $1, "
        f"'snowpipe:' || METADATA$FILENAME, CURRENT_TIMESTAMP FROM @{t('dicom_exports')})\n"
        f"FILE_FORMAT = (FORMAT_NAME = {t('dicom_json_format')})",
        f"CREATE STREAM IF NOT EXISTS {stream} ON TABLE {landing} APPEND_ONLY = TRUE",
        f"CREATE TASK IF NOT EXISTS {t('dicom_convert_landed')}\n  WAREHOUSE = {warehouse}\n"
        f"  SCHEDULE = '{names.schedule}'\n"
        f"  WHEN SYSTEM$STREAM_HAS_DATA('{stream.replace(chr(34), '')}')\nAS\n"
        + converted_instances("snowflake", stream, t("dicom_raw"), t("dicom_dictionary"), "TRUE"),
        f"CREATE TASK IF NOT EXISTS {t('dicom_record_rejected_files')}\n"
        f"  WAREHOUSE = {warehouse}\n  SCHEDULE = '{names.schedule}'\nAS\n"
        f"INSERT INTO {t('dicom_ingestion_errors')} (file_path, error_category, error_message, "
        "tag, detected_at, bytes_read, _run_id, _loaded_at)\n"
        "SELECT h.file_name, 'PARSE_ERROR', h.first_error_message, NULL, CURRENT_TIMESTAMP, "
        "NULL, 'snowpipe', CURRENT_TIMESTAMP\n"
        "FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'DICOM_JSON_LANDING', "
        "START_TIME => DATEADD(HOUR, -24, CURRENT_TIMESTAMP()))) h\n"
        "WHERE h.status <> 'Loaded' AND NOT EXISTS (SELECT 1 FROM "
        f"{t('dicom_ingestion_errors')} e WHERE e.file_path = h.file_name "
        "AND e.error_category = 'PARSE_ERROR')",
        f"ALTER TASK {t('dicom_convert_landed')} RESUME",
        f"ALTER TASK {t('dicom_record_rejected_files')} RESUME",
    ]


RENDERERS: dict[str, Callable[[Names], list[str]]] = {
    "batch": batch,
    "dynamic-tables": dynamic_tables,
    "stream-task": stream_task,
    "snowpipe": snowpipe,
    "governance": governance,
    "validation": validation,
}


EXAMPLE = Names(  # for the files: the session's database and schema, example bucket
    stage_url="s3://your-bucket/dicom-exports/", storage_integration="DICOM_EXPORTS_INT"
)


def render_file(pattern: str) -> str:
    """sql/snowflake/<pattern>.sql: the pattern with the session's database and schema
    (and, for a bucket, example names: `sql --pattern` renders yours)."""
    statements = render(pattern, EXAMPLE)
    header = f"-- dicom-loader sql --pattern {pattern} (rendered by `make sql`; do not edit)\n\n"
    return header + "".join(f"{statement};\n\n" for statement in statements)


def file_name(pattern: str) -> str:
    return pattern.replace("-", "_") + ".sql"


def write_sql_files(folder: str) -> None:
    """Write every pattern's file into `folder` (`make sql`)."""
    for pattern in PATTERNS:
        Path(folder, file_name(pattern)).write_text(render_file(pattern))


def render(pattern: str, names: Names) -> list[str]:
    """The statements of `pattern` (or of every pattern: "all"; snowpipe only with a
    stage URL), in deploy order."""
    if pattern == "all":
        chosen = [p for p in PATTERNS if p != "snowpipe" or names.stage_url]
        return [s for name in chosen for s in RENDERERS[name](names)]
    if pattern not in RENDERERS:
        raise ConfigError(f"unknown pattern {pattern!r}: one of {', '.join(PATTERNS)}, all")
    return RENDERERS[pattern](names)
