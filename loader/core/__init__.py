"""What every stage shares and no stage owns.

In: nothing from the loader; this package imports no other.
Out: the declarative model (model.py) that drives Arrow schemas, both DDLs and
the docs; the surrogate keys Python, DuckDB and Snowflake compute alike (keys.py);
the typed errors that decide an error row's category and whether to retry
(errors.py); crash-test fault points (faults.py); validated SQL identifiers
(identifiers.py); the credential forms and how they are kept out of output
(credentials.py); sizes for people (units.py) and peak memory (memory.py).
"""
