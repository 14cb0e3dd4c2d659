"""DICOM JSON exports that Snowflake loads itself: a batch COPY whose rejected rows are
all recorded, Snowpipe auto-ingest per cloud, and the conversion of landed instances
into `dicom_raw` rows as the loader writes them."""

from __future__ import annotations

from pydicom.datadict import DicomDictionary

from loader.errors import ConfigError
from loader.identifiers import identifier, quoted
from loader.warehouse.patterns.dialects import JSON_OPS
from loader.warehouse.patterns.names import ERROR_COLUMNS, Names


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
        _copy_into_landing(names, "$dicom_batch") + "\nON_ERROR = CONTINUE",
        f"INSERT INTO {t('dicom_ingestion_errors')} ({ERROR_COLUMNS})\n"
        "SELECT FILE || '#' || CAST(ROW_NUMBER AS VARCHAR), 'PARSE_ERROR', ERROR, NULL, "
        f"CURRENT_TIMESTAMP, NULL, $dicom_batch, CURRENT_TIMESTAMP\n"
        f"FROM TABLE(VALIDATE({landing}, JOB_ID => '_last'))",
        converted_instances(
            "snowflake", landing, t("dicom_raw"), dictionary, "l.batch_id = $dicom_batch"
        ),
    ]


def _copy_into_landing(names: Names, batch_id: str) -> str:
    """The COPY of the exports stage into the landing table, each row with `batch_id`."""
    t = names.table
    return (
        f"COPY INTO {t('dicom_json_landing')} (file_path, row_number, instance, batch_id, "
        "loaded_at)\n"
        f"FROM (SELECT METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, $1, {batch_id}, "
        f"CURRENT_TIMESTAMP FROM @{t('dicom_exports')})\n"
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
        + _copy_into_landing(names, "'snowpipe:' || METADATA$FILENAME"),
        f"CREATE STREAM IF NOT EXISTS {stream} ON TABLE {landing} APPEND_ONLY = TRUE",
        f"CREATE TASK IF NOT EXISTS {t('dicom_convert_landed')}\n  WAREHOUSE = {warehouse}\n"
        f"  SCHEDULE = '{names.schedule}'\n"
        f"  WHEN SYSTEM$STREAM_HAS_DATA('{stream.replace(chr(34), '')}')\nAS\n"
        + converted_instances("snowflake", stream, t("dicom_raw"), t("dicom_dictionary"), "TRUE"),
        f"CREATE TASK IF NOT EXISTS {t('dicom_record_rejected_files')}\n"
        f"  WAREHOUSE = {warehouse}\n  SCHEDULE = '{names.schedule}'\nAS\n"
        f"INSERT INTO {t('dicom_ingestion_errors')} ({ERROR_COLUMNS})\n"
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
