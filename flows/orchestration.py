"""Who runs a flow: Prefect, which records every flow and task run, or the same code called locally.

A run with no Prefect API configured has nobody to show its runs to, and Prefect would start an
ephemeral server (about ten seconds on a 2-core laptop) just to record them. `run_flow` then calls the
flow's plain function instead, and `call_task` calls a task's function with the task's own retries:
the catalog's task rows, progress, cancellation and shard retries work the same either way. Inside a
Prefect flow run (a deployment, `loraforge serve`, a configured `LORAFORGE_PREFECT_API_URL`) every
subflow and task goes through Prefect as before. `LORAFORGE_ORCHESTRATION=prefect|local` forces either.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)
_LAST_TRY: ContextVar[bool] = ContextVar("local_last_try", default=True)


def in_flow_run() -> bool:
    """Whether this code runs inside a Prefect flow run."""
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def prefect_records_runs() -> bool:
    """Whether a flow started here (outside any flow run) should go through Prefect."""
    from loraforge.config import get_settings

    settings = get_settings()
    if settings.orchestration != "auto":
        return settings.orchestration == "prefect"
    return bool(settings.prefect_api_url or os.environ.get("PREFECT_API_URL"))


def run_flow(flow: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a flow (or subflow) through Prefect when runs are recorded, else as its plain function."""
    if in_flow_run() or prefect_records_runs():
        return flow(*args, **kwargs)
    with _termination_raises():
        return flow.fn(*args, **kwargs)


@contextmanager
def _termination_raises() -> Iterator[None]:
    """SIGTERM raises Prefect's TerminationSignal, as Prefect's engine does, so the tracked run records
    the run as crashed before the process ends (Kubernetes and workers send SIGTERM before killing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from prefect.exceptions import TerminationSignal

    def terminate(signum: int, _frame: Any) -> None:
        raise TerminationSignal(signal=signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def call_task(
    task: Any, *args: Any, retry_if: Callable[[Exception], bool] | None = None, **kwargs: Any
) -> Any:
    """Call a Prefect task inside a flow run; outside one, its function with the task's retries.

    A task with a `retry_condition_fn` (which reads Prefect states) is retried locally only where
    `retry_if` says the exception deserves it.
    """
    if in_flow_run():
        return task(*args, **kwargs)
    retries = task.retries or 0
    if task.retry_condition_fn is not None and retry_if is None:
        retries = 0
    delay = task.retry_delay_seconds
    for attempt in range(retries + 1):
        token = _LAST_TRY.set(attempt == retries)
        try:
            return task.fn(*args, **kwargs)
        except Exception as exc:
            if attempt == retries or (retry_if is not None and not retry_if(exc)):
                raise
            log.warning("%s failed (%s); trying again (%d of %d)", task.name, exc, attempt + 1, retries)
            time.sleep(float(delay[attempt] if isinstance(delay, list) else delay or 0))
        finally:
            _LAST_TRY.reset(token)
    raise AssertionError("unreachable")  # pragma: no cover


def local_last_try() -> bool:
    """Outside Prefect: whether call_task is on its task's last try (True when not retrying at all)."""
    return _LAST_TRY.get()
