"""The pieces of a training that need no service: inputs checked against a trainer's schema, the options'
own rules, Replicate's webhook signatures, and the Retry-After wait."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from loraforge.errors import InvalidInput
from loraforge.training.options import TrainOptions, requested_inputs
from loraforge.training.provider import RemoteTraining, retry_after_s
from loraforge.training.schema import InputSchema
from loraforge.training.webhooks import WebhookRefused, signature, verify
from tests.support.fake_replicate import FakeReplicate, trainer_schema

SCHEMA = InputSchema.from_openapi(trainer_schema(), "ostris/flux-dev-lora-trainer")


def test_values_typed_as_text_are_coerced_to_the_schema_types() -> None:
    checked = SCHEMA.check(
        {
            "steps": "1000",
            "learning_rate": "1e-4",
            "autocaption": "false",
            "cache_latents_to_disk": "yes",
            "resolution": 1024,
            "batch_size": 2.0,
            "optimizer": "adamw",
            "input_images": "https://api.replicate.com/v1/files/abc",
        }
    )
    assert checked == {
        "steps": 1000,
        "learning_rate": 0.0001,
        "autocaption": False,
        "cache_latents_to_disk": True,
        "resolution": "1024",
        "batch_size": 2,
        "optimizer": "adamw",
        "input_images": "https://api.replicate.com/v1/files/abc",
    }


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as refused:
        SCHEMA.check(
            {
                "steps": 2.5,
                "lora_rank": 500,
                "autocaption": "maybe",
                "batch_size": 3,
                "caption_dropout_rate": -0.1,
                "input_images": "file:///etc/passwd",
                "rank": 4,
                "seed": 1,
            }
        )
    message = str(refused.value)
    assert message.startswith(
        "ostris/flux-dev-lora-trainer refuses these inputs: unknown inputs rank, seed ("
    )
    assert "takes: autocaption, batch_size, cache_latents_to_disk, caption_dropout_rate," in message
    for problem in (
        "steps: must be a whole number (got 2.5)",
        "lora_rank: must be at most 128 (got 500)",
        "autocaption: must be true or false",
        "batch_size: must be one of 1, 2, 4 (got 3)",  # an integer enum behind allOf/$ref
        "caption_dropout_rate: must be at least 0",
        "input_images: must be an http(s) URL",
    ):
        assert problem in message


def test_required_inputs_may_be_supplied_later_and_secrets_are_refused() -> None:
    with pytest.raises(InvalidInput, match="missing required input input_images"):
        SCHEMA.check({"steps": 100})
    assert SCHEMA.check({"steps": 100}, supplied_later=["input_images"]) == {"steps": 100}
    with pytest.raises(InvalidInput, match="hf_token: a secret input"):
        SCHEMA.check({"hf_token": "hf_abc"}, supplied_later=["input_images"])
    with pytest.raises(InvalidInput, match="not a trainer"):
        InputSchema.from_openapi({"components": {"schemas": {"Input": {}}}}, "someone/predictor")


def test_options_refuse_the_same_input_twice_and_bad_model_names() -> None:
    options = TrainOptions(destination="me/alice-lora", steps=500, inputs={"optimizer": "prodigy"})
    assert requested_inputs(options) == {"steps": 500, "optimizer": "prodigy"}
    with pytest.raises(InvalidInput, match="both as an option and as --input: steps"):
        requested_inputs(TrainOptions(destination="me/x", steps=500, inputs={"steps": 600}))
    with pytest.raises(InvalidInput, match="input_images is the dataset's export"):
        requested_inputs(TrainOptions(destination="me/x", inputs={"input_images": "https://x"}))
    for bad in ("alice-lora", "me/Alice", "me/x/y", "me/x:latest"):
        with pytest.raises(ValidationError):
            TrainOptions(destination=bad)
    pinned = TrainOptions(destination="me/x", trainer="ostris/flux-dev-lora-trainer:" + "ab" * 32)
    assert (pinned.trainer_model, pinned.trainer_version) == ("ostris/flux-dev-lora-trainer", "ab" * 32)


def test_webhook_signatures_follow_standard_webhooks() -> None:
    fake = FakeReplicate()  # its signing code is written apart from ours: both must agree
    body = b'{"id": "abc", "status": "processing"}'
    headers = fake.signed_headers(body)
    verify(fake.webhook_secret, headers, body)
    assert headers["webhook-signature"] == signature(
        fake.webhook_secret, headers["webhook-id"], headers["webhook-timestamp"], body
    )
    rotated = {**headers, "webhook-signature": "v1,b2xkLXNpZ25hdHVyZQ== " + headers["webhook-signature"]}
    verify(fake.webhook_secret, rotated, body)  # any one of the listed signatures may match

    refusals = {
        "does not match": ({**headers}, body + b" "),
        "unsigned": ({k: v for k, v in headers.items() if k != "webhook-signature"}, body),
        "not a number": ({**headers, "webhook-timestamp": "yesterday"}, body),
    }
    for reason, (bad_headers, bad_body) in refusals.items():
        with pytest.raises(WebhookRefused, match=reason):
            verify(fake.webhook_secret, bad_headers, bad_body)
    with pytest.raises(WebhookRefused, match="does not match"):
        verify(FakeReplicate().webhook_secret, headers, body)
    for skew in (-301, 301):
        stale = fake.signed_headers(body, timestamp=int(time.time()) + skew)
        with pytest.raises(WebhookRefused, match="stale"):
            verify(fake.webhook_secret, stale, body)


def test_retry_after_is_read_in_seconds_or_as_a_date_and_capped() -> None:
    assert retry_after_s("3", cap_s=30) == 3.0
    assert retry_after_s("120", cap_s=30) == 30.0
    assert retry_after_s(None, cap_s=30) == 1.0 and retry_after_s("soon", cap_s=30) == 1.0
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3.0 <= retry_after_s(later, cap_s=30) <= 5.0
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
    assert retry_after_s(past, cap_s=30) == 0.0


def test_a_training_is_read_from_replicate_json_whatever_its_output() -> None:
    remote = RemoteTraining.from_json(
        {
            "id": "t1",
            "model": "ostris/flux-dev-lora-trainer",
            "version": {"id": "v1"},
            "status": "succeeded",
            "logs": "done",
            "error": None,
            "output": {"version": "me/x:v2", "weights": "https://replicate.delivery/x/trained_model.tar"},
        }
    )
    assert remote.trainer_version == "ostris/flux-dev-lora-trainer:v1" and remote.output_version == "me/x:v2"
    assert remote.weights_url == "https://replicate.delivery/x/trained_model.tar"
    bare = RemoteTraining.from_json({"id": "t2", "status": "starting", "output": "not a dict"})
    assert (bare.output_version, bare.weights_url, bare.trainer_version) == (None, None, None)
    with pytest.raises(InvalidInput, match="not a Replicate training"):
        RemoteTraining.from_json({"status": "starting"})
