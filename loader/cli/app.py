"""The `dicom-loader` command: run, load, scan, validate, sql, deploy, synth."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from loader.cli import html_report
from loader.cli import log_file as log_file_config
from loader.cli.init_wizard import (
    JOBS,
    Answers,
    check_target,
    describe,
    next_commands,
    sample_source,
    write_config,
)
from loader.cli.settings_file import CONFIG_NAME, config_path, default_map
from loader.core.credentials import RedactingFilter, Redaction
from loader.core.errors import ConfigError, LoaderError
from loader.dicom.decode import DEFAULT_ELEMENT_LIMIT
from loader.headers.reader import DEFAULT_HEADER_BYTES, LOCAL_HEADER_BYTES
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.run import pipeline, validate
from loader.run.deleted_objects import NOT_INCREMENTAL
from loader.run.progress import ListingCount, eta_text, listed_text, manifest_entries
from loader.run.rebuild import rebuild as rebuild_tables
from loader.run.report import RunReport
from loader.run.settings import (
    DEFAULT_CLUSTER_MIN_OBJECTS,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_LOAD_BATCH_OBJECTS,
    DEFAULT_OUT,
    DEFAULT_STAGE_FILE_MB,
    DEFAULT_TARGET,
    DuckDBOptions,
    RunSettings,
    Target,
    TargetKind,
)
from loader.sources.containers import DEFAULT_MEMBER_LIMIT
from loader.sources.dicomweb import with_filters
from loader.sources.listing import DEFAULT_SHARD_SIZE
from loader.sources.read_ahead import DEFAULT_READ_AHEAD_BYTES
from loader.sources.storage import DEFAULT_READ_CONCURRENCY, parse_storage_options
from loader.warehouse.patterns import PATTERNS, Names, model_sql, render

console = Console(stderr=True)
out_console = Console()

EXIT_FAILED = 1
EXIT_INVALID = 3


def _redaction() -> Redaction:
    """What this command must never show: the credentials it was given."""
    return Redaction.of(sys.argv[1:], os.environ)


def _fail(exc: LoaderError) -> None:
    click.echo(_redaction()(f"error: {exc}"), err=True)
    sys.exit(EXIT_FAILED)


def _write_report(report: Mapping[str, Any], path: str | None) -> None:
    if path:
        text = json.dumps(report, indent=2, default=str) + "\n"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(_redaction()(text), encoding="utf-8")


def _summary(report: RunReport) -> Table:
    table = Table(title=f"dicom-loader run {report['run_id']}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for label, key in (
        ("objects listed", "listed"),
        ("unchanged (skipped)", "unchanged"),
        ("repeated entries (read once)", "repeated_entries"),
        ("loaded", "loaded"),
        ("new instances", "new_instances"),
        ("duplicates", "duplicates"),
        ("error files", "error_files"),
        ("bytes listed", "bytes_listed"),
        ("bytes read", "bytes_read"),
        ("bytes read / object", "bytes_read_per_object"),
        ("read requests / object", "read_requests_per_object"),
        ("seconds", "seconds"),
        ("files / second", "files_per_second"),
    ):
        value = report.get(key)
        table.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    time_split = report.get("worker_time")
    if time_split and (time_split["read_wait_seconds"] or time_split["processing_seconds"]):
        table.add_row(
            "workers waiting for reads",
            f"{time_split['read_wait_share']:.0%} of "
            f"{time_split['read_wait_seconds'] + time_split['processing_seconds']:,.1f} s",
        )
        if time_split["throttled_reads"]:
            table.add_row("  reads throttled by the store", f"{time_split['throttled_reads']:,}")
    for category, count in report["errors"].items():
        table.add_row(f"  {category}", f"{count:,}")
    deleted = report.get("deleted")
    if deleted and deleted["checked"]:
        table.add_row("deleted from the archive", f"{deleted['objects']:,}")
        table.add_row("  instances with no copy left", f"{deleted['instances']:,}")
    elif deleted and deleted["reason"] != NOT_INCREMENTAL:
        table.add_row("deletions not checked", deleted["reason"])
    checks = report.get("validation", {})
    for key in (
        "unique_patients",
        "unique_studies",
        "unique_series",
        "earliest_study_date",
        "latest_study_date",
        "orphan_series",
        "orphan_instances",
    ):
        if key in checks:
            table.add_row(key.replace("_", " "), str(checks[key]))
    balance = checks.get("accounting", {})
    table.add_row(
        "listed = loaded + duplicates + errors + unchanged + repeated",
        "[green]yes[/green]" if balance.get("balanced") else "[red]NO[/red]",
    )
    return table


def _finish(
    report: RunReport, report_paths: tuple[str, ...], options: dict[str, Any] | None = None
) -> None:
    """Write the reports asked for, print the summary, exit 2 when validation failed.
    `options`: the storage options that read the run's output root (the page's
    charts come from its ledger and Parquet)."""
    for path in report_paths:
        if path.lower().endswith((".html", ".htm")):
            html_report.write(path, report, options)
        else:
            _write_report(report, path)
    out_console.print(_summary(report))
    if not report["validation_passed"]:
        failures = ", ".join(report["validation_failed"])
        console.print(f"[red]validation failed[/red]: {failures}", markup=True)
        sys.exit(EXIT_INVALID)


report_option = click.option(
    "--report",
    "report_path",
    multiple=True,
    metavar="FILE",
    help="Write the report here: FILE.html a page to look at (self-contained), any other "
    "name JSON. Repeatable.",
)


def storage_options(command: Any) -> Any:
    """--storage-option and --anon: fsspec options for s3://, gs://, az:// sources."""
    command = click.option(
        "--anon", is_flag=True, help="Read a public bucket without credentials."
    )(command)
    return click.option(
        "--storage-option",
        "storage_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="fsspec storage option for object-store sources and --out (repeatable; values may be "
        "JSON), e.g. endpoint_url=http://127.0.0.1:9000 or profile=archive.",
    )(command)


def pacs_filters(command: Any) -> Any:
    """--since and --modality: which studies a dicomweb+http(s):// source lists."""
    command = click.option(
        "--modality", default=None, help="DICOMweb sources: studies holding this modality."
    )(command)
    return click.option(
        "--since",
        default=None,
        metavar="DATE",
        help="DICOMweb sources: studies dated DATE or later (periodic reloads).",
    )(command)


def _storage(pairs: tuple[str, ...], anon: bool) -> dict[str, Any]:
    options = parse_storage_options(pairs)
    if anon:
        options["anon"] = True
    return options


def _target(
    target: str,
    stage_url: str | None,
    storage_integration: str | None,
    stage_file_mb: float | None,
    duckdb_memory_limit: str,
    duckdb_temp_dir: str | None,
    load_batch_objects: int,
) -> Target:
    """--target with what target_options add to it, for run, load and rebuild."""
    return Target.parse(
        target,
        stage_url,
        storage_integration,
        stage_file_mb,
        DuckDBOptions(duckdb_memory_limit, duckdb_temp_dir, load_batch_objects),
    )


def workers_option(command: Any) -> Any:
    """--workers, for the commands that extract on a Dask cluster."""
    return click.option(
        "--workers",
        type=int,
        default=lambda: os.cpu_count() or 1,
        help="Dask worker processes; 0 runs in this process.  [default: cores]",
    )(command)


def out_option(whose: str) -> Callable[[Any], Any]:
    """--out, the output root of `whose` Parquet and ledger."""
    return click.option(
        "--out",
        default=DEFAULT_OUT,
        show_default=DEFAULT_OUT,
        help=f"Folder or object-store URL (s3://, gs://, az://) for {whose} Parquet and ledger.",
    )


def target_options(command: Any) -> Any:
    """--target, the Snowflake staging options and the DuckDB ones, for run and load."""
    command = click.option(
        "--load-batch-objects",
        type=click.IntRange(min=1),
        default=DEFAULT_LOAD_BATCH_OBJECTS,
        show_default=True,
        help="DuckDB: objects per load transaction; where the driver has a core the "
        "workers do not use, each batch loads while later shards are extracted.",
    )(command)
    command = click.option(
        "--duckdb-temp-dir",
        default=None,
        help="DuckDB: where the load spills what exceeds its memory limit "
        "[default: the database file's name + .tmp].",
    )(command)
    command = click.option(
        "--duckdb-memory-limit",
        default=DEFAULT_DUCKDB_MEMORY_LIMIT,
        show_default=DEFAULT_DUCKDB_MEMORY_LIMIT,
        help="DuckDB: the most memory the load may use (512MB, 2GB…); beyond it, it spills.",
    )(command)
    command = click.option(
        "--stage-file-mb",
        type=click.FloatRange(0.01, 5000),
        default=None,
        help=f"Snowflake: the run's Parquet is compacted per table into files of about this "
        f"size before staging [default: {DEFAULT_STAGE_FILE_MB}].",
    )(command)
    command = click.option(
        "--storage-integration",
        default=None,
        help="Snowflake storage integration that reads the --stage-url location.",
    )(command)
    command = click.option(
        "--stage-url",
        default=None,
        help="Snowflake: the run's Parquet already at this s3://, gcs:// or azure:// URL "
        "(the --out root); load it through an external stage, without PUT.",
    )(command)
    return click.option(
        "--target",
        default=DEFAULT_TARGET,
        show_default=DEFAULT_TARGET,
        help="duckdb:///PATH, snowflake:NAME (connections.toml), "
        "snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=WH, or none (Parquet only).",
    )(command)


class _Listed(ProgressColumn):
    """How far the listing got, read as the bar draws (progress.listed_text)."""

    def __init__(self, listing: ListingCount) -> None:
        super().__init__()
        self.listing = listing

    def render(self, task: Task) -> Text:
        return Text(listed_text(self.listing))


class _Eta(ProgressColumn):
    """Time left at the rate so far, once the listing's total is known."""

    def __init__(self, listing: ListingCount) -> None:
        super().__init__()
        self.listing = listing

    def render(self, task: Task) -> Text:
        return Text(eta_text(self.listing, task.completed, task.speed))


class ConfiguredGroup(click.Group):
    """The command group whose options' defaults come from the environment and the
    config file (settings_file.py), read before any option is parsed."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> click.Context:
        try:
            extra.setdefault("default_map", default_map(self, config_path(args)))
        except LoaderError as exc:
            _fail(exc)
        return super().make_context(info_name, args, parent, **extra)


@click.group(cls=ConfiguredGroup)
@click.version_option(package_name="dicom-loader")
@click.option(
    "--config",
    default=None,
    metavar="FILE",
    help=f"Settings file (TOML) [default: ./{CONFIG_NAME} when present]; the command "
    "line and DICOM_LOADER_<OPTION> variables win over it.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show Dask's own log lines (--log-level INFO).")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Level of Dask's log lines (default WARNING: a run shows its progress and summary).",
)
@click.option(
    "--log-file",
    default=None,
    metavar="PATH",
    help="Also keep every log line at INFO in this file (the driver's and the Dask "
    "workers'), e.g. OUT/run.log; the terminal stays at --log-level.",
)
def main(config: str | None, verbose: bool, log_level: str | None, log_file: str | None) -> None:
    """Load DICOM header metadata from archives into a warehouse (headers only)."""
    redacting = RedactingFilter(_redaction())
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
    handler.addFilter(redacting)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("loader").setLevel(logging.INFO)
    level = (log_level or ("INFO" if verbose else "WARNING")).lower()
    # Dask's nannies, scheduler and workers log every start and connection at INFO:
    # to the terminal only at --log-level, to --log-file always (log_file.py).
    try:
        log_file_config.configure(level, log_file, redacting)
    except LoaderError as exc:
        _fail(exc)


@main.command()
@click.argument("source")
@out_option("the run's")
@target_options
@storage_options
@pacs_filters
@workers_option
@click.option(
    "--cluster-min-objects",
    type=click.IntRange(min=0),
    default=DEFAULT_CLUSTER_MIN_OBJECTS,
    show_default=True,
    help="A source listing fewer objects runs in this process, without starting a "
    "cluster (that costs more than it saves); 0 always starts one.",
)
@click.option(
    "--shard-size",
    type=int,
    default=DEFAULT_SHARD_SIZE,
    show_default=True,
    help=(
        "Objects per shard (one Dask task each); the listing's last shards are cut "
        "a quarter that size, so workers run out of work together."
    ),
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Run the shards on this existing Dask scheduler.",
)
@click.option(
    "--scheduler-file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Run the shards on the Dask cluster this scheduler file describes.",
)
@click.option(
    "--dashboard",
    is_flag=True,
    default=False,
    help="Serve Dask's dashboard for the run's LocalCluster and print its link.",
)
@click.option("--run-id", default=None, help="Name of the run (default: time-stamped).")
@click.option("--resume", is_flag=True, help="Skip the shards --run-id already committed.")
@click.option(
    "--incremental",
    is_flag=True,
    help="Periodic reload: skip objects TARGET already holds with the same URL, size, "
    "modification time and ETag; read only new or changed ones.",
)
@click.option(
    "--header-bytes",
    type=int,
    default=None,
    help="First read per object, grown only when a header is longer [default: "
    f"{DEFAULT_HEADER_BYTES // 1024} KiB on object stores, {LOCAL_HEADER_BYTES // 1024} KiB "
    "on local and network filesystems].",
)
@click.option(
    "--element-limit",
    type=click.IntRange(min=1),
    default=DEFAULT_ELEMENT_LIMIT,
    show_default=True,
    help="Values longer than this many bytes, public or private, are left out (marked, "
    "with a warning); binary values keep their length, the sequences the model reads stay.",
)
@click.option(
    "--read-concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_READ_CONCURRENCY,
    show_default=True,
    help="Object stores: first reads a worker keeps in flight while it parses (covers "
    "~100 ms of latency); halved while the store throttles. S3's and GCS's connection "
    "pools follow it unless --storage-option sets their own.",
)
@click.option(
    "--read-ahead-mb",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_READ_AHEAD_BYTES / (1 << 20),
    show_default=True,
    help="Object stores: at most this many MB of first reads held ahead per worker.",
)
@click.option(
    "--member-limit-mb",
    type=click.FloatRange(min=0.001),
    default=DEFAULT_MEMBER_LIMIT / (1 << 20),
    show_default=True,
    help="A zip or tar member declaring more is not read: a CONTAINER_ERROR row (a zip "
    "bomb inflates a few KB into terabytes).",
)
@click.option(
    "--frame-offsets",
    is_flag=True,
    help="A dicom_frame row for every frame of every object with pixels, with where its "
    "bytes are: native frames from the geometry, encapsulated ones from their offset "
    "table (at most one small read per object, counted in the report).",
)
@click.option(
    "--pseudonymize-key-file",
    default=None,
    metavar="FILE",
    help="Replace patient identifiers and person names by keyed HMAC pseudonyms (the key: "
    "this file's bytes), in the workers, before anything is written.",
)
@click.option(
    "--shift-dates",
    is_flag=True,
    help="With --pseudonymize-key-file: move every date of a patient by the same offset.",
)
@click.option(
    "--pseudonymize-uids",
    is_flag=True,
    help="With --pseudonymize-key-file: replace study, series, instance and frame of "
    "reference UIDs (and references to them) by keyed UIDs under 2.25.",
)
@report_option
def run(
    source: str,
    out: str,
    target: str,
    workers: int,
    cluster_min_objects: int,
    shard_size: int,
    run_id: str | None,
    resume: bool,
    incremental: bool,
    header_bytes: int | None,
    element_limit: int,
    read_concurrency: int,
    read_ahead_mb: float,
    member_limit_mb: float,
    frame_offsets: bool,
    pseudonymize_key_file: str | None,
    shift_dates: bool,
    pseudonymize_uids: bool,
    report_path: tuple[str, ...],
    stage_url: str | None,
    storage_integration: str | None,
    stage_file_mb: float | None,
    duckdb_memory_limit: str,
    duckdb_temp_dir: str | None,
    load_batch_objects: int,
    storage_option: tuple[str, ...],
    anon: bool,
    since: str | None,
    modality: str | None,
    scheduler: str | None,
    scheduler_file: str | None,
    dashboard: bool,
) -> None:
    """List SOURCE (a folder, a bucket prefix, a manifest, DICOM JSON exports or a
    dicomweb+http(s):// PACS), extract every header, load TARGET."""
    try:
        settings = RunSettings(
            storage_options=_storage(storage_option, anon),
            scheduler=scheduler or scheduler_file,
            dashboard=dashboard,
            source=with_filters(source, since, modality),
            out=out,
            target=_target(
                target,
                stage_url,
                storage_integration,
                stage_file_mb,
                duckdb_memory_limit,
                duckdb_temp_dir,
                load_batch_objects,
            ),
            workers=workers,
            cluster_min_objects=cluster_min_objects,
            shard_size=shard_size,
            run_id=run_id,
            header_bytes=header_bytes,
            element_limit=element_limit,
            read_concurrency=read_concurrency,
            read_ahead_bytes=int(read_ahead_mb * (1 << 20)),
            member_limit=int(member_limit_mb * (1 << 20)),
            frame_offsets=frame_offsets,
            resume=resume,
            incremental=incremental,
            pseudonymize_key_file=pseudonymize_key_file,
            shift_dates=shift_dates,
            pseudonymize_uids=pseudonymize_uids,
        )
        listing = ListingCount(expected=manifest_entries(source))
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} objects"),
            _Listed(listing),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            _Eta(listing),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("extracting", total=listing.total, rate="")

            read = [0]

            def progress(record: ShardRecord) -> None:
                bar.advance(task, record.listed)
                read[0] += record.bytes_read
                elapsed = bar.tasks[0].elapsed or 0
                done = bar.tasks[0].completed
                total = listing.total
                bar.update(task, total=max(total, int(done)) if total is not None else None)
                if elapsed:
                    rate = f"{done / elapsed:,.0f} objects/s, {read[0] / elapsed / 1e6:,.1f} MB/s"
                    bar.update(task, rate=rate)

            report = pipeline.run(settings, progress, listing)
    except LoaderError as exc:
        _fail(exc)
    _finish(report, report_path, _storage(storage_option, anon))


@main.command()
@click.option("--run-id", required=True, help="The written run to load.")
@click.option("--out", default=DEFAULT_OUT, show_default=DEFAULT_OUT)
@target_options
@storage_options
@report_option
def load(
    run_id: str,
    out: str,
    target: str,
    report_path: tuple[str, ...],
    stage_url: str | None,
    storage_integration: str | None,
    stage_file_mb: float | None,
    duckdb_memory_limit: str,
    duckdb_temp_dir: str | None,
    load_batch_objects: int,
    storage_option: tuple[str, ...],
    anon: bool,
) -> None:
    """Load an already-written run (its Parquet) into TARGET."""
    try:
        destination = _target(
            target,
            stage_url,
            storage_integration,
            stage_file_mb,
            duckdb_memory_limit,
            duckdb_temp_dir,
            load_batch_objects,
        )
        root = OutputRoot.of(out, _storage(storage_option, anon))
        report = pipeline.load(root, run_id, destination)
    except LoaderError as exc:
        _fail(exc)
    _finish(report, report_path, _storage(storage_option, anon))


@main.command()
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
@workers_option
@click.option("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, show_default=True)
@report_option
def rebuild(
    from_run: str | None,
    everything: bool,
    from_parquet: str | None,
    out: str,
    target: str,
    workers: int,
    shard_size: int,
    report_path: tuple[str, ...],
    stage_url: str | None,
    storage_integration: str | None,
    stage_file_mb: float | None,
    duckdb_memory_limit: str,
    duckdb_temp_dir: str | None,
    load_batch_objects: int,
    storage_option: tuple[str, ...],
    anon: bool,
) -> None:
    """Derive every table again from the headers TARGET stores (after a change to the
    model or the extraction), without reading the archive, and load them."""
    try:
        if everything == (from_run is not None):
            raise ConfigError("rebuild: give --run-id ID or --all (one of them)")
        destination = _target(
            target,
            stage_url,
            storage_integration,
            stage_file_mb,
            duckdb_memory_limit,
            duckdb_temp_dir,
            load_batch_objects,
        )
        report = rebuild_tables(
            destination,
            out,
            from_run=from_run,
            workers=workers,
            shard_size=shard_size,
            storage_options=_storage(storage_option, anon),
            from_parquet=from_parquet,
        )
    except LoaderError as exc:
        _fail(exc)
    _finish(report, report_path, _storage(storage_option, anon))


@main.command()
@click.option(
    "--source", default=None, help="Folder, bucket prefix, manifest, zip, exports or PACS."
)
@click.option("--target", "target_text", default=None, help="duckdb:///PATH or snowflake:NAME.")
@click.option("--job", type=click.Choice(list(JOBS)), default=None, help="The shape of the job.")
@click.option("--pseudonymize-key-file", default=None, help="Pseudonymise PHI with this key.")
@click.option(
    "--pixels/--no-pixels",
    default=None,
    help="A pixel pipeline will fetch frames: turn frame offsets on.",
)
@click.option("--yes", is_flag=True, help="Ask nothing: flags, else the defaults.")
@click.option("--out", default=DEFAULT_OUT, show_default=True, help="The runs' Parquet root.")
@storage_options
def init(
    source: str | None,
    target_text: str | None,
    job: str | None,
    pseudonymize_key_file: str | None,
    pixels: bool | None,
    yes: bool,
    out: str,
    storage_option: tuple[str, ...],
    anon: bool,
) -> None:
    """Set up a migration: where the objects are, where they go, the shape of the job
    and PHI handling; sample the source, write dicom-loader.toml, print what to run."""
    try:
        options = _storage(storage_option, anon)
        if source is None:
            if yes:
                raise ConfigError("init --yes: give --source")
            source = click.prompt(
                "Where are the DICOM objects? (folder, s3:// gs:// az:// prefix, manifest, "
                ".zip/.tar.gz, DICOM JSON exports, dicomweb+https:// URL)"
            )
        out_console.print(f"Listing and sampling {source} …")
        sample = sample_source(source, options)
        for line in describe(sample, os.cpu_count() or 1):
            out_console.print(f"  {line}", markup=False)
        if target_text is None:
            target_text = (
                DEFAULT_TARGET
                if yes
                else click.prompt(
                    "Where do they go? (duckdb:///PATH, or snowflake:NAME from connections.toml)",
                    default=DEFAULT_TARGET,
                )
            )
        check_target(target_text)
        out_console.print(f"  target {target_text}: ok", markup=False)
        if job is None:
            for name, meaning in JOBS.items():
                out_console.print(f"  {name}: {meaning}", markup=False)
            job = (
                "one-time"
                if yes
                else click.prompt(
                    "What kind of job?", type=click.Choice(list(JOBS)), default="one-time"
                )
            )
        if (
            pseudonymize_key_file is None
            and not yes
            and click.confirm(
                "Pseudonymise names, IDs and dates before anything is written?", default=False
            )
        ):
            pseudonymize_key_file = click.prompt("Key file (keep it secret; it is not copied)")
        if pixels is None:
            pixels = not yes and click.confirm(
                "Will a pixel pipeline need the pixels?", default=False
            )
        if pixels:
            out_console.print(
                "  The loader reads headers only, and says where the pixels are: "
                "dicom_file_location has where each object's Pixel Data starts and its "
                "length; with frame offsets (turned on), dicom_frame has each frame's "
                "offset and length in its object, so one ranged read fetches one frame "
                "(compressed frames cost their offset table: at most one small read per "
                "object).",
                markup=False,
            )
        answers = Answers(
            source,
            target_text,
            job,
            out,
            pseudonymize_key_file,
            options,
            frame_offsets=pixels,
            storage_pairs=storage_option,
            anon=anon,
        )
        commands = next_commands(answers)
        folder = Path.cwd()
        replace = (
            yes
            or not (folder / CONFIG_NAME).exists()
            or click.confirm(f"{CONFIG_NAME} exists here: replace it?", default=False)
        )
        written = write_config(answers, folder, overwrite=replace)
    except LoaderError as exc:
        _fail(exc)
    out_console.print(f"Wrote {written}. Next:", markup=False)
    for command in commands:
        out_console.print(f"  {command}", markup=False)


@main.command()
@click.option(
    "--target",
    default=DEFAULT_TARGET,
    show_default=DEFAULT_TARGET,
    help="duckdb:///PATH, snowflake:NAME or snowflake://USER@ACCOUNT/DATABASE/SCHEMA.",
)
@click.option("--source", default=None, help="Also check this source: it lists, a header reads.")
@storage_options
def doctor(target: str, source: str | None, storage_option: tuple[str, ...], anon: bool) -> None:
    """Check TARGET (and --source) before a migration: each item ok or missing, with
    the statement or setting that fixes it. Creates only temporary objects."""
    from loader.cli import doctor as checkup

    try:
        found = checkup.checks(Target.parse(target), source, _storage(storage_option, anon))
    except LoaderError as exc:
        _fail(exc)
    for line in checkup.report_lines(found):
        out_console.print(line, markup=False, highlight=False, soft_wrap=True)
    missing = [c.name for c in found if not c.ok]
    if missing:
        console.print(f"doctor: {len(missing)} of {len(found)} checks missing", markup=False)
        sys.exit(1)
    out_console.print(f"doctor: all {len(found)} checks ok", markup=False)


@main.command(name="validate")
@click.option(
    "--target",
    default=DEFAULT_TARGET,
    show_default=DEFAULT_TARGET,
    help="duckdb:///PATH, snowflake:NAME or snowflake://USER@ACCOUNT/DATABASE/SCHEMA.",
)
def validate_command(target: str) -> None:
    """Check counts, integrity and completeness of what TARGET holds."""
    try:
        checks = pipeline.validate_target(Target.parse(target))
    except LoaderError as exc:
        _fail(exc)
    out_console.print_json(json.dumps(checks, default=str))
    if failures := validate.failed(checks):
        console.print(f"[red]validation failed[/red]: {', '.join(failures)}", markup=True)
        sys.exit(EXIT_INVALID)


@main.command()
@click.argument("source")
@click.option(
    "--workers",
    type=int,
    default=0,
    show_default=True,
    help="Dask worker processes; 0 runs in this process.",
)
@click.option("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, show_default=True)
@click.option("--report", "report_path", default=None, help="Write the JSON profile here.")
@storage_options
@pacs_filters
def scan(
    source: str,
    workers: int,
    shard_size: int,
    report_path: str | None,
    storage_option: tuple[str, ...],
    anon: bool,
    since: str | None,
    modality: str | None,
) -> None:
    """Profile SOURCE without loading it."""
    from loader.run.scan import scan as scan_source

    try:
        profile = scan_source(
            with_filters(source, since, modality),
            workers=workers,
            shard_size=shard_size,
            storage_options=_storage(storage_option, anon),
        )
    except LoaderError as exc:
        _fail(exc)
    _write_report(profile, report_path)
    out_console.print_json(json.dumps(profile, default=str))


def pattern_options(command: Any) -> Any:
    """Where the Snowflake patterns go and what runs them, handed to the command as
    one checked `names`."""
    fields = {
        "database": (None, "Database of the model (default: the session's)."),
        "schema": (None, "Schema of the model (default: the session's)."),
        "warehouse": (
            None,
            "Warehouse that runs the tasks, dynamic tables and search service (deploy: "
            "default the session's).",
        ),
        "lag": ("10 minutes", "TARGET_LAG of the dynamic tables."),
        "phi_role": ("DICOM_PHI_READER", "The role that sees PHI in clear."),
        "owner_role": (
            None,
            "The role that owns and runs the loader's tables, tasks and dynamic tables: "
            "deploy creates them as it, and grants it the PHI role so they never read "
            "masked values (deploy: default the role it connects as).",
        ),
        "schedule": ("5 MINUTE", "SCHEDULE of the root task."),
        "stage_url": (None, "batch, snowpipe: where exports land (s3://, gcs://, azure://)."),
        "storage_integration": (None, "The storage integration that reads --stage-url."),
        "notification_integration": (None, "snowpipe on Azure or GCS: its events."),
    }

    @functools.wraps(command)
    def with_names(**kwargs: Any) -> Any:
        try:
            names = Names(**{field: kwargs.pop(field) for field in fields})
        except LoaderError as exc:
            _fail(exc)
        return command(names=names, **kwargs)

    for field, (default, text) in reversed(fields.items()):
        option = "--" + field.replace("_", "-")
        with_names = click.option(
            option, field, default=default, show_default=default is not None, help=text
        )(with_names)
    return with_names


@main.command()
@click.option(
    "--dialect", type=click.Choice(["duckdb", "snowflake"]), default="duckdb", show_default=True
)
@click.option(
    "--pattern",
    type=click.Choice([*PATTERNS, "all"]),
    default=None,
    help="Print a Snowflake pattern instead of the model's DDL.",
)
@pattern_options
def sql(dialect: str, pattern: str | None, names: Names) -> None:
    """Print the model's DDL rendered for DIALECT (Snowflake: then its stage), or the
    Snowflake SQL of a PATTERN, one statement after another."""
    if pattern is None:
        click.echo(model_sql(dialect), nl=False)
        if dialect == "snowflake":
            from loader.warehouse.snowflake import render_stage_sql

            click.echo("\n" + render_stage_sql(), nl=False)
        return
    try:
        statements = render(pattern, names)
    except LoaderError as exc:
        _fail(exc)
    click.echo("".join(f"{statement};\n\n" for statement in statements), nl=False)


@main.command()
@click.option("--pattern", type=click.Choice([*PATTERNS, "all"]), required=True)
@click.option(
    "--target",
    default=DEFAULT_TARGET,
    help="snowflake:NAME or snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=WH.",
)
@pattern_options
def deploy(pattern: str, target: str, names: Names) -> None:
    """Run a Snowflake PATTERN against TARGET; running it twice changes nothing."""
    from loader.warehouse.patterns.deploy import deploy as deploy_pattern
    from loader.warehouse.snowflake import SnowflakeWarehouse

    try:
        destination = Target.parse(target)
        if destination.kind is not TargetKind.SNOWFLAKE:
            raise ConfigError("deploy needs a Snowflake --target")
        warehouse_ = pipeline.open_warehouse(destination)
        assert isinstance(warehouse_, SnowflakeWarehouse)  # a Snowflake target opens one
        try:
            count = deploy_pattern(warehouse_, pattern, names, warehouse_.target.stage)
        finally:
            warehouse_.close()
    except LoaderError as exc:
        _fail(exc)
    out_console.print(f"deployed {pattern}: {count} statements")


@main.command()
@click.argument("out")
@click.option("--patients", type=int, required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--pixels",
    type=click.Choice(["tiny", "realistic"]),
    default="tiny",
    show_default=True,
    help="Pixel Data of real size (multi-MB MG) or 16x16.",
)
@click.option(
    "--bad-fraction",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of bad objects (non-DICOM, truncated, missing UIDs, bad values).",
)
@click.option("--duplicate-fraction", type=float, default=0.02, show_default=True)
def synth(
    out: str, patients: int, seed: int, pixels: str, bad_fraction: float, duplicate_fraction: float
) -> None:
    """Write a deterministic, realistic test archive to OUT."""
    from loader.synth import synthesize

    summary = synthesize(
        out,
        patients,
        seed=seed,
        pixels=pixels,
        bad_fraction=bad_fraction,
        duplicate_fraction=duplicate_fraction,
    )
    out_console.print_json(json.dumps(summary.as_dict()))
