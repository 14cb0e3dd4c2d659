"""dicom-loader: DICOM header metadata from archives into a warehouse, headers only.

The Python API mirrors the command line::

    from loader import RunSettings, Target, run, scan, synthesize, validate_target
    report = run(RunSettings(source="/archive", target=Target.parse("duckdb:///x.duckdb")))
"""

from __future__ import annotations

from loader.jobs import targets
from loader.jobs.load import load
from loader.jobs.pipeline import run
from loader.jobs.scan import scan
from loader.jobs.settings import RunSettings, Target
from loader.jobs.validate import Checks
from loader.synth import synthesize


def validate_target(target: str) -> Checks:
    """Validation checks of what a warehouse target holds."""
    return targets.validate_target(Target.parse(target))


__all__ = ["RunSettings", "Target", "load", "run", "scan", "synthesize", "validate_target"]
