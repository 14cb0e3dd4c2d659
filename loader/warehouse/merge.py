"""From staged rows to the model tables: the one load algorithm every warehouse runs.

A backend stages a batch of a run's Parquet into `dl_stage_<table>` tables (DuckDB
reads the files, Snowflake PUTs and COPYs them), then `merge_staged` applies them in
one transaction: entities upserted on natural keys (the row of the greatest
`_source_order` wins, whatever the load order, so batches may come in any order),
the child rows of every instance whose winning object is in the batch replaced,
error rows replaced per object, duplicates and study/series counts recomputed.
Once every batch is in, `account_staged` writes the load history and accounts for
the run's objects from its staged locations and errors (the whole run's: an object
of a later batch can take an earlier batch's object's place). Snowflake loads a run
as one batch and does both in one transaction. Only the few statements whose
spelling differs between engines come from the backend's `MergeDialect`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loader.core import faults
from loader.core.errors import FILE_ERROR_CATEGORIES, Category, LoadError
from loader.core.model import BY_NAME, EXTRACTED, TABLES, ColumnType, LoadMode, Table
from loader.output.ledger import ShardRecord
from loader.warehouse.base import LoadResult

T = ColumnType
_FILE_ERRORS_SQL = ", ".join(f"'{c}'" for c in sorted(FILE_ERROR_CATEGORIES))
Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Keys = tuple[str, list[Any]]
"""SQL that selects keys (of instances, series or studies), and the values it binds."""
HISTORY_ROWS_PER_INSERT = 200
KEYS_PER_STATEMENT = 1000  # values bound in one IN list: Snowflake allows 16,384


def stage_table(table: str) -> str:
    return f"dl_stage_{table}"


@dataclass(frozen=True)
class MergeDialect:
    """How one engine spells what the others spell differently."""

    types: dict[ColumnType, str]  # each column type's name (model.DIALECT_TYPES)
    placeholder: str  # "?" or "%s"
    # Statements upserting stage_table(t) into t; True: the staged keys are unique.
    upsert: Callable[[Table, bool], list[str]]
    sorted_distinct_list: Callable[[str], str]  # aggregate: sorted distinct non-NULL values
    variant_from_text: Callable[[str], str]  # JSON text → the engine's VARIANT/JSON


def _key_match(table: Table, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in table.key)


def latest_per_key(table: Table, where: str, unique: bool) -> str:
    """The staged rows of `table`, one per natural key: the greatest _source_order.

    With `unique` (no key staged twice) that is every staged row, and the window,
    which carries whole rows through a sort, is left out: over dicom_raw's JSON
    documents it took 11 of a 200,000-object load's 26 s.
    """
    staged = f"SELECT * FROM {stage_table(table.name)} s {where}"
    if unique:
        return staged
    partition = ", ".join(table.key)
    return (
        f"{staged} QUALIFY row_number() OVER "
        f"(PARTITION BY {partition} ORDER BY _source_order DESC) = 1"
    )


def keys_unique_sql(table: Table) -> str:
    """Counts the natural keys staged more than once (0: `unique` upserts apply)."""
    keys = ", ".join(table.key)
    return (
        f"SELECT count(*) FROM (SELECT {keys} FROM {stage_table(table.name)} "
        f"GROUP BY {keys} HAVING count(*) > 1) d"
    )


def _object_of(order: str) -> str:
    """SQL of the object a `_source_order` names: what follows its time stamp and the
    backslash (a stamp holds none; CHR(92) is one in every engine's literals)."""
    return f"substr({order}, position(CHR(92) IN {order}) + 1)"


def _replaces(staged: str, loaded: str) -> str:
    """SQL: the staged row replaces the loaded one. A newer (or the same) object wins;
    and an object read again replaces what it gave before, whatever its time stamp:
    a file rewritten in place, or restored from a backup, with an older modification
    time than it had (else its new bytes would lose to its old ones, and a periodic
    reload would read it again every night)."""
    return (
        f"({staged}._source_order >= {loaded}._source_order OR "
        f"{_object_of(f'{staged}._source_order')} = {_object_of(f'{loaded}._source_order')})"
    )


def delete_insert_upsert(table: Table, unique: bool) -> list[str]:
    """Upsert by deleting the rows a staged row replaces, then inserting."""
    cols = ", ".join(table.column_names)
    latest = latest_per_key(table, "", unique)
    exists = f"EXISTS (SELECT 1 FROM {table.name} t WHERE {_key_match(table, 't', 's')})"
    return [
        f"DELETE FROM {table.name} t USING ({latest}) w "
        f"WHERE {_key_match(table, 't', 'w')} AND {_replaces('w', 't')}",
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM ("
        f"{latest_per_key(table, f'WHERE NOT {exists}', unique)})",
    ]


def merge_upsert(table: Table, unique: bool) -> list[str]:
    """Upsert with MERGE: a newer (or the same) source replaces the row."""
    cols = table.column_names
    updates = ", ".join(f"{c} = s.{c}" for c in cols if c not in table.key)
    return [
        f"MERGE INTO {table.name} t USING ({latest_per_key(table, '', unique)}) s "
        f"ON {_key_match(table, 't', 's')} "
        f"WHEN MATCHED AND {_replaces('s', 't')} THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) "
        f"VALUES ({', '.join(f's.{c}' for c in cols)})"
    ]


def merge_staged(
    execute: Execute,
    dialect: MergeDialect,
    run_id: str,
    shards: list[ShardRecord],
    staged: dict[str, int],
    loaded_at: dt.datetime,
) -> LoadResult:
    """Apply the staged rows of one batch of `shards`; the caller holds the transaction.
    The result's accounting (loaded, duplicates, error files) is `account_staged`'s."""
    check_staged(staged, shards)
    p = dialect.placeholder
    result = LoadResult(run_id, rows_staged=dict(staged))
    # An aggregate without GROUP BY gives one row, always: unpacked as exactly one.
    [counts] = execute(
        f"SELECT count(*), count(DISTINCT s.instance_key), count(DISTINCT CASE WHEN "
        f"i.instance_key IS NULL THEN s.instance_key END) FROM {stage_table('dicom_instance')} s "
        "LEFT JOIN dicom_instance i ON i.instance_key = s.instance_key",
        [],
    )
    objects, instances, result.new_instances = (int(v) for v in counts)
    result.conflicts = {name: _conflicts(execute, BY_NAME[name]) for name in CONFLICT_TABLES}
    for table in TABLES:
        if table.mode is LoadMode.ENTITY:
            unique = single_count(execute(keys_unique_sql(table), [])) == 0
            for statement in dialect.upsert(table, unique):
                execute(statement, [])
    faults.maybe_fail("mid-merge")
    # Child rows exist only for loaded instances. When every staged instance is new
    # there is nothing to delete (the delete's scan of the child tables, hundreds of
    # millions of element rows at scale, is skipped), and when no instance is staged
    # twice as well, every staged child row is its winner's.
    _replace_children(
        execute,
        delete_first=result.new_instances < instances,
        all_winners=result.new_instances == instances == objects,
    )
    _replace_errors(execute)
    touched: Keys = (f"SELECT DISTINCT instance_key FROM {stage_table('dicom_file_location')}", [])
    if ever_deleted(execute):  # a loaded file may be gone: instances follow live copies
        follow_live_locations(execute, touched)
    mark_duplicates(execute, p, loaded_at, touched)
    recount(
        execute,
        dialect,
        (f"SELECT series_key FROM {stage_table('dicom_series')}", []),
        (
            f"SELECT study_key FROM {stage_table('dicom_study')} "
            f"UNION SELECT study_key FROM {stage_table('dicom_series')}",
            [],
        ),
    )
    return result


def account_staged(
    execute: Execute,
    dialect: MergeDialect,
    run_id: str,
    shards: list[ShardRecord],
    loaded_at: dt.datetime,
    result: LoadResult,
) -> LoadResult:
    """Write the run's load history and its accounting into `result`, once every batch
    is merged; the staged location and error rows must be the whole run's."""
    _record_history(execute, dialect, run_id, shards, loaded_at)
    _account(execute, result)
    return result


CONFLICT_TABLES = ("dicom_patient", "dicom_study", "dicom_series")
_SCALAR = frozenset({T.TEXT, T.INT, T.FLOAT, T.BOOL, T.DATE, T.TIME, T.TIMESTAMP, T.KEY})


def _conflicts(execute: Execute, table: Table) -> dict[str, Any]:
    """Natural keys whose objects disagree on an attribute, counted before the upsert
    resolves them (greatest _source_order wins): the staged rows and the row already
    loaded. A value missing in one object is not a disagreement."""
    columns = [
        c.name
        for c in table.columns
        if c.type in _SCALAR
        and c.name not in table.key
        and c.name not in table.computed
        and not c.name.startswith("_")
    ]
    keys = ", ".join(table.key)
    listed = ", ".join([*table.key, *columns])
    # min <> max is count(DISTINCT) > 1 for ordered values (NULLs left out by both),
    # with a fixed-size state per group: a DISTINCT aggregate per column keeps a hash
    # table per column and thread, and at 15 columns ran a reload past DuckDB's
    # memory limit however few rows were staged.
    flags = ", ".join(f"CASE WHEN min({c}) <> max({c}) THEN 1 ELSE 0 END AS {c}" for c in columns)
    staged = stage_table(table.name)
    [sums] = execute(
        f"SELECT {', '.join(f'sum({c})' for c in columns)}, "
        f"sum(CASE WHEN {' + '.join(columns)} > 0 THEN 1 ELSE 0 END) FROM ("
        f"SELECT {keys}, {flags} FROM ("
        f"SELECT {listed} FROM {staged} UNION ALL SELECT {listed} FROM {table.name} t "
        f"WHERE EXISTS (SELECT 1 FROM {staged} s WHERE {_key_match(table, 't', 's')})"
        f") u GROUP BY {keys}) c",
        [],
    )
    counts = [int(v or 0) for v in sums]  # sums over no staged row are NULL
    by_column = {c: n for c, n in zip(columns, counts, strict=False) if n}
    return {"keys": counts[-1], "columns": by_column}


def check_staged(staged: dict[str, int], shards: list[ShardRecord]) -> None:
    """A load is not done until it is checked: staged rows = rows the run wrote."""
    for name in EXTRACTED:
        written = sum(s.rows.get(name, 0) for s in shards)
        if staged.get(name, 0) != written:
            raise LoadError(
                f"{name}: staged {staged.get(name, 0)} rows but the run wrote {written}"
            )


def single_count(rows: list[tuple[Any, ...]]) -> int:
    """The value of a count: an aggregate without GROUP BY gives one row, always."""
    [(value,)] = rows
    return int(value)


def _replace_children(execute: Execute, delete_first: bool, all_winners: bool) -> None:
    """Child rows follow their instance's winning object, when that object is staged.

    The winners are a subquery, not a temporary table: DDL would commit Snowflake's
    open transaction halfway through the load.
    """
    winners = (
        "SELECT i.instance_key, i._source_order FROM dicom_instance i "
        f"JOIN {stage_table('dicom_instance')} s "
        "ON i.instance_key = s.instance_key AND i._source_order = s._source_order"
    )
    for table in TABLES:
        if table.mode is not LoadMode.INSTANCE_CHILD:
            continue
        cols = ", ".join(table.column_names)
        prefixed = ", ".join(f"s.{c}" for c in table.column_names)
        if delete_first:
            execute(
                f"DELETE FROM {table.name} WHERE instance_key IN "
                f"(SELECT instance_key FROM ({winners}) w)",
                [],
            )
        staged = f"{stage_table(table.name)} s"
        if not all_winners:
            staged += (
                f" JOIN ({winners}) w "
                "ON s.instance_key = w.instance_key AND s._source_order = w._source_order"
            )
        execute(f"INSERT INTO {table.name} ({cols}) SELECT {prefixed} FROM {staged}", [])


def _replace_errors(execute: Execute) -> None:
    """Errors are replaced per object the run processed, so reruns never pile up."""
    cols = ", ".join(BY_NAME["dicom_ingestion_errors"].column_names)
    errors = stage_table("dicom_ingestion_errors")
    execute(
        "DELETE FROM dicom_ingestion_errors WHERE file_path IN ("
        f"SELECT file_path FROM {stage_table('dicom_raw')} UNION "
        f"SELECT file_path FROM {errors})",
        [],
    )
    execute(f"INSERT INTO dicom_ingestion_errors ({cols}) SELECT {cols} FROM {errors}", [])


def mark_duplicates(execute: Execute, p: str, loaded_at: dt.datetime, touched: Keys) -> None:
    """One DUPLICATE row per live location that is not its instance's loaded file,
    for the instances `touched`; a deleted location has none."""
    touched_sql, bound = touched
    execute(
        f"DELETE FROM dicom_ingestion_errors WHERE error_category = '{Category.DUPLICATE}' "
        "AND file_path IN (SELECT storage_uri FROM dicom_file_location "
        f"WHERE instance_key IN ({touched_sql}))",
        bound,
    )
    execute(
        "INSERT INTO dicom_ingestion_errors (file_path, error_category, error_message, "
        "tag, detected_at, bytes_read, _run_id, _loaded_at) "
        f"SELECT l.storage_uri, '{Category.DUPLICATE}', 'SOP Instance UID ' || i.sop_instance_uid "
        f"|| ' is loaded from ' || i.file_path, '00080018', {p}, l.header_bytes, "
        f"l._run_id, {p} FROM dicom_file_location l JOIN dicom_instance i "
        f"ON l.instance_key = i.instance_key WHERE l.instance_key IN ({touched_sql}) "
        "AND l.storage_uri <> i.file_path AND l.deleted_at IS NULL",
        [loaded_at, loaded_at, *bound],
    )


def ever_deleted(execute: Execute) -> bool:
    """Whether any object of the warehouse was ever found deleted (one row read)."""
    return bool(
        execute("SELECT 1 FROM dicom_file_location WHERE deleted_at IS NOT NULL LIMIT 1", [])
    )


def follow_live_locations(execute: Execute, touched: Keys) -> None:
    """An instance of `touched` whose loaded file was found
    deleted while another copy remains is re-pointed to the newest remaining copy
    (its file columns and `_source_order`: a later copy can still win), and an
    instance with a live copy is not deleted. Its header values stay those of the
    copy read first: the copies of one SOP instance carry one header."""
    live = "SELECT 1 FROM dicom_file_location l WHERE l.deleted_at IS NULL AND "
    touched_sql, bound = touched
    followed = execute(
        "SELECT count(*) FROM dicom_instance i WHERE i.instance_key IN "
        f"({touched_sql}) AND NOT EXISTS ({live}l.storage_uri = i.file_path) "
        f"AND EXISTS ({live}l.instance_key = i.instance_key)",
        bound,
    )
    execute(
        "UPDATE dicom_instance SET file_path = w.storage_uri, "
        "file_size_bytes = w.file_size_bytes, transfer_syntax_uid = w.transfer_syntax_uid, "
        "_source_order = w._source_order, deleted_at = NULL FROM ("
        "SELECT instance_key, storage_uri, file_size_bytes, transfer_syntax_uid, _source_order "
        f"FROM dicom_file_location WHERE deleted_at IS NULL AND instance_key IN ({touched_sql}) "
        "QUALIFY row_number() OVER (PARTITION BY instance_key ORDER BY _source_order DESC) = 1"
        ") w WHERE dicom_instance.instance_key = w.instance_key "
        f"AND NOT EXISTS ({live}l.storage_uri = dicom_instance.file_path)",
        bound,
    )
    execute(
        "UPDATE dicom_instance SET deleted_at = NULL WHERE deleted_at IS NOT NULL "
        f"AND instance_key IN ({touched_sql}) "
        f"AND EXISTS ({live}l.instance_key = dicom_instance.instance_key)",
        bound,
    )
    # The instance's child rows name the copy it now follows, as a fresh load of the
    # copies left would: rebuild finds an object's frames by its _source_order. (Only
    # when one was re-pointed: the statements read each child table whole.) Copied
    # with the new value and the old rows deleted, rather than updated in place: an
    # update of a few instances' rows scattered over a table of a hundred million
    # made DuckDB's commit rewrite that column of every row group they lie in (2 s
    # at a million objects); deleted rows and appended ones cost their own size.
    if not single_count(followed):
        return
    for table in TABLES:
        if table.mode is LoadMode.INSTANCE_CHILD and "_source_order" in table.column_names:
            names = table.column_names
            repointed = ", ".join(
                "i._source_order" if name == "_source_order" else f"c.{name}" for name in names
            )
            execute(
                f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {repointed} "
                f"FROM {table.name} c JOIN dicom_instance i ON i.instance_key = c.instance_key "
                f"WHERE c._source_order <> i._source_order AND i.instance_key IN ({touched_sql})",
                bound,
            )
            execute(
                f"DELETE FROM {table.name} USING dicom_instance i "
                f"WHERE {table.name}.instance_key = i.instance_key "
                f"AND {table.name}._source_order <> i._source_order "
                f"AND i.instance_key IN ({touched_sql})",
                bound,
            )


def recount(execute: Execute, dialect: MergeDialect, series: Keys, studies: Keys) -> None:
    """Study and series counts come from the live instances loaded, never from
    headers: for the series and studies `series` and `studies`. A study's
    modalities are those of its series that still have an instance."""
    execute(
        "UPDATE dicom_series SET number_of_instances = c.n FROM ("
        "SELECT se.series_key, count(i.instance_key) AS n FROM dicom_series se "
        "LEFT JOIN dicom_instance i ON i.series_key = se.series_key AND i.deleted_at IS NULL "
        f"WHERE se.series_key IN ({series[0]}) "
        "GROUP BY se.series_key) c WHERE dicom_series.series_key = c.series_key",
        series[1],
    )
    # NULL when no live series names a modality, in every engine: DuckDB's list is
    # NULL over no value, Snowflake's ARRAY_AGG an empty array, so the list is taken
    # only where count() says there is a value.
    modality = "CASE WHEN se.number_of_instances > 0 THEN se.modality END"
    modalities = (
        f"CASE WHEN count({modality}) = 0 THEN NULL "
        f"ELSE {dialect.sorted_distinct_list(modality)} END"
    )
    execute(
        "UPDATE dicom_study SET number_of_series = c.series, "
        "number_of_instances = c.instances, modalities_in_study = c.modalities FROM ("
        "SELECT st.study_key, "
        "count(DISTINCT CASE WHEN se.number_of_instances > 0 THEN se.series_key END) AS series, "
        f"coalesce(sum(se.number_of_instances), 0) AS instances, {modalities} AS modalities "
        "FROM dicom_study st LEFT JOIN dicom_series se ON se.study_key = st.study_key "
        f"WHERE st.study_key IN ({studies[0]}) "
        "GROUP BY st.study_key) c WHERE dicom_study.study_key = c.study_key",
        studies[1],
    )


def _record_history(
    execute: Execute,
    dialect: MergeDialect,
    run_id: str,
    shards: list[ShardRecord],
    loaded_at: dt.datetime,
) -> None:
    p = dialect.placeholder
    duplicates: dict[str, int] = dict(
        execute(
            f"SELECT s._shard_id, count(*) FROM {stage_table('dicom_file_location')} s "
            "JOIN dicom_instance i ON i.instance_key = s.instance_key "
            "WHERE s.storage_uri <> i.file_path GROUP BY s._shard_id",
            [],
        )
    )
    execute(f"DELETE FROM dicom_load_history WHERE run_id = {p}", [run_id])
    columns = BY_NAME["dicom_load_history"].column_names
    marks = ", ".join(p for _ in columns)
    rows = []
    for s in shards:
        values = {
            "run_id": run_id,
            "shard_id": s.shard_id,
            "status": "loaded",
            "listed": s.listed,
            "parsed": s.parsed,
            "duplicates": duplicates.get(s.shard_id, 0),
            "errors": sum(s.errors.values()),
            "error_files": s.error_files,
            "rows_per_table": json.dumps(s.rows, sort_keys=True),
            "bytes_listed": s.bytes_listed,
            "bytes_read": s.bytes_read,
            "read_requests": s.read_requests,
            "seconds": s.seconds,
            "started_at": dt.datetime.fromisoformat(s.started_at),
            "finished_at": dt.datetime.fromisoformat(s.finished_at),
            "_run_id": run_id,
            "_loaded_at": loaded_at,
        }
        rows.append([values[c] for c in columns])
    # VALUES cannot hold a VARIANT expression in Snowflake: select from VALUES instead.
    selected = ", ".join(
        dialect.variant_from_text(f"v.{c}") if c == "rows_per_table" else f"v.{c}" for c in columns
    )
    for start in range(0, len(rows), HISTORY_ROWS_PER_INSERT):
        chunk = rows[start : start + HISTORY_ROWS_PER_INSERT]
        values_sql = ", ".join(f"({marks})" for _ in chunk)
        execute(
            f"INSERT INTO dicom_load_history ({', '.join(columns)}) SELECT {selected} "
            f"FROM (VALUES {values_sql}) AS v ({', '.join(columns)})",
            [value for row in chunk for value in row],
        )


def _account(execute: Execute, result: LoadResult) -> None:
    """Loaded, duplicate and error objects of this run, as the warehouse now says."""
    [(loaded, duplicates)] = execute(
        "SELECT coalesce(sum(CASE WHEN s.storage_uri = i.file_path THEN 1 ELSE 0 END), 0), "
        "coalesce(sum(CASE WHEN s.storage_uri <> i.file_path THEN 1 ELSE 0 END), 0) "
        f"FROM {stage_table('dicom_file_location')} s "
        "JOIN dicom_instance i ON i.instance_key = s.instance_key",
        [],
    )
    result.loaded, result.duplicates = int(loaded), int(duplicates)
    result.error_files = single_count(
        execute(
            f"SELECT count(DISTINCT file_path) FROM {stage_table('dicom_ingestion_errors')} "
            f"WHERE error_category IN ({_FILE_ERRORS_SQL})",
            [],
        )
    )
