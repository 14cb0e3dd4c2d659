"""The load algorithm (warehouse/merge.py) statement by statement, on an in-process
DuckDB holding the model and hand-written staged rows: which object's row wins a
natural key, which child rows an instance keeps, the error and duplicate rows, the
counts, the conflicts, the load history and the accounting. Every expected value is
worked out by hand from the rows below (docs/MODEL.md's rules), never read back from
the code: the end-to-end loads (test_pipeline.py, test_batched_load.py) prove the
same on real files, but take a minute where these take a second."""

from __future__ import annotations

import datetime as dt
import json
import zlib

import duckdb
import pytest

from loader.core.errors import Category, LoadError
from loader.core.model import BY_NAME, EXTRACTED, TABLES, create_table
from loader.output.ledger import ShardRecord
from loader.warehouse import merge
from loader.warehouse.base import LoadResult
from loader.warehouse.duckdb import DIALECT
from loader.warehouse.merge import stage_table

LOADED_AT = dt.datetime(2026, 12, 6, 12, 0, 0)
SERIES, STUDY, PATIENT = BY_NAME["dicom_series"], BY_NAME["dicom_study"], BY_NAME["dicom_patient"]


@pytest.fixture
def con():
    """The model's tables and one staging table per extracted table, all empty."""
    connection = duckdb.connect()
    for table in TABLES:
        connection.execute(create_table(table, "duckdb"))
    for name in EXTRACTED:
        connection.execute(f"CREATE TEMPORARY TABLE {stage_table(name)} AS FROM {name} LIMIT 0")
    yield connection
    connection.close()


def runner(connection: duckdb.DuckDBPyConnection):
    """The `Execute` the merge is given: a statement and its bound values → rows."""

    def execute(sql: str, params) -> list[tuple]:
        cursor = connection.execute(sql, list(params))
        return cursor.fetchall() if cursor.description else []

    return execute


def put(connection, table: str, **row) -> None:
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    connection.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))


def order(day: str, path: str) -> str:
    """A `_source_order`: the modification time (`day` in 2024, or a whole date), a
    backslash, the object's URL."""
    date = day if len(day) == 10 else f"2024-{day}"
    return f"{date}T00:00:00.000000\\{path}"


def rows(connection, sql: str) -> list[tuple]:
    return connection.execute(sql).fetchall()


# -- which staged row wins a natural key -------------------------------------------------

# series_key, _source_order, modality: loaded before the upsert.
LOADED_SERIES = [
    (1, order("03-01", "/x"), "CT"),
    (2, order("03-01", "/y"), "MR"),
    (3, order("01-01", "/z"), "US"),
    (5, order("03-01", "/q"), "DX"),
]
STAGED_SERIES = [
    (1, order("02-01", "/w"), "PT"),  # older, another object: the loaded row stays
    (2, order("01-01", "/y"), "NM"),  # older, but the same object read again: replaces
    (3, order("02-01", "/a"), "OT"),  # two staged rows of key 3: the newest wins …
    (3, order("04-01", "/b"), "XA"),  # … and replaces the older loaded row
    (4, order("05-01", "/c"), "SR"),  # a new key staged twice: only the newest goes in
    (4, order("06-01", "/d"), "SM"),
    (5, order("03-01", "/q"), "RF"),  # the very object loaded: its new values win
]
AFTER_UPSERT = {1: "CT", 2: "NM", 3: "XA", 4: "SM", 5: "RF"}


def _put_series(connection, table: str, listed) -> None:
    for key, source_order, modality in listed:
        put(connection, table, series_key=key, _source_order=source_order, modality=modality)


@pytest.mark.parametrize("upsert", [merge.delete_insert_upsert, merge.merge_upsert])
def test_the_newest_object_or_the_same_object_read_again_wins_a_key(con, upsert):
    _put_series(con, "dicom_series", LOADED_SERIES)
    _put_series(con, stage_table("dicom_series"), STAGED_SERIES)
    execute = runner(con)
    assert execute(merge.keys_unique_sql(SERIES), []) == [(2,)]  # keys 3 and 4
    for statement in upsert(SERIES, False):
        execute(statement, [])
    got = rows(con, "SELECT series_key, modality FROM dicom_series ORDER BY 1")
    assert got == sorted(AFTER_UPSERT.items())  # one row per key


@pytest.mark.parametrize("upsert", [merge.delete_insert_upsert, merge.merge_upsert])
def test_staged_keys_known_unique_are_upserted_row_for_row(con, upsert):
    staged = [row for row in STAGED_SERIES if row[0] not in (3, 4)] + [
        (3, order("04-01", "/b"), "XA"),
        (4, order("06-01", "/d"), "SM"),
    ]
    _put_series(con, "dicom_series", LOADED_SERIES)
    _put_series(con, stage_table("dicom_series"), staged)
    execute = runner(con)
    assert execute(merge.keys_unique_sql(SERIES), []) == [(0,)]
    for statement in upsert(SERIES, True):
        execute(statement, [])
    got = rows(con, "SELECT series_key, modality, _source_order FROM dicom_series ORDER BY 1")
    assert [(k, m) for k, m, _ in got] == sorted(AFTER_UPSERT.items())
    assert got[2][2] == order("04-01", "/b")


# -- a batch merged whole ----------------------------------------------------------------

UID = {10: "1.2.3.10", 11: "1.2.3.11", 12: "1.2.3.12"}


def stage_object(
    connection,
    path: str,
    day: str,
    instance: int,
    series: int,
    rows_value: int,
    description: str | None,
    body_part: str | None = None,
    modality: str = "CT",
) -> None:
    """One object's staged rows: its raw header, instance, pixel module, location,
    series, study and patient (an instance child table with one row per object)."""
    source_order = order(day, path)
    common = {"_source_order": source_order, "_run_id": "r1", "_loaded_at": LOADED_AT}
    put(connection, stage_table("dicom_raw"), file_path=path, sop_instance_uid=UID[instance],
        **common)  # fmt: skip
    put(connection, stage_table("dicom_instance"), instance_key=instance, series_key=series,
        sop_instance_uid=UID[instance], file_path=path, file_size_bytes=1000 + instance,
        transfer_syntax_uid="1.2.840.10008.1.2.1", **common)  # fmt: skip
    put(connection, stage_table("dicom_image_pixel"), instance_key=instance,
        image_rows=rows_value, **common)  # fmt: skip
    put(connection, stage_table("dicom_file_location"), location_key=zlib.crc32(path.encode()),
        instance_key=instance, storage_uri=path, header_bytes=rows_value * 10,
        file_size_bytes=2000 + rows_value, transfer_syntax_uid=f"ts{rows_value}",
        _shard_id="s1", **common)  # fmt: skip
    put(connection, stage_table("dicom_series"), series_key=series, study_key=200,
        modality=modality, series_description=description, body_part_examined=body_part,
        **common)  # fmt: skip
    put(connection, stage_table("dicom_study"), study_key=200, patient_key=300,
        study_description="Chest", **common)  # fmt: skip
    put(connection, stage_table("dicom_patient"), patient_key=300, patient_id="P1", **common)


def stage_error(connection, path: str, category: str, tag: str = "") -> None:
    put(connection, stage_table("dicom_ingestion_errors"), file_path=path,
        error_category=category, error_message="m", tag=tag, detected_at=LOADED_AT,
        bytes_read=7, _run_id="r1", _loaded_at=LOADED_AT)  # fmt: skip


def staged_counts(connection) -> dict[str, int]:
    return {n: rows(connection, f"SELECT count(*) FROM {stage_table(n)}")[0][0] for n in EXTRACTED}


def shard(shard_id: str, written: dict[str, int], **fields) -> ShardRecord:
    values = {
        "run_id": "r1", "shard_id": shard_id, "status": "committed", "listed": 3,
        "parsed": 2, "error_files": 1, "errors": {"PARSE_ERROR": 1, "TYPE_CAST_ERROR": 2},
        "rows": written, "files": {}, "parquet_bytes": 0, "bytes_listed": 9000,
        "bytes_read": 4000, "read_requests": 5, "seconds": 1.5,
        "started_at": "2026-12-06T11:00:00", "finished_at": "2026-12-06T11:00:01.500000",
        "worker_pid": 1, "worker_peak_rss_bytes": 1,
    }  # fmt: skip
    return ShardRecord(**{**values, **fields})


def merge_batch(connection) -> LoadResult:
    """Merge what is staged, as one shard that wrote exactly those rows; the stage
    is emptied afterwards, as a backend drops its staged views."""
    staged = staged_counts(connection)
    result = merge.merge_staged(
        runner(connection), DIALECT, "r1", [shard("s1", staged)], staged, LOADED_AT
    )
    for name in EXTRACTED:
        connection.execute(f"DELETE FROM {stage_table(name)}")
    return result


def first_batch(connection) -> LoadResult:
    """Instance 10 read from /a/1 and, newer, /b/1 (its winner); instance 11 from /a/2,
    in another series. The series rows of 100 disagree on two columns."""
    stage_object(connection, "/a/1", "01-01", 10, 100, 1, "A", body_part="HEAD")
    stage_object(connection, "/a/2", "01-02", 11, 101, 2, None, modality="MR")
    stage_object(connection, "/b/1", "01-03", 10, 100, 3, "B", body_part="CHEST")
    stage_error(connection, "/a/bad", Category.PARSE_ERROR)
    stage_error(connection, "/a/2", Category.TYPE_CAST_ERROR, "00180050")
    return merge_batch(connection)


def second_batch(connection) -> LoadResult:
    """/a/2 rewritten (newer), an older copy of instance 10 at /c/1 (it loses to /b/1),
    and a new instance 12 in series 100; series 100 now described "C" everywhere."""
    stage_object(connection, "/a/2", "02-01", 11, 101, 22, None, modality="MR")
    stage_object(connection, "/c/1", "2023-12-01", 10, 100, 5, "C")
    stage_object(connection, "/a/3", "02-02", 12, 100, 6, "C")
    return merge_batch(connection)


def instances(connection) -> list[tuple]:
    return rows(
        connection,
        "SELECT instance_key, file_path, _source_order, deleted_at FROM dicom_instance ORDER BY 1",
    )


def pixel_rows(connection) -> list[tuple]:
    return rows(connection, "SELECT instance_key, image_rows FROM dicom_image_pixel ORDER BY 1, 2")


def error_rows(connection) -> list[tuple]:
    return rows(
        connection,
        "SELECT file_path, error_category, error_message, tag, detected_at, bytes_read, "
        "_run_id, _loaded_at FROM dicom_ingestion_errors ORDER BY 1, 2",
    )


def duplicate(path: str, instance: int, loaded_from: str, header_bytes: int) -> tuple:
    message = f"SOP Instance UID {UID[instance]} is loaded from {loaded_from}"
    return (path, "DUPLICATE", message, "00080018", LOADED_AT, header_bytes, "r1", LOADED_AT)


def test_a_first_batch_keeps_each_instances_newest_object_and_its_rows(con):
    result = first_batch(con)
    assert result.new_instances == 2
    assert result.rows_staged["dicom_instance"] == 3
    assert result.conflicts == {
        "dicom_patient": {"keys": 0, "columns": {}},
        "dicom_study": {"keys": 0, "columns": {}},
        # Series 100's two objects disagree on two columns (101's NULL is no disagreement).
        "dicom_series": {"keys": 1, "columns": {"series_description": 1, "body_part_examined": 1}},
    }
    assert instances(con) == [
        (10, "/b/1", order("01-03", "/b/1"), None),
        (11, "/a/2", order("01-02", "/a/2"), None),
    ]
    assert pixel_rows(con) == [(10, 3), (11, 2)]  # /a/1's row lost with its object
    assert rows(con, "SELECT series_key, series_description FROM dicom_series ORDER BY 1") == [
        (100, "B"),
        (101, None),
    ]
    assert error_rows(con) == [
        duplicate("/a/1", 10, "/b/1", 10),
        ("/a/2", "TYPE_CAST_ERROR", "m", "00180050", LOADED_AT, 7, "r1", LOADED_AT),
        ("/a/bad", "PARSE_ERROR", "m", "", LOADED_AT, 7, "r1", LOADED_AT),
    ]
    assert rows(con, "SELECT series_key, number_of_instances FROM dicom_series ORDER BY 1") == [
        (100, 1),
        (101, 1),
    ]
    assert rows(
        con, "SELECT number_of_series, number_of_instances, modalities_in_study FROM dicom_study"
    ) == [(2, 2, ["CT", "MR"])]
    assert rows(con, "SELECT count(*) FROM dicom_file_location") == [(3,)]


def test_a_later_batch_replaces_the_rows_of_the_instances_it_wins(con):
    first_batch(con)
    result = second_batch(con)
    assert result.new_instances == 1
    # The loaded row of series 100 says "B", every staged one "C": one key disagrees.
    assert result.conflicts["dicom_series"] == {"keys": 1, "columns": {"series_description": 1}}
    assert instances(con) == [
        (10, "/b/1", order("01-03", "/b/1"), None),
        (11, "/a/2", order("02-01", "/a/2"), None),
        (12, "/a/3", order("02-02", "/a/3"), None),
    ]
    # 11's rows are its rewritten object's; the older copy /c/1 brings none of its own.
    assert pixel_rows(con) == [(10, 3), (11, 22), (12, 6)]
    assert error_rows(con) == [
        duplicate("/a/1", 10, "/b/1", 10),  # once, not once per batch that touched 10
        ("/a/bad", "PARSE_ERROR", "m", "", LOADED_AT, 7, "r1", LOADED_AT),
        duplicate("/c/1", 10, "/b/1", 50),
    ]  # /a/2's cast error went with the object read again
    assert rows(con, "SELECT series_key, number_of_instances FROM dicom_series ORDER BY 1") == [
        (100, 2),
        (101, 1),
    ]
    assert rows(con, "SELECT number_of_series, number_of_instances FROM dicom_study") == [(2, 3)]
    assert rows(con, "SELECT series_description FROM dicom_series WHERE series_key = 100") == [
        ("C",)
    ]


def test_a_batch_after_a_deletion_points_the_instance_at_its_newest_live_copy(con):
    first_batch(con)
    second_batch(con)
    gone = dt.datetime(2026, 12, 1)
    con.execute("UPDATE dicom_file_location SET deleted_at = ? WHERE storage_uri = '/b/1'", [gone])
    stage_object(con, "/a/1", "01-01", 10, 100, 1, "A")  # an older copy, read again
    result = merge_batch(con)
    assert result.new_instances == 0
    # /a/1 (January) is newer than /c/1 (December): its location's file columns.
    assert rows(
        con,
        "SELECT file_path, file_size_bytes, transfer_syntax_uid, _source_order, deleted_at "
        "FROM dicom_instance WHERE instance_key = 10",
    ) == [("/a/1", 2001, "ts1", order("01-01", "/a/1"), None)]
    assert pixel_rows(con) == [(10, 3), (11, 22), (12, 6)]
    assert rows(con, "SELECT _source_order FROM dicom_image_pixel WHERE instance_key = 10") == [
        (order("01-01", "/a/1"),)
    ]
    duplicates = [r[0] for r in error_rows(con) if r[1] == "DUPLICATE"]
    assert duplicates == ["/c/1"]  # /a/1 is loaded now; the deleted /b/1 is no duplicate


def test_a_batch_whose_every_instance_is_new_and_single_keeps_every_row(con):
    stage_object(con, "/a/1", "01-01", 10, 100, 1, "A")
    stage_object(con, "/a/2", "01-02", 11, 100, 2, "A")
    assert merge_batch(con).new_instances == 2
    assert pixel_rows(con) == [(10, 1), (11, 2)]
    assert [r[0] for r in error_rows(con)] == []


def test_staged_rows_that_differ_from_the_rows_written_fail_the_load():
    written = {"dicom_instance": 3, "dicom_raw": 3}
    merge.check_staged({"dicom_instance": 3, "dicom_raw": 3}, [shard("s1", written)])
    merge.check_staged({}, [shard("s1", {})])
    with pytest.raises(LoadError, match=r"dicom_instance: staged 2 rows but the run wrote 3"):
        merge.check_staged({"dicom_instance": 2, "dicom_raw": 3}, [shard("s1", written)])
    two = [shard("s1", {"dicom_raw": 1}), shard("s2", {"dicom_raw": 2})]
    merge.check_staged({"dicom_raw": 3}, two)
    with pytest.raises(LoadError, match=r"dicom_raw: staged 0 rows but the run wrote 3"):
        merge.check_staged({}, two)


# -- instances following their live copies -------------------------------------------------

GONE = dt.datetime(2026, 12, 1)


def _instance(connection, key: int, path: str, day: str, deleted_at=None) -> None:
    put(connection, "dicom_instance", instance_key=key, sop_instance_uid=f"u{key}",
        series_key=100, file_path=path, _source_order=order(day, path),
        deleted_at=deleted_at)  # fmt: skip


def _location(connection, key: int, instance: int, path: str, day: str, deleted_at=None) -> None:
    put(connection, "dicom_file_location", location_key=key, instance_key=instance,
        storage_uri=path, file_size_bytes=key * 10, transfer_syntax_uid=f"ts{key}",
        header_bytes=key, _source_order=order(day, path), _run_id="r0",
        deleted_at=deleted_at)  # fmt: skip


def _children(connection, instance: int, path: str, day: str) -> None:
    source_order = order(day, path)
    put(connection, "dicom_image_pixel", instance_key=instance, image_rows=instance,
        _source_order=source_order)  # fmt: skip
    for frame in (1, 2):
        put(connection, "dicom_frame", frame_key=instance * 10 + frame, instance_key=instance,
            frame_number=frame, _source_order=source_order)  # fmt: skip


@pytest.fixture
def copies(con):
    """10: its file deleted, two live copies; 11: live, yet stamped deleted; 13: every
    copy deleted; 14: like 10, but not among the instances touched."""
    _instance(con, 10, "/b/1", "03-01")
    _location(con, 1, 10, "/a/1", "02-01")
    _location(con, 2, 10, "/b/1", "03-01", GONE)
    _location(con, 3, 10, "/c/1", "01-01")
    _children(con, 10, "/b/1", "03-01")
    _instance(con, 11, "/a/2", "01-01", GONE)
    _location(con, 4, 11, "/a/2", "01-01")
    _instance(con, 13, "/a/3", "01-01", GONE)
    _location(con, 5, 13, "/a/3", "01-01", GONE)
    _children(con, 13, "/a/3", "01-01")
    _instance(con, 14, "/b/4", "03-01")
    _location(con, 6, 14, "/a/4", "02-01")
    _location(con, 7, 14, "/b/4", "03-01", GONE)
    _children(con, 14, "/b/4", "03-01")
    return con


TOUCHED = ("SELECT instance_key FROM dicom_instance WHERE instance_key IN (?, ?, ?)", [10, 11, 13])


def test_an_instance_whose_file_is_gone_follows_its_newest_live_copy(copies):
    execute = runner(copies)
    assert merge.ever_deleted(execute)
    merge.follow_live_locations(execute, TOUCHED)
    assert rows(
        copies,
        "SELECT instance_key, file_path, file_size_bytes, transfer_syntax_uid, _source_order, "
        "deleted_at FROM dicom_instance ORDER BY 1",
    ) == [
        (10, "/a/1", 10, "ts1", order("02-01", "/a/1"), None),
        (11, "/a/2", None, None, order("01-01", "/a/2"), None),  # a live copy: not deleted
        (13, "/a/3", None, None, order("01-01", "/a/3"), GONE),  # no live copy: as it was
        (14, "/b/4", None, None, order("03-01", "/b/4"), None),  # not touched
    ]
    # Each child row now names the copy its instance follows, once.
    children = "SELECT instance_key, {key}, _source_order FROM {table} ORDER BY 1, 2"
    assert rows(copies, children.format(key="image_rows", table="dicom_image_pixel")) == [
        (10, 10, order("02-01", "/a/1")),
        (13, 13, order("01-01", "/a/3")),
        (14, 14, order("03-01", "/b/4")),
    ]
    assert rows(copies, children.format(key="frame_number", table="dicom_frame")) == [
        (10, 1, order("02-01", "/a/1")),
        (10, 2, order("02-01", "/a/1")),
        (13, 1, order("01-01", "/a/3")),
        (13, 2, order("01-01", "/a/3")),
        (14, 1, order("03-01", "/b/4")),
        (14, 2, order("03-01", "/b/4")),
    ]
    merge.mark_duplicates(execute, "?", LOADED_AT, TOUCHED)
    assert rows(
        copies, "SELECT file_path, bytes_read, _run_id FROM dicom_ingestion_errors ORDER BY 1"
    ) == [("/c/1", 3, "r0")]  # 10's other live copy; deleted copies have no row


def test_a_warehouse_with_nothing_ever_deleted_says_so(con):
    execute = runner(con)
    _instance(con, 10, "/a/1", "01-01")
    _location(con, 1, 10, "/a/1", "01-01")
    assert not merge.ever_deleted(execute)
    _location(con, 2, 10, "/b/1", "01-01", GONE)
    assert merge.ever_deleted(execute)


def test_marking_duplicates_again_replaces_the_rows_it_made(con):
    execute = runner(con)
    _instance(con, 10, "/a/1", "01-01")
    _location(con, 1, 10, "/a/1", "01-01")
    _location(con, 2, 10, "/a/2", "01-01")
    _instance(con, 20, "/z/1", "01-01")
    _location(con, 3, 20, "/z/1", "01-01")
    _location(con, 4, 20, "/z/2", "01-01")
    put(con, "dicom_ingestion_errors", file_path="/a/2", error_category="TYPE_CAST_ERROR", tag="t")
    put(con, "dicom_ingestion_errors", file_path="/z/2", error_category="DUPLICATE", tag="old")
    touched = ("SELECT ? AS instance_key", [10])
    for _ in range(2):
        merge.mark_duplicates(execute, "?", LOADED_AT, touched)
    assert rows(
        con, "SELECT file_path, error_category, tag FROM dicom_ingestion_errors ORDER BY 1, 2"
    ) == [
        ("/a/2", "DUPLICATE", "00080018"),
        ("/a/2", "TYPE_CAST_ERROR", "t"),  # an annotation of another kind stays
        ("/z/2", "DUPLICATE", "old"),  # instance 20 was not touched
    ]


# -- the counts --------------------------------------------------------------------------


def test_counts_come_from_the_live_instances_loaded(con):
    for study in (200, 201, 202):
        put(con, "dicom_study", study_key=study, number_of_series=9, number_of_instances=9)
    put(con, "dicom_study", study_key=203, number_of_series=9, number_of_instances=9)
    for series, study, modality in [
        (100, 200, "MR"), (101, 200, "CT"), (102, 200, "MR"), (103, 200, "US"),
        (104, 201, None), (105, 202, "PT"), (106, 203, "NM"),
    ]:  # fmt: skip
        put(con, "dicom_series", series_key=series, study_key=study, modality=modality,
            number_of_instances=9)  # fmt: skip
    for key, series, deleted_at in [
        (1, 100, None), (2, 100, None), (3, 101, None), (4, 102, None),
        (5, 103, GONE), (6, 104, None), (7, 105, GONE), (8, 106, None),
    ]:  # fmt: skip
        put(con, "dicom_instance", instance_key=key, series_key=series, deleted_at=deleted_at)
    merge.recount(
        runner(con),
        DIALECT,
        ("SELECT series_key FROM dicom_series WHERE series_key <> ?", [106]),
        ("SELECT study_key FROM dicom_study WHERE study_key <> ?", [203]),
    )
    assert rows(con, "SELECT series_key, number_of_instances FROM dicom_series ORDER BY 1") == [
        (100, 2), (101, 1), (102, 1), (103, 0), (104, 1), (105, 0), (106, 9),
    ]  # fmt: skip
    assert rows(
        con,
        "SELECT study_key, number_of_series, number_of_instances, modalities_in_study "
        "FROM dicom_study ORDER BY 1",
    ) == [
        (200, 3, 4, ["CT", "MR"]),  # the US series has no live instance left
        (201, 1, 1, None),  # its one series names no modality
        (202, 0, 0, None),  # nothing live
        (203, 9, 9, None),  # not among the studies recounted
    ]


def test_a_study_without_series_counts_zero(con):
    put(con, "dicom_study", study_key=200, number_of_series=5, number_of_instances=5)
    merge.recount(runner(con), DIALECT, ("SELECT 1 WHERE false", []), ("SELECT 200", []))
    assert rows(
        con, "SELECT number_of_series, number_of_instances, modalities_in_study FROM dicom_study"
    ) == [(0, 0, None)]


# -- conflicts counted before the upsert resolves them -----------------------------------


def test_conflicts_count_keys_and_columns_whose_objects_disagree(con):
    put(con, "dicom_patient", patient_key=1, patient_sex="F", patient_name="A", _source_order="x")
    put(con, "dicom_patient", patient_key=4, patient_sex="M", _source_order="x")
    staged = stage_table("dicom_patient")
    for key, sex, name, birth in [
        (1, "M", "A", None),  # 1: sex differs from the loaded row, name agrees
        (2, "F", "B", dt.date(1970, 1, 1)),  # 2: name and birth date differ
        (2, "F", "C", dt.date(1971, 1, 1)),
        (2, None, "B", None),  # a missing value is no disagreement
        (3, "O", None, None),  # 3: one object, nothing to disagree with
        (3, "O", "D", None),
    ]:
        put(con, staged, patient_key=key, patient_sex=sex, patient_name=name,
            patient_birth_date=birth, _source_order=f"{key}{name}", _run_id=f"r{name}")  # fmt: skip
    found = merge._conflicts(runner(con), PATIENT)
    assert found == {
        "keys": 2,
        "columns": {"patient_sex": 1, "patient_name": 1, "patient_birth_date": 1},
    }  # _source_order and _run_id always differ between objects: not attributes


def test_conflicts_leave_out_computed_columns(con):
    put(con, "dicom_study", study_key=1, number_of_series=1, study_description="A")
    put(con, stage_table("dicom_study"), study_key=1, number_of_series=2, study_description="A")
    assert merge._conflicts(runner(con), STUDY) == {"keys": 0, "columns": {}}


# -- the load history and the accounting -------------------------------------------------


def test_the_history_holds_a_row_per_shard_and_the_accounting_counts_objects(con):
    execute = runner(con)
    first_batch(con)
    # The whole run's locations and errors staged again, as finish_run does.
    for path, instance, shard_id in [("/a/1", 10, "s1"), ("/a/2", 11, "s2"), ("/b/1", 10, "s2")]:
        put(con, stage_table("dicom_file_location"), location_key=zlib.crc32(path.encode()),
            instance_key=instance, storage_uri=path, _shard_id=shard_id)  # fmt: skip
    for path, category in [
        ("/a/bad", Category.PARSE_ERROR),
        ("/a/bad", Category.VALIDATION_ERROR),  # one file, two rows: one error file
        ("/a/trunc", Category.TRUNCATED),
        ("/a/2", Category.TYPE_CAST_ERROR),  # annotates a loaded object
        ("/a/1", Category.DUPLICATE),
    ]:
        stage_error(con, path, category)
    put(con, "dicom_load_history", run_id="r1", shard_id="stale")
    put(con, "dicom_load_history", run_id="r0", shard_id="s1")
    shards = [
        shard(
            f"s{n}",
            {"dicom_raw": n, "dicom_element": 2 * n},
            listed=n,
            parsed=n - 1,
            bytes_read=n * 100,
        )
        for n in range(1, merge.HISTORY_ROWS_PER_INSERT + 3)
    ]
    result = merge.account_staged(execute, DIALECT, "r1", shards, LOADED_AT, LoadResult("r1"))
    assert (result.loaded, result.duplicates, result.error_files) == (2, 1, 2)
    history = rows(
        con,
        "SELECT shard_id, status, listed, parsed, duplicates, errors, error_files, "
        "CAST(rows_per_table AS VARCHAR), bytes_listed, bytes_read, read_requests, seconds, "
        "started_at, finished_at, _run_id, _loaded_at FROM dicom_load_history "
        "WHERE run_id = 'r1' ORDER BY CAST(substr(shard_id, 2) AS INT)",
    )
    assert len(history) == merge.HISTORY_ROWS_PER_INSERT + 2  # the stale row replaced
    started, finished = dt.datetime(2026, 12, 6, 11), dt.datetime(2026, 12, 6, 11, 0, 1, 500000)
    for n, row in enumerate(history, start=1):
        assert row[:7] == (f"s{n}", "loaded", n, n - 1, 1 if n == 1 else 0, 3, 1)
        # The rows per table as JSON text, its keys sorted: one text per content.
        assert json.loads(row[7]) == {"dicom_raw": n, "dicom_element": 2 * n}
        assert list(json.loads(row[7])) == ["dicom_element", "dicom_raw"]
        assert row[8:] == (9000, n * 100, 5, 1.5, started, finished, "r1", LOADED_AT)
    assert rows(con, "SELECT shard_id FROM dicom_load_history WHERE run_id = 'r0'") == [("s1",)]


def test_a_run_that_staged_nothing_accounts_for_nothing(con):
    result = merge.account_staged(runner(con), DIALECT, "r1", [], LOADED_AT, LoadResult("r1"))
    assert (result.loaded, result.duplicates, result.error_files) == (0, 0, 0)
    assert rows(con, "SELECT count(*) FROM dicom_load_history") == [(0,)]
