PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARCHIVE ?= ./demo-archive
PATIENTS ?= 40

.PHONY: demo test bench lint typecheck sql clean

$(BIN)/dicom-loader: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/dicom-loader
	rm -rf $(ARCHIVE)
	$(BIN)/dicom-loader synth $(ARCHIVE) --patients $(PATIENTS) --seed 7 --bad-fraction 0.03 > /dev/null
	$(BIN)/dicom-loader run $(ARCHIVE) --run-id demo --target duckdb:///./imaging.duckdb --report run-report.json
	$(BIN)/python scripts/example_query.py ./imaging.duckdb

test: $(BIN)/dicom-loader
	$(BIN)/python -m pytest tests -q

bench: $(BIN)/dicom-loader
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-columns=min,median,ops

lint: $(BIN)/dicom-loader
	$(BIN)/ruff check loader tests benchmarks scripts
	$(BIN)/mypy loader

sql: $(BIN)/dicom-loader
	$(BIN)/dicom-loader sql --dialect duckdb > sql/duckdb/model.sql

clean:
	rm -rf $(ARCHIVE) dicom-parquet imaging.duckdb imaging.duckdb.wal run-report.json
