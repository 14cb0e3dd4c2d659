"""`dicom-loader.toml`: the settings a migration keeps, read by every command.

Precedence, highest first: the command line, the environment (`DICOM_LOADER_<OPTION>`,
e.g. `DICOM_LOADER_SHARD_SIZE=500`), the file, the built-in defaults. The file is
`--config FILE`, or `./dicom-loader.toml` when there is one. Its keys are the
commands' option names (`shard-size` or `shard_size`); a key at the top applies to
every command that has that option, one under `[run]`, `[rebuild]`, ... to that
command only:

    target = "snowflake:prod"        # a named connection: its secrets stay in
    out = "s3://bucket/dicom-parquet"  # the connector's own connections.toml
    [run]
    workers = 8
    incremental = true

An unknown section or key, or a value of the wrong type, is one error naming it, before
any work starts. Secrets never go in the file: a Snowflake URL with a password and a
storage option that is a credential are refused (connections.toml, the cloud SDK's
own credential chain and `--storage-option` on the command line hold them).

Click does the rest: the values become each command's `default_map`, so an option
given on the command line still wins, and every value goes through the option's own
type.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from loader.core.credentials import secret_names
from loader.core.errors import ConfigError

CONFIG_NAME = "dicom-loader.toml"
ENV_PREFIX = "DICOM_LOADER_"


# DICOM_LOADER_ variables that are not options: crash tests' fault points (faults.py).
NOT_OPTIONS = frozenset({"FAIL_AT"})


def config_path(
    args: list[str], cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The file `--config` names in `args`, else DICOM_LOADER_CONFIG's, else
    ./dicom-loader.toml if it exists."""
    for index, arg in enumerate(args):
        if arg == "--config" and index + 1 < len(args):
            return Path(args[index + 1])
        if arg.startswith("--config="):
            return Path(arg.partition("=")[2])
    named = (os.environ if environ is None else environ).get(ENV_PREFIX + "CONFIG")
    if named:
        return Path(named)
    found = (cwd or Path.cwd()) / CONFIG_NAME
    return found if found.is_file() else None


def default_map(
    group: click.Group, path: Path | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The `default_map` of `group` from the file at `path` (None: no file) and the
    environment, the environment winning; ConfigError naming what is wrong."""
    environ = os.environ if environ is None else environ
    document = _read(path) if path is not None else {}
    where = str(path)
    commands = group.commands
    shared = {k: v for k, v in document.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in document.items() if isinstance(v, dict)}
    for name in sections:
        if name not in commands:
            raise ConfigError(f"{where}: [{name}] is not a command ({', '.join(sorted(commands))})")
    every_option = {_option_key(p) for c in (group, *commands.values()) for p in _options(c)}
    for key in shared:
        if _key(key) not in every_option:
            raise ConfigError(f"{where}: {key} is not an option of any command")
    _refuse_unknown_variables(environ, every_option | {"config"})
    found: dict[str, Any] = _values(group, shared, {}, where, environ, strict=False)
    for name, command in commands.items():
        section = sections.get(name, {})
        values = _values(command, shared, section, f"{where}: [{name}]", environ, strict=True)
        if values:
            found[name] = values
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not readable TOML ({exc})") from None


def _key(name: str) -> str:
    return name.replace("-", "_").lower()


def _option_key(option: click.Option) -> str:
    """What the file and the environment call an option: its flag (`--report` is
    `report`, DICOM_LOADER_REPORT), whatever the parameter behind it is named."""
    flags = [o for o in option.opts if o.startswith("--")]
    return _key(flags[0][2:] if flags else option.name or "")


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and p.name != "config"]


def _values(
    command: click.Command,
    shared: dict[str, Any],
    section: dict[str, Any],
    where: str,
    environ: Mapping[str, str],
    strict: bool,
) -> dict[str, Any]:
    """The defaults of `command`'s options: the environment's, else the section's,
    else the shared keys' (each checked with the option's own type)."""
    options = {_option_key(p): p for p in _options(command)}
    if strict:
        for key in section:
            if _key(key) not in options:
                raise ConfigError(f"{where} {key} is not an option of {command.name}")
    given = {_key(k): (v, f"{where} {k}") for k, v in shared.items()}
    given.update({_key(k): (v, f"{where} {k}") for k, v in section.items()})
    context = click.Context(command)
    values: dict[str, Any] = {}
    for key, option in options.items():
        variable = ENV_PREFIX + key.upper()
        name = option.name or key  # default_map is keyed by parameter
        if variable in environ:
            value, named = _from_environment(option, environ[variable], variable), variable
        elif key in given:
            value, named = given[key]
            if option.multiple and isinstance(value, str):
                value = [value]  # one value for an option that may be given many times
            _refuse_secrets(key, value, named)
        else:
            continue
        try:
            option.type_cast_value(context, value)
        except click.BadParameter as exc:
            raise ConfigError(f"{named}: {exc.message}") from None
        values[name] = value
    return values


def _from_environment(option: click.Option, text: str, variable: str) -> Any:
    """A variable's value for `option`: as it is, or for an option that may be given
    many times, one value, or several as a JSON list of strings
    (DICOM_LOADER_REPORT='["run.json", "run.html"]')."""
    if not option.multiple:
        return text
    if not text.lstrip().startswith("["):
        return [text]
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{variable}: one value, or a JSON list of strings")
    return values


def _refuse_unknown_variables(environ: Mapping[str, str], options: set[str]) -> None:
    """A DICOM_LOADER_ variable that names no option would be ignored: refused."""
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        key = variable[len(ENV_PREFIX) :]
        if key not in NOT_OPTIONS and key.lower() not in options:
            raise ConfigError(f"{variable} is not an option of any command")


def _refuse_secrets(key: str, value: Any, named: str) -> None:
    """A setting that holds a credential, in any form the loader accepts
    (credentials.py), is refused: the file is read by anyone who reads the repo."""
    names = secret_names(value)
    if not names:
        return
    if key == "target":
        where = 'name a connection of the connector\'s connections.toml (target = "snowflake:NAME")'
    elif key == "storage_option":
        where = (
            "leave it to the cloud SDK's own credential chain (environment, profile, instance role)"
        )
    else:
        where = "give it through the environment the connector or the SDK reads"
    raise ConfigError(f"{named}: holds a credential ({', '.join(names)}); {where}")
