"""An ASGI middleware that checks a request before FastAPI reads its body.

FastAPI parses a request's body (spooling uploads to disk) before it runs the route's dependencies, so
the bearer-token dependency alone let an anonymous client write a 600 MB upload to temp disk before its
401. This guard runs first:

- the bearer token is checked from the headers, before one byte of the body is read;
- a body larger than its cap is refused with 413 as soon as the cap is passed (declared or streamed):
  `LORAFORGE_MAX_JSON_BYTES` for JSON and other bodies, `LORAFORGE_MAX_REQUEST_BYTES` for a multipart
  upload, and `LORAFORGE_MAX_FILE_BYTES` for each file in it (found with an incremental multipart
  parser that runs beside the real one);
- a JSON body nested deeper than MAX_JSON_DEPTH is refused with 422 before anything parses it.

The route dependencies still check the token: the guard is defence in depth, not the only door.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraforge import users
from loraforge.config import Settings, get_settings
from loraforge.stages.context import open_context

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 32
BODILESS = ("GET", "HEAD", "OPTIONS", "DELETE")
"""Methods without a body to spool: their token is checked by the route dependency alone (one lookup)."""
OPEN_PATHS = ("/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/webhooks/")
"""Reachable without the bearer token (webhooks carry their own signature)."""


class _Refused(StarletteHTTPException):
    """An HTTPException, so that FastAPI passes it through its body parsing (which turns any other error
    into a 400) to the app's error handler."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers or {})
        self.status, self.code, self.message = status, code, message


class RequestGuard:
    def __init__(self, app: ASGIApp, settings_provider: Callable[[], Settings] = get_settings) -> None:
        self.app = app
        self.settings_provider = settings_provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings_provider()
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        try:
            if scope["method"] not in BODILESS:
                await self._check_token(scope["path"], headers, settings)
            receive = await self._capped(scope, headers, receive, settings)
        except _Refused as refused:
            await _send_error(send, refused)
            return
        sent_start = False

        async def tracking_send(message: Message) -> None:
            nonlocal sent_start
            if message["type"] == "http.response.start":
                sent_start = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _Refused as refused:
            # Raised from inside `receive` while the app read the body: the response has not begun.
            if sent_start:
                raise
            await _send_error(send, refused)

    @staticmethod
    async def _check_token(path: str, headers: dict[str, str], settings: Settings) -> None:
        """The same rule as `deps.current_principal`, before the body: the admin token, a user's token,
        or nothing at all when no admin token is configured (then a given token must still be valid)."""
        if path.startswith(OPEN_PATHS) or path == "/api/v1/docs/oauth2-redirect":
            return
        expected = settings.api_token
        scheme, _, given = headers.get("authorization", "").partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        if not given and not expected:
            return
        if given and expected and secrets.compare_digest(given.encode(), expected.encode()):
            return
        if given and await anyio.to_thread.run_sync(_is_user_token, settings, given):
            return
        raise _Refused(401, "unauthorized", "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    async def _capped(
        self, scope: Scope, headers: dict[str, str], receive: Receive, settings: Settings
    ) -> Receive:
        content_type, params = parse_options_header(headers.get("content-type", ""))
        multipart = content_type == b"multipart/form-data"
        cap = settings.max_request_bytes if multipart else settings.max_json_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _Refused(413, "request_entity_too_large", f"request body over {cap} bytes")
        if content_type == b"application/json" and scope["method"] in ("POST", "PUT", "PATCH"):
            return await _checked_json(receive, cap)
        parts = _PartSizes(params.get(b"boundary", b""), settings.max_file_bytes) if multipart else None
        total = 0

        async def counting_receive() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > cap:
                    raise _Refused(413, "request_entity_too_large", f"request body over {cap} bytes")
                if parts is not None:
                    parts.feed(chunk)
            return message

        return counting_receive


def _is_user_token(settings: Settings, token: str) -> bool:
    if not token.startswith(users.TOKEN_PREFIX):
        return False
    with open_context(settings).catalog.session() as session:
        return users.user_for_token(session, token) is not None


async def _checked_json(receive: Receive, cap: int) -> Receive:
    """Read the whole (small) JSON body, check its size and depth, then replay it to the app."""
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "bad_request", "client disconnected")
        body += message.get("body", b"")
        if len(body) > cap:
            raise _Refused(413, "request_entity_too_large", f"request body over {cap} bytes")
        more = message.get("more_body", False)
    if json_depth(bytes(body)) > MAX_JSON_DEPTH:
        raise _Refused(422, "invalid_input", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    return replay


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects, scanning bytes (strings skipped), without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class _PartSizes:
    """Follows a multipart body chunk by chunk and refuses a part (a file) once it passes the cap."""

    def __init__(self, boundary: bytes, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self.parser = MultipartParser(
            boundary,
            callbacks={"on_part_begin": self._begin, "on_part_data": self._data},  # type: ignore[arg-type]
        )

    def _begin(self) -> None:
        self.size = 0

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.size > self.cap:
            raise _Refused(413, "request_entity_too_large", f"a file is over {self.cap} bytes")

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except _Refused:
            raise
        except Exception:  # noqa: BLE001 - a malformed body is the real parser's to report (400/422)
            self.parser = _NullParser()  # type: ignore[assignment]


class _NullParser:
    def write(self, _chunk: bytes) -> int:
        return 0


async def _send_error(send: Send, refused: _Refused) -> None:
    body = json.dumps({"error": {"code": refused.code, "message": refused.message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(key.lower().encode(), value.encode()) for key, value in (refused.headers or {}).items()]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
