"""The Stage protocol: a named, versioned batch function that runs inline or on Ray unchanged.

A stage's worker side is a picklable object. It is built in the driver with plain configuration (never
open clients or loaded models), shipped to workers, and `setup()` there loads whatever is heavy. Items
and results are plain dicts (TypedDicts per stage) so Ray tasks and Ray Data batches carry them as is.
Every result carries "error": None on success or a one-line reason; a failed item never fails a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

Item = dict[str, Any]
Result = dict[str, Any]
ProgressCallback = Callable[[int], None]
"""Called with the number of items just finished."""
ResultsCallback = Callable[[list[dict[str, Any]]], None]
"""Called with each finished batch's results, so a driver can record them before the run ends."""

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; the executor maps it onto Ray resources."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@runtime_checkable
class Stage(Protocol):
    """The worker side of a pipeline stage."""

    name: str
    version: int
    resources: Resources
    batch_size: int
    stateful: bool
    """True when setup() loads something worth keeping (a model): executors use an actor pool."""

    def setup(self) -> None:
        """Load models or open clients once per worker process."""

    def process_batch(self, items: list[Item]) -> list[Result]:
        """Map a batch of items to one result per item, in order."""


def batched(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def error_result(item: Item, reason: str) -> Result:
    """The result of an item that failed: its identity plus a one-line reason."""
    return {**item, "error": one_line(reason)}


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a message to a single line a summary table can show."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
