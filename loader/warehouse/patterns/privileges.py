"""What each Snowflake pattern needs its owner role to hold, read from the statements
the pattern renders (so the list cannot drift from the SQL), and whether a role holds
it, from SHOW GRANTS walked through the roles it inherits.

`deploy` checks the owner role before it sends a statement and refuses with one line
naming what is missing and the GRANT that supplies it; `doctor` reports every item;
sql/snowflake/README.md's table is rendered from `NEEDS`.

Privileges as Snowflake's access-control reference defines them
(https://docs.snowflake.com/en/user-guide/security-access-control-privileges):
schema objects need CREATE <kind> ON SCHEMA (or the schema's OWNERSHIP); resuming a
task EXECUTE TASK and a serverless task EXECUTE MANAGED TASK on the account; setting
a masking policy APPLY MASKING POLICY on the account; a warehouse named by a task,
dynamic table or search service USAGE on it; a Cortex Search service the database
role SNOWFLAKE.CORTEX_USER (granted to PUBLIC unless revoked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loader.core.identifiers import quoted


@dataclass(frozen=True, order=True)
class Privilege:
    """One privilege on one kind of object: `on` is SCHEMA, DATABASE, ACCOUNT,
    WAREHOUSE, INTEGRATION or DATABASE ROLE (then `privilege` is the role's name)."""

    privilege: str
    on: str

    def grant(self, role: str, context: Context) -> str:
        """The statement that gives `role` this privilege."""
        to = f"TO ROLE {quoted(role)}"
        if self.on == "ACCOUNT":
            return f"GRANT {self.privilege} ON ACCOUNT {to}"
        if self.on == "DATABASE ROLE":
            return f"GRANT DATABASE ROLE {self.privilege} {to}"
        return f"GRANT {self.privilege} ON {self.on} {context.object_name(self.on)} {to}"


@dataclass(frozen=True)
class Context:
    """Where the patterns go: the objects a privilege is on."""

    database: str
    schema: str
    warehouse: str | None = None
    integration: str | None = None

    def object_name(self, kind: str) -> str:
        if kind == "SCHEMA":
            return f"{quoted(self.database)}.{quoted(self.schema)}"
        if kind == "DATABASE":
            return quoted(self.database)
        if kind == "WAREHOUSE":
            return quoted(self.warehouse or "WAREHOUSE")
        return quoted(self.integration or "INTEGRATION")

    def matches(self, kind: str, name: str) -> bool:
        """Whether SHOW GRANTS' `name` column is this context's object of `kind`."""
        wanted = {
            "SCHEMA": f"{self.database}.{self.schema}",
            "DATABASE": self.database,
            "WAREHOUSE": self.warehouse,
            "INTEGRATION": self.integration,
        }.get(kind)
        return wanted is not None and _plain(name) == wanted.upper()


def _plain(name: str) -> str:
    return ".".join(part.strip('"') for part in name.split(".")).upper()


_ALWAYS = (Privilege("USAGE", "DATABASE"), Privilege("USAGE", "SCHEMA"))
# What a statement's first words ask for; the first matching rule applies.
_RULES: tuple[tuple[re.Pattern[str], tuple[Privilege, ...]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE | re.DOTALL), needs)
    for pattern, needs in (
        (
            r"^CREATE (OR REPLACE )?(TRANSIENT |TEMPORARY )?TABLE",
            (Privilege("CREATE TABLE", "SCHEMA"),),
        ),
        (
            r"^CREATE (OR REPLACE )?(TEMPORARY )?FILE FORMAT",
            (Privilege("CREATE FILE FORMAT", "SCHEMA"),),
        ),
        (r"^CREATE (OR REPLACE )?(TEMPORARY )?STAGE", (Privilege("CREATE STAGE", "SCHEMA"),)),
        (r"^CREATE (OR REPLACE )?VIEW", (Privilege("CREATE VIEW", "SCHEMA"),)),
        (r"^CREATE STREAM", (Privilege("CREATE STREAM", "SCHEMA"),)),
        (r"^CREATE (OR REPLACE )?(SECURE )?FUNCTION", (Privilege("CREATE FUNCTION", "SCHEMA"),)),
        (r"^CREATE PIPE", (Privilege("CREATE PIPE", "SCHEMA"),)),
        (r"^CREATE OR REPLACE TASK", (Privilege("CREATE TASK", "SCHEMA"),)),
        (r"^ALTER TASK .* RESUME$", (Privilege("EXECUTE TASK", "ACCOUNT"),)),
        (r"^CREATE OR REPLACE DYNAMIC TABLE", (Privilege("CREATE DYNAMIC TABLE", "SCHEMA"),)),
        (r"^CREATE MASKING POLICY", (Privilege("CREATE MASKING POLICY", "SCHEMA"),)),
        (r"^ALTER .* SET MASKING POLICY", (Privilege("APPLY MASKING POLICY", "ACCOUNT"),)),
        (
            r"^CREATE CORTEX SEARCH SERVICE",
            (
                Privilege("CREATE CORTEX SEARCH SERVICE", "SCHEMA"),
                Privilege("SNOWFLAKE.CORTEX_USER", "DATABASE ROLE"),
            ),
        ),
    )
)
_USES_WAREHOUSE = re.compile(r"^\s*WAREHOUSE = ", re.MULTILINE)
# Statements that run on the session's warehouse when deploy sends them.
_RUNS_NOW = re.compile(r"^(COPY INTO|INSERT|MERGE|UPDATE|DELETE)\b", re.IGNORECASE)
_SERVERLESS = re.compile(r"USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE")
_INTEGRATION = re.compile(r"STORAGE_INTEGRATION = ")
# The loader's own load (run, load, rebuild): its tables, file format and stage.
LOAD = (
    Privilege("CREATE TABLE", "SCHEMA"),
    Privilege("CREATE FILE FORMAT", "SCHEMA"),
    Privilege("CREATE STAGE", "SCHEMA"),
    Privilege("USAGE", "WAREHOUSE"),
)


def needed(statements: Iterable[str]) -> list[Privilege]:
    """The privileges the owner role needs to run `statements`, each once, in order."""
    found: dict[Privilege, None] = dict.fromkeys(_ALWAYS)
    for statement in statements:
        for pattern, needs in _RULES:
            if pattern.search(statement):
                found.update(dict.fromkeys(needs))
                break
        head = statement.split("\nAS\n", 1)[0]
        if _USES_WAREHOUSE.search(head) or _RUNS_NOW.search(statement):
            found[Privilege("USAGE", "WAREHOUSE")] = None
        if _SERVERLESS.search(head):
            found[Privilege("EXECUTE MANAGED TASK", "ACCOUNT")] = None
        if _INTEGRATION.search(head):
            found[Privilege("USAGE", "INTEGRATION")] = None
    return list(found)


@dataclass(frozen=True)
class Grants:
    """What a role holds: its own grants and those of every role it inherits."""

    roles: frozenset[str]
    rows: frozenset[tuple[str, str, str]]  # (privilege, granted_on, name), upper case

    def holds(self, privilege: Privilege, context: Context) -> bool:
        if privilege.on == "DATABASE ROLE":
            return any(
                on == "DATABASE_ROLE" and _plain(name) == privilege.privilege
                for _, on, name in self.rows
            )
        if privilege.on == "ACCOUNT":
            # ACCOUNTADMIN is the top-level role; account privileges are its own.
            return "ACCOUNTADMIN" in self.roles or any(
                p == privilege.privilege and on == "ACCOUNT" for p, on, _ in self.rows
            )
        return any(
            p in (privilege.privilege, "OWNERSHIP")
            and on == privilege.on
            and context.matches(on, name)
            for p, on, name in self.rows
        )


def grants_of(role: str, show: Callable[[str], list[dict[str, Any]]]) -> Grants:
    """Walk SHOW GRANTS TO ROLE from `role` through the roles granted to it (and
    PUBLIC, which every role inherits). `show` runs a statement, rows by column."""
    pending, roles = [role.upper(), "PUBLIC"], set()
    rows: set[tuple[str, str, str]] = set()
    while pending:
        current = pending.pop()
        if current in roles:
            continue
        roles.add(current)
        for row in show(f"SHOW GRANTS TO ROLE {quoted(current)}"):
            privilege = str(row.get("privilege", "")).upper()
            on = str(row.get("granted_on", "")).upper()
            name = str(row.get("name", ""))
            rows.add((privilege, on, name))
            if on == "ROLE" and privilege == "USAGE":
                pending.append(_plain(name))
    return Grants(frozenset(roles), frozenset(rows))


def missing(needs: Iterable[Privilege], grants: Grants, context: Context) -> list[Privilege]:
    return [p for p in needs if not grants.holds(p, context)]


NEEDS_HEADER = "| pattern | the owner role needs |\n|---|---|\n"


def needs_table(rendered: dict[str, list[str]]) -> str:
    """sql/snowflake/README.md's table: each pattern (and the load) and the privileges
    its owner role needs."""
    lines = [f"| `run`, `load`, `rebuild` | {_listed([*_ALWAYS, *LOAD])} |"]
    lines += [
        f"| `{name}` | {_listed(needed(statements))} |" for name, statements in rendered.items()
    ]
    return NEEDS_HEADER + "\n".join(lines) + "\n"


def _listed(privileges: Iterable[Privilege]) -> str:
    return ", ".join(
        f"database role {p.privilege}"
        if p.on == "DATABASE ROLE"
        else f"{p.privilege} on {p.on.lower()}"
        for p in privileges
    )
