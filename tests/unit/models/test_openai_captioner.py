"""The OpenAI-compatible captioner against a real local HTTP server speaking the chat-completions API."""

from __future__ import annotations

import pickle

import pytest
from PIL import Image

from loraforge.errors import ModelError
from loraforge.models.captioners import build_captioner, caption_images
from loraforge.models.captioners.openai_api import EndpointUnreachable
from tests.support.fake_openai import FakeOpenAI, closed_port, running_fake_openai


def pictures(*widths: int) -> list[Image.Image]:
    return [Image.new("RGB", (width, 20), (width % 255, 90, 160)) for width in widths]


def captioner(base_url: str, **options: object):  # noqa: ANN201 - the registry returns the protocol
    options.setdefault("backoff_s", 0.0)
    return build_captioner("openai", model="fake-vision", base_url=base_url, **options)


def test_captions_come_back_in_order_with_prompt_model_and_key() -> None:
    with running_fake_openai(FakeOpenAI(api_key="sk-test")) as fake:
        openai = captioner(fake.base_url, api_key="sk-test", prompt="Describe it.", concurrency=3)
        texts = openai.caption_batch(pictures(11, 22, 33, 44))
    assert texts == [f"a test picture {w} by 20" for w in (11, 22, 33, 44)]
    assert len(fake.requests) == 4
    assert {r.model for r in fake.requests} == {"fake-vision"}
    assert {r.prompt for r in fake.requests} == {"Describe it."}
    assert {r.authorization for r in fake.requests} == {"Bearer sk-test"}


def test_large_pictures_are_shrunk_before_upload() -> None:
    with running_fake_openai() as fake:
        captioner(fake.base_url, max_side=64).caption_batch([Image.new("RGB", (640, 320))])
    assert fake.requests[0].image_size == (64, 32)


def test_one_rejected_image_fails_alone() -> None:
    with running_fake_openai(FakeOpenAI(reject=lambda image: image.width == 22)) as fake:
        openai = captioner(fake.base_url)
        outcomes = caption_images(openai, pictures(11, 22, 33))
        with pytest.raises(ModelError, match="HTTP 400"):
            openai.caption_batch(pictures(22))
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].text == "a test picture 11 by 20"
    assert "HTTP 400" in (outcomes[1].error or "") and "invalid image" in (outcomes[1].error or "")


def test_server_errors_are_retried() -> None:
    with running_fake_openai(FakeOpenAI(statuses=[500, 503])) as fake:
        texts = captioner(fake.base_url, retries=2).caption_batch(pictures(11))
    assert texts == ["a test picture 11 by 20"]
    assert len(fake.requests) == 3


def test_server_error_after_retries_is_a_model_error() -> None:
    with running_fake_openai(FakeOpenAI(statuses=[500, 500])) as fake:
        outcomes = caption_images(captioner(fake.base_url, retries=1), pictures(11))
    assert outcomes[0].error is not None and "HTTP 500" in outcomes[0].error


def test_wrong_api_key_is_not_retried() -> None:
    with running_fake_openai(FakeOpenAI(api_key="right")) as fake:
        outcomes = caption_images(captioner(fake.base_url, api_key="wrong", retries=3), pictures(11))
    assert "HTTP 401" in (outcomes[0].error or "")
    assert fake.requests == []


def test_unexpected_body_is_a_clear_error() -> None:
    with running_fake_openai(FakeOpenAI(raw_body='{"nothing": true}')) as fake:
        outcomes = caption_images(captioner(fake.base_url), pictures(11))
    assert "unexpected body" in (outcomes[0].error or "")


def test_unreachable_endpoint_gives_one_clear_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    openai = captioner(url, retries=0)
    with pytest.raises(EndpointUnreachable, match="cannot reach the captioning endpoint") as raised:
        caption_images(openai, pictures(11, 22))
    assert url in str(raised.value)
    assert isinstance(raised.value, ModelError)


def test_captioner_pickles_before_and_after_load() -> None:
    with running_fake_openai() as fake:
        openai = captioner(fake.base_url)
        openai.load()
        clone = pickle.loads(pickle.dumps(openai))
        assert clone.caption_batch(pictures(5)) == ["a test picture 5 by 20"]
