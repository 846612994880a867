"""The control listener app: `POST /rpc`, `GET /healthz`, `GET /metrics` (SPEC §11.2, §11.3)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from voicecall.errors import VoicecallError
from voicecall.server.methods import RpcMethods
from voicecall.server.metrics import METRICS_CONTENT_TYPE, GatewayMetrics
from voicecall.server.protocol import (
    INVALID_REQUEST,
    RPC_BODY_LIMIT_BYTES,
    UNAUTHORIZED_BODY,
    RpcRequest,
    error_from_exception,
    error_response,
    parse_request,
    result_response,
)

__all__ = ["CONTROL_STATE", "ControlState", "build_control_app", "json_response"]

log = logging.getLogger(__name__)

Health = Callable[[], tuple[int, dict[str, Any]]]


@dataclass(slots=True)
class ControlState:
    """What the control routes need: auth token, RPC methods, health and metrics sources."""

    token: str | None
    methods: RpcMethods
    health: Health
    metrics: GatewayMetrics


CONTROL_STATE = web.AppKey("control_state", ControlState)


def json_response(body: Any, status: int = 200) -> web.Response:
    """An application/json response serialised with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _authorized(request: web.Request, token: str | None) -> bool:
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


@web.middleware
async def _auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path != "/healthz" and not _authorized(request, request.app[CONTROL_STATE].token):
        return json_response(UNAUTHORIZED_BODY, status=401)
    return await handler(request)


async def _read_capped(request: web.Request) -> bytes | None:
    if request.content_length is not None and request.content_length > RPC_BODY_LIMIT_BYTES:
        return None
    body = await request.content.read(RPC_BODY_LIMIT_BYTES + 1)
    return None if len(body) > RPC_BODY_LIMIT_BYTES else body


async def _rpc(request: web.Request) -> web.Response:
    state = request.app[CONTROL_STATE]
    body = await _read_capped(request)
    if body is None:
        message = f"Invalid Request: body exceeds {RPC_BODY_LIMIT_BYTES} bytes"
        return json_response(error_response(None, INVALID_REQUEST, message), status=413)
    parsed = parse_request(body)
    if not isinstance(parsed, RpcRequest):
        return json_response(parsed)
    try:
        result = await state.methods.call(parsed.method, parsed.params)
        reply = result_response(parsed.request_id, result)
    except Exception as exc:
        if not isinstance(exc, VoicecallError):
            log.exception("rpc %s failed unexpectedly", parsed.method)
        reply = error_from_exception(parsed.request_id, exc)
    if parsed.is_notification:
        return web.Response(status=204)
    return json_response(reply)


async def _healthz(request: web.Request) -> web.Response:
    status, body = request.app[CONTROL_STATE].health()
    return json_response(body, status=status)


async def _metrics(request: web.Request) -> web.Response:
    payload = request.app[CONTROL_STATE].metrics.render()
    return web.Response(body=payload, headers={"Content-Type": METRICS_CONTENT_TYPE})


def build_control_app(state: ControlState) -> web.Application:
    """The control-plane aiohttp app; mount it only on the loopback control listener."""
    app = web.Application(middlewares=[_auth_middleware], client_max_size=RPC_BODY_LIMIT_BYTES)
    app[CONTROL_STATE] = state
    app.router.add_post("/rpc", _rpc)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app
