"""The carrier-facing webhook listener app (SPEC §4.1); today it speaks the mock carrier (§3.6)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from voicecall.carriers.mock.webhook import parse_webhook, verify_request
from voicecall.errors import InvalidParamsError
from voicecall.server.metrics import GatewayMetrics
from voicecall.server.replay import CachedResponse, ReplayCache

__all__ = [
    "WEBHOOK_BODY_LIMIT_BYTES",
    "WEBHOOK_STATE",
    "EventHandler",
    "WebhookState",
    "build_webhook_app",
]

log = logging.getLogger(__name__)

WEBHOOK_BODY_LIMIT_BYTES = 65_536
_BODY_TIMEOUT_S = 5.0
_IN_FLIGHT_PER_PEER = 8

EventHandler = Callable[[list[dict[str, Any]]], Awaitable[Any]]


@dataclass(slots=True)
class WebhookState:
    """Webhook routing inputs: the exact path, who handles events, and bookkeeping."""

    path: str
    provider: str
    handle_events: EventHandler
    metrics: GatewayMetrics
    replay: ReplayCache = field(default_factory=ReplayCache)
    in_flight: dict[str, int] = field(default_factory=dict)


WEBHOOK_STATE = web.AppKey("webhook_state", WebhookState)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


async def _read_body(request: web.Request) -> bytes | int:
    """The body, or the HTTP status that refuses it (413 too large, 408 too slow)."""
    if request.content_length is not None and request.content_length > WEBHOOK_BODY_LIMIT_BYTES:
        return 413
    try:
        async with asyncio.timeout(_BODY_TIMEOUT_S):
            body = await request.content.read(WEBHOOK_BODY_LIMIT_BYTES + 1)
    except TimeoutError:
        return 408
    return 413 if len(body) > WEBHOOK_BODY_LIMIT_BYTES else body


async def _process(request: web.Request, state: WebhookState) -> tuple[web.Response, str]:
    body = await _read_body(request)
    if isinstance(body, int):
        if body == 413:
            return _text(413, "Payload Too Large"), "payload_too_large"
        return _text(408, "Request Timeout"), "timeout"
    verified = verify_request(request.method, str(request.url), body)
    if not verified.ok or not verified.request_key:
        return _text(401, "Unauthorized"), "unauthorized"
    fresh, cached = state.replay.reserve(verified.request_key)
    if not fresh:
        if cached is None:
            return _text(200, "OK"), "replay"
        reply = web.Response(status=cached.status, body=cached.body)
        reply.content_type = cached.content_type
        return reply, "replay"
    try:
        events = parse_webhook(body, now_ms=_now_ms())
    except InvalidParamsError as exc:
        state.replay.release(verified.request_key)
        return _text(400, f"Bad Request: {exc}"), "error"
    try:
        await state.handle_events(events)
    except Exception:
        log.exception("webhook processing failed")
        state.replay.release(verified.request_key)
        return _text(500, "Internal Server Error"), "error"
    state.replay.complete(verified.request_key, CachedResponse(200, b"OK", "text/plain"))
    return _text(200, "OK"), "ok"


async def _webhook(request: web.Request) -> web.Response:
    state = request.app[WEBHOOK_STATE]
    if request.path.rstrip("/") != state.path.rstrip("/"):
        response, result = _text(404, "Not Found"), "not_found"
    elif request.method != "POST":
        response, result = _text(405, "Method Not Allowed", Allow="POST"), "method_not_allowed"
    else:
        peer = request.remote or "unknown"
        if state.in_flight.get(peer, 0) >= _IN_FLIGHT_PER_PEER:
            response, result = _text(429, "Too Many Requests"), "too_many_requests"
        else:
            state.in_flight[peer] = state.in_flight.get(peer, 0) + 1
            try:
                response, result = await _process(request, state)
            finally:
                remaining = state.in_flight[peer] - 1
                if remaining:
                    state.in_flight[peer] = remaining
                else:
                    del state.in_flight[peer]
    state.metrics.webhook_requests.labels(provider=state.provider, result=result).inc()
    return response


def build_webhook_app(state: WebhookState) -> web.Application:
    """The carrier-facing aiohttp app; it never serves /rpc, /healthz or /metrics."""
    app = web.Application(client_max_size=WEBHOOK_BODY_LIMIT_BYTES)
    app[WEBHOOK_STATE] = state
    app.router.add_route("*", "/{tail:.*}", _webhook)
    return app
