"""The files staged for Snowflake: compacted to a target size, every Parquet type one
that Snowflake documents as loading exactly into the model's column type."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from loader.core.model import BY_NAME, DIALECT_TYPES, EXTRACTED
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.output.location import OutputRoot
from loader.warehouse.snowflake import FILES_PER_COPY, copy_statements
from loader.warehouse.stage_files import compact_table

# Snowflake's Parquet type mapping (sql/snowflake/README.md, "Types staged for
# COPY"): the Parquet physical type and logical type that load exactly into each
# column type of the model, with the file format's USE_LOGICAL_TYPE = TRUE. An
# unsigned INT64 (UINT_64) is in no row: Snowflake rejects values above 2^63 - 1.
DOCUMENTED: dict[str, set[tuple[str, str]]] = {
    "NUMBER(20,0)": {("FIXED_LEN_BYTE_ARRAY", "Decimal(precision=20, scale=0)")},
    "NUMBER(38,0)": {("INT64", "None")},
    "FLOAT": {("DOUBLE", "None")},
    "BOOLEAN": {("BOOLEAN", "None")},
    "DATE": {("INT32", "Date")},
    "TIME": {("INT64", "Time(isAdjustedToUTC=false, timeUnit=microseconds)")},
    "TIMESTAMP_NTZ": {("INT64", "Timestamp(isAdjustedToUTC=false, timeUnit=microseconds")},
    "VARCHAR": {("BYTE_ARRAY", "String")},
    "VARIANT": {("BYTE_ARRAY", "String")},  # JSON text, PARSE_JSON in the COPY
}
ARRAY_ELEMENTS = {
    "text_array": "VARCHAR",
    "float_array": "FLOAT",
    "int_array": "NUMBER(38,0)",
    "key_array": "NUMBER(20,0)",
}


@pytest.fixture(scope="module")
def small_shards(synth_archive, tmp_path_factory):
    """The synth archive written as several small shards (Parquet only)."""
    root, _ = synth_archive
    out = tmp_path_factory.mktemp("stage") / "pq"
    report = run(
        RunSettings(
            source=str(root),
            out=out,
            workers=0,
            shard_size=60,
            run_id="small",
            target=Target.parse("none"),
        )
    )
    assert report["shards"] >= 4
    return OutputRoot.of(out)


def _sources(out: OutputRoot, table: str) -> list[str]:
    return [f"{table}/run_id=small/{n}" for n in out.names(f"{table}/run_id=small", "", ".parquet")]


def _matches(physical: str, logical: str, snowflake_type: str) -> bool:
    return any(
        physical == p and logical.startswith(prefix) for p, prefix in DOCUMENTED[snowflake_type]
    )


def test_every_staged_column_has_a_documented_snowflake_type(small_shards):
    out = small_shards
    for name in EXTRACTED:
        table = BY_NAME[name]
        files = compact_table(out, table, _sources(out, name), f"_t/{name}", 1 << 30)
        assert len(files) == 1
        schema = pq.ParquetFile(out.location(f"_t/{name}/{files[0].name}")).schema
        for i in range(len(schema)):
            column = schema.column(i)
            top = column.path.split(".")[0]
            kind = table.column(top).type
            snowflake_type = DIALECT_TYPES["snowflake"][kind]
            if snowflake_type == "ARRAY":
                snowflake_type = ARRAY_ELEMENTS[kind.value]
            physical, logical = column.physical_type, str(column.logical_type)
            assert "isSigned=false" not in logical, (name, column.path)
            assert _matches(physical, logical, snowflake_type), (name, column.path, logical)


def test_compaction_keeps_every_row_in_order_in_files_of_the_target_size(small_shards):
    """Shards' files concatenated in order, cut once a file passes the target size;
    keys become DECIMAL(20,0) with their values unchanged."""
    out = small_shards
    sources = _sources(out, "dicom_element")
    assert len(sources) >= 4
    source = pa.concat_tables([pq.read_table(out.location(s)) for s in sources])
    target = 40_000
    files = compact_table(out, BY_NAME["dicom_element"], sources, "_c/dicom_element", target)
    assert len(files) > 1
    staged = [pq.read_table(out.location(f"_c/dicom_element/{f.name}")) for f in files]
    assert [t.num_rows for t in staged] == [f.rows for f in files]
    size = lambda relative: Path(out.location(relative)).stat().st_size  # noqa: E731
    assert [f.bytes for f in files] == [size(f"_c/dicom_element/{f.name}") for f in files]
    whole = pa.concat_tables(staged)
    assert whole.num_rows == source.num_rows
    assert whole.schema.field("element_key").type == pa.decimal128(20, 0)
    assert [int(k) for k in whole["element_key"].to_pylist()] == source["element_key"].to_pylist()
    assert whole["value_string"].to_pylist() == source["value_string"].to_pylist()
    # Every file but the last passed the target with its last source batch only.
    largest_source = max(size(s) for s in sources)
    for f in files[:-1]:
        assert target <= f.bytes <= target + 2 * largest_source


def test_compaction_of_a_rerun_replaces_the_earlier_files(small_shards):
    out = small_shards
    sources = _sources(out, "dicom_instance")
    compact_table(out, BY_NAME["dicom_instance"], sources, "_r/dicom_instance", 1_000)
    again = compact_table(out, BY_NAME["dicom_instance"], sources[:1], "_r/dicom_instance", 1 << 30)
    assert out.names("_r/dicom_instance", "", ".parquet") == [f.name for f in again]


def test_copy_statements_list_at_most_a_thousand_files():
    names = [f"part-{i:05d}.parquet" for i in range(2 * FILES_PER_COPY + 1)]
    statements = copy_statements("dicom_element", "DICOM_LOADER_STAGE", "run/dicom_element/", names)
    assert len(statements) == 3
    listed = []
    for statement in statements:
        parsed = sqlglot.parse_one(statement, read="snowflake")
        files = [f for f in parsed.find_all(sqlglot.exp.Literal) if f.this.endswith(".parquet")]
        assert len(files) <= FILES_PER_COPY
        listed += [f.this for f in files]
    assert listed == names
