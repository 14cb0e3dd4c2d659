"""The commands that prepare a migration: `init` (four answers → dicom-loader.toml
and the next command), `doctor` (is this account and archive ready?) and `synth`
(a realistic test archive)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from loader.cli.init_wizard import (
    JOBS,
    Answers,
    check_target,
    describe,
    next_commands,
    sample_source,
    write_config,
)
from loader.cli.options import StorageGiven, storage_options
from loader.cli.settings_file import CONFIG_NAME
from loader.cli.terminal import (
    console,
    fail,
    out_console,
)
from loader.core.errors import ConfigError, LoaderError
from loader.jobs.settings import (
    DEFAULT_OUT,
    DEFAULT_TARGET,
    Target,
)


@click.command()
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
    storage: StorageGiven,
) -> None:
    """Set up a migration: where the objects are, where they go, the shape of the job
    and PHI handling; sample the source, write dicom-loader.toml, print what to run."""
    try:
        options = storage.options
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
            storage_pairs=storage.pairs,
            anon=storage.anon,
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
        fail(exc)
    out_console.print(f"Wrote {written}. Next:", markup=False)
    for command in commands:
        out_console.print(f"  {command}", markup=False)


@click.command()
@click.option(
    "--target",
    default=DEFAULT_TARGET,
    show_default=DEFAULT_TARGET,
    help="duckdb:///PATH, snowflake:NAME or snowflake://USER@ACCOUNT/DATABASE/SCHEMA.",
)
@click.option("--source", default=None, help="Also check this source: it lists, a header reads.")
@storage_options
def doctor(target: str, source: str | None, storage: StorageGiven) -> None:
    """Check TARGET (and --source) before a migration: each item ok or missing, with
    the statement or setting that fixes it. Creates only temporary objects."""
    from loader.cli import doctor as checkup

    try:
        found = checkup.checks(Target.parse(target), source, storage.options)
    except LoaderError as exc:
        fail(exc)
    for line in checkup.report_lines(found):
        out_console.print(line, markup=False, highlight=False, soft_wrap=True)
    missing = [c.name for c in found if not c.ok]
    if missing:
        console.print(f"doctor: {len(missing)} of {len(found)} checks missing", markup=False)
        sys.exit(1)
    out_console.print(f"doctor: all {len(found)} checks ok", markup=False)


@click.command()
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
