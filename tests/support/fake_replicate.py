"""A real HTTP server on 127.0.0.1 that speaks Replicate's API for the training tests.

It answers the official `replicate` client (pointed at it with REPLICATE_BASE_URL) with Replicate's JSON
shapes and quirks: 201 on create, 409 when a model exists, 404 problem+json for a missing model or
destination, 429 with Retry-After when told to throttle, `output.version` as `owner/name:id`, and trainings
that go `starting` -> `processing` -> `succeeded` | `failed` | `canceled`, one step per poll. Trained
weights are served from a public path (no token, like replicate.delivery), and webhooks are delivered
signed the Standard Webhooks way, as Replicate signs them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import httpx

TRAINER = "ostris/flux-dev-lora-trainer"
TRAINER_VERSION = "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497"
OLD_TRAINER_VERSION = "b1f5c3e0d2a4f6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"
WEIGHTS = b"safetensors-in-a-tar:" + bytes(range(256)) * 64
"""The bytes every succeeded training's weights URL serves."""
FAILURE = "CUDA out of memory. Tried to allocate 2.00 GiB"


def trainer_schema(*, extra_input: str | None = None) -> dict[str, Any]:
    """The OpenAPI schema of the trainer's version, as Cog writes it (flux-dev-lora-trainer's inputs)."""
    properties: dict[str, Any] = {
        "input_images": {
            "type": "string",
            "title": "Input Images",
            "format": "uri",
            "x-order": 0,
            "description": "A zip file containing the images that will be used for training.",
        },
        "trigger_word": {"type": "string", "title": "Trigger Word", "default": "TOK", "x-order": 1},
        "autocaption": {"type": "boolean", "title": "Autocaption", "default": True, "x-order": 2},
        "steps": {"type": "integer", "title": "Steps", "default": 1000, "minimum": 3, "maximum": 6000},
        "lora_rank": {"type": "integer", "title": "Lora Rank", "default": 16, "minimum": 1, "maximum": 128},
        "optimizer": {
            "allOf": [{"$ref": "#/components/schemas/optimizer"}],
            "default": "adamw8bit",
            "x-order": 5,
        },
        "batch_size": {"allOf": [{"$ref": "#/components/schemas/batch_size"}], "default": 1, "x-order": 6},
        "resolution": {"type": "string", "title": "Resolution", "default": "512,768,1024"},
        "learning_rate": {"type": "number", "title": "Learning Rate", "default": 0.0004},
        "caption_dropout_rate": {"type": "number", "default": 0.05, "minimum": 0, "maximum": 1},
        "cache_latents_to_disk": {"type": "boolean", "default": False},
        "hf_repo_id": {"type": "string", "title": "Hf Repo Id"},
        "hf_token": {"type": "string", "title": "Hf Token", "format": "password", "x-cog-secret": True},
    }
    if extra_input:
        properties[extra_input] = {"type": "string"}
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "TrainingInput": {
                    "type": "object",
                    "title": "TrainingInput",
                    "required": ["input_images"],
                    "properties": properties,
                },
                "TrainingOutput": {
                    "type": "object",
                    "title": "TrainingOutput",
                    "required": ["version"],
                    "properties": {
                        "version": {"type": "string", "title": "Version"},
                        "weights": {"type": "string", "format": "uri", "title": "Weights"},
                    },
                },
                "optimizer": {
                    "enum": ["adamw8bit", "adamw", "prodigy"],
                    "type": "string",
                    "title": "optimizer",
                    "description": "An enumeration.",
                },
                "batch_size": {
                    "enum": [1, 2, 4],
                    "type": "integer",
                    "title": "batch_size",
                    "description": "An enumeration.",
                },
            }
        },
    }


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    # Replicate's ids: 26 lowercase base32 characters.
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")[:26]


@dataclass
class Seen:
    """One request the server answered."""

    method: str
    path: str
    authorization: str | None
    status: int


@dataclass
class Rule:
    """Answer the next `times` requests matching method and path prefix with `status` (and Retry-After)."""

    method: str
    path_prefix: str
    status: int
    times: int = 1
    retry_after: str | None = None


@dataclass
class FakeReplicate:
    """Replicate's state and behaviour knobs. `outcome` is how new trainings end ("succeeded" or
    "failed") after `processing_polls` polls in `processing`; `advance_on_get` moves a training one step
    per GET (off: tests move them with `advance`)."""

    token: str = field(default_factory=lambda: "r8_" + secrets.token_hex(18))
    webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    outcome: str = "succeeded"
    processing_polls: int = 2
    advance_on_get: bool = True
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    trainings: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, str] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    weights_requests: list[str | None] = field(default_factory=list)
    """The Authorization header of each weights download (None: none was sent)."""
    port: int = 0
    _scripts: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.add_model(
            TRAINER, versions=[(OLD_TRAINER_VERSION, trainer_schema()), (TRAINER_VERSION, trainer_schema())]
        )

    # ------------------------------------------------------------------ set-up and inspection

    @property
    def base_url(self) -> str:
        """What REPLICATE_BASE_URL is set to (the client adds /v1/...)."""
        return f"http://127.0.0.1:{self.port}"

    def add_model(
        self, name: str, *, visibility: str = "public", versions: list[tuple[str, dict[str, Any]]] = ()
    ) -> dict[str, Any]:
        owner, model_name = name.split("/")
        model = {
            "url": f"https://replicate.com/{name}",
            "owner": owner,
            "name": model_name,
            "description": None,
            "visibility": visibility,
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": 0,
            "cover_image_url": None,
            "default_example": None,
            "latest_version": None,
            "_versions": {},
        }
        for version_id, schema in versions:
            self._add_version(model, version_id, schema)
        with self._lock:
            self.models[name] = model
        return model

    def set_latest_schema(self, name: str, schema: dict[str, Any]) -> str:
        """Publish a new latest version of a model with this schema; returns its id."""
        version_id = hashlib.sha256(secrets.token_bytes(8)).hexdigest()
        with self._lock:
            self._add_version(self.models[name], version_id, schema)
        return version_id

    def throttle(self, method: str, path_prefix: str, *, times: int = 1, retry_after: str = "1") -> None:
        self.rules.append(Rule(method, path_prefix, 429, times, retry_after))

    def fail(self, method: str, path_prefix: str, *, status: int = 500, times: int = 1) -> None:
        self.rules.append(Rule(method, path_prefix, status, times))

    def requests_to(self, method: str, path_prefix: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]

    def uploaded_zip(self, file_url: str) -> zipfile.ZipFile:
        """The zip uploaded at a files URL (what the training got as input_images)."""
        file_id = urlparse(file_url).path.rstrip("/").rsplit("/", 1)[-1]
        return zipfile.ZipFile(io.BytesIO(self.files[file_id]))

    def advance(self, training_id: str) -> dict[str, Any]:
        """Move a training one step along its script; returns its JSON."""
        with self._lock:
            training = self.trainings[training_id]
            script = self._scripts.get(training_id) or []
            if script:
                self._enter(training, script.pop(0))
            return json.loads(json.dumps(training))

    def finish(self, training_id: str, status: str) -> None:
        """Jump a training straight to a final status."""
        with self._lock:
            self._scripts[training_id] = []
            self._enter(self.trainings[training_id], status)

    def signed_headers(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        """Standard Webhooks headers for a body, signed with the fake's secret (or another)."""
        webhook_id = "msg_" + new_id()
        sent = str(int(time.time()) if timestamp is None else timestamp)
        key = base64.b64decode((secret or self.webhook_secret).removeprefix("whsec_"))
        digest = hmac.new(key, f"{webhook_id}.{sent}.".encode() + body, hashlib.sha256).digest()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": sent,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
            "content-type": "application/json",
        }

    def send_webhook(
        self,
        training_id: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        """POST the training's current JSON to the webhook URL it was created with, as Replicate does."""
        with self._lock:
            url = self.webhooks[training_id]
            body = json.dumps(self.trainings[training_id]).encode()
        headers = (
            self.signed_headers(body, timestamp=timestamp, secret=secret)
            if signed
            else {"content-type": "application/json"}
        )
        return httpx.post(url, content=body, headers=headers, timeout=30)

    # ------------------------------------------------------------------ behaviour

    def _add_version(self, model: dict[str, Any], version_id: str, schema: dict[str, Any]) -> None:
        version = {
            "id": version_id,
            "created_at": now_iso(),
            "cog_version": "0.9.14",
            "openapi_schema": schema,
        }
        model["_versions"][version_id] = version
        model["latest_version"] = version

    def _enter(self, training: dict[str, Any], status: str) -> None:
        if training["status"] in ("succeeded", "failed", "canceled"):
            return
        training["status"] = status
        logs = training["logs"] or ""
        if status == "processing":
            training["started_at"] = training["started_at"] or now_iso()
            step = logs.count("flux_train_replicate:") + 1
            training["logs"] = logs + f"flux_train_replicate:  {step * 100}/1000 [loss: 0.{400 - step}]\n"
        elif status == "succeeded":
            destination = training["_destination"]
            version_id = hashlib.sha256(training["id"].encode()).hexdigest()
            self._add_version(self.models[destination], version_id, {"components": {"schemas": {}}})
            training["output"] = {
                "version": f"{destination}:{version_id}",
                "weights": f"{self.base_url}/delivery/{training['id']}/trained_model.tar",
            }
            training["logs"] = logs + "Saved LoRA weights; pushing version\n"
        elif status == "failed":
            training["error"] = FAILURE
            training["logs"] = (
                logs + "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: " + FAILURE
            )
        elif status == "canceled":
            training["logs"] = logs + "Training canceled by user\n"
        if status in ("succeeded", "failed", "canceled"):
            training["completed_at"] = now_iso()
            training["metrics"] = {"predict_time": 42.0}

    def public(self, training: dict[str, Any]) -> dict[str, Any]:
        # Replicate's training JSON has no destination field: the client derives it from output.version.
        return {key: value for key, value in training.items() if not key.startswith("_")}

    def _create_training(
        self, owner: str, name: str, version_id: str, body: dict[str, Any]
    ) -> tuple[int, Any]:
        model = self.models.get(f"{owner}/{name}")
        if model is None or version_id not in model["_versions"]:
            return 404, problem(404, "Not found", "The requested version does not exist.")
        destination = body.get("destination")
        if not isinstance(destination, str) or destination not in self.models:
            return 404, problem(404, "Not found", "The specified training destination does not exist")
        schema = model["_versions"][version_id]["openapi_schema"]["components"]["schemas"]["TrainingInput"]
        inputs = body.get("input") or {}
        unknown = [key for key in inputs if key not in schema["properties"]]
        missing = [key for key in schema.get("required", []) if key not in inputs]
        if unknown or missing:
            detail = "; ".join(
                [f"- input: Additional property {key} is not allowed" for key in unknown]
                + [f"- input: {key} is required" for key in missing]
            )
            return 422, problem(422, "Input validation failed", detail)
        training_id = new_id()
        training = {
            "id": training_id,
            "model": f"{owner}/{name}",
            "version": version_id,
            "input": inputs,
            "logs": "",
            "output": None,
            "error": None,
            "status": "starting",
            "created_at": now_iso(),
            "started_at": None,
            "completed_at": None,
            "urls": {
                "get": f"{self.base_url}/v1/trainings/{training_id}",
                "cancel": f"{self.base_url}/v1/trainings/{training_id}/cancel",
                "web": f"https://replicate.com/p/{training_id}",
            },
            "_destination": destination,
        }
        self.trainings[training_id] = training
        if body.get("webhook"):
            self.webhooks[training_id] = body["webhook"]
            training["webhook"] = body["webhook"]
            training["webhook_events_filter"] = body.get("webhook_events_filter")
        self._scripts[training_id] = ["processing"] * self.processing_polls + [self.outcome]
        return 201, self.public(training)

    def handle(
        self, method: str, path: str, body: bytes, content_type: str
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON or bytes, extra headers) for one authorised API request."""
        parts = [part for part in path.split("/") if part]
        with self._lock:
            if method == "POST" and parts == ["v1", "files"]:
                return (201, self._store_file(body, content_type), {})
            if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "files"]:
                file_id = parts[2]
                if file_id not in self.files:
                    return 404, problem(404, "Not found", "File not found"), {}
                return 200, self._file_json(file_id, "dataset.zip"), {}
            if method == "POST" and parts == ["v1", "models"]:
                return (*self._create_model(json.loads(body or b"{}")), {})
            if parts[:2] == ["v1", "models"] and len(parts) >= 4:
                name = f"{parts[2]}/{parts[3]}"
                if method == "GET" and len(parts) == 4:
                    model = self.models.get(name)
                    if model is None:
                        return 404, problem(404, "Not found", "Model not found"), {}
                    return 200, {k: v for k, v in model.items() if not k.startswith("_")}, {}
                if method == "GET" and len(parts) == 6 and parts[4] == "versions":
                    model = self.models.get(name)
                    version = (model or {}).get("_versions", {}).get(parts[5])
                    if version is None:
                        return 404, problem(404, "Not found", "Version not found"), {}
                    return 200, version, {}
                if (
                    method == "POST"
                    and len(parts) == 7
                    and parts[4] == "versions"
                    and parts[6] == "trainings"
                ):
                    return (
                        *self._create_training(parts[2], parts[3], parts[5], json.loads(body or b"{}")),
                        {},
                    )
            if parts[:2] == ["v1", "trainings"] and len(parts) >= 3:
                training = self.trainings.get(parts[2])
                if training is None:
                    return 404, problem(404, "Not found", "Training not found"), {}
                if method == "GET" and len(parts) == 3:
                    if self.advance_on_get:
                        self.advance(parts[2])
                    return 200, self.public(training), {}
                if method == "POST" and parts[3:] == ["cancel"]:
                    self._scripts[parts[2]] = []
                    self._enter(training, "canceled")
                    return 200, self.public(training), {}
        return 404, problem(404, "Not found", f"no route for {method} {path}"), {}

    def _create_model(self, body: dict[str, Any]) -> tuple[int, Any]:
        missing = [key for key in ("owner", "name", "visibility", "hardware") if not body.get(key)]
        if missing:
            return 422, problem(422, "Invalid input", f"missing: {', '.join(missing)}")
        name = f"{body['owner']}/{body['name']}"
        if name in self.models:
            return 409, problem(409, "Conflict", "A model with that name and owner already exists.")
        model = self.add_model(name, visibility=body["visibility"])
        model["_hardware"] = body["hardware"]
        return 201, {k: v for k, v in model.items() if not k.startswith("_")}

    def _store_file(self, body: bytes, content_type: str) -> dict[str, Any]:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "content":
                data = part.get_payload(decode=True) or b""
                file_id = new_id()
                self.files[file_id] = data
                return self._file_json(file_id, part.get_filename() or "file", part.get_content_type())
        raise ValueError("no content part in the upload")

    def _file_json(self, file_id: str, name: str, content_type: str = "application/zip") -> dict[str, Any]:
        data = self.files[file_id]
        return {
            "id": file_id,
            "name": name,
            "content_type": content_type,
            "size": len(data),
            "etag": hashlib.md5(data).hexdigest(),  # noqa: S324 - an etag, not security
            "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()},  # noqa: S324
            "metadata": {},
            "created_at": now_iso(),
            "expires_at": None,
            "urls": {"get": f"{self.base_url}/v1/files/{file_id}"},
        }

    def match_rule(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and path.startswith(rule.path_prefix):
                    rule.times -= 1
                    return rule
        return None


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """RFC 7807 body, as Replicate sends its errors (Content-Type application/problem+json)."""
    return {
        "type": f"https://replicate.com/docs/reference/http#{status}",
        "title": title,
        "detail": detail,
        "status": status,
    }


def _handler(fake: FakeReplicate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

        def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            if isinstance(body, bytes):
                data, kind = body, "application/octet-stream"
            else:
                data = json.dumps(body).encode()
                kind = "application/problem+json" if status >= 400 else "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            body = self._body()
            path = urlparse(self.path).path
            authorization = self.headers.get("Authorization")
            status, answer, headers = self._answer(method, path, body, authorization)
            with fake._lock:
                fake.seen.append(Seen(method, path, authorization, status))
            self._reply(status, answer, headers)

        def _answer(
            self, method: str, path: str, body: bytes, authorization: str | None
        ) -> tuple[int, Any, dict[str, str]]:
            if path.startswith("/delivery/"):
                # Output files are public, signed-URL style: no token needed, none should be sent.
                with fake._lock:
                    fake.weights_requests.append(authorization)
                training_id = path.split("/")[2]
                if training_id not in fake.trainings:
                    return 404, problem(404, "Not found", "no such file"), {}
                return 200, WEIGHTS, {}
            if authorization != f"Bearer {fake.token}":
                detail = "You did not pass a valid authentication token"
                return 401, problem(401, "Unauthenticated", detail), {}
            rule = fake.match_rule(method, path)
            if rule is not None:
                headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
                title = "Too Many Requests" if rule.status == 429 else "Internal Server Error"
                detail = "Request was throttled." if rule.status == 429 else "Something went wrong."
                return rule.status, problem(rule.status, title, detail), headers
            return fake.handle(method, path, body, self.headers.get("Content-Type", ""))

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self._serve("POST")

        def do_DELETE(self) -> None:  # noqa: N802 - http.server naming
            self._serve("DELETE")

    return Handler


@contextmanager
def running_fake_replicate(fake: FakeReplicate | None = None) -> Iterator[FakeReplicate]:
    """Serve `fake` on a free loopback port for the duration of the block."""
    fake = fake or FakeReplicate()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-replicate", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
