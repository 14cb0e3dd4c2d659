"""The test harness that completes fakesnow answers as Snowflake documents, or
refuses: it never shapes a result after what the loader expects. Each case is a
documented behaviour the loader's tests rely on (sql/snowflake/README.md)."""

from __future__ import annotations

import json

import pytest

from loader.core.errors import StatementError
from loader.jobs.settings import Target
from loader.jobs.targets import open_warehouse

pytestmark = pytest.mark.server


def _session(target: str):
    return open_warehouse(Target.parse(target))


def test_a_variable_holds_its_expressions_value(snowflake_target):
    """https://docs.snowflake.com/en/sql-reference/session-variables: SET evaluates
    its expression once; the variable holds the result, the same at every use."""
    one = _session(snowflake_target)
    try:
        one.query("SET batch = UUID_STRING()")
        first, second = one.query("SELECT $batch, $batch")[0]
        assert first == second == one.query("SELECT $batch")[0][0]
        assert len(first) == 36
    finally:
        one.close()


def test_closing_a_session_rolls_back_its_open_transaction(snowflake_target):
    """https://docs.snowflake.com/en/sql-reference/transactions: "If a session with
    an open transaction is closed, then the open transaction is rolled back"."""
    one = _session(snowflake_target)
    one.query("CREATE TABLE t (v INT)")
    one.query("INSERT INTO t VALUES (1)")
    one.query("BEGIN")
    one.query("INSERT INTO t VALUES (2)")
    one.close()
    two = _session(snowflake_target)
    try:
        assert two.query("SELECT v FROM t ORDER BY v") == [(1,)]
    finally:
        two.close()


def test_ddl_in_an_open_transaction_commits_it(snowflake_target):
    """https://docs.snowflake.com/en/sql-reference/transactions ("DDL"): a DDL
    statement commits the open transaction; a later ROLLBACK undoes nothing."""
    one = _session(snowflake_target)
    try:
        one.query("CREATE TABLE t (v INT)")
        one.query("BEGIN")
        one.query("INSERT INTO t VALUES (1)")
        one.query("CREATE TABLE u (v INT)")
        one.query("INSERT INTO t VALUES (2)")
        one.query("ROLLBACK")
        assert one.query("SELECT v FROM t ORDER BY v") == [(1,), (2,)]
        one.query("BEGIN")
        one.query("INSERT INTO t VALUES (3)")
        one.query("ROLLBACK")
        assert one.query("SELECT v FROM t ORDER BY v") == [(1,), (2,)]
    finally:
        one.close()


def test_each_session_keeps_its_own_transaction(snowflake_target):
    """A transaction belongs to one session: another session's COMMIT leaves this
    one's ROLLBACK able to undo its own writes."""
    one, two = _session(snowflake_target), _session(snowflake_target)
    try:
        one.query("CREATE TABLE t (v INT)")
        one.query("BEGIN")
        two.query("BEGIN")
        two.query("COMMIT")
        one.query("INSERT INTO t VALUES (1)")
        one.query("ROLLBACK")
        assert one.query("SELECT count(*) FROM t") == [(0,)]
    finally:
        one.close()
        two.close()


def test_a_masking_policy_must_fit_the_column_it_is_set_on(snowflake_target):
    """https://docs.snowflake.com/en/sql-reference/sql/create-masking-policy: the
    first argument's type is the masked column's, and a conditional policy's
    arguments are the USING columns, in order."""
    one = _session(snowflake_target)
    try:
        one.query("CREATE TABLE p (name VARCHAR, born DATE)")
        one.query(
            "CREATE MASKING POLICY IF NOT EXISTS text_mask AS (v STRING) RETURNS STRING ->\n"
            "  CASE WHEN TRUE THEN v END"
        )
        one.query(
            "CREATE MASKING POLICY IF NOT EXISTS keyed_mask AS (v STRING, k STRING) "
            "RETURNS STRING ->\n  CASE WHEN k IS NULL THEN v END"
        )
        one.query("ALTER TABLE IF EXISTS p MODIFY COLUMN name SET MASKING POLICY text_mask FORCE")
        refused = {
            "ALTER TABLE IF EXISTS p MODIFY COLUMN born SET MASKING POLICY text_mask FORCE": "DATE",
            "ALTER TABLE IF EXISTS p MODIFY COLUMN name SET MASKING POLICY keyed_mask FORCE": "2",
            "ALTER TABLE IF EXISTS p MODIFY COLUMN name SET MASKING POLICY keyed_mask "
            "USING (name, born) FORCE": "DATE",
        }
        for statement, named in refused.items():
            with pytest.raises(StatementError, match=named):
                one.query(statement)
        one.query(
            "ALTER TABLE IF EXISTS p MODIFY COLUMN name SET MASKING POLICY keyed_mask "
            "USING (name, name) FORCE"
        )
    finally:
        one.close()


def test_an_ordered_array_agg_omits_nulls(snowflake_target):
    """https://docs.snowflake.com/en/sql-reference/functions/array_agg (usage notes):
    NULL values are omitted from the array, ordered or not. (A group of NULLs only is
    an empty array on Snowflake and NULL here: the loader never reads one, its
    aggregates are guarded by count(), and sql/snowflake/README.md says so.)"""
    one = _session(snowflake_target)
    try:
        one.query("CREATE TABLE t (g INT, v VARCHAR)")
        one.query("INSERT INTO t VALUES (1, 'b'), (1, NULL), (1, 'a'), (1, 'a'), (2, 'c')")
        rows = one.query(
            "SELECT g, ARRAY_AGG(DISTINCT v) WITHIN GROUP (ORDER BY v) FROM t GROUP BY g ORDER BY g"
        )
        assert [(g, json.loads(a)) for g, a in rows] == [(1, ["a", "b"]), (2, ["c"])]
    finally:
        one.close()
