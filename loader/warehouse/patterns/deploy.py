"""`dicom-loader deploy`: a pattern run on a Snowflake account, by the roles that
must run it.

Tasks and dynamic tables run as their owner, which is the role that created them
(CREATE TASK, CREATE DYNAMIC TABLE: "the owner role"); so deploy grants the PHI
role to the owner role as the role it connects as, then takes the owner role
(`USE ROLE`) and creates everything else as it. Before any object is created, the
owner role's grants are read (privileges.py): a missing privilege is one line that
names it and the GRANT that supplies it. No warehouse or role name is assumed: the
session's are used where none is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any, Protocol

from loader.core import faults
from loader.core.errors import ConfigError, LoaderError, LoadError, StatementError
from loader.core.identifiers import quoted
from loader.warehouse.patterns import plan
from loader.warehouse.patterns.names import Names
from loader.warehouse.patterns.privileges import Context, grants_of, missing, needed
from loader.warehouse.snowflake import setup_statements


class Session(Protocol):
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def records(self, sql: str) -> list[dict[str, Any]]: ...

    def create_model(self) -> None: ...


def session_names(session: Session, names: Names) -> Names:
    """`names` with the session's role and warehouse where none was given."""
    role, warehouse = session.query("SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()")[0]
    return dataclasses.replace(
        names,
        owner_role=names.owner_role or role,
        warehouse=names.warehouse or warehouse,
    )


def deploy(session: Session, pattern: str, names: Names, stage: str) -> int:
    """Run `pattern`; the number of its statements run (the change of role and
    schema aside). LoaderError in one line, and nothing created when the owner role
    lacks a privilege."""
    names = session_names(session, names)
    deployment = plan(pattern, names)
    owner = names.owner_role or ""
    _check_privileges(session, pattern, names, [*setup_statements(stage), *deployment.as_owner])
    for statement in deployment.as_deployer:
        _run(session, statement, f"deploy {pattern}: {_AS_DEPLOYER}")
    current = session.query("SELECT CURRENT_ROLE()")[0][0]
    if str(current).upper() != owner.upper():
        _run(session, f"USE ROLE {quoted(owner)}", f"deploy {pattern}: taking the owner role")
    if names.database:
        _run(session, f"USE DATABASE {quoted(names.database)}", f"deploy {pattern}")
    if names.schema:
        _run(session, f"USE SCHEMA {quoted(names.schema)}", f"deploy {pattern}")
    session.create_model()
    _run_as_owner(session, pattern, deployment.as_owner)
    return len(deployment.as_deployer) + len(deployment.as_owner)


def _run_as_owner(session: Session, pattern: str, statements: list[str]) -> None:
    """Run `statements` in order. A pattern's BEGIN … COMMIT is its own: when a
    statement between them fails, the transaction is rolled back before the error
    is raised, so nothing of it is left for the session's end to settle."""
    count, open_transaction = len(statements), False
    for number, statement in enumerate(statements, 1):
        try:
            if open_transaction:
                faults.maybe_fail("mid-deploy-transaction")
            _run(session, statement, f"deploy {pattern}: statement {number} of {count}")
        except LoaderError:
            if open_transaction:
                with contextlib.suppress(LoaderError):  # the first failure is the one to tell
                    session.query("ROLLBACK")
            raise
        open_transaction = statement == "BEGIN" or (open_transaction and statement != "COMMIT")


_AS_DEPLOYER = (
    "the PHI role and its grant to the owner, run as the connecting role (creating a "
    "role needs CREATE ROLE on the account, granting it the role's OWNERSHIP or MANAGE "
    "GRANTS: connect as USERADMIN or SECURITYADMIN, or have them run first),"
)


def _run(session: Session, statement: str, what: str) -> None:
    try:
        session.query(statement)
    except StatementError as exc:
        raise LoadError(f"{what} failed: {exc}") from None


def _check_privileges(session: Session, pattern: str, names: Names, statements: list[str]) -> None:
    database, schema = session.query("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")[0]
    database, schema = names.database or database, names.schema or schema
    if not database or not schema:
        raise ConfigError(
            f"deploy {pattern}: the session has no database and schema: name them in the "
            "target (snowflake://USER@ACCOUNT/DATABASE/SCHEMA) or give --database and --schema"
        )
    context = Context(database, schema, names.warehouse, names.storage_integration)
    owner = names.owner_role or ""
    try:
        grants = grants_of(owner, session.records)
    except StatementError as exc:
        # The grants cannot be read (SHOW GRANTS needs the role in the session's
        # hierarchy): the statements themselves will say what is refused.
        print(f"warning: privileges of {owner} not checked: {exc}", file=sys.stderr)
        return
    lacking = missing(needed(statements), grants, context)
    if lacking:
        fixes = "; ".join(p.grant(owner, context) for p in lacking)
        raise ConfigError(
            f"deploy {pattern}: role {owner} lacks "
            f"{', '.join(f'{p.privilege} on {p.on.lower()}' for p in lacking)}; "
            f"as a role that can grant them: {fixes}"
        )
