"""Stage 5 and 6, Parquet and ledger: rows → files a load can trust.

In: the rows extract/ built for one shard.
Out: one zstd Parquet file per table per shard with a deterministic name
(parquet.py), under a run's output location, local or an object-store prefix
(location.py), and the shard's record in the ledger, committed only once its
files are whole (ledger.py).
"""
