"""Replicate through its official client: the calls a training makes, and Replicate's errors translated.

The client reads `REPLICATE_API_TOKEN` and `REPLICATE_BASE_URL` from the environment itself, so the token
never passes through LoRA Forge's settings, task parameters, catalog rows or messages.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import replicate
from replicate.exceptions import ReplicateError

from loraforge.errors import ConfigError, Conflict, Forbidden, InvalidInput, LoraForgeError, NotFound
from loraforge.training.schema import InputSchema

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "REPLICATE_API_TOKEN"
NOT_RETRIED_BY_CLIENT = frozenset({"POST", "PATCH"})
"""Methods the client's own RetryTransport never retries, even after a 429."""
WEBHOOK_EVENTS = ["start", "output", "logs", "completed"]


class ProviderUnavailable(LoraForgeError):
    """Replicate could not be reached, or kept answering 429 or 5xx: the same call may work later."""


class RetryAfterTransport(httpx.BaseTransport):
    """Sends a POST refused with 429 again once its Retry-After has passed (capped, a bounded number of
    times). The replicate client retries GET, PUT and DELETE itself but never a POST, and its errors do
    not carry the header. A 429 means the request was refused before it did anything, so it is safe to
    repeat; request bodies are bytes or seekable files (httpx rewinds them), so they are sent whole again."""

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        *,
        attempts: int = 5,
        max_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.attempts, self.max_wait_s, self.sleep = attempts, max_wait_s, sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self.attempts + 1):
            response = self.inner.handle_request(request)
            if (
                response.status_code != 429
                or request.method not in NOT_RETRIED_BY_CLIENT
                or attempt == self.attempts
            ):
                return response
            wait = retry_after_s(response.headers.get("Retry-After"), cap_s=self.max_wait_s)
            response.read()
            response.close()
            log.info("Replicate throttled %s %s; retrying in %.1f s", request.method, request.url.path, wait)
            self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns")

    def close(self) -> None:
        self.inner.close()


def retry_after_s(header: str | None, *, cap_s: float, default_s: float = 1.0) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), within [0, cap_s]."""
    value = (header or "").strip()
    wait = default_s
    if value.replace(".", "", 1).isdigit():
        wait = float(value)
    elif value:
        try:
            moment = email.utils.parsedate_to_datetime(value)
            wait = (moment - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            wait = default_s
    return max(0.0, min(wait, cap_s))


def replicate_client(*, timeout_s: float = 60.0) -> replicate.Client:
    """The official client on our retrying transport; ConfigError when no token is set."""
    if not os.environ.get(TOKEN_VARIABLE):
        raise ConfigError(f"{TOKEN_VARIABLE} is not set: create a token at https://replicate.com/account")
    # No api_token argument: the client reads the variable itself, so the token stays out of our objects.
    return replicate.Client(
        timeout=httpx.Timeout(timeout_s, connect=10.0), transport=RetryAfterTransport(httpx.HTTPTransport())
    )


def translate(exc: ReplicateError, action: str) -> LoraForgeError:
    """A Replicate problem (RFC 7807) as the LoRA Forge error of the same meaning."""
    reason = "; ".join(part for part in (exc.title, exc.detail) if part) or f"HTTP {exc.status}"
    message = f"{action}: Replicate answered {exc.status}: {reason}"
    status = exc.status or 0
    if status == 401:
        return ConfigError(f"{message} (check {TOKEN_VARIABLE})")
    if status == 403:
        return Forbidden(message)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status in (400, 413, 422):
        return InvalidInput(message)
    return ProviderUnavailable(message)


def unreachable(action: str, exc: httpx.HTTPError) -> ProviderUnavailable:
    return ProviderUnavailable(f"{action}: Replicate could not be reached ({exc.__class__.__name__})")


@contextmanager
def replicate_errors(action: str) -> Iterator[None]:
    """Translate what the client raises; `action` says what was being done ("uploading the dataset")."""
    try:
        yield
    except ReplicateError as exc:
        raise translate(exc, action) from None
    except httpx.HTTPError as exc:
        raise unreachable(action, exc) from None


@dataclass(frozen=True)
class TrainerVersion:
    """A trainer's version: what a training is created from, and the inputs it takes."""

    model: str
    version: str
    inputs: InputSchema

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


def read_trainer(client: replicate.Client, model: str, version: str | None = None) -> TrainerVersion:
    """The named version of a trainer, else its latest; NotFound when the trainer does not exist."""
    with replicate_errors(f"reading the trainer {model}"):
        found = client.models.get(model)
        chosen = found.versions.get(version) if version else found.latest_version
    if chosen is None:
        raise InvalidInput(f"the trainer {model} has no version to train with")
    return TrainerVersion(model, chosen.id, InputSchema.from_openapi(chosen.openapi_schema, model))


def upload_zip(client: replicate.Client, stream: BinaryIO, filename: str) -> str:
    """Upload a dataset zip (Replicate's files API); returns the URL a training input takes."""
    with replicate_errors("uploading the dataset to Replicate"):
        uploaded = client.files.create(stream, filename=filename, content_type="application/zip")
    return str(uploaded.urls["get"])


def ensure_model(client: replicate.Client, destination: str) -> bool:
    """Create the destination model, private, when it does not exist; True when this call created it."""
    owner, name = destination.split("/", 1)
    action = f"creating the destination model {destination}"
    try:
        client.models.get(destination)
        return False
    except ReplicateError as exc:
        if exc.status != 404:
            raise translate(exc, f"reading the destination model {destination}") from None
    except httpx.HTTPError as exc:
        raise unreachable(action, exc) from None
    try:
        # The model's hardware is only the default for running it; trained versions bring their own.
        client.models.create(owner, name, visibility="private", hardware="cpu")
    except ReplicateError as exc:
        if exc.status == 409:  # created by someone else since we looked: it exists, which is all we need
            return False
        raise translate(exc, action) from None
    except httpx.HTTPError as exc:
        raise unreachable(action, exc) from None
    log.info("created the private model %s on Replicate", destination)
    return True


@dataclass(frozen=True)
class RemoteTraining:
    """What Replicate says of a training (a GET, a create or cancel answer, or a webhook's body)."""

    id: str
    model: str | None
    version: str | None
    status: str
    logs: str | None
    error: str | None
    output_version: str | None
    """The trained version, `owner/name:version`."""
    weights_url: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoteTraining:
        if not isinstance(data.get("id"), str) or not isinstance(data.get("status"), str):
            raise InvalidInput("not a Replicate training: it has no id or status")
        version = data.get("version")
        if isinstance(version, Mapping):  # some answers embed the version object
            version = version.get("id")
        output = data.get("output")
        output_version = weights = None
        if isinstance(output, Mapping):
            output_version = output.get("version") if isinstance(output.get("version"), str) else None
            weights = output.get("weights") if isinstance(output.get("weights"), str) else None
        error = data.get("error")
        return cls(
            id=data["id"],
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            version=version if isinstance(version, str) else None,
            status=data["status"],
            logs=data.get("logs") if isinstance(data.get("logs"), str) else None,
            error=None if error is None else str(error),
            output_version=output_version,
            weights_url=weights,
        )

    @property
    def trainer_version(self) -> str | None:
        """The trainer version that ran, `owner/name:version`, as Replicate reports it."""
        if self.model and self.version:
            return f"{self.model}:{self.version}"
        return self.version


def _remote(training: Any) -> RemoteTraining:
    return RemoteTraining.from_json(training.dict())


def create_training(
    client: replicate.Client,
    trainer: TrainerVersion,
    inputs: dict[str, Any],
    destination: str,
    webhook_url: str | None = None,
) -> RemoteTraining:
    webhook: dict[str, Any] = {}
    if webhook_url:
        webhook = {"webhook": webhook_url, "webhook_events_filter": WEBHOOK_EVENTS}
    with replicate_errors(f"starting the training on {trainer.model}"):
        created = client.trainings.create(
            model=trainer.model, version=trainer.version, input=inputs, destination=destination, **webhook
        )
    return _remote(created)


def get_training(client: replicate.Client, remote_id: str) -> RemoteTraining:
    with replicate_errors(f"reading the training {remote_id}"):
        return _remote(client.trainings.get(remote_id))


def cancel_training(client: replicate.Client, remote_id: str) -> RemoteTraining:
    with replicate_errors(f"cancelling the training {remote_id}"):
        return _remote(client.trainings.cancel(remote_id))


def download_weights(url: str, target: Path, *, timeout_s: float) -> int:
    """Fetch trained weights into a local file; returns their size.

    The URL is one Replicate handed out for this training's output, fetched with a plain client: the
    delivery host needs no token, so ours is not sent to it.
    """
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as response:
            if response.is_error:
                raise ProviderUnavailable(f"downloading the weights: HTTP {response.status_code} from {url}")
            size = 0
            with target.open("wb") as out:
                for chunk in response.iter_bytes(1024 * 1024):
                    out.write(chunk)
                    size += len(chunk)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"downloading the weights from {url}: {exc.__class__.__name__}") from None
    return size
