"""The Snowflake patterns: rendered SQL that parses, identifiers refused before SQL
exists, the dynamic tables' logic run (translated) on DuckDB against the loader's own
rows, and what the fakesnow emulator runs of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pydicom
import pytest
import sqlglot
from sqlglot import exp

from loader.core.errors import ConfigError
from loader.core.model import phi_columns
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.jobs.targets import open_warehouse
from loader.synth import synthesize
from loader.warehouse.patterns import (
    PATTERNS,
    TABLE_END,
    TABLE_START,
    Deployment,
    Names,
    plan,
    privileges_table,
    render,
    render_file,
)
from loader.warehouse.patterns.dialects import DUCKDB
from loader.warehouse.patterns.dynamic_tables import (
    DT_PREFIX,
    LEVELS,
    instance_select,
    level_select,
)
from loader.warehouse.patterns.exports import converted_instances, dictionary_rows
from loader.warehouse.patterns.stream_task import routed_errors, study_merge
from tests.conftest import as_admin, real_file

# What deploy takes from the harness's session: its role and the target's warehouse.
SESSION = Names(owner_role="ACCOUNTADMIN", warehouse="TEST_WH")


def _count(deployment: Deployment) -> int:
    """The statements deploy runs and counts (the change of role is not one)."""
    return len(deployment.as_deployer) + len(deployment.as_owner)


ROLES = {"owner_role": "DICOM_LOADER", "warehouse": "LOAD_WH"}
NAMES = Names(
    database="IMAGING",
    schema="DICOM",
    warehouse="LOAD_WH",
    owner_role="DICOM_LOADER",
    lag="5 minutes",
    stage_url="s3://imaging-exports/pacs/",
    storage_integration="EXPORTS_INT",
)
_SET_POLICY = re.compile(
    r'ALTER (DYNAMIC )?TABLE IF EXISTS "IMAGING"\."DICOM"\.\w+ MODIFY COLUMN (\w+) '
    r'SET MASKING POLICY "IMAGING"\."DICOM"\.dicom_phi_\w+( USING \(\2, name\))? FORCE'
)


_STREAM = re.compile(
    r'CREATE STREAM IF NOT EXISTS "IMAGING"\."DICOM"\.\w+ ON TABLE "IMAGING"\."DICOM"\.\w+ '
    r"APPEND_ONLY = (TRUE|FALSE)"
)
_SEARCH = re.compile(  # https://docs.snowflake.com/en/sql-reference/sql/create-cortex-search
    r'CREATE CORTEX SEARCH SERVICE IF NOT EXISTS "IMAGING"\."DICOM"\.\w+\n  ON \w+\n'
    r"  ATTRIBUTES \w+(, \w+)*\n  WAREHOUSE = LOAD_WH\n  TARGET_LAG = '5 minutes'"
)
_RESUME = re.compile(r'ALTER TASK (IF EXISTS )?"IMAGING"\."DICOM"\.\w+ (RESUME|SUSPEND)')


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_statement_parses_as_snowflake(pattern):
    for statement in render(pattern, NAMES):
        parsed = sqlglot.parse_one(statement, read="snowflake")
        if not isinstance(parsed, exp.Command):
            kinds = (exp.Create, exp.Set, exp.Copy, exp.Insert, exp.Use)
            assert isinstance(parsed, (*kinds, exp.Transaction, exp.Commit)), statement
        elif statement.startswith("CREATE PIPE"):
            body = sqlglot.parse_one(statement.split(" AS\n", 1)[1], read="snowflake")
            assert isinstance(body, exp.Copy), statement
        # Statements sqlglot knows only by name: their parts and shape are checked.
        elif statement.startswith("CREATE OR REPLACE TASK"):
            body = sqlglot.parse_one(statement.split("\nAS\n", 1)[1], read="snowflake")
            assert isinstance(body, (exp.Insert, exp.Merge)), statement
        elif " -> " in statement.replace("\n", " "):
            body = statement.split("->", 1)[1]
            assert isinstance(sqlglot.parse_one(body, read="snowflake"), exp.Case)
        elif statement.startswith("CREATE CORTEX SEARCH SERVICE"):
            head, body = statement.split("\nAS\n", 1)
            assert _SEARCH.fullmatch(head), statement
            assert isinstance(sqlglot.parse_one(body, read="snowflake"), exp.Select), statement
        elif statement.startswith("ALTER TASK"):
            assert _RESUME.fullmatch(statement), statement
        elif statement.startswith("ALTER"):
            assert _SET_POLICY.fullmatch(statement), statement
        elif statement.startswith("CREATE STREAM"):
            assert _STREAM.fullmatch(statement), statement
        else:
            assert statement in (
                'CREATE ROLE IF NOT EXISTS "DICOM_PHI_READER"',
                'GRANT ROLE "DICOM_PHI_READER" TO ROLE "DICOM_LOADER"',
                'USE ROLE "DICOM_LOADER"',
            ), statement
    # `all` is the patterns in order (with a stage URL, the pipe and not the batch).
    first = render(PATTERNS[1], NAMES)
    assert render("all", NAMES)[: len(first)] == first


def test_dynamic_tables_refresh_incrementally_and_pick_one_row_per_key():
    statements = render("dynamic-tables", NAMES)
    tables = [s for s in statements if s.startswith("CREATE OR REPLACE DYNAMIC TABLE")]
    assert len(tables) == 5
    for statement in tables:
        assert "REFRESH_MODE = INCREMENTAL" in statement and "TARGET_LAG = '5 minutes'" in statement
        assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY" in statement
        assert "CURRENT_TIMESTAMP" not in statement.upper() and "GROUP BY" not in statement
        assert "MD5_NUMBER_LOWER64(" in statement or 'FROM "IMAGING"."DICOM".dt_' in statement


def test_every_phi_column_is_masked():
    statements = "\n".join(render("governance", NAMES))
    for table, column in (
        ("dicom_patient", "patient_id"),
        ("dicom_patient", "patient_name"),
        ("dicom_patient", "patient_birth_date"),
        ("dicom_patient", "other_patient_ids"),
        ("dicom_patient", "other_patient_names"),
        ("dicom_study", "referring_physician"),
        ("dicom_raw", "metadata"),
        ("dicom_element", "value_string"),
        ("dicom_element", "value_number"),
        ("dicom_element", "value_datetime"),
        ("dicom_raw_changes", "metadata"),
        ("dicom_json_landing", "instance"),
        ("dt_dicom_patient", "patient_name"),
        ("dt_dicom_instance", "patient_id"),
    ):
        assert f'"DICOM".{table} MODIFY COLUMN {column} SET MASKING POLICY' in statements
    assert "IS_ROLE_IN_SESSION('DICOM_PHI_READER')" in statements
    # Tasks and dynamic tables read as their owner, which holds the PHI role.
    assert 'GRANT ROLE "DICOM_PHI_READER" TO ROLE "DICOM_LOADER"' in statements


@pytest.mark.parametrize(
    ("pattern", "holders"),
    [
        ("batch", ["dicom_json_landing"]),
        ("stream-task", ["dicom_raw_changes"]),
        ("dynamic-tables", ["dt_dicom_patient", "dt_dicom_instance", "dt_dicom_study"]),
    ],
)
def test_a_pattern_that_copies_phi_masks_its_copies(pattern, holders):
    """Deployed alone, in any order, a pattern leaves no PHI copy unmasked: its
    statements end with the policies and their setting on what it created."""
    statements = render(pattern, NAMES)
    created = max(i for i, s in enumerate(statements) if s.startswith("CREATE"))
    masking = "\n".join(statements[created:])
    for holder in holders:
        assert f'"DICOM".{holder} MODIFY COLUMN' in masking, holder


def test_masking_bodies_follow_a_redeploy():
    """Each policy is created once and its body set on every deploy, so a changed
    body is deployed; tasks and dynamic tables are replaced, streams and pipes never
    (a stream's offset and a pipe's load history survive)."""
    statements = render("all", NAMES)
    created = [s for s in statements if s.startswith("CREATE MASKING POLICY IF NOT EXISTS")]
    for create in created:
        name = create.split()[6]
        body = create.split("->", 1)[1]
        assert f"ALTER MASKING POLICY {name} SET BODY ->{body}" in statements
    for statement in statements:
        if " TASK " in statement[:30] and statement.startswith("CREATE"):
            assert statement.startswith("CREATE OR REPLACE TASK")
        if "DYNAMIC TABLE" in statement[:30] and statement.startswith("CREATE"):
            assert statement.startswith("CREATE OR REPLACE DYNAMIC TABLE")
        if statement.startswith(("CREATE STREAM", "CREATE PIPE")):
            assert " IF NOT EXISTS " in statement[:30]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"database": 'IMAGING"; DROP TABLE dicom_patient; --'},
        {"schema": "a.b"},
        {"warehouse": "WH WITH x"},
        {"phi_role": "r'); DROP"},
        {"lag": "5 minutes'; DROP TABLE x; --"},
    ],
)
def test_injection_is_refused_before_any_sql(kwargs):
    with pytest.raises(ConfigError):
        Names(**kwargs)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated archive with duplicates (the same instance in several files, the
    newest winning) and bad objects, loaded by the loader into DuckDB."""
    tmp = tmp_path_factory.mktemp("patterns")
    synthesize(tmp / "archive", patients=6, seed=41, duplicate_fraction=0.1, bad_fraction=0.2)
    db = tmp / "w.duckdb"
    report = run(
        RunSettings(
            source=str(tmp / "archive"),
            out=tmp / "pq",
            target=Target.parse(f"duckdb:///{db}"),
            workers=0,
        )
    )
    assert report["duplicates"] > 0
    return db


def test_dynamic_table_logic_on_duckdb_equals_the_loaders_rows(loaded):
    con = duckdb.connect(str(loaded))
    instances = f"{DT_PREFIX}dicom_instance"
    con.execute(f"CREATE TEMP TABLE {instances} AS {instance_select(DUCKDB, 'dicom_raw')}")
    compare = {
        "dicom_instance": ("instance_key", ("series_key", "sop_class_uid", "instance_number"))
    }
    for level, (key, columns) in LEVELS.items():
        con.execute(f"CREATE TEMP TABLE {DT_PREFIX}{level} AS {level_select(level, instances)}")
        compare[level] = (key, columns)
    for table, (key, columns) in compare.items():
        listed = ", ".join([key, *columns])
        dynamic = con.execute(f"SELECT {listed} FROM {DT_PREFIX}{table} ORDER BY {key}").fetchall()
        keys = [row[0] for row in dynamic]
        assert len(keys) == len(set(keys)), table  # exactly one row per natural key
        loader = con.execute(f"SELECT {listed} FROM {table} ORDER BY {key}").fetchall()
        if table == "dicom_equipment":  # the loader writes no row for a series without any
            dynamic = [row for row in dynamic if any(v is not None for v in row[1:])]
        assert dynamic == loader, table
    con.close()


def test_validation_views_on_duckdb(loaded):
    con = duckdb.connect(str(loaded))
    for statement in render("validation", Names()):
        con.execute(statement.replace('"', ""))
    summary = con.execute("SELECT * FROM dicom_validation_summary").fetchone()
    names = [d[0] for d in con.description]
    row = dict(zip(names, summary, strict=True))
    assert row["instance_rows"] == con.execute("SELECT count(*) FROM dicom_instance").fetchone()[0]
    assert row["orphan_studies"] == row["orphan_series"] == row["orphan_instances"] == 0
    unidentified = con.execute(  # raw rows of objects that name no series or study
        "SELECT count(DISTINCT sop_instance_uid) FROM dicom_raw WHERE sop_instance_uid NOT IN "
        "(SELECT sop_instance_uid FROM dicom_instance)"
    ).fetchone()[0]
    assert unidentified > 0
    assert row["raw_instances"] - row["model_instances"] == unidentified
    assert 0 < row["mean_completeness"] <= 1
    con.close()


def test_deploy_all_runs_on_a_fresh_schema_and_again_on_a_deployed_one(snowflake_target, tmp_path):
    """`deploy --pattern all` through the CLI, twice, on the emulator completed by the
    test harness (tests/fakesnow_gaps.py): both exit 0; the second replaces every
    task and dynamic table and sets every policy's body again, keeps streams; every
    PHI holder is masked; the dynamic tables (Snowflake SQL, run by the emulator as
    views) hold the loader's own rows."""
    from fakesnow_gaps import CATALOG

    from tests.test_cli import dicom_loader

    archive = tmp_path / "archive"
    synthesize(archive, patients=3, seed=43, duplicate_fraction=0.2)
    target = Target.parse(snowflake_target)
    run(RunSettings(source=str(archive), out=tmp_path / "pq", target=target, workers=0))
    schema = snowflake_target.split("/")[4].split("?")[0]
    for attempt in (1, 2):
        done = dicom_loader("deploy", "--pattern", "all", "--target", snowflake_target, check=False)
        assert done.returncode == 0, done.stderr
        assert f"deployed all: {_count(plan('all', SESSION))} statements" in done.stdout
        tasks = CATALOG.schema(schema, "task")
        assert {CATALOG.created[(schema, "task", t)] for t in tasks} == {attempt}
        tables = CATALOG.schema(schema, "dynamic_table")
        assert len(tables) == 5
        assert {CATALOG.created[(schema, "dynamic_table", t)] for t in tables} == {attempt}
    streams = CATALOG.schema(schema, "stream")
    assert len(streams) == 3 and {CATALOG.created[(schema, "stream", s)] for s in streams} == {1}
    assert {(schema, t) for t in tasks} <= CATALOG.resumed
    assert ("DICOM_PHI_READER", "ACCOUNTADMIN") in CATALOG.grants  # the session's role
    masked = {(t, c) for (s, t, c) in CATALOG.masked if s == schema}
    for table, columns in phi_columns().items():
        assert {(table, c) for c in columns} <= masked, table
    assert {
        ("dicom_raw", "metadata"),
        ("dicom_raw_changes", "metadata"),
        ("dicom_json_landing", "instance"),
        ("dicom_element", "value_string"),
        ("dicom_element", "value_number"),
        ("dicom_element", "value_datetime"),
        ("dt_dicom_patient", "patient_name"),
    } <= masked
    warehouse = open_warehouse(target)
    try:
        for level, (key, columns) in LEVELS.items():
            listed = ", ".join([key, *columns])
            dynamic = warehouse.query(f"SELECT {listed} FROM {DT_PREFIX}{level} ORDER BY 1")
            loader = warehouse.query(f"SELECT {listed} FROM {level} ORDER BY 1")
            if level == "dicom_equipment":  # the loader writes no row for a series without
                dynamic = [row for row in dynamic if any(v is not None for v in row[1:])]
            assert dynamic == loader, level
        summary = warehouse.query("SELECT * FROM dicom_validation_summary")
        instances = warehouse.query("SELECT count(*) FROM dicom_instance")
    finally:
        warehouse.close()
    assert summary[0][3] == instances[0][0]  # instance_rows


def test_a_failing_deploy_statement_is_one_line(snowflake_target):
    from tests.test_cli import dicom_loader

    failed = dicom_loader(
        "deploy",
        "--pattern",
        "validation",
        "--target",
        snowflake_target,
        "--database",
        "NO_SUCH_DATABASE",
        "--schema",
        "DICOM",
        check=False,
    )
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), failed.stderr
    assert "NO_SUCH_DATABASE" in lines[0] and "Traceback" not in failed.stderr
    assert "snow" not in lines[0].split("(in:")[0].lower() or "password" not in lines[0]


def test_the_privileges_table_is_rendered_from_the_statements():
    readme = (
        Path(__file__).resolve().parent.parent / "sql" / "snowflake" / "README.md"
    ).read_text()
    assert TABLE_START + privileges_table() + TABLE_END in readme, "run make sql"
    # Read from the SQL: a pattern's row names what its statements create.
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (.*) \|$", privileges_table(), re.MULTILINE))
    assert "CREATE TASK on schema" in rows["stream-task"]
    assert "CREATE TASK" not in rows["dynamic-tables"] and "CREATE PIPE" in rows["snowpipe"]
    assert "EXECUTE MANAGED TASK on account" in rows["snowpipe"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_sql_files_are_rendered_from_the_code(pattern):
    path = (
        Path(__file__).resolve().parent.parent
        / "sql"
        / "snowflake"
        / f"{pattern.replace('-', '_')}.sql"
    )
    assert path.read_text() == render_file(pattern), "run make sql"


def test_tasks_read_streams_and_resume_children_first():
    statements = render("stream-task", NAMES)
    tasks = [s for s in statements if s.startswith("CREATE OR REPLACE TASK")]
    root = next(s for s in tasks if "SCHEDULE" in s)
    assert "WHEN SYSTEM$STREAM_HAS_DATA('IMAGING.DICOM.dicom_raw_stream')" in root
    assert 'FROM "IMAGING"."DICOM".dicom_raw_stream' in root
    for child in (s for s in tasks if s is not root):
        assert 'AFTER "IMAGING"."DICOM".dicom_ingest_changes' in child
        consumed = re.findall(r'FROM "IMAGING"\."DICOM"\.(dicom_changes_for_\w+) r', child)
        assert consumed and len(set(consumed)) == 1  # its own stream, never a time window
        assert "DATEADD" not in child and "CURRENT_DATE" not in child
    altered = [
        (s.split(".")[-1].split()[0], s.split()[-1])
        for s in statements
        if s.startswith("ALTER TASK")
    ]
    assert altered == [  # the root suspended before the graph is replaced
        ("dicom_ingest_changes", "SUSPEND"),
        ("dicom_route_errors", "RESUME"),
        ("dicom_merge_studies", "RESUME"),
        ("dicom_ingest_changes", "RESUME"),
    ]
    assert statements.index(tasks[0]) > [s.endswith("SUSPEND") for s in statements].index(True)


def test_error_routing_on_duckdb_matches_the_loader_and_routes_once(loaded):
    con = duckdb.connect(str(loaded))
    con.execute("CREATE TEMP TABLE routed AS SELECT * FROM dicom_ingestion_errors WHERE false")
    routing = routed_errors(DUCKDB, "dicom_raw", "dicom_raw", "routed", "'batch-1'")
    con.execute(routing)
    first = con.execute("SELECT count(*) FROM routed").fetchone()[0]
    con.execute(routing)
    assert con.execute("SELECT count(*) FROM routed").fetchone()[0] == first  # never twice
    for category in ("VALIDATION_ERROR", "DUPLICATE"):
        query = "SELECT file_path FROM {} WHERE error_category = ? ORDER BY 1"
        ours = con.execute(query.format("routed"), [category]).fetchall()
        loaders = con.execute(query.format("dicom_ingestion_errors"), [category]).fetchall()
        if category == "VALIDATION_ERROR":  # the loader's also name objects with no raw row
            raw = {r[0] for r in con.execute("SELECT file_path FROM dicom_raw").fetchall()}
            loaders = [r for r in loaders if r[0] in raw]
        assert ours and ours == loaders, category
    con.close()


def test_study_cdc_merge_on_duckdb_updates_changed_attributes(loaded):
    con = duckdb.connect(str(loaded))
    con.execute("CREATE TEMP TABLE studies AS SELECT * FROM dicom_study")
    merge = study_merge(DUCKDB, "dicom_raw", "studies")
    con.execute(merge)  # nothing amended: nothing changes
    assert sorted(con.execute("SELECT * FROM studies").fetchall(), key=repr) == sorted(
        con.execute("SELECT * FROM dicom_study").fetchall(), key=repr
    )
    path, study = con.execute(
        "SELECT i.file_path, st.study_key FROM dicom_instance i "
        "JOIN dicom_series se USING (series_key) JOIN dicom_study st USING (study_key) LIMIT 1"
    ).fetchone()
    # The amendment is rolled back: the module's other tests read this warehouse.
    con.execute("BEGIN TRANSACTION")
    con.execute(  # the study amended at the source: a newer object with a new description
        "UPDATE dicom_raw SET metadata = json_merge_patch(metadata, "
        '\'{"StudyDescription": "AMENDED", "AccessionNumber": "ACC-NEW"}\'), '
        "_source_order = '9999' || _source_order WHERE file_path = ?",
        [path],
    )
    con.execute(merge)
    changed = con.execute(
        "SELECT study_description, accession_number FROM studies WHERE study_key = ?", [study]
    ).fetchone()
    assert changed == ("AMENDED", "ACC-NEW")
    others = "SELECT * FROM {} WHERE study_key <> ?"
    assert sorted(con.execute(others.format("studies"), [study]).fetchall(), key=repr) == sorted(
        con.execute(others.format("dicom_study"), [study]).fetchall(), key=repr
    )
    con.execute("ROLLBACK")
    con.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stage_url": "s3://b/x' STORAGE_INTEGRATION = evil --"}, "stage-url"),
        ({"stage_url": "https://example.com/x"}, "stage-url"),
        (
            {"stage_url": "azure://acct.blob.core.windows.net/c/", "storage_integration": "I"},
            "notification-integration",
        ),
    ],
)
def test_snowpipe_names_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        render("snowpipe", Names(**kwargs, **ROLES))


def test_snowpipe_per_cloud():
    s3 = "\n".join(render("snowpipe", NAMES))
    assert "AUTO_INGEST = TRUE AS" in s3 and "INTEGRATION =" not in s3.split("CREATE PIPE")[1][:80]
    for url in ("gcs://imaging-exports/pacs/", "azure://acct.blob.core.windows.net/pacs/"):
        names = Names(
            stage_url=url, storage_integration="I", notification_integration="EVENTS", **ROLES
        )
        pipe = next(s for s in render("snowpipe", names) if s.startswith("CREATE PIPE"))
        assert "AUTO_INGEST = TRUE INTEGRATION = 'EVENTS' AS" in pipe
    assert "snowpipe" not in [
        p for p in PATTERNS if p != "snowpipe" and p in render("all", Names(**ROLES))
    ]


def test_batch_captures_rejected_rows_and_has_a_batch_id():
    statements = render("batch", Names(**ROLES))
    copy = next(s for s in statements if s.startswith("COPY INTO"))
    assert "ON_ERROR = CONTINUE" in copy and "$dicom_batch" in copy
    assert "SET dicom_batch = UUID_STRING()" in statements
    capture = statements[statements.index(copy) + 1]
    # VALIDATE cannot follow a COPY that transforms: the COPY's own per-file result.
    assert "FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))" in capture and "VALIDATE" not in capture
    # Read as objects: a COPY of no file answers one `status` column, no `file`.
    assert "OBJECT_CONSTRUCT(*)" in capture and "r:\"status\"::VARCHAR <> 'LOADED'" in capture
    assert "CURRENT_TIMESTAMP" not in capture
    assert "CURRENT_TIMESTAMP" not in copy and "METADATA$FILE_LAST_MODIFIED" in copy


def test_json_exports_convert_like_the_loaders_raw_rows(loaded, tmp_path):
    """The batch's conversion, on DuckDB: pydicom's DICOM JSON of the loaded objects
    becomes the loader's own dicom_raw.metadata (top-level values)."""
    con = duckdb.connect(str(loaded))
    paths = [
        r[0]
        for r in con.execute(
            "SELECT file_path FROM dicom_raw WHERE sop_instance_uid IS NOT NULL ORDER BY 1 LIMIT 25"
        ).fetchall()
    ]
    con.execute(
        "CREATE TEMP TABLE landing (file_path VARCHAR, row_number BIGINT, instance JSON, "
        "batch_id VARCHAR, loaded_at TIMESTAMP)"
    )
    for index, path in enumerate(paths):
        doc = pydicom.dcmread(path, stop_before_pixels=True, force=True).to_json_dict()
        con.execute(
            "INSERT INTO landing VALUES (?, ?, ?, 'b1', TIMESTAMP '2026-01-01')",
            [path, index, json.dumps(doc)],
        )
    con.execute("CREATE TEMP TABLE dictionary (tag VARCHAR, keyword VARCHAR)")
    con.executemany("INSERT INTO dictionary VALUES (?, ?)", dictionary_rows())
    con.execute("CREATE TEMP TABLE converted AS SELECT * FROM dicom_raw WHERE false")
    con.execute(
        converted_instances("duckdb", "landing", "converted", "dictionary", "l.batch_id = 'b1'")
    )
    # By object (an amended copy shares its original's SOP Instance UID); a converted
    # row's path is its export's and its line's: `path#row`.
    ours = {
        r[0].rsplit("#", 1)[0]: json.loads(r[1])
        for r in con.execute("SELECT file_path, metadata FROM converted").fetchall()
    }
    loaders = {
        r[0]: json.loads(r[1])
        for r in con.execute(
            "SELECT file_path, metadata FROM dicom_raw WHERE file_path IN "
            f"({', '.join('?' for _ in paths)})",
            paths,
        ).fetchall()
    }
    con.close()
    assert ours.keys() == loaders.keys() and len(ours) > 20
    compared = 0
    for sop, doc in ours.items():
        expected = loaders[sop]
        assert doc.keys() == expected.keys(), sop
        for key, value in doc.items():
            if _is_sequence(value) or _is_sequence(expected[key]):
                continue  # sequences stay DICOM JSON items
            if isinstance(expected[key], list) and isinstance(value, str):
                continue  # several person names keep their first
            assert value == expected[key], (sop, key)
            compared += 1
    assert compared > 500


def _is_sequence(value):
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


def test_json_conversion_runs_as_snowflake_sql_on_the_emulator(snowflake_target):
    """The batch's conversion as rendered for Snowflake (FLATTEN, OBJECT_AGG), run by
    the emulator on a landed pydicom export."""
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        warehouse.create_model()
        # format, stage, landing, dictionary
        for statement in plan("batch", Names(**ROLES)).as_owner[:4]:
            warehouse.query(statement)
        doc = pydicom.dcmread(real_file("CT_small.dcm"), stop_before_pixels=True).to_json_dict()
        warehouse.query(
            "INSERT INTO dicom_json_landing SELECT 'exports/ct.json', 1, PARSE_JSON(%s), 'b1', "
            "CURRENT_TIMESTAMP",
            [json.dumps(doc)],
        )
        warehouse.query(
            converted_instances(
                "snowflake",
                "dicom_json_landing",
                "dicom_raw",
                "dicom_dictionary",
                "l.batch_id = 'b1'",
            )
        )
        rows = warehouse.query(
            "SELECT file_path, sop_instance_uid, metadata FROM dicom_raw "
            "WHERE file_path = 'exports/ct.json#1'"
        )
    finally:
        warehouse.close()
    assert len(rows) == 1
    metadata = json.loads(rows[0][2])
    assert rows[0][1] == doc["00080018"]["Value"][0]
    assert metadata["PatientName"] == "CompressedSamples^CT1"
    assert metadata["Rows"] == 128 and metadata["ImageType"][0] == "ORIGINAL"
    assert "PixelData" not in metadata and "TransferSyntaxUID" not in metadata
    private_blob = pydicom.dcmread(real_file("CT_small.dcm"))[0x00431028].value
    assert metadata["00431028"] == {"vr": "OB", "length": len(private_blob)}


@pytest.mark.server
def test_a_batch_whose_conversion_failed_is_converted_by_the_next_deploy_once(
    snowflake_target, monkeypatch
):
    """A COPY commits its rows (and marks its files loaded: no later COPY takes them
    again) before they are converted. A deploy that fails inside the conversion's
    transaction leaves exactly the landed rows and nothing converted; the next deploy
    converts them, and the one after converts nothing more."""
    from tests.test_cli import dicom_loader

    deploy = ("deploy", "--pattern", "batch", "--target", snowflake_target)
    dicom_loader(*deploy)  # landing, conversions, dictionary; an empty stage
    files = [real_file("CT_small.dcm"), real_file("MR_small.dcm")]
    docs = [pydicom.dcmread(f, stop_before_pixels=True).to_json_dict() for f in files]
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        for row, doc in enumerate(docs, 1):  # what a COPY of exports/day.json lands
            warehouse.query(
                "INSERT INTO dicom_json_landing SELECT 'exports/day.json', %s, PARSE_JSON(%s), "
                "'copy-1', TIMESTAMP '2026-12-01 10:00:00'",
                [row, json.dumps(doc)],
            )
    finally:
        warehouse.close()

    def state() -> tuple[list, list, int]:
        warehouse = open_warehouse(Target.parse(snowflake_target))
        try:
            raw = warehouse.query(
                "SELECT file_path, sop_instance_uid FROM dicom_raw ORDER BY file_path"
            )
            recorded = warehouse.query(
                "SELECT batch_id FROM dicom_json_conversions ORDER BY batch_id"
            )
            landed = warehouse.query("SELECT count(*) FROM dicom_json_landing")[0][0]
        finally:
            warehouse.close()
        return raw, recorded, landed

    # The third statement inside BEGIN … COMMIT is COMMIT: the rows are inserted.
    monkeypatch.setenv("DICOM_LOADER_FAIL_AT", "mid-deploy-transaction#3")
    failed = dicom_loader(*deploy, check=False)
    assert failed.returncode != 0
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.endswith("fault injected at mid-deploy-transaction")
    assert state() == ([], [], 2)
    monkeypatch.delenv("DICOM_LOADER_FAIL_AT")
    expected = [
        (f"exports/day.json#{row}", doc["00080018"]["Value"][0]) for row, doc in enumerate(docs, 1)
    ]
    dicom_loader(*deploy)
    assert state() == ([tuple(r) for r in expected], [("copy-1",)], 2)
    dicom_loader(*deploy)
    raw, recorded, _ = state()
    assert [tuple(r) for r in raw] == expected and recorded == [("copy-1",)]


def test_deploy_twice_changes_nothing(snowflake_target, tmp_path):
    from tests.test_cli import dicom_loader

    archive = tmp_path / "archive"
    synthesize(archive, patients=2, seed=47, duplicate_fraction=0)
    run(
        RunSettings(
            source=str(archive),
            out=tmp_path / "pq",
            target=Target.parse(snowflake_target),
            workers=0,
        )
    )
    summaries = []
    for _ in range(2):
        done = dicom_loader("deploy", "--pattern", "validation", "--target", snowflake_target)
        assert "deployed validation: 2 statements" in done.stdout
        warehouse = open_warehouse(Target.parse(snowflake_target))
        try:
            summaries.append(warehouse.query("SELECT * FROM dicom_validation_summary"))
        finally:
            warehouse.close()
    assert summaries[0] == summaries[1] and summaries[0][0][3] > 0
    refused = dicom_loader(
        "deploy", "--pattern", "validation", "--target", "duckdb:///x.duckdb", check=False
    )
    assert refused.returncode != 0 and "Snowflake" in refused.stderr
    assert "password" not in refused.stderr


def test_rejected_pipe_files_follow_copy_history_on_duckdb():
    """The snowpipe task's MERGE over COPY_HISTORY rows (translated: a table of them):
    only this pipe's files, one row per file at its latest finished load; a file in
    progress is not recorded, a failed file that later loaded loses its row, a file
    that failed again has its row updated."""
    from loader.warehouse.patterns.exports import rejected_files

    names = Names(database="IMAGING", schema="DICOM", **ROLES)
    merge = rejected_files(names).replace('"IMAGING"."DICOM".', "")
    merge = re.sub(r"FROM TABLE\(.*?\)\)\) h", "FROM history h", merge)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE history (file_name VARCHAR, status VARCHAR, error_count BIGINT, "
        "first_error_message VARCHAR, last_load_time TIMESTAMP, pipe_catalog_name VARCHAR, "
        "pipe_schema_name VARCHAR, pipe_name VARCHAR)"
    )
    con.execute(
        "CREATE TABLE dicom_ingestion_errors AS SELECT * FROM (SELECT "
        + ", ".join(
            f"CAST(NULL AS {t}) AS {c}"
            for c, t in (
                ("file_path", "VARCHAR"),
                ("error_category", "VARCHAR"),
                ("error_message", "VARCHAR"),
                ("tag", "VARCHAR"),
                ("detected_at", "TIMESTAMP"),
                ("bytes_read", "BIGINT"),
                ("_run_id", "VARCHAR"),
                ("_loaded_at", "TIMESTAMP"),
            )
        )
        + ") WHERE false"
    )

    def history(*rows):
        con.execute("DELETE FROM history")
        for name, status, minute, pipe in rows:
            con.execute(
                "INSERT INTO history VALUES (?, ?, 2, 'bad JSON', "
                "TIMESTAMP '2026-11-30 10:00:00' + INTERVAL (?) MINUTE, 'IMAGING', 'DICOM', ?)",
                [name, status, minute, pipe],
            )
        con.execute(merge)
        return dict(
            con.execute(
                "SELECT file_path, error_message FROM dicom_ingestion_errors ORDER BY 1"
            ).fetchall()
        )

    pipe, other = "DICOM_EXPORTS_PIPE", "SOMEONE_ELSES_PIPE"
    first = history(
        ("a.json", "Load in progress", 1, pipe),
        ("b.json", "Load failed", 1, pipe),
        ("c.json", "Partially loaded", 1, pipe),
        ("d.json", "Load failed", 1, other),
        ("e.json", "Loaded", 1, pipe),
    )
    assert set(first) == {"b.json", "c.json"}
    assert first["c.json"].startswith("Partially loaded: 2 rows rejected, first: bad JSON")
    second = history(
        ("a.json", "Load in progress", 1, pipe),
        ("a.json", "Load failed", 5, pipe),  # the load that was in progress failed
        ("b.json", "Load failed", 1, pipe),
        ("b.json", "Loaded", 9, pipe),  # fixed and loaded again
        ("c.json", "Partially loaded", 1, pipe),
        ("c.json", "Load failed", 7, pipe),
    )
    assert set(second) == {"a.json", "c.json"}
    assert second["c.json"].startswith("Load failed: ")
    assert history() == second  # nothing new: nothing changes
    con.close()


@pytest.mark.parametrize(
    "stamp", ["2026-11-30 08:05:09.000000", "2026-01-02 23:59:59.123456", "1999-12-31 00:00:00.5"]
)
def test_source_order_text_is_the_same_in_python_and_sql(stamp, snowflake_target):
    """`_source_order` compares texts: SQL renders a timestamp exactly as the loader's
    Python does (isoformat with microseconds), through an explicit format, never the
    session's TIMESTAMP_OUTPUT_FORMAT (whose default drops the microseconds)."""
    import datetime as dt

    from loader.sources.listing import ObjectRef
    from loader.warehouse.patterns.dialects import JSON_OPS

    moment = dt.datetime.fromisoformat(stamp)
    path = "s3://bucket/exports/a.json#3"
    python = ObjectRef(path, 1, moment.replace(tzinfo=dt.UTC).timestamp()).source_order
    sql = "SELECT {} || chr(92) || '" + path + "'"
    literal = f"CAST('{stamp}' AS TIMESTAMP)"
    duck = duckdb.connect().execute(sql.format(JSON_OPS["duckdb"].timestamp_text(literal)))
    assert duck.fetchone()[0] == python
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        text = warehouse.query(
            sql.format(JSON_OPS["snowflake"].timestamp_text(f"CAST('{stamp}' AS TIMESTAMP_NTZ)"))
        )
    finally:
        warehouse.close()
    assert text[0][0] == python


def test_deploy_puts_the_model_where_the_patterns_go(snowflake_target):
    """With --database and --schema, the model's tables are created in that schema,
    next to the patterns' objects, not in the connection's."""
    from tests.test_cli import dicom_loader

    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        warehouse.query("CREATE SCHEMA IF NOT EXISTS DICOM.ELSEWHERE")
    finally:
        warehouse.close()
    done = dicom_loader(
        "deploy",
        "--pattern",
        "validation",
        "--target",
        snowflake_target,
        "--database",
        "DICOM",
        "--schema",
        "ELSEWHERE",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        there = warehouse.query("SELECT * FROM DICOM.ELSEWHERE.dicom_validation_summary")
        models = warehouse.query(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE lower(table_name) = 'dicom_instance'"
        )
    finally:
        warehouse.close()
    assert there[0][3] == 0
    schemas = {r[0] for r in models}
    assert "ELSEWHERE" in schemas and snowflake_target.split("/")[4].split("?")[0] not in schemas


@pytest.mark.parametrize(
    ("result", "recorded"),
    [
        # COPY INTO <table>'s documented per-file output, one file partly loaded.
        (
            "SELECT * FROM (VALUES ('s/a.json', 'LOADED', 3, 3, 3, 0, NULL, NULL, NULL, NULL),"
            " ('s/b.json', 'PARTIALLY_LOADED', 4, 3, 4, 1, 'bad JSON', 2, 1, NULL)) AS t"
            ' ("file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen",'
            ' "first_error", "first_error_line", "first_error_character",'
            ' "first_error_column_name")',
            [("s/b.json", "PARTIALLY_LOADED: 1 rows rejected, first at line 2: bad JSON")],
        ),
        # A COPY that processed no file: one `status` column, no `file`.
        ("SELECT 'Copy executed with 0 files processed.' AS \"status\"", []),
    ],
)
def test_rejected_files_are_read_from_either_shape_of_copy_result(
    result, recorded, snowflake_target
):
    """The batch's capture of files not wholly loaded, run through the connector on
    the fakesnow server over the two shapes Snowflake documents for a COPY's result,
    in place of RESULT_SCAN."""
    capture = next(s for s in render("batch", Names(**ROLES)) if "RESULT_SCAN" in s)
    select = capture[capture.index("SELECT") :].replace(
        "TABLE(RESULT_SCAN(LAST_QUERY_ID()))", f"({result})"
    )
    first_line = select.split("\n", 1)[0]
    # The path, category and message: the row's other columns are the run's own.
    query = select.replace(first_line, first_line.split(", NULL, SYSDATE()")[0], 1)
    warehouse = open_warehouse(Target.parse(snowflake_target))
    try:
        found = warehouse.query(query)
    finally:
        warehouse.close()
    assert [(path, message) for path, _, message in found] == recorded


def test_a_database_without_a_schema_is_refused_in_one_line(snowflake_target):
    """Snowflake reads a two-part name as schema.object: `"IMAGING".t` would be the
    table t of a schema named IMAGING. Refused before any statement is sent."""
    from tests.test_cli import dicom_loader

    for command in ("sql", "deploy"):
        target = ("--target", snowflake_target) if command == "deploy" else ()
        done = dicom_loader(
            command, "--pattern", "validation", *target, "--database", "IMAGING", check=False
        )
        assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
        assert "--database needs --schema" in done.stderr


def test_no_task_wakes_a_warehouse_without_work():
    """A scheduled task on a warehouse runs only when its stream has data (WHEN
    SYSTEM$STREAM_HAS_DATA); one with no stream to ask is serverless: no task wakes a
    warehouse on every schedule (288 times a day at 5 minutes)."""
    names = Names(stage_url="s3://imaging-exports/pacs/", storage_integration="I", **ROLES)
    tasks = [
        s
        for pattern in ("stream-task", "snowpipe")
        for s in render(pattern, names)
        if s.startswith("CREATE OR REPLACE TASK")
    ]
    assert len(tasks) >= 4
    for task in tasks:
        head = task.split("\nAS\n", 1)[0]
        if "SCHEDULE" in head and "WAREHOUSE =" in head:
            assert "WHEN SYSTEM$STREAM_HAS_DATA(" in head, head
        assert "SCHEDULE" in head or "\n  AFTER " in head, head


@pytest.mark.parametrize("stage_url", [None, "s3://imaging-exports/pacs/"])
def test_all_gives_exports_one_path_into_dicom_raw(stage_url):
    """`all` deploys the batch COPY or the pipe, never both: each landed file is
    copied by one loader with one load history, and converted once."""
    names = Names(stage_url=stage_url, storage_integration="I" if stage_url else None, **ROLES)
    statements = render("all", names)
    copies = [s for s in statements if "COPY INTO" in s and "dicom_json_landing" in s]
    assert len(copies) == 1
    assert copies[0].startswith("CREATE PIPE") == bool(stage_url)
    converting = [s for s in statements if "INSERT INTO dicom_raw (" in s]
    assert len(converting) == 1, converting


def test_deploy_all_with_a_stage_url_twice(snowflake_target, tmp_path):
    """With --stage-url the exports land through the pipe alone: deployed on a fresh
    schema and again on the deployed one, both end without an error, and the pipe is
    created once (a replaced pipe would forget the files it loaded)."""
    from fakesnow_gaps import CATALOG, LOCAL_BUCKET

    from tests.test_cli import dicom_loader

    landing = tmp_path / "exports"
    landing.mkdir()
    schema = snowflake_target.split("/")[4].split("?")[0]
    flags = ("--stage-url", f"{LOCAL_BUCKET}{landing}/", "--storage-integration", "EXPORTS_INT")
    as_admin(snowflake_target, 'GRANT USAGE ON INTEGRATION "EXPORTS_INT" TO ROLE ACCOUNTADMIN')
    for _ in (1, 2):
        done = dicom_loader(
            "deploy", "--pattern", "all", "--target", snowflake_target, *flags, check=False
        )
        assert done.returncode == 0, done.stderr
    pipes = CATALOG.schema(schema, "pipe")
    assert len(pipes) == 1 and {CATALOG.created[(schema, "pipe", p)] for p in pipes} == {1}


def test_times_written_are_utc_whatever_the_session_time_zone():
    """TIMESTAMP_NTZ columns hold UTC (the loader's own rows do): a pattern writes
    SYSDATE(), never CURRENT_TIMESTAMP, which is the session's time zone's. Only a
    comparison with TIMESTAMP_LTZ (COPY_HISTORY's START_TIME) may use it."""
    for pattern in PATTERNS:
        for statement in render(pattern, NAMES):
            if "CURRENT_TIMESTAMP" in statement.upper():
                assert "START_TIME => DATEADD(HOUR, -24, CURRENT_TIMESTAMP())" in statement
                assert statement.upper().count("CURRENT_TIMESTAMP") == 1, statement


def _owner_grants(schema: str, role: str, *, but: str = "") -> list[str]:
    on_schema = [
        "USAGE", "CREATE TABLE", "CREATE VIEW", "CREATE STAGE", "CREATE FILE FORMAT",
        "CREATE STREAM", "CREATE TASK", "CREATE DYNAMIC TABLE", "CREATE MASKING POLICY",
        "CREATE FUNCTION",
    ]  # fmt: skip
    listed = ", ".join(p for p in on_schema if p != but)
    return [
        f'CREATE ROLE IF NOT EXISTS "{role}"',
        f'GRANT USAGE ON DATABASE "DICOM" TO ROLE "{role}"',
        f'GRANT {listed} ON SCHEMA "DICOM"."{schema}" TO ROLE "{role}"',
        f'GRANT USAGE ON WAREHOUSE "TEST_WH" TO ROLE "{role}"',
        f'GRANT EXECUTE TASK, APPLY MASKING POLICY ON ACCOUNT TO ROLE "{role}"',
    ]


def test_deploy_creates_tasks_and_dynamic_tables_as_the_owner_role(snowflake_target):
    """Tasks and dynamic tables run as their owner, the role that created them
    (https://docs.snowflake.com/en/user-guide/tasks-intro, "Task security"): with
    --owner-role, deploy grants it the PHI role as the connecting role, then creates
    every object as it."""
    from fakesnow_gaps import CATALOG

    from tests.test_cli import dicom_loader

    schema = snowflake_target.split("/")[4].split("?")[0]
    as_admin(snowflake_target, *_owner_grants(schema, "DICOM_OWNER"))
    for pattern in ("stream-task", "dynamic-tables"):
        done = dicom_loader(
            "deploy", "--pattern", pattern, "--target", snowflake_target,
            "--owner-role", "DICOM_OWNER", check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    owned = {k: v for k, v in CATALOG.owners.items() if k[0] == schema}
    assert {k[1] for k in owned} == {"task", "dynamic_table"} and len(owned) == 8
    assert set(owned.values()) == {"DICOM_OWNER"}
    assert ("DICOM_PHI_READER", "DICOM_OWNER") in CATALOG.grants


def test_a_missing_privilege_refuses_the_deploy_before_anything_is_created(snowflake_target):
    from fakesnow_gaps import CATALOG

    from tests.test_cli import dicom_loader

    schema = snowflake_target.split("/")[4].split("?")[0]
    as_admin(snowflake_target, *_owner_grants(schema, "NO_TASKS", but="CREATE TASK"))
    done = dicom_loader(
        "deploy", "--pattern", "stream-task", "--target", snowflake_target,
        "--owner-role", "NO_TASKS", check=False,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "role NO_TASKS lacks CREATE TASK on schema" in done.stderr
    assert f'GRANT CREATE TASK ON SCHEMA "DICOM"."{schema}" TO ROLE "NO_TASKS"' in done.stderr
    assert not [k for k in CATALOG.bodies if k[0] == schema]
    assert ("DICOM_PHI_READER", "NO_TASKS") not in CATALOG.grants


def test_no_warehouse_is_assumed(snowflake_target):
    """Without --warehouse, deploy uses the session's; with neither, a pattern that
    runs on a warehouse is refused in one line (no COMPUTE_WH is invented)."""
    from tests.test_cli import dicom_loader

    bare = snowflake_target.replace("&warehouse=TEST_WH", "")
    done = dicom_loader("deploy", "--pattern", "dynamic-tables", "--target", bare, check=False)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "dynamic-tables needs a warehouse: give --warehouse" in done.stderr
    printed = dicom_loader("sql", "--pattern", "stream-task", "--owner-role", "R", check=False)
    assert printed.returncode == 1 and "stream-task needs a warehouse" in printed.stderr
