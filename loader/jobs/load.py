"""A written run into its target: the batches left, the deletions an incremental
run found, validation, then the report (report.build_report).

In: the run's committed ledger records (or the batches already loaded while the
workers extracted). Out: the `RunReport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

from loader.core.errors import ConfigError
from loader.dicom.pseudonymize import Pseudonymizer, read_key
from loader.jobs import validate
from loader.jobs.deleted_objects import (
    DeletionScope,
    record_deletions,
)
from loader.jobs.report import LoadOutcome, RunReport, RunTally, build_report
from loader.jobs.settings import RunSettings, Target, TargetKind
from loader.jobs.targets import (
    check_target_reads,
    open_warehouse,
)
from loader.output import ledger
from loader.output.ledger import ShardRecord
from loader.output.location import OutputRoot
from loader.sources.dicomweb import incomplete_studies, is_dicomweb
from loader.sources.repeats import SeenKeys
from loader.warehouse.base import Warehouse
from loader.warehouse.batches import BatchedLoad


class DeletionCheck(NamedTuple):
    """What an incremental run hands the load to find deletions with, once its
    listing has ended: where, which URLs were listed, which folders were not."""

    scope: DeletionScope
    listed: SeenKeys
    unreadable: list[str]


def load(
    out: OutputRoot | str | Path,
    run_id: str,
    target: Target,
    *,
    settings: RunSettings | None = None,
    tally: RunTally | None = None,
    loading: BatchedLoad | None = None,
    deletion_check: DeletionCheck | None = None,
) -> RunReport:
    """Load a written run (its committed shards) into `target`, validate, report.
    With `deletion_check` (an incremental run), objects gone from the listed prefix
    are then recorded as deleted (loader/jobs/deleted_objects.py), before validation.

    `tally` is what the run counted before (a load of a written run starts its own);
    `loading` holds the batches a run already loaded during its extraction (and the
    warehouse it loaded them into); what is left is loaded here. An incremental run
    that found nothing new has no shards: there is nothing to load, and the target
    is only validated.
    """
    tally = tally if tally is not None else RunTally()
    if not isinstance(out, OutputRoot):
        out = OutputRoot.of(out)
    check_target_reads(out, target)
    records = list(ledger.committed_shards(out, run_id))
    if not records and not tally.unchanged.value:
        raise ConfigError(f"run {run_id} has no committed shards under {out}")
    if settings is None:
        manifest = ledger.read_run(out, run_id)
        settings = RunSettings(
            source=manifest["source"] if manifest else "",
            out=out.url,
            target=target,
            workers=0,
            run_id=run_id,
        )
    outcome = LoadOutcome()
    if target.kind is not TargetKind.NONE:
        with ExitStack() as stack:
            if loading is None:
                warehouse = open_warehouse(target)
                stack.callback(warehouse.close)
                loading = BatchedLoad(warehouse, out, run_id, background=False)
            _load_rest(loading, records, deletion_check, settings, outcome)
    return build_report(run_id, settings, out, records, tally, outcome)


def _load_rest(
    loading: BatchedLoad,
    records: list[ShardRecord],
    deletion_check: DeletionCheck | None,
    settings: RunSettings,
    outcome: LoadOutcome,
) -> None:
    """The batches left, the deletions and validation, each timed, into `outcome`."""
    warehouse = loading.warehouse
    tail_started = time.time()
    outcome.result = loading.finish(records) if records else None
    if deletion_check is not None:
        deletions_started = time.time()
        outcome.deleted = record_deletions(warehouse, *deletion_check, loading.run_id)
        outcome.deletions_seconds = time.time() - deletions_started
    outcome.after_extraction_seconds = time.time() - tail_started
    outcome.batches = loading.batches
    outcome.batches_during_extraction = loading.batches_during_extraction
    validation_started = time.time()
    outcome.checks = validate.warehouse_checks(warehouse)
    if is_dicomweb(settings.source):
        outcome.checks["incomplete_studies"] = pacs_completeness(settings, warehouse)
    outcome.validation_seconds = time.time() - validation_started


def pacs_completeness(settings: RunSettings, warehouse: Warehouse) -> dict[str, Any]:
    """The studies of a DICOMweb source whose loaded instances fall short of what the
    server reports (dicomweb.incomplete_studies), from the warehouse's counts; with
    --pseudonymize-uids the server's UIDs are compared as the workers stored them."""
    mark = warehouse.placeholder

    def loaded(uids: list[str]) -> dict[str, int]:
        if not uids:
            return {}
        rows = warehouse.query(
            "SELECT study_instance_uid, number_of_instances FROM dicom_study "
            f"WHERE study_instance_uid IN ({', '.join(mark for _ in uids)})",
            uids,
        )
        return {str(uid): int(n or 0) for uid, n in rows}

    def loaded_series(study: str) -> dict[str, int]:
        rows = warehouse.query(
            "SELECT se.series_instance_uid, se.number_of_instances FROM dicom_series se "
            "JOIN dicom_study st ON st.study_key = se.study_key "
            f"WHERE st.study_instance_uid = {mark}",
            [study],
        )
        return {str(uid): int(n or 0) for uid, n in rows}

    stored_uid: Callable[[str], str] = str
    if settings.pseudonymize_uids and settings.pseudonymize_key_file:
        stored_uid = Pseudonymizer(
            read_key(settings.pseudonymize_key_file), shift_dates=False, uids=True
        ).uid
    return incomplete_studies(
        settings.source, settings.storage_options, loaded, loaded_series, stored_uid
    )
