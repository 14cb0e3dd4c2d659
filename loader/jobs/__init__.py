"""Orchestration: the stages above put together for one command, a job: a run, a
scan, a rebuild. (Not `run/`: `loader.run` is the Python API's function.)

In: typed settings (settings.py) from the command line, the environment or
`dicom-loader.toml`.
Out: a run's report (report.py). pipeline.py lists, runs shards on Dask and
loads; shard.py is one Dask task (read → decode → extract → write → commit);
scan.py profiles without loading; rebuild.py derives tables again from stored
headers; incremental.py and deleted_objects.py decide what a reload reads and
what it stamps deleted; validate.py checks the warehouse after every run.
"""
