"""The Snowflake commands: `sql` prints the model's DDL or a pattern's statements,
`deploy` runs a pattern against an account."""

from __future__ import annotations

import click

from loader.cli.options import (
    pattern_options,
)
from loader.cli.terminal import (
    fail,
    out_console,
)
from loader.core.errors import ConfigError, LoaderError
from loader.jobs import targets
from loader.jobs.settings import (
    DEFAULT_TARGET,
    Target,
    TargetKind,
)
from loader.warehouse.patterns import PATTERNS, Names, model_sql, render


@click.command()
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
        fail(exc)
    click.echo("".join(f"{statement};\n\n" for statement in statements), nl=False)


@click.command()
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
        warehouse_ = targets.open_warehouse(destination)
        assert isinstance(warehouse_, SnowflakeWarehouse)  # a Snowflake target opens one
        try:
            count = deploy_pattern(warehouse_, pattern, names, warehouse_.target.stage)
        finally:
            warehouse_.close()
    except LoaderError as exc:
        fail(exc)
    out_console.print(f"deployed {pattern}: {count} statements")
