"""Why an item failed, marked on its result, so a run can tell the picture's fault from the store's.

Every result carries "error" (None, or a one-line reason). A failed result also carries "error_kind":

- "content": the picture itself (corrupt, too large, not an image). Trying again cannot help: it becomes
  a failure row of the summary and the run goes on, as ever.
- "unavailable": the object store could not be reached through all its retries (StorageUnavailable). The
  result is marked "transient": flows run the shard again, and a run still holding such results after the
  shard's last try fails, naming the pictures.
- "storage": the store answered with a refusal (access denied, a bad request). Not retried, but the
  picture was not stored through no fault of its own, so the run fails naming it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from loraforge.errors import IncompleteRun, StorageError, StorageUnavailable
from loraforge.stages.base import Item, Result, error_result

ErrorKind = Literal["content", "storage", "unavailable"]
NAMES_SHOWN = 50
"""Pictures named in an error message; the summary artifact lists them all."""


def failed(item: Item, exc: Exception) -> Result:
    """The result of an item that raised: its reason, and whether the picture or the store was at fault."""
    kind: ErrorKind = "content"
    if isinstance(exc, StorageUnavailable):
        kind = "unavailable"
    elif isinstance(exc, StorageError):
        kind = "storage"
    return {**error_result(item, str(exc)), "error_kind": kind, "transient": kind == "unavailable"}


def is_transient(result: Result) -> bool:
    """Failed for a reason that may pass (the store unreachable): worth running the shard again."""
    return bool(result.get("transient"))


def is_not_stored(result: Result) -> bool:
    """Failed because the object store would not take it, rather than because of the picture."""
    return result.get("error_kind") in ("unavailable", "storage")


def item_name(result: Result) -> str:
    """What a user knows the item by: its file name, else its image id, object key or URL."""
    for key in ("filename", "image_id", "key", "url"):
        if result.get(key):
            return str(result[key])
    return "?"


def incomplete_run(
    what: str, not_done: Sequence[Result], *, not_tried: int = 0, advice: str = ""
) -> IncompleteRun:
    """The error ending a run whose pictures the store did not take: their names first (a CLI shows the
    start of the message), then how many were not tried, then one reason."""
    names = [item_name(result) for result in not_done]
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        shown += f" and {len(names) - NAMES_SHOWN} more"
    message = f"{what} ({len(names)}): {shown}."
    if not_tried:
        message += f" {not_tried} more pictures were not tried."
    message += f" Reason: {not_done[0].get('error')}."
    if advice:
        message += f" {advice}"
    items = [
        {"name": name, "reason": str(result.get("error"))}
        for name, result in zip(names, not_done, strict=True)
    ]
    return IncompleteRun(message, items)
