"""One pace per provider for the whole deployment: separate processes taking slots of one provider never
get two closer than the interval, on Postgres and on the embedded SQLite catalog; and two clients (as two
API workers have) keep that pace against a provider."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loraforge.sources.search.downloader import api_client
from loraforge.stages.context import open_context
from tests.support.fake_providers import FakeProvider

INTERVAL_S = 0.2
WORKER = """
import sys, time
from loraforge.stages.context import open_context
from loraforge.sources.search.pacing import CatalogPacer

pacer = CatalogPacer(open_context().catalog, "openverse:api")
for _ in range(int(sys.argv[1])):
    slot = pacer.reserve(float(sys.argv[2]), now=time.time())
    time.sleep(max(0.0, slot - time.time()))
    print(repr(slot), repr(time.time()), flush=True)
"""


@pytest.mark.parametrize("catalog", ["postgres", "sqlite"])
def test_processes_take_distinct_slots_one_interval_apart(
    catalog: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("stack_env" if catalog == "postgres" else "embedded_env")
    open_context().catalog.ensure_schema()  # migrated once, before the processes race
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, "6", str(INTERVAL_S)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(3)
    ]
    lines = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        lines += [tuple(float(value) for value in line.split()) for line in out.splitlines()]
    slots = sorted(slot for slot, _started in lines)
    assert len(slots) == 18
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= INTERVAL_S - 1e-6, gaps  # no two calls of the deployment closer than the pace
    assert all(started >= slot for slot, started in lines)  # and none started before its slot


def test_two_clients_keep_one_pace_against_the_provider(
    search_env: dict[str, str], fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loraforge.config import get_settings

    monkeypatch.setenv("LORAFORGE_SEARCH_MIN_INTERVAL_S", "0.25")
    get_settings.cache_clear()
    ctx = open_context()
    ctx.catalog.ensure_schema()
    clients = [api_client(ctx, "openverse", key=None, interval_s=1.0, purpose="api") for _ in range(2)]
    started: list[float] = []

    def search(client: object) -> None:
        for page in range(1, 4):
            client.get_json("/v1/images/", {"q": "hopper", "page": page, "page_size": 5})  # type: ignore[attr-defined]
            started.append(time.time())

    threads = [threading.Thread(target=search, args=(client,)) for client in clients]
    begin = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(started) == 6 and len(fakes["openverse"].requests) >= 6
    # Six calls one pace apart take at least five intervals, though each client made only three.
    assert max(started) - begin >= 5 * 0.25 - 0.05


def test_a_retry_after_holds_back_every_client(
    search_env: dict[str, str], fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loraforge.config import get_settings

    monkeypatch.setenv("LORAFORGE_SEARCH_MIN_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    ctx = open_context()
    ctx.catalog.ensure_schema()
    first, second = (api_client(ctx, "openverse", key=None, interval_s=1.0, purpose="api") for _ in range(2))
    openverse = fakes["openverse"]
    openverse.retry_after, openverse.throttle = "2", 1
    query = {"q": "hopper", "page": 1, "page_size": 5}
    waiting = threading.Thread(target=first.get_json, args=("/v1/images/", query))
    waiting.start()
    deadline = time.monotonic() + 30
    while openverse.throttle and time.monotonic() < deadline:  # until the 429 went out
        time.sleep(0.005)
    answered_429 = time.monotonic()
    while first.waited_s < 2 and time.monotonic() < deadline:  # and the first client has taken it in
        time.sleep(0.005)
    second.get_json("/v1/images/", query)  # another worker's client, which never saw the 429
    assert time.monotonic() - answered_429 >= 2 - 0.1  # it waited for the Retry-After all the same
    waiting.join(timeout=30)
    assert first.waited_s >= 2
