"""The commands that look without loading: `scan` (profile a source) and `validate`
(check what a target holds)."""

from __future__ import annotations

import json
import sys

import click

from loader.cli.options import StorageGiven, flag_options, pacs_filters, storage_options
from loader.cli.terminal import (
    EXIT_INVALID,
    console,
    fail,
    out_console,
    write_json_report,
)
from loader.core.errors import LoaderError
from loader.jobs import targets, validate
from loader.jobs.settings import DEFAULT_TARGET, RunSettings, Target


@click.command(name="validate")
@click.option(
    "--target",
    default=DEFAULT_TARGET,
    show_default=DEFAULT_TARGET,
    help="duckdb:///PATH, snowflake:NAME or snowflake://USER@ACCOUNT/DATABASE/SCHEMA.",
)
def validate_command(target: str) -> None:
    """Check counts, integrity and completeness of what TARGET holds."""
    try:
        checks = targets.validate_target(Target.parse(target))
    except LoaderError as exc:
        fail(exc)
    out_console.print_json(json.dumps(checks, default=str))
    if failures := validate.failed(checks):
        console.print(f"[red]validation failed[/red]: {', '.join(failures)}", markup=True)
        sys.exit(EXIT_INVALID)


@click.command()
@click.argument("source")
@flag_options(RunSettings, "workers", "shard_size", workers=0)
@click.option("--report", "report_path", default=None, help="Write the JSON profile here.")
@storage_options
@pacs_filters
def scan(
    source: str, workers: int, shard_size: int, report_path: str | None, storage: StorageGiven
) -> None:
    """Profile SOURCE without loading it."""
    from loader.jobs.scan import scan as scan_source

    try:
        profile = scan_source(
            source,
            workers=workers,
            shard_size=shard_size,
            storage_options=storage.options,
        )
    except LoaderError as exc:
        fail(exc)
    write_json_report(profile, report_path)
    out_console.print_json(json.dumps(profile, default=str))
