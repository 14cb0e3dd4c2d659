"""The commands that load: `run` (list, extract, load), `load` (a written run)
and `rebuild` (every table again from the headers the target stores)."""

from __future__ import annotations

from typing import Any

import click

from loader.cli.options import (
    StorageGiven,
    flag_options,
    flag_values,
    out_option,
    pacs_filters,
    report_option,
    storage_options,
    target_options,
)
from loader.cli.terminal import fail, finish, shard_progress
from loader.core.errors import ConfigError, LoaderError
from loader.jobs import pipeline
from loader.jobs.load import load as load_run
from loader.jobs.progress import ListingCount, manifest_entries
from loader.jobs.rebuild import rebuild as rebuild_tables
from loader.jobs.settings import RunSettings, Target
from loader.output.location import OutputRoot


@click.command()
@click.argument("source")
@out_option("the run's")
@target_options
@storage_options
@pacs_filters
@flag_options(RunSettings)
@click.option(
    "--scheduler-file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Run the shards on the Dask cluster this scheduler file describes.",
)
@report_option
def run(
    source: str,
    out: str,
    target: Target,
    storage: StorageGiven,
    scheduler_file: str | None,
    report_path: tuple[str, ...],
    **flags: Any,
) -> None:
    """List SOURCE (a folder, a bucket prefix, a manifest, DICOM JSON exports or a
    dicomweb+http(s):// PACS), extract every header, load TARGET."""
    try:
        values = flag_values(RunSettings, flags)
        values["scheduler"] = values["scheduler"] or scheduler_file
        settings = RunSettings(
            source=source, out=out, target=target, storage_options=storage.options, **values
        )
        listing = ListingCount(expected=manifest_entries(source))
        with shard_progress(listing) as progress:
            report = pipeline.run(settings, progress, listing)
    except LoaderError as exc:
        fail(exc)
    finish(report, report_path, storage.options)


@click.command()
@click.option("--run-id", required=True, help="The written run to load.")
@out_option("the written run's")
@target_options
@storage_options
@report_option
def load(
    run_id: str, out: str, target: Target, storage: StorageGiven, report_path: tuple[str, ...]
) -> None:
    """Load an already-written run (its Parquet) into TARGET."""
    try:
        report = load_run(OutputRoot.of(out, storage.options), run_id, target)
    except LoaderError as exc:
        fail(exc)
    finish(report, report_path, storage.options)


@click.command()
@click.option("--run-id", "from_run", default=None, help="Rebuild the objects this run loaded.")
@click.option("--all", "everything", is_flag=True, help="Rebuild every object the target holds.")
@click.option(
    "--from-parquet",
    default=None,
    metavar="OUT",
    help="Take run --run-id's stored headers from its Parquet under this output root, "
    "not from the target's tables.",
)
@out_option("the rebuild's")
@target_options
@storage_options
@flag_options(RunSettings, "workers", "shard_size")
@report_option
def rebuild(
    from_run: str | None,
    everything: bool,
    from_parquet: str | None,
    out: str,
    target: Target,
    storage: StorageGiven,
    workers: int,
    shard_size: int,
    report_path: tuple[str, ...],
) -> None:
    """Derive every table again from the headers TARGET stores (after a change to the
    model or the extraction), without reading the archive, and load them."""
    try:
        if everything == (from_run is not None):
            raise ConfigError("rebuild: give --run-id ID or --all (one of them)")
        report = rebuild_tables(
            target,
            out,
            from_run=from_run,
            workers=workers,
            shard_size=shard_size,
            storage_options=storage.options,
            from_parquet=from_parquet,
        )
    except LoaderError as exc:
        fail(exc)
    finish(report, report_path, storage.options)
