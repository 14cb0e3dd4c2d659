"""A setting's command-line form, declared on the setting itself.

A typed settings dataclass marks each field a user may set with `flag(...)`: its
help, bounds and the unit the option is given in. cli/options.py turns the marked
fields into click options and their values back into the dataclass's, and the
settings file's keys and the `DICOM_LOADER_<OPTION>` variables are derived from the
options' names (cli/settings_file.py). One declaration therefore gives the option,
its variable, its `dicom-loader.toml` key, its help and the field that carries it
to the stage that reads it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

FLAG = "flag"  # the key of a field's metadata that holds its Flag


@dataclass(frozen=True)
class Flag:
    help: str
    option: str | None = None  # the option's name when it is not the field's, dashed
    minimum: float | None = None
    maximum: float | None = None
    # The option's value × `per` is the field's: `--read-ahead-mb` sets bytes.
    per: int = 1
    metavar: str | None = None
    show_default: bool | str = True  # a text is shown as the default: "cores"
    # The option is unset (None) unless given, and the field's own default applies
    # where it is read: for options that are refused where they do not apply.
    unset: bool = False

    def name(self, field_name: str) -> str:
        return "--" + (self.option or field_name.replace("_", "-"))


@dataclass(frozen=True)
class Flagged:
    """One flagged field of a settings class: its name, type, default and Flag."""

    name: str
    type: Any  # bool, int, float, str, or one of them | None
    default: Any
    flag: Flag

    @property
    def base_type(self) -> Any:
        """The field's type without `| None`."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        return args[0] if args else self.type


def flag(default: Any, help: str, **form: Any) -> Any:
    """A dataclass field with `default` that a user may set on the command line."""
    return dataclasses.field(default=default, metadata={FLAG: Flag(help, **form)})


def flagged(cls: type, *names: str) -> list[Flagged]:
    """The fields of `cls` that declare a Flag (only `names`, in that order, if given)."""
    hints = typing.get_type_hints(cls)
    found = {
        f.name: Flagged(f.name, hints[f.name], f.default, f.metadata[FLAG])
        for f in dataclasses.fields(cls)
        if FLAG in f.metadata
    }
    unknown = [name for name in names if name not in found]
    if unknown:
        raise TypeError(f"{cls.__name__} declares no flag for {', '.join(unknown)}")
    return [found[name] for name in names] if names else list(found.values())
