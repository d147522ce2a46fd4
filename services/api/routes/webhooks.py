"""Webhooks: Replicate reports a training's progress here, signed (Standard Webhooks) with our secret.

Not behind the bearer token (Replicate does not have it) but behind the signature: an unsigned, wrongly
signed or stale call is a 401. A call may only update a training the catalog already has (404 otherwise);
the weights of a training that succeeded are copied into the store after the answer is sent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from loraforge.errors import ConfigError
from loraforge.stages.context import Context
from loraforge.training import service, webhooks
from services.api.deps import ContextDep, ReleasingRoute
from services.api.schemas import ErrorPublic, WebhookAccepted

log = logging.getLogger(__name__)
router = APIRouter(route_class=ReleasingRoute, tags=["webhooks"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "Not signed with the webhook secret, or signed too long ago."},
    404: {"model": ErrorPublic, "description": "No training here has this Replicate id."},
    422: {"model": ErrorPublic, "description": "The body is not a training."},
    503: {"model": ErrorPublic, "description": "No webhook secret is configured."},
}


@router.post("/webhooks/replicate", response_model=WebhookAccepted, responses=RESPONSES)
async def replicate_webhook(
    request: Request, ctx: ContextDep, background: BackgroundTasks
) -> WebhookAccepted:
    """A training's update from Replicate (the same JSON as GET /v1/trainings/{id})."""
    secret = ctx.settings.replicate_webhook_secret
    if secret is None or not secret.get_secret_value().strip():
        # An empty secret would make any caller's signature "valid": treat it as no secret at all.
        raise ConfigError("LORAFORGE_REPLICATE_WEBHOOK_SECRET is not set: webhook calls cannot be verified")
    body = await request.body()  # the signature covers the raw bytes, so they are read before any parsing
    try:
        webhooks.verify(secret.get_secret_value(), dict(request.headers), body)
    except webhooks.WebhookRefused as exc:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=str(exc)) from None
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, detail="the body is not JSON")
    outcome = await run_in_threadpool(service.apply_webhook, ctx, payload)
    if outcome.needs_weights:
        background.add_task(store_weights, ctx, outcome.training_id)
    return WebhookAccepted(training_id=outcome.training_id, status=outcome.status)


def store_weights(ctx: Context, training_id: str) -> None:
    """After the answer: copy the weights. A failure is left to the sync flow, which retries it."""
    try:
        service.store_weights(ctx, training_id)
    except Exception:  # noqa: BLE001 - nobody waits on this; the sync flow picks the training up
        log.warning(
            "could not store the weights of training %s; the sync will retry", training_id, exc_info=True
        )
