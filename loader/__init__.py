"""dicom-loader: DICOM header metadata from archives into a warehouse, headers only.

The Python API mirrors the command line::

    from loader import RunSettings, Target, run, scan, synthesize, validate_target
    report = run(RunSettings(source="/archive", target=Target.parse("duckdb:///x.duckdb")))
"""

from __future__ import annotations

from typing import Any

from loader.run import pipeline
from loader.run.pipeline import load, run
from loader.run.scan import scan
from loader.run.settings import RunSettings, Target
from loader.synth import synthesize


def validate_target(target: str) -> dict[str, Any]:
    """Validation checks of what a warehouse target holds."""
    return pipeline.validate_target(Target.parse(target))


__all__ = ["RunSettings", "Target", "load", "run", "scan", "synthesize", "validate_target"]
