"""The command line's options, made from the settings that declare them.

A settings dataclass marks what a user may set (core/flags.py); `flag_options`
turns those fields into click options and `flag_values` turns the parsed values
back into the dataclass's (units converted), so an option is written once, beside
the field that carries it. The settings file and the `DICOM_LOADER_<OPTION>`
variables follow the options (settings_file.py).

Options that several fields make one value from are grouped here and handed to the
command as that value: the target (`--target` with its Snowflake and DuckDB
options → `Target`), the storage options (→ `StorageGiven`), a PACS source's
filters (folded into SOURCE) and the Snowflake patterns' names (→ `Names`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from loader.cli.terminal import fail
from loader.core.errors import LoaderError
from loader.core.flags import Flagged, flagged
from loader.jobs.settings import DEFAULT_OUT, DEFAULT_TARGET, DuckDBOptions, Target
from loader.sources.dicomweb import with_filters
from loader.sources.storage import parse_storage_options
from loader.warehouse.patterns import Names

Decorator = Callable[[Any], Any]

report_option = click.option(
    "--report",
    "report_path",
    multiple=True,
    metavar="FILE",
    help="Write the report here: FILE.html a page to look at (self-contained), any other "
    "name JSON. Repeatable.",
)


def _click_type(field: Flagged) -> Any:
    base = field.base_type
    if field.flag.per != 1:
        base = float  # given in a larger unit: fractions allowed
    lower, upper = field.flag.minimum, field.flag.maximum
    if base is int and (lower is not None or upper is not None):
        return click.IntRange(
            None if lower is None else int(lower), None if upper is None else int(upper)
        )
    if base is float and (lower is not None or upper is not None):
        return click.FloatRange(lower, upper)
    return {int: click.INT, float: click.FLOAT, str: click.STRING}[base]


def _option(field: Flagged, default: Any) -> click.Option:
    """The click option of one flagged field; its parameter is named after the field."""
    form = field.flag
    shows = form.show_default if default == field.default else True
    if field.base_type is bool:
        return click.Option(
            [form.name(field.name), field.name], is_flag=True, default=default, help=form.help
        )
    shown = default if form.per == 1 else default / form.per
    return click.Option(
        [form.name(field.name), field.name],
        type=_click_type(field),
        default=None if form.unset else shown,
        show_default=False if form.unset or default is None else shows,
        metavar=form.metavar,
        help=form.help,
    )


def flag_options(cls: type, *names: str, **defaults: Any) -> Decorator:
    """The options of `cls`'s flagged fields (only `names` if given); `defaults`
    replaces a field's default for this command (a name that is none of those
    fields is refused: it would be dropped without a word)."""
    unknown = set(defaults) - {field.name for field in flagged(cls, *names)}
    if unknown:
        raise TypeError(f"no option of {cls.__name__} to default: {', '.join(sorted(unknown))}")

    def add(command: Any) -> Any:
        for field in reversed(flagged(cls, *names)):
            option = _option(field, defaults.get(field.name, field.default))
            command.__click_params__ = [*getattr(command, "__click_params__", []), option]
        return command

    return add


def flag_values(cls: type, given: dict[str, Any], *names: str) -> dict[str, Any]:
    """The values of `cls`'s flagged fields taken out of `given` (a command's
    parameters), in the fields' units; an unset option is left out."""
    values = {}
    for field in flagged(cls, *names):
        if field.name not in given:
            continue
        value = given.pop(field.name)
        if value is None and field.flag.unset:
            continue
        if field.flag.per != 1 and value is not None:
            value = int(value * field.flag.per)
        values[field.name] = value
    return values


@dataclass(frozen=True)
class StorageGiven:
    """--storage-option and --anon as given: the pairs (init writes them to the
    settings file) and the fsspec options they make."""

    pairs: tuple[str, ...]
    anon: bool

    @property
    def options(self) -> dict[str, Any]:
        options = parse_storage_options(self.pairs)
        if self.anon:
            options["anon"] = True
        return options


def _grouped(command: Any, build: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """`command` called with what `build` makes of its parameters; a LoaderError
    from `build` is the command's one-line error."""

    @functools.wraps(command)
    def with_values(**kwargs: Any) -> Any:
        try:
            kwargs = build(kwargs)
        except LoaderError as exc:
            fail(exc)
        return command(**kwargs)

    return with_values


def storage_options(command: Any) -> Any:
    """--storage-option and --anon (fsspec options for s3://, gs://, az:// sources and
    --out), handed to the command as `storage`."""

    def build(kwargs: dict[str, Any]) -> dict[str, Any]:
        given = StorageGiven(kwargs.pop("storage_option"), kwargs.pop("anon"))
        parse_storage_options(given.pairs)  # a malformed pair fails here, before any work
        kwargs["storage"] = given
        return kwargs

    command = _grouped(command, build)
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
    """--since and --modality: which studies a dicomweb+http(s):// SOURCE lists,
    folded into the SOURCE the command receives."""

    def build(kwargs: dict[str, Any]) -> dict[str, Any]:
        since, modality = kwargs.pop("since"), kwargs.pop("modality")
        kwargs["source"] = with_filters(kwargs["source"], since, modality)
        return kwargs

    command = _grouped(command, build)
    command = click.option(
        "--modality", default=None, help="DICOMweb sources: studies holding this modality."
    )(command)
    return click.option(
        "--since",
        default=None,
        metavar="DATE",
        help="DICOMweb sources: studies dated DATE or later (periodic reloads).",
    )(command)


def out_option(whose: str) -> Decorator:
    """--out, the output root of `whose` Parquet and ledger."""
    return click.option(
        "--out",
        default=DEFAULT_OUT,
        show_default=DEFAULT_OUT,
        help=f"Folder or object-store URL (s3://, gs://, az://) for {whose} Parquet and ledger.",
    )


def target_options(command: Any) -> Any:
    """--target with the Snowflake staging options (Target's flags) and the DuckDB
    ones (DuckDBOptions'), for run, load and rebuild: the command receives `target`."""

    def build(kwargs: dict[str, Any]) -> dict[str, Any]:
        duckdb = DuckDBOptions(**flag_values(DuckDBOptions, kwargs))
        snowflake = flag_values(Target, kwargs)
        kwargs["target"] = Target.parse(kwargs["target"], duckdb=duckdb, **snowflake)
        return kwargs

    command = _grouped(command, build)
    command = flag_options(DuckDBOptions)(command)
    command = flag_options(Target)(command)
    return click.option(
        "--target",
        default=DEFAULT_TARGET,
        show_default=DEFAULT_TARGET,
        help="duckdb:///PATH, snowflake:NAME (connections.toml), "
        "snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=WH, or none (Parquet only).",
    )(command)


def pattern_options(command: Any) -> Any:
    """Where the Snowflake patterns go and what runs them (Names' flags), handed to
    the command as one checked `names`."""

    def build(kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["names"] = Names(**flag_values(Names, kwargs))
        return kwargs

    return flag_options(Names)(_grouped(command, build))
