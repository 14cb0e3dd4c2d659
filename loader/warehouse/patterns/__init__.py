"""Snowflake SQL for keeping a migrated archive current and governed:
`dicom-loader sql --pattern P` prints it, `dicom-loader deploy --pattern P` runs it.

One module per pattern: `exports` (batch, snowpipe), `dynamic_tables`, `stream_task`,
`governance`, `validation`, `model_knowledge`. `sql/snowflake/<pattern>.sql` is
rendered from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loader.core.errors import ConfigError
from loader.core.identifiers import quoted
from loader.core.model import render_ddl
from loader.warehouse.patterns import (
    dynamic_tables,
    governance,
    model_knowledge,
    stream_task,
    validation,
)
from loader.warehouse.patterns.exports import batch, snowpipe
from loader.warehouse.patterns.governance import (
    dynamic_table_masking,
    header_copy_masking,
    policies,
    role_statements,
)
from loader.warehouse.patterns.names import Names

PATTERNS = (
    "batch",
    "dynamic-tables",
    "stream-task",
    "snowpipe",
    "governance",
    "validation",
    "model-knowledge",
)


def _masked(render: Callable[[Names], list[str]], *masking: Callable[[Names], list[str]]):
    """A pattern followed by the masking of the PHI its objects hold: whichever
    pattern is deployed, and in whatever order, no copy of PHI is left unmasked."""

    def rendered(names: Names) -> list[str]:
        return [*render(names), *policies(names), *(s for m in masking for s in m(names))]

    return rendered


RENDERERS: dict[str, Callable[[Names], list[str]]] = {
    "batch": _masked(batch, header_copy_masking),
    "dynamic-tables": _masked(dynamic_tables.dynamic_tables, dynamic_table_masking),
    "stream-task": _masked(stream_task.stream_task, header_copy_masking),
    "snowpipe": _masked(snowpipe, header_copy_masking),
    "governance": governance.governance,
    "validation": validation.validation,
    "model-knowledge": model_knowledge.model_knowledge,
}


def model_sql(dialect: str) -> str:
    """`dicom-loader sql --dialect D` and sql/<D>/model.sql: the model's DDL; for
    DuckDB, then the model described as rows (Snowflake has its pattern for it)."""
    ddl = render_ddl(dialect)
    return ddl + "\n" + model_knowledge.duckdb_model_knowledge() if dialect == "duckdb" else ddl


EXAMPLE = Names(  # for the files: the session's database and schema, example names
    warehouse="DICOM_WH",
    owner_role="DICOM_LOADER",
    stage_url="s3://your-bucket/dicom-exports/",
    storage_integration="DICOM_EXPORTS_INT",
)


def render_file(pattern: str) -> str:
    """sql/snowflake/<pattern>.sql: the pattern with the session's database and schema
    (and, for a bucket, example names: `sql --pattern` renders yours)."""
    statements = render(pattern, EXAMPLE)
    header = f"-- dicom-loader sql --pattern {pattern} (rendered by `make sql`; do not edit)\n\n"
    return header + "".join(f"{statement};\n\n" for statement in statements)


def file_name(pattern: str) -> str:
    return pattern.replace("-", "_") + ".sql"


TABLE_START = "<!-- privileges: rendered by make sql -->\n"
TABLE_END = "<!-- end of privileges -->\n"


def privileges_table() -> str:
    """sql/snowflake/README.md's table of what each pattern's owner role needs, read
    from the statements each pattern runs as it."""
    from loader.warehouse.patterns.privileges import needs_table

    return needs_table({p: plan(p, EXAMPLE).as_owner for p in PATTERNS})


def write_sql_files(folder: str) -> None:
    """Write every pattern's file into `folder`, and the privileges table into its
    README between its markers (`make sql`)."""
    for pattern in PATTERNS:
        Path(folder, file_name(pattern)).write_text(render_file(pattern))
    readme = Path(folder, "README.md")
    text = readme.read_text()
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    readme.write_text(head + TABLE_START + privileges_table() + TABLE_END + tail)


@dataclass(frozen=True)
class Deployment:
    """A pattern's statements by the role that runs them: the PHI role and its grant
    by the role deploy connects as, then everything else by the owner role, so tasks
    and dynamic tables (which run as their owner) hold the PHI role."""

    as_deployer: list[str]
    as_owner: list[str]
    owner_role: str | None

    def statements(self) -> list[str]:
        """In the order they run, with the change of role between, as printed."""
        switch = [f"USE ROLE {quoted(self.owner_role)}"] if self.owner_role else []
        return [*self.as_deployer, *switch, *self.as_owner]


# Patterns whose objects hold PHI: they create the PHI role and grant it the owner.
_GOVERNED = ("batch", "dynamic-tables", "stream-task", "snowpipe", "governance")


def plan(pattern: str, names: Names) -> Deployment:
    """The statements of `pattern` (or of every pattern: "all"), in deploy order.

    Exports take one path into dicom_raw: with a stage URL the pipe's (snowpipe),
    else the batch's COPY. Both at once would convert each landed file twice (the
    batch converts its rows, the pipe's task every landed row) and keep two load
    histories, the pipe's and the bulk COPY's, so a file could land twice."""
    if pattern == "all":
        exports = "snowpipe" if names.stage_url else "batch"
        chosen = [p for p in PATTERNS if p not in ("batch", "snowpipe") or p == exports]
        # Every pattern that copies PHI creates the policies it sets; deployed
        # together, each policy statement runs once (the first time it is met).
        policy, created = set(policies(names)), set()
        statements: list[str] = []
        for statement in (s for name in chosen for s in RENDERERS[name](names)):
            if statement in policy:
                if statement in created:
                    continue
                created.add(statement)
            statements.append(statement)
        return Deployment(role_statements(names), statements, names.owner_role)
    if pattern not in RENDERERS:
        raise ConfigError(f"unknown pattern {pattern!r}: one of {', '.join(PATTERNS)}, all")
    roles = role_statements(names) if pattern in _GOVERNED else []
    return Deployment(roles, RENDERERS[pattern](names), names.owner_role)


def render(pattern: str, names: Names) -> list[str]:
    """The statements `dicom-loader sql --pattern` prints, in the order they run."""
    return plan(pattern, names).statements()
