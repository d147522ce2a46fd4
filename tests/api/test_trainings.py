"""Trainings through the API: start (202, then the train flow in a thread), refresh, cancel, weights, and
Replicate's signed webhooks; Replicate is a fake HTTP server on loopback, reached by the official client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from loraforge.config import get_settings
from loraforge.stages.context import Context
from tests.api.factories import make_caption, make_dataset, make_image, make_workspace
from tests.support.fake_replicate import FAILURE, TRAINER, WEIGHTS, FakeReplicate, running_fake_replicate

pytestmark = pytest.mark.usefixtures("prefect_harness")
API = "/api/v1"
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


@pytest.fixture
def replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicate]:
    with running_fake_replicate() as fake:
        monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
        monkeypatch.setenv("REPLICATE_BASE_URL", fake.base_url)
        yield fake


def seed(ctx: Context, name: str = "alice") -> str:
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session), name, trigger_word="ohwx")
        for seed_ in range(2):
            make_caption(session, make_image(session, ctx.store, dataset, seed=seed_), f"ohwx woman {seed_}")
        return dataset.id


class Recorder:
    """An httpx-compatible client wrapper that keeps every response body, to search them for the token."""

    def __init__(self, client: TestClient | httpx.Client) -> None:
        self.client, self.bodies = client, []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        self.bodies.append(response.text)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def wait_for_task(api: Recorder, task_id: str) -> dict[str, Any]:
    for _ in range(600):  # the bound only stops a hung test
        task = api.get(f"{API}/tasks/{task_id}").json()
        if task["status"] in FINISHED:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still {task['status']}")


def start(api: Recorder, dataset_id: str, **body: Any) -> dict[str, Any]:
    accepted = api.post(
        f"{API}/datasets/{dataset_id}/trainings", json={"destination": "me/alice-lora", **body}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["kind"] == "train"
    task = wait_for_task(api, accepted.json()["task_id"])
    assert task["status"] == "COMPLETED", task["error"]
    return task["result"]


def test_start_refresh_and_download_the_weights(
    client: TestClient, ctx: Context, replicate: FakeReplicate
) -> None:
    api = Recorder(client)
    dataset_id = seed(ctx)
    result = start(api, dataset_id, steps=500, autocaption=False, inputs={"optimizer": "adamw"})
    (listed,) = api.get(f"{API}/datasets/{dataset_id}/trainings").json()["data"]
    assert listed["id"] == result["training_id"] and listed["status"] == "STARTING"
    assert listed["trainer_version"].startswith(f"{TRAINER}:") and listed["task_id"] == result["task_id"]
    assert listed["params"]["autocaption"] is False and listed["params"]["trigger_word"] == "ohwx"
    assert "webhook" not in replicate.trainings[listed["remote_id"]]  # no public URL configured: no webhook
    early = api.get(f"{API}/trainings/{listed['id']}/weights")
    assert early.status_code == 404 and "no stored weights" in early.json()["error"]["message"]

    statuses = [api.post(f"{API}/trainings/{listed['id']}/sync").json()["status"] for _ in range(3)]
    assert statuses == ["PROCESSING", "PROCESSING", "SUCCEEDED"]
    done = api.get(f"{API}/trainings/{listed['id']}").json()
    assert done["output_version"].startswith("me/alice-lora:") and done["weights_key"]
    weights = api.get(f"{API}/trainings/{listed['id']}/weights")
    assert weights.status_code == 200 and weights.content == WEIGHTS
    assert "attachment" in weights.headers["content-disposition"]
    assert replicate.token not in "".join(api.bodies)


def test_refusals_are_answered_before_anything_runs(
    client: TestClient, ctx: Context, replicate: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Recorder(client)
    dataset_id = seed(ctx)
    path = f"{API}/datasets/{dataset_id}/trainings"
    bad = api.post(path, json={"destination": "me/alice-lora", "inputs": {"steps": 2, "rank": 4}})
    assert bad.status_code == 422
    message = bad.json()["error"]["message"]
    assert (
        "steps: must be at least 3" in message and "unknown input rank" in message and "lora_rank" in message
    )
    assert api.post(path, json={"destination": "me/alice-lora", "gpu": "h100"}).status_code == 422
    assert api.post(path, json={"destination": "not a model"}).status_code == 422
    assert api.post(f"{API}/datasets/nope/trainings", json={"destination": "me/x"}).status_code == 404

    replicate.fail("GET", f"/v1/models/{TRAINER}", status=500)
    down = api.post(path, json={"destination": "me/alice-lora"})
    assert down.status_code == 502 and "Replicate answered 500" in down.json()["error"]["message"]
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    no_token = api.post(path, json={"destination": "me/alice-lora"})
    assert (
        no_token.status_code == 503
        and "REPLICATE_API_TOKEN is not set" in no_token.json()["error"]["message"]
    )
    assert api.get(f"{API}/datasets/{dataset_id}/tasks").json()["count"] == 0  # no run was recorded
    monkeypatch.setenv("REPLICATE_API_TOKEN", replicate.token)

    replicate.advance_on_get = False
    first = start(api, dataset_id)
    again = api.post(path, json={"destination": "me/alice-lora"})
    assert again.status_code == 409 and "already starting" in again.json()["error"]["message"]
    replicate.advance(first["remote_id"])
    cancelled = api.post(f"{API}/trainings/{first['training_id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELED" and "100/1000" in cancelled.json()["logs_tail"]
    assert api.post(f"{API}/trainings/{first['training_id']}/cancel").status_code == 409
    assert replicate.token not in "".join(api.bodies)


def test_webhooks_need_a_configured_secret(
    client: TestClient, ctx: Context, replicate: FakeReplicate
) -> None:
    body = json.dumps({"id": "abc", "status": "processing"}).encode()
    answer = client.post(f"{API}/webhooks/replicate", content=body, headers=replicate.signed_headers(body))
    assert (
        answer.status_code == 503
        and "LORAFORGE_REPLICATE_WEBHOOK_SECRET" in answer.json()["error"]["message"]
    )


def test_an_empty_webhook_secret_counts_as_none(
    client: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed with an empty key, a forged call would pass verification: the route must refuse to verify."""
    from loraforge.training import webhooks

    monkeypatch.setenv("LORAFORGE_REPLICATE_WEBHOOK_SECRET", "")
    get_settings.cache_clear()
    body = json.dumps({"id": "abc", "status": "succeeded"}).encode()
    stamp = str(int(time.time()))
    forged = {
        "webhook-id": "msg_forged",
        "webhook-timestamp": stamp,
        "webhook-signature": webhooks.signature("", "msg_forged", stamp, body),
    }
    answer = client.post(f"{API}/webhooks/replicate", content=body, headers=forged)
    assert answer.status_code == 503


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_api(
    ctx: Context, replicate: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, httpx.Client]]:
    """The API on a loopback port Replicate (the fake) can call, with a public URL, a webhook secret and a
    bearer token set; yields its URL and a client that sends the token."""
    import uvicorn

    from services.api.main import create_app

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LORAFORGE_PUBLIC_URL", url)
    monkeypatch.setenv("LORAFORGE_REPLICATE_WEBHOOK_SECRET", replicate.webhook_secret)
    monkeypatch.setenv("LORAFORGE_API_TOKEN", "api-bearer")
    get_settings.cache_clear()
    port = int(url.rsplit(":", 1)[1])
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer api-bearer"}, timeout=30) as http:
        yield url, http
    server.should_exit = True
    thread.join(timeout=30)


def test_signed_webhooks_update_known_trainings_only(
    ctx: Context, replicate: FakeReplicate, live_api: tuple[str, httpx.Client]
) -> None:
    url, http = live_api
    api = Recorder(http)
    dataset_id = seed(ctx)
    replicate.advance_on_get = False  # only webhooks move the row in this test
    result = start(api, dataset_id)
    remote_id = result["remote_id"]
    assert replicate.webhooks[remote_id] == f"{url}/api/v1/webhooks/replicate"
    assert replicate.trainings[remote_id]["webhook_events_filter"] == ["start", "output", "logs", "completed"]

    replicate.advance(remote_id)
    delivered = replicate.send_webhook(remote_id)  # no bearer token: the signature is what counts
    assert delivered.status_code == 200, delivered.text
    assert delivered.json() == {"training_id": result["training_id"], "status": "PROCESSING"}
    training = api.get(f"{API}/trainings/{result['training_id']}").json()
    assert training["status"] == "PROCESSING" and "100/1000" in training["logs_tail"]

    replicate.advance(remote_id)
    for refused in (
        replicate.send_webhook(remote_id, signed=False),
        replicate.send_webhook(remote_id, secret="whsec_" + "A" * 32),
        replicate.send_webhook(remote_id, timestamp=int(time.time()) - 600),
    ):
        assert refused.status_code == 401, refused.text
    assert "200/1000" not in api.get(f"{API}/trainings/{result['training_id']}").json()["logs_tail"]

    stranger = json.dumps({**replicate.public(replicate.trainings[remote_id]), "id": "notours"}).encode()
    unknown = httpx.post(
        f"{url}{API}/webhooks/replicate", content=stranger, headers=replicate.signed_headers(stranger)
    )
    assert unknown.status_code == 404
    assert len(api.get(f"{API}/datasets/{dataset_id}/trainings").json()["data"]) == 1  # no row was created

    replicate.finish(remote_id, "succeeded")
    assert replicate.send_webhook(remote_id).json()["status"] == "SUCCEEDED"
    for _ in range(100):  # the weights are copied after the answer
        training = api.get(f"{API}/trainings/{result['training_id']}").json()
        if training["weights_key"]:
            break
        time.sleep(0.1)
    assert api.get(f"{API}/trainings/{result['training_id']}/weights").content == WEIGHTS
    assert replicate.weights_requests == [None]

    failing = start(api, dataset_id, destination="me/second")
    replicate.finish(failing["remote_id"], "failed")
    assert replicate.send_webhook(failing["remote_id"]).json()["status"] == "FAILED"
    kept = api.get(f"{API}/trainings/{failing['training_id']}").json()
    assert kept["error"] == FAILURE and "Traceback" in kept["logs_tail"]
    assert replicate.token not in "".join(api.bodies)
