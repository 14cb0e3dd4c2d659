PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARCHIVE ?= ./demo-archive
PATIENTS ?= 40

.PHONY: demo test check mutate fuzz bench bench-latency bench-e2e bench-scale bench-reload bench-reload-s3 bench-snowflake bench-rebuild bench-containers bench-frames lint typecheck sql clean

$(BIN)/dicom-loader: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# A fresh archive each time, so a fresh warehouse: the archive of an earlier version
# holds other objects at the same paths, which a load into its warehouse would rightly
# report as instances no longer in their files.
demo: $(BIN)/dicom-loader
	rm -rf $(ARCHIVE) imaging.duckdb imaging.duckdb.wal
	$(BIN)/dicom-loader synth $(ARCHIVE) --patients $(PATIENTS) --seed 7 --bad-fraction 0.03 > /dev/null
	$(BIN)/dicom-loader run $(ARCHIVE) --run-id demo --target duckdb:///./imaging.duckdb --report run-report.json
	$(BIN)/python scripts/example_query.py ./imaging.duckdb

# Azurite, the Azure Blob emulator the object-store tests start (package.json).
node_modules/.bin/azurite-blob: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Orthanc and its DICOMweb plugin (Debian's packages): the PACS the tests start.
ORTHANC_DICOMWEB := /usr/share/orthanc/plugins/libOrthancDicomWeb.so
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(ORTHANC_DICOMWEB):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		orthanc orthanc-dicomweb > /dev/null

# Debian's Chromium: the browser the HTML report is checked in (tests/test_html_report.py).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium > /dev/null

# Every test, on two processes (pytest-xdist): each starts its own servers on free
# ports and its own temporary folders, so the two never share one. 11-13 minutes on
# 2 cores, against 16 on one. worksteal: a process that runs out of tests takes some
# of the other's, so a long test near the end does not leave one core idle.
test: $(BIN)/dicom-loader node_modules/.bin/azurite-blob $(ORTHANC_DICOMWEB) $(CHROMIUM)
	$(BIN)/python -m pytest tests -q -n 2 --dist worksteal

# The edit-test loop: every test that starts no server (unit, DuckDB, Dask workers)
# and is not slow (fuzzing, a reload's memory, crash-resume runs), on two processes,
# under two minutes; `make test` runs them all.
check: $(BIN)/dicom-loader
	$(BIN)/python -m pytest tests -q -m "not server and not slow" -n 2 --dist worksteal

# Mutation testing (docs/TESTING.md): each module's mutants against its tests, in a
# scratch copy; scores to benchmarks/results/ and docs/TESTING.md. MODULE=path for one.
$(VENV)/.mutate: $(BIN)/dicom-loader pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,mutate]'
	touch $@

mutate: $(VENV)/.mutate
	$(BIN)/python scripts/mutate.py $(MODULE) --jobs $(or $(JOBS),1)

# Hostile inputs: hypothesis mutations of real files with fresh randomness, many more
# examples than make test runs; prints the outcome categories seen.
FUZZ_EXAMPLES ?= 20000
fuzz: $(BIN)/dicom-loader
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/test_fuzz.py -q \
		-p no:cacheprovider --hypothesis-show-statistics

# The hot path against a bare parse (pytest-benchmark), then reads under latency.
bench: $(BIN)/dicom-loader bench-latency
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-columns=min,median,ops

# Extraction files/s from S3, GCS, Azure and DICOMweb servers with 100 ms injected
# before every object read, against none (LATENCY_MS, LATENCY_OBJECTS, LATENCY_SERVICES).
bench-latency: $(BIN)/dicom-loader node_modules/.bin/azurite-blob $(ORTHANC_DICOMWEB)
	$(BIN)/python benchmarks/latency.py

# The baselines' own dependencies (dlt), kept out of the loader's.
$(VENV)/.bench: $(BIN)/dicom-loader pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

# dicom-loader against a bare parse, a naive full-read loop and dlt on one archive
# (BENCH_OBJECTS, default 20,000), plus the cost curve: see benchmarks/README.md.
bench-e2e: $(VENV)/.bench
	$(BIN)/python benchmarks/e2e.py

# The whole run into DuckDB at 10k, 100k, 200k and 1M objects (BENCH_SCALE_SIZES):
# files/s, phases, peak memory, against a bare parse: see benchmarks/README.md.
bench-scale: $(VENV)/.bench
	$(BIN)/python benchmarks/scale.py

# A nightly reload of bench-scale's archive (BENCH_RELOAD_OBJECTS, default 1,000,000):
# a full run, a night's changes, --incremental twice, against a fresh load.
bench-reload: $(VENV)/.bench
	$(BIN)/python benchmarks/reload.py

# The same night from a moto S3 bucket (BENCH_RELOAD_S3_OBJECTS, default 20,000): LIST
# and GET requests counted by a proxy in front of the server.
bench-reload-s3: $(VENV)/.bench
	$(BIN)/python benchmarks/reload_store.py

# What a Snowflake load stages before and after compaction, and its time on the
# fakesnow server against DuckDB's (BENCH_SNOWFLAKE_OBJECTS, default 20,000).
bench-snowflake: $(BIN)/dicom-loader
	$(BIN)/python benchmarks/snowflake_load.py

# dicom-loader rebuild against the run it replaces (BENCH_REBUILD_OBJECTS, default 20,000).
bench-rebuild: $(BIN)/dicom-loader
	$(BIN)/python benchmarks/rebuild.py

# What --frame-offsets costs a run: rate, bytes, reads, frames located, memory.
bench-frames: $(BIN)/dicom-loader
	$(BIN)/python benchmarks/frame_offsets.py

# Bytes and requests read from the same objects loose, zipped and tarred.
bench-containers: $(BIN)/dicom-loader
	$(BIN)/python benchmarks/containers.py

lint: $(BIN)/dicom-loader
	$(BIN)/ruff check loader tests benchmarks scripts
	$(BIN)/mypy loader

sql: $(BIN)/dicom-loader
	$(BIN)/python -c 'from loader.warehouse.patterns import model_sql; open("sql/duckdb/model.sql", "w").write(model_sql("duckdb")); open("sql/snowflake/model.sql", "w").write(model_sql("snowflake"))'
	$(BIN)/python -c 'from loader.warehouse.snowflake import render_stage_sql; open("sql/snowflake/stage.sql", "w").write(render_stage_sql())'
	$(BIN)/python -c 'from loader.warehouse.patterns import write_sql_files; write_sql_files("sql/snowflake")'
	$(BIN)/python -c 'from loader.core.model import render_model_doc; open("docs/MODEL.md", "w").write(render_model_doc())'


clean:
	rm -rf $(ARCHIVE) dicom-parquet imaging.duckdb imaging.duckdb.wal run-report.json
