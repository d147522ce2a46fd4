"""Scheduled flows: stale-task reaper, watched-source sync, training-status sync, integrity check.

`loraforge worker` serves each with the schedule its setting gives (`LORAFORGE_SCHEDULE_*`: seconds, a cron
expression or "off"); `infra/prefect/prefect.yaml` deploys them with the same defaults. Each also runs on
demand: from the Prefect UI, or the CLI (`loraforge maintenance ...`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger

from loraforge import maintenance, tasks
from loraforge.errors import Conflict, LoraForgeError
from loraforge.sources.search import sync_saved_searches
from loraforge.stages.context import Context, open_context
from loraforge.stages.options import IngestOptions
from loraforge.training import records as training_records
from loraforge.training import service as training_service


def _logger() -> Any:
    """The Prefect run's logger (shown in its UI), or this module's when the flow runs locally."""
    from flows.orchestration import in_flow_run

    return get_run_logger() if in_flow_run() else logging.getLogger(__name__)


@flow(name="reap-stale-tasks")
def reap_stale_tasks_flow() -> dict[str, Any]:
    """Mark CRASHED the runs whose process died: gone from this host, or silent past the heartbeat limit."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        reaped = tasks.reap(session, stale_after_s=ctx.settings.task_stale_after_s)
    if reaped:
        _logger().warning("marked %d run(s) CRASHED: %s", len(reaped), ", ".join(reaped))
    return {"reaped": reaped}


@flow(name="sync-sources")
def sync_sources_flow() -> dict[str, Any]:
    """Re-ingest the folders each dataset watches (`loraforge sources watch`) and re-run the saved image
    searches of the datasets that opted in (`loraforge search --sync on`); only new pictures are added.

    A dataset with a run in progress is skipped this time, not queued: the next tick picks it up.
    """
    from flows.ingest import ingest_flow
    from flows.orchestration import run_flow

    ctx = open_context()
    with ctx.catalog.session() as session:
        watched = maintenance.datasets_with_watched_sources(session)
    logger = _logger()
    synced: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for dataset_id, folders in watched:
        try:
            summary = run_flow(ingest_flow, dataset_id, IngestOptions(sources=folders))
        except Conflict as exc:
            skipped[dataset_id] = str(exc)
            logger.info("dataset %s is busy; synced on a later run", dataset_id)
            continue
        synced[dataset_id] = {key: summary[key] for key in ("found", "added", "failed")}
    # Datasets that opted in (`loraforge search --sync on`) re-run their saved image searches.
    searches = sync_saved_searches(
        ctx,
        ingest_for=lambda dataset_id: (
            lambda batch: run_flow(ingest_flow, dataset_id, IngestOptions(upload_batch=batch))
        ),
    )
    return {"synced": synced, "skipped": skipped, "searches": searches}


@flow(name="sync-trainings")
def sync_trainings_flow() -> dict[str, Any]:
    """Bring every training a provider may still change up to date with the provider, and store the
    weights of those that succeeded.

    Providers register a sync function in `TRAINING_SYNC`; a training of a provider without one is
    reported, not changed. One training failing to sync (the provider unreachable) does not stop the
    others: it is reported, and the next run tries again.
    """
    ctx = open_context()
    logger = _logger()
    with ctx.catalog.session() as session:
        pending = [(row.id, row.provider) for row in training_records.trainings_to_sync(session)]
    checked, unsupported, failed = [], [], {}
    for training_id, provider in pending:
        sync = TRAINING_SYNC.get(provider)
        if sync is None:
            unsupported.append(training_id)
            continue
        try:
            sync(ctx, training_id)
        except LoraForgeError as exc:
            failed[training_id] = str(exc)
            logger.warning("could not sync training %s: %s", training_id, exc)
            continue
        checked.append(training_id)
    if unsupported:
        logger.warning("no status sync for the provider of training(s) %s", ", ".join(unsupported))
    return {"checked": checked, "unsupported": unsupported, "failed": failed}


TRAINING_SYNC: dict[str, Callable[[Context, str], Any]] = {
    training_records.PROVIDER: training_service.sync_training
}
"""provider name -> function(ctx, training_id) that polls the provider, updates the row and stores the
weights of a training that succeeded."""


@flow(name="check-integrity")
def check_integrity_flow(
    dry_run: bool = False, sample: int | None = None, grace_s: float | None = None
) -> dict[str, Any]:
    """Every catalog row's object exists, a sample of originals still hash right, orphans are removed.

    Orphans (objects no row names) older than `grace_s` (default LORAFORGE_ORPHAN_GRACE_S) are deleted;
    `dry_run` only reports them. Missing or corrupt objects fail the run, naming them.
    """
    ctx = open_context()
    report = maintenance.check_integrity_now(ctx, dry_run=dry_run, sample=sample, grace_s=grace_s)
    if not report.ok:
        raise maintenance.IntegrityProblems(report.problem_summary())
    return report.as_dict()
