"""Where the Snowflake patterns go and what runs them: every name checked before any
SQL exists (identifiers plain and quoted, lag and schedule in their forms, a stage URL
without quotes)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loader.core.errors import ConfigError
from loader.core.flags import flag
from loader.core.identifiers import identifier, quoted
from loader.core.model import BY_NAME

ERROR_COLUMNS = ", ".join(BY_NAME["dicom_ingestion_errors"].column_names)
_STAGE_URL = re.compile(r"(s3|gcs|azure)://[A-Za-z0-9._/-]+")


@dataclass(frozen=True)
class Names:
    """Where the patterns go and what runs them; every name a plain identifier."""

    database: str | None = flag(None, "Database of the model (default: the session's).")
    schema: str | None = flag(None, "Schema of the model (default: the session's).")
    # The warehouse that runs tasks, refreshes and the search service: no name is
    # assumed (only a trial account has COMPUTE_WH); deploy takes the session's.
    warehouse: str | None = flag(
        None,
        "Warehouse that runs the tasks, dynamic tables and search service (deploy: "
        "default the session's).",
    )
    lag: str = flag("10 minutes", "TARGET_LAG of the dynamic tables.")
    phi_role: str = flag("DICOM_PHI_READER", "The role that sees PHI in clear.")
    # Tasks and dynamic tables run as their owner, so what they read through a masking
    # policy is never masked once the owner holds the PHI role. None: deploy's role.
    owner_role: str | None = flag(
        None,
        "The role that owns and runs the loader's tables, tasks and dynamic tables: "
        "deploy creates them as it, and grants it the PHI role so they never read "
        "masked values (deploy: default the role it connects as).",
    )
    schedule: str = flag("5 MINUTE", "SCHEDULE of the root task.")
    stage_url: str | None = flag(
        None, "batch, snowpipe: where exports land (s3://, gcs://, azure://)."
    )
    storage_integration: str | None = flag(None, "The storage integration that reads --stage-url.")
    notification_integration: str | None = flag(None, "snowpipe on Azure or GCS: its events.")

    def __post_init__(self) -> None:
        for what, name in (
            ("--database", self.database),
            ("--schema", self.schema),
            ("--warehouse", self.warehouse),
            ("--phi-role", self.phi_role),
            ("--owner-role", self.owner_role),
            ("--storage-integration", self.storage_integration),
            ("--notification-integration", self.notification_integration),
        ):
            if name is not None:
                identifier(name, what)
        if self.database and not self.schema:
            # Snowflake reads a two-part name as schema.object: "DB".t would be the
            # table t of a schema named DB (Object name resolution).
            raise ConfigError(
                "--database needs --schema: Snowflake reads DATABASE.object as "
                "schema.object; give both, or neither to use the connection's own"
            )
        number, _, unit = self.lag.partition(" ")
        if not number.isdigit() or unit.rstrip("s") not in ("second", "minute", "hour", "day"):
            raise ConfigError(f"--lag {self.lag!r} is not like '10 minutes'")
        if self.stage_url is not None and not _STAGE_URL.fullmatch(self.stage_url):
            raise ConfigError(
                f"--stage-url {self.stage_url!r} is not an s3://, gcs:// or azure:// URL"
            )
        number, _, unit = self.schedule.partition(" ")
        if not number.isdigit() or unit.upper() not in ("MINUTE", "MINUTES", "SECONDS", "HOURS"):
            raise ConfigError(f"--schedule {self.schedule!r} is not like '5 MINUTE'")

    def warehouse_for(self, what: str) -> str:
        """The warehouse that runs `what` (a checked plain identifier); one line when
        none was named."""
        if self.warehouse is None:
            raise ConfigError(
                f"{what} needs a warehouse: give --warehouse, or connect with one "
                "(?warehouse=NAME in the target, or the user's DEFAULT_WAREHOUSE)"
            )
        return self.warehouse

    def owner(self) -> str:
        """The quoted owner role; one line when none was named."""
        if self.owner_role is None:
            raise ConfigError(
                "--owner-role is needed to print the grant of the PHI role "
                "(deploy uses the role it connects as)"
            )
        return quoted(self.owner_role, "--owner-role")

    def in_schema(self) -> tuple[str, str]:
        """SQL of the database and schema the patterns' objects are in."""
        database = f"'{self.database.upper()}'" if self.database else "CURRENT_DATABASE()"
        schema = f"'{self.schema.upper()}'" if self.schema else "CURRENT_SCHEMA()"
        return database, schema

    def table(self, name: str) -> str:
        parts = [p for p in (self.database, self.schema) if p]
        return ".".join([*(quoted(p) for p in parts), name])
