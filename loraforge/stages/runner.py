"""Run a stage inline, in this process: for tests, tiny inputs and the benchmark baselines."""

from __future__ import annotations

from collections.abc import Sequence

from loraforge.stages.base import (
    Item,
    ProgressCallback,
    Result,
    ResultsCallback,
    Stage,
    batched,
    error_result,
)


def run_inline(
    stage: Stage,
    items: Sequence[Item],
    on_progress: ProgressCallback | None = None,
    on_results: ResultsCallback | None = None,
) -> list[Result]:
    """Process every item through the stage in batches; results come back in item order."""
    if not items:
        return []
    stage.setup()
    results: list[Result] = []
    for batch in batched(items, stage.batch_size):
        try:
            out = stage.process_batch(batch)
        except Exception as exc:  # a stage bug must still not lose the rest of the run
            out = [error_result(item, f"{stage.name} failed: {exc!r}") for item in batch]
        results.extend(out)
        if on_results:
            on_results(out)
        if on_progress:
            on_progress(len(batch))
    return results
