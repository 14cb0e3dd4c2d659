"""An entity row whose object is deleted passes to the newest live object of the entity.

A patient, study or series row, and a series' equipment, a study's procedure step and
a series' dose summary, hold the values of one object: the newest of the entity
(merge.py: the greatest `_source_order` wins). When a deletion takes that object
away, a fresh load of the archive left would take the values of the newest object
still there, and so does this, inside the deletion's transaction: the stored headers
of the entity's live objects (stored.py) are derived again (extract/from_stored.py),
newest first, until one gives the entity's row, which replaces the row. The objects
of the same instance, of one series and of one study carry one header in a well-formed
archive; the dose summary (one image's own exposure) and an archive whose objects
disagree are why this is not a no-op.

When live objects are left and none gives the row (a series whose images left name
no dose), the row goes, as a fresh load would have none. When the entity has no live
object left, its row stays as it was: the entity is kept, its counts 0 (README,
"Deletions").

A deletion touches few entity rows (an object gives its entity's row only while it
is the newest there), and each costs one stored header read and derived, rarely more:
the ranks of the live objects are read in doubling groups (1, 2–3, 4–7, …) while an
entity is still waiting for its row, and each group's headers, of all three scopes,
in one read.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from loader.core.model import TABLES, Column, ColumnType, LoadMode, Table, arrow_schema
from loader.extract.context import Row
from loader.extract.from_stored import extracted_from_stored
from loader.warehouse.merge import KEYS_PER_STATEMENT, Execute, MergeDialect
from loader.warehouse.stored import STORED_COLUMNS, STORED_SELECT, cast_errors

T = ColumnType
ROWS_PER_INSERT = 200
_ARRAYS = frozenset({T.TEXT_ARRAY, T.FLOAT_ARRAY, T.INT_ARRAY, T.KEY_ARRAY})
_WRITTEN_BY_THE_LOAD = frozenset({"_run_id", "_shard_id", "_loaded_at"})
# A scope column → how a live object's location reaches it (joins on `dicom_instance i`).
_SCOPES: dict[str, tuple[str, str]] = {
    "series_key": ("i.series_key", ""),
    "study_key": ("se.study_key", "JOIN dicom_series se ON se.series_key = i.series_key "),
    "patient_key": (
        "st.patient_key",
        "JOIN dicom_series se ON se.series_key = i.series_key "
        "JOIN dicom_study st ON st.study_key = se.study_key ",
    ),
}


def _scope_of(table: Table) -> str | None:
    """The narrowest entity whose objects give `table`'s rows; None for the tables
    of one object or one instance (their own rows are stamped, or follow a copy)."""
    if table.mode is not LoadMode.ENTITY or "instance_key" in table.column_names:
        return None
    return next((s for s in _SCOPES if s in table.column_names), None)


SHARED: tuple[tuple[Table, str], ...] = tuple(
    (t, scope) for t in TABLES if (scope := _scope_of(t)) is not None
)

Pending = dict[tuple[str, Any], tuple[str, Any]]
"""(table, key) of a row whose object is deleted → (scope, entity): the entity whose
objects may give it."""


def pass_on(execute: Execute, dialect: MergeDialect, at: dt.datetime, run_id: str) -> None:
    """Every entity row given by an object stamped deleted `at` takes the values of the
    newest live object of its entity that gives one (or goes, see the module)."""
    p = dialect.placeholder
    gone = f"SELECT _source_order FROM dicom_file_location WHERE deleted_at = {p}"
    pending: Pending = {}
    for table, scope in SHARED:
        (key,) = table.key
        for value, entity in execute(
            f"SELECT {key}, {scope} FROM {table.name} WHERE _source_order IN ({gone})", [at]
        ):
            if entity is not None:
                pending[(table.name, value)] = (scope, entity)
    if pending:
        given, lived = _successors(execute, dialect, pending)
        for table, _ in SHARED:
            _replace(execute, dialect, table, pending, given, lived, at, run_id)


def _successors(
    execute: Execute, dialect: MergeDialect, pending: Pending
) -> tuple[dict[tuple[str, Any], Row], set[tuple[str, Any]]]:
    """The row each pending (table, key) takes from the newest live object of its
    entity that gives one, and the (scope, entity) pairs that have a live object at
    all. Each round reads the headers of every scope's ranked objects at once: a
    batch of stored headers costs about a scan of `dicom_raw`'s documents, whether it
    holds one header or a thousand (DuckDB decompresses the blocks they lie in)."""
    keys = {t.name: t.key[0] for t, _ in SHARED}
    waiting = dict(pending)
    given: dict[tuple[str, Any], Row] = {}
    lived: set[tuple[str, Any]] = set()
    headers: dict[str, dict[str, Any]] = {}
    derived: dict[str, dict[str, list[Row]]] = {}  # an object's entity rows, derived once
    first = last = 1
    while waiting:
        ranked = {
            scope: _ranked(execute, dialect, scope, sorted(entities), first, last)
            for scope in _SCOPES
            if (entities := {e for s, e in waiting.values() if s == scope})
        }
        wanted = {uri for found in ranked.values() for uris in found.values() for uri in uris}
        headers.update(_stored_headers(execute, dialect.placeholder, sorted(wanted - set(headers))))
        if first == 1:
            lived.update((scope, e) for scope, found in ranked.items() for e in found)
        for item, (scope, entity) in list(waiting.items()):
            table, value = item
            uris = ranked.get(scope, {}).get(entity, [])
            for uri in uris:
                if uri not in headers:  # a location with no stored header (none is)
                    continue
                if uri not in derived:
                    derived[uri] = _entity_rows(headers[uri], keys)
                rows = derived[uri].get(table, [])
                row = next((r for r in rows if r.get(keys[table]) == value), None)
                if row is not None:
                    given[item] = {**row, "_source_order": headers[uri]["_source_order"]}
                    del waiting[item]
                    break
            else:  # this group did not give it: wait for the next, if there is one
                if len(uris) < last - first + 1:
                    del waiting[item]
        first, last = last + 1, 2 * last + 1
    return given, lived


def _entity_rows(header: dict[str, Any], keys: dict[str, str]) -> dict[str, list[Row]]:
    """The rows a stored header gives the tables of `keys` (an entity table's rows are
    row dicts; the rest, element rows and all, are not kept)."""
    rows, _ = extracted_from_stored(header)
    return {name: found for name in keys if isinstance(found := rows.get(name), list)}


def _ranked(
    execute: Execute, dialect: MergeDialect, scope: str, entities: list[Any], first: int, last: int
) -> dict[Any, list[str]]:
    """Per entity, the URLs of its live objects ranked `first` to `last` from the
    newest, in that order: found on the locations alone (joined to the stored
    documents before the ranking, every one of them was read to rank a few)."""
    p = dialect.placeholder
    column, joins = _SCOPES[scope]
    found: dict[Any, list[str]] = {}
    for start in range(0, len(entities), KEYS_PER_STATEMENT):
        chunk = entities[start : start + KEYS_PER_STATEMENT]
        for entity, uri in execute(
            f"SELECT {column}, l.storage_uri FROM dicom_file_location l "
            f"JOIN dicom_instance i ON i.instance_key = l.instance_key {joins}"
            f"WHERE l.deleted_at IS NULL AND {column} IN ({', '.join(p for _ in chunk)}) "
            f"QUALIFY row_number() OVER (PARTITION BY {column} ORDER BY l._source_order DESC) "
            f"BETWEEN {p} AND {p} ORDER BY {column}, l._source_order DESC",
            [*chunk, first, last],
        ):
            found.setdefault(entity, []).append(uri)
    return found


def _stored_headers(execute: Execute, p: str, uris: list[str]) -> dict[str, dict[str, Any]]:
    """The stored header of each object of `uris`, with its cast errors."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(uris), KEYS_PER_STATEMENT):
        chunk = uris[start : start + KEYS_PER_STATEMENT]
        rows = execute(
            f"SELECT {STORED_SELECT} FROM dicom_raw r "
            "LEFT JOIN dicom_file_location l ON l.storage_uri = r.file_path "
            f"WHERE r.file_path IN ({', '.join(p for _ in chunk)})",
            chunk,
        )
        headers = [dict(zip(STORED_COLUMNS, row, strict=True)) for row in rows]
        errors = cast_errors(execute, p, [h["file_path"] for h in headers])
        for header in headers:
            stored, read = errors.get(header["file_path"], ([], 0))
            # Entity rows do not depend on where frames lie: no frames are read.
            header.update(cast_errors=stored, bytes_read=read, frames=[])
            found[header["file_path"]] = header
    return found


def _replace(
    execute: Execute,
    dialect: MergeDialect,
    table: Table,
    pending: Pending,
    given: dict[tuple[str, Any], Row],
    lived: set[tuple[str, Any]],
    at: dt.datetime,
    run_id: str,
) -> None:
    """`table`'s pending rows replaced by those given, or removed where live objects
    are left and none gave one."""
    p = dialect.placeholder
    (key,) = table.key
    rows = [row for (name, _), row in given.items() if name == table.name]
    removed = [
        value
        for (name, value), entity in pending.items()
        if name == table.name and (name, value) not in given and entity in lived
    ]
    changed = [row[key] for row in rows] + removed
    for start in range(0, len(changed), KEYS_PER_STATEMENT):
        chunk = changed[start : start + KEYS_PER_STATEMENT]
        execute(f"DELETE FROM {table.name} WHERE {key} IN ({', '.join(p for _ in chunk)})", chunk)
    columns = [c for c in table.columns if c.name not in _WRITTEN_BY_THE_LOAD]
    values = _bound(table, columns, rows)
    names = [c.name for c in columns] + ["_run_id", "_loaded_at"]
    loaded_at = f"CAST(v._loaded_at AS {dialect.types[T.TIMESTAMP]})"
    typed = [_typed(dialect, c) for c in columns] + ["v._run_id", loaded_at]
    marks = f"({', '.join(p for _ in names)})"
    for start in range(0, len(values), ROWS_PER_INSERT):
        batch = values[start : start + ROWS_PER_INSERT]
        execute(
            f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(typed)} "
            f"FROM (VALUES {', '.join(marks for _ in batch)}) AS v ({', '.join(names)})",
            [v for row in batch for v in (*row, run_id, at)],
        )


def _bound(table: Table, columns: Sequence[Column], rows: list[Row]) -> list[list[Any]]:
    """Rows as the values to bind: first as Arrow types them for a run's Parquet (the
    same conversion a loaded row went through), arrays as JSON text."""
    if not rows:
        return []
    schema = arrow_schema(table)
    typed = pa.Table.from_pylist(
        rows, schema=pa.schema([schema.field(c.name) for c in columns])
    ).to_pylist()
    return [
        [
            json.dumps(value) if c.type in _ARRAYS and value is not None else value
            for c in columns
            for value in (row[c.name],)
        ]
        for row in typed
    ]


def _typed(dialect: MergeDialect, column: Column) -> str:
    """SQL of a column's value from its bound one (JSON text for VARIANT and arrays)."""
    bound = f"v.{column.name}"
    if column.type is T.VARIANT:
        return dialect.variant_from_text(bound)
    if column.type in _ARRAYS:
        bound = dialect.variant_from_text(bound)
    return f"CAST({bound} AS {dialect.types[column.type]})"
