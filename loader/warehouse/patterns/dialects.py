"""The SQL a pattern needs that differs between Snowflake and DuckDB: reading a value
of `dicom_raw.metadata`, typing it, and walking a DICOM JSON instance. The tests run
the DuckDB rendering of the same logic on a loaded archive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loader.core.model import ColumnType
from loader.core.model import ColumnType as T


@dataclass(frozen=True)
class PatternDialect:
    name: str
    text: Callable[[str], str]  # keyword → its first value as text
    cast: dict[ColumnType, Callable[[str], str]]  # text SQL → typed SQL
    # Now, in UTC, without a time zone: every TIMESTAMP_NTZ the loader writes is UTC,
    # and CURRENT_TIMESTAMP is the session's time zone's.
    now: str


SNOWFLAKE = PatternDialect(
    "snowflake",
    # Each branch casts a path: a VARIANT string cast to STRING is the bare text.
    lambda k: f'IFF(IS_ARRAY(metadata:"{k}"), metadata:"{k}"[0]::STRING, metadata:"{k}"::STRING)',
    {
        T.TEXT: lambda s: s,
        T.INT: lambda s: f"TRY_TO_NUMBER({s})",
        T.DATE: lambda s: f"TRY_TO_DATE({s}, 'YYYYMMDD')",
    },
    "SYSDATE()",
)
DUCKDB = PatternDialect(
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
    "(now() AT TIME ZONE 'UTC')",
)


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
    # timestamp SQL → text as Python's isoformat(timespec="microseconds") writes it,
    # whatever the session's output format (`_source_order` compares these texts)
    timestamp_text: Callable[[str], str]


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
        timestamp_text=lambda s: f"TO_VARCHAR({s}, 'YYYY-MM-DD\"T\"HH24:MI:SS.FF6')",
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
        timestamp_text=lambda s: f"strftime({s}, '%Y-%m-%dT%H:%M:%S.%f')",
    ),
}
