"""The `export` flow: one task writes a dataset version into object storage (and a local copy for the CLI).

Export is I/O-bound and produces a single archive, so it runs in the flow's process as one task, no Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import (
    LIFECYCLE_HOOKS,
    ProgressReporter,
    TrackedRun,
    call_task,
    in_flow_run,
    tracked_run,
)
from loraforge.catalog.models import Dataset
from loraforge.errors import CatalogError, NotFound, StorageError
from loraforge.stages.export import ExportOutcome, ExportRequest, local_outputs, plan_export, write_export
from loraforge.stages.options import ExportOptions

_TRANSIENT = (StorageError, CatalogError, ConnectionError, TimeoutError)


def _retry_transient(_task: Any, _run: Any, state: Any) -> bool:
    # A refused (strict) or invalid export fails the same way every time; only I/O hiccups deserve a retry.
    return isinstance(state.data, _TRANSIENT)


@task(
    name="export-write",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=_retry_transient,
    cache_policy=NO_CACHE,
)
def export_write(
    run: TrackedRun,
    dataset_id: str,
    options: ExportOptions,
    out_dir: Path | None,
    zip_path: Path | None,
    overwrite: bool = False,
) -> ExportOutcome:
    """Plan from the catalog and write one version; a failed attempt leaves nothing visible to retry over."""
    ctx = run.ctx
    request = ExportRequest(
        format=options.format,
        repeats=options.repeats,
        include_rejected=options.include_rejected,
        # An ExportSpec field: the flag, unless --option caption_extension=... says otherwise.
        options={"caption_extension": options.caption_extension, **options.options},
        max_upscale=options.max_upscale,
    )
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} vanished")
        plan = plan_export(session, dataset, request, ctx.store)
    run.set_total(len(plan.items))
    reporter = ProgressReporter(ctx, run.task_id, offset=0, artifact_id=run.artifact_id)
    outcome = write_export(
        ctx,
        plan,
        strict=options.strict,
        out_dir=out_dir,
        zip_path=zip_path,
        overwrite=overwrite,
        progress=reporter,
    )
    reporter.flush()
    return outcome


@flow(name="export", **LIFECYCLE_HOOKS)
def export_flow(
    dataset_id: str,
    options: ExportOptions,
    task_id: str | None = None,
    parent_id: str | None = None,
    out: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export a new immutable version of the dataset; returns its id, keys, counts and warnings.

    The version is stored in object storage (the API downloads it from there). `out` is the CLI's local
    copy: ending in .zip it receives the archive, else the folder form (and `<out>.zip` with `zip`). An
    earlier export there is replaced; anything else only with `overwrite`.
    """
    out_dir, zip_path = local_outputs(out, zip=options.zip)
    with tracked_run("export", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        outcome = call_task(
            export_write,
            run,
            dataset_id,
            options,
            out_dir,
            zip_path,
            overwrite,
            retry_if=lambda exc: isinstance(exc, _TRANSIENT),
        )
        result = {"format": options.format, **outcome.to_dict()}
        run.complete(result)
    publish_summary(result)
    return {"task_id": run.task_id, **result}


def publish_summary(result: dict[str, Any]) -> None:
    if not in_flow_run():
        return
    from prefect.artifacts import create_markdown_artifact

    warnings = "\n".join(f"- {line}" for line in result["warnings"]) or "none"
    create_markdown_artifact(
        key="export-summary",
        markdown=(
            f"# Export {result['export_id']}\n\n{result['images']} images, {result['files']} files, "
            f"{result['bytes']} bytes, stored at `{result['object_key']}`\n\n## Warnings\n\n{warnings}\n"
        ),
        description=f"{result['format']} export",
    )
