"""`loraforge train`, `loraforge trainings` and `loraforge run --train` as a user runs them, against a fake
Replicate server on loopback (the `replicate` client reaches it through REPLICATE_BASE_URL)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.stages.context import open_context
from tests.api.factories import make_caption, make_dataset, make_image, make_workspace
from tests.conftest import run_cli
from tests.support.fake_replicate import TRAINER, WEIGHTS, FakeReplicate, running_fake_replicate
from tests.support.images import real_photo_paths


@pytest.fixture
def replicate() -> Iterator[FakeReplicate]:
    with running_fake_replicate() as fake:
        yield fake


@pytest.fixture
def env(stack_env: dict[str, str], replicate: FakeReplicate) -> dict[str, str]:
    """The stack's variables plus the replicate client's own two."""
    return {**stack_env, "REPLICATE_API_TOKEN": replicate.token, "REPLICATE_BASE_URL": replicate.base_url}


def seed_alice() -> str:
    ctx = open_context()
    ctx.catalog.ensure_schema()
    with ctx.catalog.session() as session:
        dataset = make_dataset(session, make_workspace(session, "default"), "alice", trigger_word="ohwx")
        for seed in range(3):
            make_caption(session, make_image(session, ctx.store, dataset, seed=seed), f"ohwx woman {seed}")
        return dataset.id


def cli_json(*args: str, env: dict[str, str]) -> object:
    result = run_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_train_waits_until_the_weights_are_stored(env: dict[str, str], replicate: FakeReplicate) -> None:
    dataset_id = seed_alice()
    args = ["train", "--dataset", "alice", "--destination", "me/alice-lora", "--steps", "500"]
    result = run_cli(*args, "--input", "optimizer=prodigy", "--wait", "--poll-interval", "0.2", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stdout.lower() and "me/alice-lora:" in result.stdout
    assert "processing" in result.stderr and "pushing version" in result.stderr  # progress while waiting
    assert replicate.token not in result.stdout + result.stderr

    (listed,) = cli_json("trainings", "list", "--dataset", "alice", env=env)  # type: ignore[misc]
    assert listed["status"] == "SUCCEEDED" and listed["trainer_version"].startswith(f"{TRAINER}:")
    assert listed["params"]["steps"] == 500 and listed["params"]["optimizer"] == "prodigy"
    assert listed["params"]["trigger_word"] == "ohwx"
    assert listed["weights_key"] == f"trainings/{dataset_id}/{listed['id']}/trained_model.tar"
    assert open_context().store.get(listed["weights_key"]) == WEIGHTS
    shown = cli_json("trainings", "show", listed["id"][:8], env=env)
    assert shown == listed
    logs = run_cli("trainings", "logs", listed["remote_id"], env=env)  # Replicate's id works too
    assert logs.returncode == 0 and "pushing version" in logs.stdout
    runs = cli_json("tasks", "list", "--dataset", "alice", env=env)
    assert [(r["kind"], r["status"]) for r in runs] == [("export", "COMPLETED"), ("train", "COMPLETED")]  # type: ignore[index]
    for output in (json.dumps(listed), logs.stdout):
        assert replicate.token not in output


def test_train_refuses_a_second_training_bad_inputs_and_no_token(
    env: dict[str, str], replicate: FakeReplicate
) -> None:
    seed_alice()
    replicate.advance_on_get = False  # trainings stay "starting" until the test moves them
    started = cli_json("train", "--dataset", "alice", "--destination", "me/alice-lora", env=env)
    assert started["status"] == "STARTING"  # type: ignore[index]

    again = run_cli("train", "--dataset", "alice", "--destination", "me/alice-lora", env=env)
    assert again.returncode == 1 and "already starting" in again.stderr
    bad = run_cli("train", "--dataset", "alice", "--destination", "me/other", "--input", "steps=2", env=env)
    assert bad.returncode == 1 and "steps: must be at least 3" in bad.stderr
    unknown = run_cli("train", "-d", "alice", "--destination", "me/other", "--input", "rank=4", env=env)
    assert (
        unknown.returncode == 1 and "unknown input rank" in unknown.stderr and "lora_rank" in unknown.stderr
    )
    no_token = {key: value for key, value in env.items() if key != "REPLICATE_API_TOKEN"}
    refused = run_cli("train", "--dataset", "alice", "--destination", "me/other", env=no_token)
    assert refused.returncode == 1 and "REPLICATE_API_TOKEN is not set" in refused.stderr
    runs = cli_json("tasks", "list", "--dataset", "alice", env=env)
    assert [r["kind"] for r in runs] == ["export", "train"]  # type: ignore[index] # refusals record no run
    assert len(replicate.trainings) == 1 and len(replicate.files) == 1

    training_id = started["training_id"]  # type: ignore[index]
    replicate.advance(started["remote_id"])  # type: ignore[index]
    cancelled = cli_json("trainings", "cancel", training_id, env=env)
    assert cancelled["status"] == "CANCELED" and "100/1000" in cancelled["logs_tail"]  # type: ignore[index]
    twice = run_cli("trainings", "cancel", training_id, env=env)
    assert twice.returncode == 1 and "already finished" in twice.stderr
    assert replicate.trainings[started["remote_id"]]["status"] == "canceled"  # type: ignore[index]


def test_run_builds_the_dataset_then_starts_the_training(
    tmp_path: Path, env: dict[str, str], replicate: FakeReplicate
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "coffee", "rocket"):
        shutil.copy(real_photo_paths()[name], photos / real_photo_paths()[name].name)
    args = [
        "run",
        str(photos),
        "--dataset",
        "bob",
        "--trigger",
        "ohwx",
        "--target",
        "flux",
        "--max-upscale",
        "4",
    ]
    bad = run_cli(*args, "--train", "not a model", env=env)
    assert bad.returncode == 1 and "--train" in bad.stderr  # refused before the build
    result = run_cli(
        *args, "--captioner", "template", "--train", "me/bob-lora", "--json", env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["exported"] == 3
    training = summary["training"]
    assert training["status"] == "STARTING" and training["destination"] == "me/bob-lora"
    sent = replicate.trainings[training["remote_id"]]["input"]
    assert sent["trigger_word"] == "ohwx"
    names = replicate.uploaded_zip(sent["input_images"]).namelist()
    assert len([n for n in names if n.endswith(".txt")]) == 3
