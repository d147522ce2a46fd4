"""The `export` flow: one task writes a dataset version into object storage (and local copies when asked).

Export is I/O-bound and produces a single archive, so it runs in the flow's process as one task, no Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import ProgressReporter, fail_task, new_progress_artifact, start_task
from loraforge.catalog import queries
from loraforge.catalog.models import Dataset, Task
from loraforge.errors import CatalogError, NotFound, StorageError
from loraforge.stages.context import open_context
from loraforge.stages.export import ExportOutcome, ExportRequest, local_outputs, plan_export, write_export

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
    dataset_id: str,
    task_id: str,
    request: ExportRequest,
    strict: bool,
    out_dir: str | None,
    zip_path: str | None,
    artifact_id: Any = None,
) -> ExportOutcome:
    """Plan from the catalog and write one version; a failed attempt leaves nothing visible to retry over."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} vanished")
        plan = plan_export(session, dataset, request, ctx.store)
        row = session.get(Task, task_id)
        if row is not None:
            row.total = len(plan.items)
    reporter = ProgressReporter(ctx, task_id, offset=0, artifact_id=artifact_id)
    outcome = write_export(
        ctx,
        plan,
        strict=strict,
        out_dir=Path(out_dir) if out_dir else None,
        zip_path=Path(zip_path) if zip_path else None,
        progress=reporter,
    )
    reporter.flush()
    return outcome


@flow(name="export")
def export_flow(
    dataset: str,
    format: str,
    out: str | None = None,
    workspace: str = queries.DEFAULT_WORKSPACE,
    repeats: int | None = None,
    zip: bool = False,
    strict: bool = False,
    include_rejected: bool = False,
    options: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """Export a new immutable version of the dataset for `format`; returns its id, keys, counts and warnings.

    `out` ending in .zip receives the archive; any other `out` receives the folder form (and `<out>.zip`
    with `zip`). `options` set ExportSpec fields by name (batch_size, resolution, ...) or format extras.
    """
    ctx = open_context()
    request = ExportRequest(
        format=format, repeats=repeats, include_rejected=include_rejected, options=dict(options or {})
    )
    out_dir, zip_path = local_outputs(out, zip=zip)
    with ctx.catalog.session() as session:
        dataset_id = queries.find_dataset(session, dataset, workspace).id
        task_id = start_task(
            session,
            task_id,
            kind="export",
            dataset_id=dataset_id,
            total=0,
            params={
                "format": format,
                "out": out,
                "repeats": repeats,
                "zip": zip,
                "strict": strict,
                "include_rejected": include_rejected,
                "options": request.options,
            },
        )
    artifact_id = new_progress_artifact("export", dataset)
    try:
        outcome = export_write(
            dataset_id,
            task_id,
            request,
            strict,
            str(out_dir) if out_dir else None,
            str(zip_path) if zip_path else None,
            artifact_id,
        )
    except BaseException as exc:
        fail_task(ctx, task_id, exc)
        raise
    result = {"dataset": dataset, "format": format, "task_id": task_id, **outcome.to_dict()}
    with ctx.catalog.session() as session:
        queries.finish_task(session, task_id, status="COMPLETED", result=result)
    publish_summary(result)
    return result


def publish_summary(result: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact

    warnings = "\n".join(f"- {line}" for line in result["warnings"]) or "none"
    create_markdown_artifact(
        key="export-summary",
        markdown=(
            f"# Export {result['export_id']}\n\n{result['images']} images, {result['files']} files, "
            f"{result['bytes']} bytes, stored at `{result['object_key']}`\n\n## Warnings\n\n{warnings}\n"
        ),
        description=f"{result['format']} export of {result['dataset']}",
    )
