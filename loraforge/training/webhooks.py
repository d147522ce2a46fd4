"""Replicate's webhooks, which follow Standard Webhooks: who may call, and where Replicate is told to.

A call carries `webhook-id`, `webhook-timestamp` and `webhook-signature` headers. The signature is
HMAC-SHA256 of `<id>.<timestamp>.<raw body>` under the secret (base64 after its `whsec_` prefix), sent as
`v1,<base64>`; several may be listed, separated by spaces, while a secret is being rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from loraforge.config import Settings
from loraforge.errors import ConfigError, LoraForgeError

WEBHOOK_PATH = "/api/v1/webhooks/replicate"
TOLERANCE_S = 300
"""A call signed longer ago (or further ahead) than this is refused: a replayed call is stale."""


class WebhookRefused(LoraForgeError):
    """A webhook call that is not signed with our secret, or signed too long ago."""


def webhook_url(settings: Settings) -> str | None:
    """Where Replicate should report a training, when the API has a public address."""
    return f"{settings.public_url}{WEBHOOK_PATH}" if settings.public_url else None


def signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The `v1,<base64>` signature of one call."""
    digest = hmac.new(_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> None:
    """Return when the call is signed with `secret` and recent; WebhookRefused saying why otherwise."""
    lowered = {key.lower(): value for key, value in headers.items()}
    webhook_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (webhook_id and timestamp and signatures):
        raise WebhookRefused(
            "unsigned call: webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookRefused("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        raise WebhookRefused(f"stale webhook call: signed {int(current - sent)} s ago")
    expected = signature(secret, webhook_id, timestamp, body).encode()
    for given in signatures.split():
        if hmac.compare_digest(given.encode(), expected):
            return
    raise WebhookRefused("webhook signature does not match")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("LORAFORGE_REPLICATE_WEBHOOK_SECRET is not whsec_<base64>") from None
