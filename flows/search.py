"""The `search-add` flow: download the candidates a client picked from a search preview, ingest them as a
sub-run, then link each new picture to where it came from.

The API starts it as a `search` task (services/api/pipeline.py): on a Prefect worker when a server is
configured, so the downloads run beside the other flow runs and never in the API process.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._common import LIFECYCLE_HOOKS, ProgressReporter, run_flow, tracked_run
from flows.ingest import ingest_flow
from loraforge.sources.search import add_candidates
from loraforge.stages.options import IngestOptions, SearchAddOptions


@flow(name="search-add", **LIFECYCLE_HOOKS)
def search_add_flow(
    dataset_id: str, options: SearchAddOptions, task_id: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """Add the picked candidates; returns each provider's line and the ingest summary."""
    with tracked_run("search", dataset_id, options, task_id=task_id, parent_id=parent_id) as run:
        run.set_total(len(options.candidate_ids))
        reporter = ProgressReporter(run.ctx, run.task_id, offset=0, artifact_id=run.artifact_id)

        def progress(_provider: str, step: str, count: int) -> None:
            run.check_cancelled()
            if step == "download":
                reporter(count)

        def ingest(batch: str) -> dict[str, Any]:
            # A sub-run with its own task row, as a build's stages are.
            staged = IngestOptions(upload_batch=batch)
            return run_flow(ingest_flow, dataset_id, staged, parent_id=run.task_id)  # type: ignore[no-any-return]

        outcome = add_candidates(
            run.ctx, dataset_id, options.search_id, options.candidate_ids, ingest=ingest, progress=progress
        )
        reporter.flush()
        result = outcome.to_dict()
        run.complete(result)
    return {"task_id": run.task_id, **result}
