"""Captions from any OpenAI-compatible chat-completions endpoint that accepts image_url data URIs."""

from __future__ import annotations

import base64
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from loraforge.errors import ModelError
from loraforge.models.captioners.base import CaptionOutcome, register_captioner

if TYPE_CHECKING:
    import httpx
    from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_PROMPT = (
    "Write one caption for this image as training data for an image generator: describe the subject, "
    "clothing, pose, expression, setting, lighting and photographic style in plain words. "
    "Do not start with 'The image shows' and do not mention that it is an image."
)
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class EndpointUnreachable(ModelError):
    """The captioning endpoint cannot be reached at all; every image of the batch would fail the same way."""


@register_captioner("openai")
class OpenAICaptioner:
    """One chat-completions request per image, several in flight, retried on rate limits and server errors."""

    name = "openai"

    def __init__(
        self,
        *,
        model: str | None = None,
        prompt: str | None = None,
        device: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 1.0,
        max_tokens: int = 300,
        max_side: int = 1024,
        concurrency: int = 4,
    ) -> None:
        self.model_ref = model or DEFAULT_MODEL
        self.prompt = prompt or DEFAULT_PROMPT
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.max_side = max_side
        self.concurrency = max(1, concurrency)
        self._client: httpx.Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def load(self) -> None:
        """Open the HTTP client and check that the endpoint answers at all (any HTTP status will do)."""
        if self._client is not None:
            return
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        client = httpx.Client(timeout=self.timeout_s, headers=headers)
        try:
            client.get(f"{self.base_url}/models")
        except httpx.TransportError as exc:
            client.close()
            raise EndpointUnreachable(f"cannot reach the captioning endpoint {self.base_url}: {exc}") from exc
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        texts = []
        for outcome in self.caption_each(images):
            if outcome.error is not None:
                raise ModelError(outcome.error)
            texts.append(outcome.text or "")
        return texts

    def caption_each(self, images: list[Image.Image]) -> list[CaptionOutcome]:
        """One outcome per image; raises EndpointUnreachable when the endpoint cannot be reached."""
        if not images:
            return []
        self.load()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(images))) as pool:
            return list(pool.map(self._caption_one, images))

    def _caption_one(self, image: Image.Image) -> CaptionOutcome:
        try:
            return CaptionOutcome(text=self._request(image_data_uri(image, max_side=self.max_side)))
        except EndpointUnreachable:
            raise
        except ModelError as exc:
            return CaptionOutcome(error=" ".join(str(exc).split()))

    def _request(self, data_uri: str) -> str:
        import httpx

        assert self._client is not None
        payload = {
            "model": self.model_ref,
            "max_tokens": self.max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.prompt},
                        {"type": "image_url", "image_url": {"url": data_uri}},
                    ],
                }
            ],
        }
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.retries + 1):
            last_try = attempt == self.retries
            try:
                response = self._client.post(url, json=payload)
            except httpx.ConnectError as exc:
                if last_try:
                    message = f"cannot reach the captioning endpoint {self.base_url}: {exc}"
                    raise EndpointUnreachable(message) from exc
            except httpx.TransportError as exc:
                if last_try:
                    raise ModelError(f"captioning request to {self.base_url} failed: {exc!r}") from exc
            else:
                if response.status_code < 400:
                    return _caption_from(response)
                if last_try or response.status_code not in _RETRYABLE_STATUS:
                    body = " ".join(response.text.split())[:200]
                    raise ModelError(f"captioning endpoint answered HTTP {response.status_code}: {body}")
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _caption_from(response: httpx.Response) -> str:
    try:
        message = response.json()["choices"][0]["message"]
        content = message["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"captioning endpoint returned an unexpected body: {response.text[:200]!r}") from exc
    if isinstance(content, list):  # some servers answer with content parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    text = " ".join(str(content or "").split())
    if not text:
        raise ModelError("captioning endpoint returned an empty caption")
    return text


def image_data_uri(image: Image.Image, *, max_side: int = 1024, quality: int = 90) -> str:
    """A JPEG data URI of the image, shrunk so its longer side is at most `max_side`."""
    picture = image if image.mode == "RGB" else image.convert("RGB")
    if max(picture.size) > max_side:
        picture = picture.copy()
        picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
