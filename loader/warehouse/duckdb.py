"""The embedded default warehouse: DuckDB, loaded from the run's Parquet.

A load stages every table's Parquet into temporary tables, then in one
transaction upserts entities on their natural keys (the row of the greatest
`_source_order` wins, whatever the load order), replaces the child rows of every
instance whose winning object changed, recomputes duplicates and study/series
counts, and checks that it staged exactly the rows the run wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import duckdb

from loader.errors import FILE_ERROR_CATEGORIES, LoadError
from loader.model import BY_NAME, EXTRACTED, TABLES, LoadMode, Table, arrow_schema, render_ddl
from loader.warehouse.base import LoadResult

_FILE_ERRORS_SQL = ", ".join(f"'{c}'" for c in sorted(FILE_ERROR_CATEGORIES))


def _stage_name(table: str) -> str:
    return f"stage_{table}"


class DuckDBWarehouse:
    dialect = "duckdb"
    supports_merge = True
    supports_internal_stage = False
    supports_external_stage = False

    def __init__(self, path: str, read_only: bool = False) -> None:
        if path != ":memory:" and not read_only:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.con = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            raise LoadError(f"cannot open DuckDB database {path}: {exc}") from exc

    def close(self) -> None:
        self.con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def create_model(self) -> None:
        self.con.execute(render_ddl("duckdb"))

    # -- loading ---------------------------------------------------------------

    def load_run(self, out: Path, run_id: str, shards: list[dict[str, Any]]) -> LoadResult:
        """Load every committed shard of a run; idempotent, all or nothing."""
        started = time.time()
        self.create_model()
        loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        result = LoadResult(run_id)
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            for name in EXTRACTED:
                files = [str(out / s["files"][name]) for s in shards if name in s.get("files", {})]
                result.rows_staged[name] = self._stage(BY_NAME[name], files, loaded_at)
            self._check_staged(result.rows_staged, shards)
            result.new_instances = self._count(
                "SELECT count(DISTINCT instance_key) FROM stage_dicom_instance s "
                "WHERE NOT EXISTS (SELECT 1 FROM dicom_instance i "
                "WHERE i.instance_key = s.instance_key)"
            )
            for table in TABLES:
                if table.mode is LoadMode.ENTITY:
                    self._upsert(table)
            self._winners()
            for table in TABLES:
                if table.mode is LoadMode.INSTANCE_CHILD:
                    self._replace_children(table)
            self._replace_errors()
            self._mark_duplicates(loaded_at)
            self._recount()
            self._record_history(run_id, shards, loaded_at)
            self._account(result, run_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            for name in EXTRACTED:
                con.execute(f"DROP TABLE IF EXISTS {_stage_name(name)}")
            con.execute("DROP TABLE IF EXISTS winners")
        result.seconds = time.time() - started
        return result

    def _count(self, sql: str, params: list[Any] | None = None) -> int:
        row = self.con.execute(sql, params or []).fetchone()
        return int(row[0] or 0) if row else 0

    def _stage(self, table: Table, files: list[str], loaded_at: dt.datetime) -> int:
        stage = _stage_name(table.name)
        self.con.execute(f"DROP TABLE IF EXISTS {stage}")
        self.con.execute(
            f"CREATE TEMP TABLE {stage} AS SELECT *, NULL::VARCHAR AS _shard_id "
            f"FROM {table.name} WHERE false"
        )
        if not files:
            return 0
        columns = [f.name for f in arrow_schema(table)]
        select = ", ".join(columns)
        self.con.execute(
            f"INSERT INTO {stage} ({select}, _loaded_at, _shard_id) "
            f"SELECT {select}, ?::TIMESTAMP, "
            r"regexp_extract(filename, 'part-([0-9a-f]+)\.parquet$', 1) "
            "FROM read_parquet(?, filename = true)",
            [loaded_at, files],
        )
        return self._count(f"SELECT count(*) FROM {stage}")

    def _check_staged(self, staged: dict[str, int], shards: list[dict[str, Any]]) -> None:
        """A load is not done until it is checked: staged rows = rows the run wrote."""
        for name, count in staged.items():
            written = sum(int(s.get("rows", {}).get(name, 0)) for s in shards)
            if count != written:
                raise LoadError(
                    f"{name}: staged {count} rows from Parquet but the run wrote {written}"
                )

    def _upsert(self, table: Table) -> None:
        stage = _stage_name(table.name)
        key_match = " AND ".join(f"t.{k} = w.{k}" for k in table.key)
        partition = ", ".join(table.key)
        cols = ", ".join(table.column_names)
        self.con.execute(
            f"DELETE FROM {stage} WHERE rowid NOT IN (SELECT rowid FROM {stage} "
            f"QUALIFY row_number() OVER (PARTITION BY {partition} "
            "ORDER BY _source_order DESC) = 1)"
        )
        self.con.execute(
            f"DELETE FROM {table.name} t USING {stage} w "
            f"WHERE {key_match} AND t._source_order <= w._source_order"
        )
        self.con.execute(
            f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} w "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} t WHERE {key_match})"
        )

    def _winners(self) -> None:
        """Instances whose winning object is in this load (their child rows follow)."""
        self.con.execute("DROP TABLE IF EXISTS winners")
        self.con.execute(
            "CREATE TEMP TABLE winners AS SELECT i.instance_key, i._source_order "
            "FROM dicom_instance i JOIN stage_dicom_instance s "
            "ON i.instance_key = s.instance_key AND i._source_order = s._source_order"
        )

    def _replace_children(self, table: Table) -> None:
        stage = _stage_name(table.name)
        cols = ", ".join(table.column_names)
        prefixed = ", ".join(f"s.{c}" for c in table.column_names)
        self.con.execute(
            f"DELETE FROM {table.name} WHERE instance_key IN (SELECT instance_key FROM winners)"
        )
        self.con.execute(
            f"INSERT INTO {table.name} ({cols}) SELECT {prefixed} FROM {stage} s "
            "JOIN winners w ON s.instance_key = w.instance_key "
            "AND s._source_order = w._source_order"
        )

    def _replace_errors(self) -> None:
        """Errors are replaced per object the run processed, so reruns never pile up."""
        cols = ", ".join(BY_NAME["dicom_ingestion_errors"].column_names)
        self.con.execute(
            "DELETE FROM dicom_ingestion_errors WHERE file_path IN ("
            "SELECT file_path FROM stage_dicom_raw UNION "
            "SELECT file_path FROM stage_dicom_ingestion_errors)"
        )
        self.con.execute(
            f"INSERT INTO dicom_ingestion_errors ({cols}) "
            f"SELECT {cols} FROM stage_dicom_ingestion_errors"
        )

    def _mark_duplicates(self, loaded_at: dt.datetime) -> None:
        """One DUPLICATE row per location that is not its instance's loaded file."""
        touched = "SELECT DISTINCT instance_key FROM stage_dicom_file_location"
        self.con.execute(
            "DELETE FROM dicom_ingestion_errors WHERE error_category = 'DUPLICATE' "
            "AND file_path IN (SELECT storage_uri FROM dicom_file_location "
            f"WHERE instance_key IN ({touched}))"
        )
        self.con.execute(
            "INSERT INTO dicom_ingestion_errors (file_path, error_category, error_message, "
            "tag, detected_at, bytes_read, _run_id, _loaded_at) "
            "SELECT l.storage_uri, 'DUPLICATE', 'SOP Instance UID ' || i.sop_instance_uid "
            "|| ' is loaded from ' || i.file_path, '00080018', ?::TIMESTAMP, l.header_bytes, "
            "l._run_id, ?::TIMESTAMP FROM dicom_file_location l JOIN dicom_instance i "
            f"ON l.instance_key = i.instance_key WHERE l.instance_key IN ({touched}) "
            "AND l.storage_uri <> i.file_path",
            [loaded_at, loaded_at],
        )

    def _recount(self) -> None:
        """Study and series counts come from what is loaded, never from headers."""
        self.con.execute(
            "UPDATE dicom_series SET number_of_instances = c.n FROM ("
            "SELECT se.series_key, count(i.instance_key) AS n FROM dicom_series se "
            "LEFT JOIN dicom_instance i ON i.series_key = se.series_key "
            "WHERE se.series_key IN (SELECT series_key FROM stage_dicom_series) "
            "GROUP BY se.series_key) c WHERE dicom_series.series_key = c.series_key"
        )
        self.con.execute(
            "UPDATE dicom_study SET number_of_series = c.series, "
            "number_of_instances = c.instances, modalities_in_study = c.modalities FROM ("
            "SELECT st.study_key, count(DISTINCT se.series_key) AS series, "
            "coalesce(sum(se.number_of_instances), 0) AS instances, "
            "list_sort(list(DISTINCT se.modality) FILTER (WHERE se.modality IS NOT NULL)) "
            "AS modalities FROM dicom_study st "
            "LEFT JOIN dicom_series se ON se.study_key = st.study_key "
            "WHERE st.study_key IN (SELECT study_key FROM stage_dicom_study "
            "UNION SELECT study_key FROM stage_dicom_series) "
            "GROUP BY st.study_key) c WHERE dicom_study.study_key = c.study_key"
        )

    def _record_history(
        self, run_id: str, shards: list[dict[str, Any]], loaded_at: dt.datetime
    ) -> None:
        duplicates = dict(
            self.con.execute(
                "SELECT s._shard_id, count(*) FROM stage_dicom_file_location s "
                "JOIN dicom_instance i ON i.instance_key = s.instance_key "
                "WHERE s.storage_uri <> i.file_path GROUP BY 1"
            ).fetchall()
        )
        self.con.execute("DELETE FROM dicom_load_history WHERE run_id = ?", [run_id])
        columns = BY_NAME["dicom_load_history"].column_names
        rows = []
        for s in shards:
            values = {
                "run_id": run_id,
                "shard_id": s["shard_id"],
                "status": "loaded",
                "listed": s["listed"],
                "parsed": s["parsed"],
                "duplicates": duplicates.get(s["shard_id"], 0),
                "errors": sum(s.get("errors", {}).values()),
                "error_files": s["error_files"],
                "rows_per_table": json.dumps(s.get("rows", {}), sort_keys=True),
                "bytes_listed": s["bytes_listed"],
                "bytes_read": s["bytes_read"],
                "read_requests": s["read_requests"],
                "seconds": s["seconds"],
                "started_at": s["started_at"],
                "finished_at": s["finished_at"],
                "_run_id": run_id,
                "_loaded_at": loaded_at,
            }
            rows.append([values[c] for c in columns])
        if rows:
            marks = ", ".join("?" for _ in columns)
            self.con.executemany(
                f"INSERT INTO dicom_load_history ({', '.join(columns)}) VALUES ({marks})", rows
            )

    def _account(self, result: LoadResult, run_id: str) -> None:
        """Loaded, duplicate and error objects of this run, as the warehouse now says."""
        loaded, duplicates = self.con.execute(
            "SELECT count(*) FILTER (WHERE s.storage_uri = i.file_path), "
            "count(*) FILTER (WHERE s.storage_uri <> i.file_path) "
            "FROM stage_dicom_file_location s "
            "JOIN dicom_instance i ON i.instance_key = s.instance_key"
        ).fetchone() or (0, 0)
        result.loaded, result.duplicates = int(loaded or 0), int(duplicates or 0)
        result.error_files = self._count(
            "SELECT count(DISTINCT file_path) FROM stage_dicom_ingestion_errors "
            f"WHERE error_category IN ({_FILE_ERRORS_SQL})"
        )
