"""SQL identifiers from users (database, schema, stage, warehouse, role names).

Only plain Snowflake identifiers are accepted, and they are always double-quoted
when rendered, so a name can never become SQL. Values never go through here:
they are bound as parameters.
"""

from __future__ import annotations

import re

from loader.core.errors import ConfigError

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,254}")


def identifier(name: str, what: str = "identifier") -> str:
    """`name` if it is a plain identifier, else a ConfigError naming `what`."""
    if not isinstance(name, str) or not _PLAIN.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r} is not a valid identifier "
            "(letters, digits, _ and $; starting with a letter or _)"
        )
    return name


def quoted(name: str, what: str = "identifier") -> str:
    """The identifier double-quoted, upper-cased as Snowflake stores unquoted names."""
    return '"' + identifier(name, what).upper() + '"'
