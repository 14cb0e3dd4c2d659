"""What a command shows and how it ends: its summary table, its progress bar,
its reports written, one line per error, and its exit code.

Every line a command prints passes the redaction of the credentials it was given
(credentials.Redaction)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
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
from loader.core.credentials import Redaction
from loader.core.errors import LoaderError
from loader.jobs.deleted_objects import NOT_INCREMENTAL
from loader.jobs.progress import ListingCount, eta_text, listed_text
from loader.jobs.report import RunReport
from loader.output.ledger import ShardRecord

console = Console(stderr=True)
out_console = Console()

EXIT_FAILED = 1
EXIT_INVALID = 3


def redaction() -> Redaction:
    """What this command must never show: the credentials it was given."""
    return Redaction.of(sys.argv[1:], os.environ)


def fail(exc: LoaderError) -> None:
    click.echo(redaction()(f"error: {exc}"), err=True)
    sys.exit(EXIT_FAILED)


def write_json_report(report: Mapping[str, Any], path: str | None) -> None:
    if path:
        text = json.dumps(report, indent=2, default=str) + "\n"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(redaction()(text), encoding="utf-8")


def summary_table(report: RunReport) -> Table:
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
    checks = report["validation"]
    counted: Mapping[str, Any] = checks  # the counts shown, by name
    for key in (
        "unique_patients",
        "unique_studies",
        "unique_series",
        "earliest_study_date",
        "latest_study_date",
        "orphan_series",
        "orphan_instances",
    ):
        if key in counted:
            table.add_row(key.replace("_", " "), str(counted[key]))
    balance = checks.get("accounting")
    table.add_row(
        "listed = loaded + duplicates + errors + unchanged + repeated",
        "[green]yes[/green]" if balance and balance["balanced"] else "[red]NO[/red]",
    )
    return table


def finish(
    report: RunReport, report_paths: tuple[str, ...], options: dict[str, Any] | None = None
) -> None:
    """Write the reports asked for, print the summary, exit 2 when validation failed.
    `options`: the storage options that read the run's output root (the page's
    charts come from its ledger and Parquet)."""
    for path in report_paths:
        if path.lower().endswith((".html", ".htm")):
            html_report.write(path, report, options)
        else:
            write_json_report(report, path)
    out_console.print(summary_table(report))
    if not report["validation_passed"]:
        failures = ", ".join(report["validation_failed"])
        console.print(f"[red]validation failed[/red]: {failures}", markup=True)
        sys.exit(EXIT_INVALID)


class ListedColumn(ProgressColumn):
    """How far the listing got, read as the bar draws (progress.listed_text)."""

    def __init__(self, listing: ListingCount) -> None:
        super().__init__()
        self.listing = listing

    def render(self, task: Task) -> Text:
        return Text(listed_text(self.listing))


class EtaColumn(ProgressColumn):
    """Time left at the rate so far, once the listing's total is known."""

    def __init__(self, listing: ListingCount) -> None:
        super().__init__()
        self.listing = listing

    def render(self, task: Task) -> Text:
        return Text(eta_text(self.listing, task.completed, task.speed))


@contextmanager
def shard_progress(listing: ListingCount) -> Iterator[Callable[[ShardRecord], None]]:
    """A progress bar over the objects finished shards processed: how far the listing
    got, the rate in objects and MB read per second, and the time left; what it
    yields is called with each shard's ledger record."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} objects"),
        ListedColumn(listing),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        EtaColumn(listing),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("extracting", total=listing.total, rate="")
        bytes_read = 0

        def progress(record: ShardRecord) -> None:
            nonlocal bytes_read
            bar.advance(task, record.listed)
            bytes_read += record.bytes_read
            elapsed = bar.tasks[0].elapsed or 0
            done = bar.tasks[0].completed
            total = listing.total
            bar.update(task, total=max(total, int(done)) if total is not None else None)
            if elapsed:
                rate = f"{done / elapsed:,.0f} objects/s, {bytes_read / elapsed / 1e6:,.1f} MB/s"
                bar.update(task, rate=rate)

        yield progress
