"""DICOM JSON exports that Snowflake loads itself: a batch COPY whose rejected rows are
all recorded, Snowpipe auto-ingest per cloud, and the conversion of landed instances
into `dicom_raw` rows as the loader writes them."""

from __future__ import annotations

from pydicom.datadict import DicomDictionary

from loader.core.errors import Category, ConfigError
from loader.core.identifiers import identifier, quoted
from loader.warehouse.patterns.dialects import JSON_OPS
from loader.warehouse.patterns.names import ERROR_COLUMNS, Names


def converted_instances(dialect: str, landing: str, raw: str, dictionary: str, where: str) -> str:
    """INSERT of one batch's landed DICOM JSON instances into `raw` as the loader
    writes them: attributes keyed by keyword (the dictionary table; private tags by
    hex), one value a scalar and several an array, person names as "A=I=P" (several
    names keep the first), binary values as {"vr", "length"} (a BulkDataURI's length
    null), sequences as their DICOM JSON items; the File Meta group and what follows
    Pixel Data left out, as the binary path leaves them. `where` picks the landed
    rows (a batch's). A landed row's `loaded_at` is its file's last-modified time, so
    `_source_order` orders it as the loader orders a file: that time as Python's
    isoformat writes it, a backslash, the path."""
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
    order = f"{j.timestamp_text('l.loaded_at')} || chr(92) || {path}"
    return (
        f"INSERT INTO {raw} (file_path, metadata, ingested_at, sop_instance_uid, "
        "file_size_bytes, header_bytes, transfer_syntax_uid, _source_order, _run_id, _loaded_at)\n"
        f"SELECT {path},\n  {j.group('COALESCE(d.keyword, f.key)', value)},\n"
        f"  max(l.loaded_at), max({j.attribute('00080018')}), NULL, NULL, "
        f"max({j.attribute('00020010')}),\n"
        f"  max({order}), l.batch_id, max(l.loaded_at)\n"
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
    nothing silently, then the instances converted into dicom_raw, where the stream and
    tasks take them.

    VALIDATE cannot follow a COPY that transforms (its usage notes), and the landing
    COPY must (file name, row number). The COPY's own result names every file that
    was not wholly loaded, with its rejected-row count and first error: read with
    RESULT_SCAN right after it, each such file becomes a PARSE_ERROR row. A COPY that
    processed no file (a new stage, every file loaded before) returns one `status`
    column instead of the per-file ones: each result row is read as an object
    (OBJECT_CONSTRUCT(*)), so a missing column is a missing key, never an error.
    Times are SYSDATE(): UTC, as every TIMESTAMP_NTZ the loader writes.

    The COPY commits its rows to the landing table (and its files to the table's load
    metadata, so no later COPY loads them again) before they are converted. So the
    conversion takes every landed batch not yet converted, this one and any whose
    conversion failed before, and records them in `dicom_json_conversions` in the
    same transaction as their rows: a failed conversion leaves its batch landed and
    unrecorded, and the next deploy converts it, once. The table is seeded, when
    created, with the batches already landed, which earlier deploys converted."""
    t = names.table
    landing, dictionary = t("dicom_json_landing"), t("dicom_dictionary")
    conversions = t(CONVERSIONS)
    batches = "l.batch_id NOT LIKE 'snowpipe:%'"  # the pipe's rows: its task converts them
    values = ", ".join(f"('{tag}', '{keyword}')" for tag, keyword in dictionary_rows())
    return [
        f"CREATE FILE FORMAT IF NOT EXISTS {t('dicom_json_format')} TYPE = JSON "
        "STRIP_OUTER_ARRAY = TRUE",
        _exports_stage(names),
        f"CREATE TABLE IF NOT EXISTS {landing} (file_path VARCHAR, row_number NUMBER, "
        "instance VARIANT, batch_id VARCHAR, loaded_at TIMESTAMP_NTZ) CHANGE_TRACKING = TRUE",
        f"CREATE OR REPLACE TABLE {dictionary} (tag VARCHAR, keyword VARCHAR) AS "
        f"SELECT column1, column2 FROM VALUES {values}",
        f"CREATE TABLE IF NOT EXISTS {conversions} AS\n"
        "SELECT DISTINCT l.batch_id, l.batch_id AS converted_in, SYSDATE() AS converted_at\n"
        f"FROM {landing} l WHERE {batches}",
        "SET dicom_batch = UUID_STRING()",
        _copy_into_landing(names, "$dicom_batch") + "\nON_ERROR = CONTINUE",
        f"INSERT INTO {t('dicom_ingestion_errors')} ({ERROR_COLUMNS})\n"
        f"SELECT r:\"file\"::VARCHAR, '{Category.PARSE_ERROR}', r:\"status\"::VARCHAR || ': ' || "
        "r:\"errors_seen\"::VARCHAR || ' rows rejected, first at line ' || "
        "COALESCE(r:\"first_error_line\"::VARCHAR, '?') || ': ' || "
        "COALESCE(r:\"first_error\"::VARCHAR, ''), NULL, SYSDATE(), NULL, $dicom_batch, "
        "SYSDATE()\n"
        "FROM (SELECT OBJECT_CONSTRUCT(*) AS r FROM TABLE(RESULT_SCAN(LAST_QUERY_ID())))\n"
        'WHERE r:"file" IS NOT NULL AND r:"status"::VARCHAR <> \'LOADED\'',
        "BEGIN",
        f"INSERT INTO {conversions} (batch_id, converted_in, converted_at)\n"
        f"SELECT DISTINCT l.batch_id, $dicom_batch, SYSDATE() FROM {landing} l\n"
        f"WHERE {batches} AND l.batch_id NOT IN (SELECT batch_id FROM {conversions})",
        converted_instances(
            "snowflake",
            landing,
            t("dicom_raw"),
            dictionary,
            f"l.batch_id IN (SELECT batch_id FROM {conversions} WHERE converted_in = $dicom_batch)",
        ),
        "COMMIT",
    ]


CONVERSIONS = "dicom_json_conversions"


def _copy_into_landing(names: Names, batch_id: str) -> str:
    """The COPY of the exports stage into the landing table, each row with `batch_id`
    and its file's last-modified time (never CURRENT_TIMESTAMP: in a pipe it is the
    pipe's creation time or the COPY's compile time, hours from the load)."""
    t = names.table
    return (
        f"COPY INTO {t('dicom_json_landing')} (file_path, row_number, instance, batch_id, "
        "loaded_at)\n"
        f"FROM (SELECT METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, $1, {batch_id}, "
        f"METADATA$FILE_LAST_MODIFIED FROM @{t('dicom_exports')})\n"
        f"FILE_FORMAT = (FORMAT_NAME = {t('dicom_json_format')})"
    )


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
    another task keeps one error row per file the pipe did not wholly load
    (rejected_files). The pipe is created once: replacing it would forget which
    files it loaded. The tasks are replaced, so a changed body reaches them."""
    if not names.stage_url:
        raise ConfigError("snowpipe needs --stage-url (and --storage-integration)")
    t = names.table
    landing, warehouse = t("dicom_json_landing"), quoted(names.warehouse_for("snowpipe"))
    scheme = names.stage_url.split("://", 1)[0]
    integration = ""
    if scheme in ("azure", "gcs"):
        if not names.notification_integration:
            raise ConfigError(f"a {scheme}:// pipe needs --notification-integration")
        integration = f" INTEGRATION = '{identifier(names.notification_integration).upper()}'"
    stream = t("dicom_landing_stream")
    return [
        *batch(names)[:4],
        f"CREATE PIPE IF NOT EXISTS {t(PIPE)} AUTO_INGEST = TRUE{integration} AS\n"
        + _copy_into_landing(names, "'snowpipe:' || METADATA$FILENAME"),
        f"CREATE STREAM IF NOT EXISTS {stream} ON TABLE {landing} APPEND_ONLY = TRUE",
        f"ALTER TASK IF EXISTS {t('dicom_convert_landed')} SUSPEND",
        f"ALTER TASK IF EXISTS {t('dicom_record_rejected_files')} SUSPEND",
        f"CREATE OR REPLACE TASK {t('dicom_convert_landed')}\n  WAREHOUSE = {warehouse}\n"
        f"  SCHEDULE = '{names.schedule}'\n"
        f"  WHEN SYSTEM$STREAM_HAS_DATA('{stream.replace(chr(34), '')}')\nAS\n"
        + converted_instances("snowflake", stream, t("dicom_raw"), t("dicom_dictionary"), "TRUE"),
        # No stream tells this task when a file was rejected (it reads COPY_HISTORY):
        # serverless, it costs the seconds it runs, never a warehouse woken on every
        # schedule (CREATE TASK: omit WAREHOUSE).
        f"CREATE OR REPLACE TASK {t('dicom_record_rejected_files')}\n"
        "  USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'\n"
        f"  SCHEDULE = '{names.schedule}'\nAS\n" + rejected_files(names),
        f"ALTER TASK {t('dicom_convert_landed')} RESUME",
        f"ALTER TASK {t('dicom_record_rejected_files')} RESUME",
    ]


PIPE = "dicom_exports_pipe"
REJECTED = ("Load failed", "Partially loaded")


def rejected_files(names: Names) -> str:
    """One PARSE_ERROR row per file the pipe did not wholly load, from COPY_HISTORY:
    only this pipe's files, each at its latest finished load. A file still loading
    is not recorded until its load ends; a file that failed and then loaded has its
    error row removed; a file that failed again has it updated."""
    t = names.table
    database, schema = names.in_schema()
    landing = ".".join(p.upper() for p in (names.database, names.schema) if p)
    landing = f"{landing}.DICOM_JSON_LANDING" if landing else "DICOM_JSON_LANDING"
    catalog = "INFORMATION_SCHEMA"
    if names.database:
        catalog = f"{quoted(names.database)}.{catalog}"
    rejected = ", ".join(f"'{s}'" for s in REJECTED)
    message = (
        "h.status || ': ' || COALESCE(CAST(h.error_count AS VARCHAR), '?') || "
        "' rows rejected, first: ' || COALESCE(h.first_error_message, '')"
    )
    return (
        f"MERGE INTO {t('dicom_ingestion_errors')} e\nUSING (\n"
        "  SELECT h.file_name, h.status, h.error_count, h.first_error_message, h.last_load_time\n"
        f"  FROM TABLE({catalog}.COPY_HISTORY(TABLE_NAME => '{landing}', "
        "START_TIME => DATEADD(HOUR, -24, CURRENT_TIMESTAMP()))) h\n"
        f"  WHERE h.pipe_catalog_name = {database} AND h.pipe_schema_name = {schema}\n"
        f"    AND h.pipe_name = '{PIPE.upper()}'\n"
        f"    AND h.status IN ('Loaded', {rejected})\n"
        "  QUALIFY ROW_NUMBER() OVER (PARTITION BY h.file_name "
        "ORDER BY h.last_load_time DESC) = 1\n"
        f") h\nON e.file_path = h.file_name AND e.error_category = '{Category.PARSE_ERROR}' "
        "AND e._run_id = 'snowpipe'\n"
        "WHEN MATCHED AND h.status = 'Loaded' THEN DELETE\n"
        f"WHEN MATCHED THEN UPDATE SET error_message = {message}, "
        "detected_at = h.last_load_time\n"
        f"WHEN NOT MATCHED AND h.status IN ({rejected}) THEN\n"
        f"  INSERT ({ERROR_COLUMNS})\n"
        f"  VALUES (h.file_name, '{Category.PARSE_ERROR}', {message}, NULL, h.last_load_time, "
        "NULL, 'snowpipe', h.last_load_time)"
    )
