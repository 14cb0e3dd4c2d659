"""The load stage: a run's committed Parquet in, warehouse tables out.

In: the shard records the ledger committed and their Parquet (output, ledger).
Out: the model's tables in DuckDB or Snowflake, merged by one algorithm
(merge.py), deletions stamped (deletions.py), and what the load counted
(base.LoadResult). `target.py` says where a run loads; `patterns/` renders the
Snowflake deployments built on the loaded tables.
"""
