"""Under concurrency the API never waits on itself: a catalog connection is never held across a hop
through the thread pool, so even one thread and one connection serve many concurrent clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from loraforge.config import get_settings
from loraforge.stages.context import Context, reset_contexts
from tests.api.factories import make_dataset, make_image, make_workspace


@pytest.fixture
def tight_server(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """One API thread and one catalog connection (no overflow, 3 s pool timeout)."""
    from services.api.main import create_app

    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session))
        for seed in range(5):
            make_image(session, ctx.store, dataset, seed=seed)
        dataset_id = dataset.id
    for key, value in {
        "LORAFORGE_API_THREADS": "1",
        "LORAFORGE_CATALOG_POOL_SIZE": "1",
        "LORAFORGE_CATALOG_MAX_OVERFLOW": "0",
        "LORAFORGE_CATALOG_POOL_TIMEOUT_S": "3",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_contexts()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/api/v1", dataset_id
    server.should_exit = True
    thread.join(timeout=10)


def test_many_concurrent_reads_with_one_thread_and_one_connection_all_succeed(
    tight_server: tuple[str, str],
) -> None:
    base, dataset_id = tight_server
    paths = ["/workspaces", f"/datasets/{dataset_id}/images", f"/datasets/{dataset_id}/stats"] * 20

    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda path: client.get(path).status_code, paths))

    assert statuses == [200] * len(paths)
