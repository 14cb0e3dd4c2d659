"""The `dicom-loader` command group: its global options (settings file, log level,
log file) and every command, each defined in the module of its kind."""

from __future__ import annotations

import logging
from typing import Any

import click
from rich.logging import RichHandler

from loader.cli import (
    inspect_commands,
    run_commands,
    setup_commands,
    snowflake_commands,
)
from loader.cli import log_file as log_file_config
from loader.cli.settings_file import CONFIG_NAME, config_path, default_map
from loader.cli.terminal import (
    console,
    fail,
    redaction,
)
from loader.core.credentials import RedactingFilter
from loader.core.errors import LoaderError


class ConfiguredGroup(click.Group):
    """The command group whose options' defaults come from the environment and the
    config file (settings_file.py), read before any option is parsed."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> click.Context:
        try:
            extra.setdefault("default_map", default_map(self, config_path(args)))
        except LoaderError as exc:
            fail(exc)
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
    redacting = RedactingFilter(redaction())
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
        fail(exc)


for _command in (
    run_commands.run,
    run_commands.load,
    run_commands.rebuild,
    setup_commands.init,
    setup_commands.doctor,
    setup_commands.synth,
    inspect_commands.scan,
    inspect_commands.validate_command,
    snowflake_commands.sql,
    snowflake_commands.deploy,
):
    main.add_command(_command)
