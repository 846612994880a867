"""The carrier-facing webhook listener (SPEC §4.1): one carrier-neutral pipeline for every carrier.

Order matters and is the security model: cheap checks that need no body come first (path,
method, signature headers, per-peer concurrency), the body is read under a size cap and a
deadline, and only a verified request with a replay key ever reaches the carrier's handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from voicecall.carriers.base import CallControl, Carrier, Verification, WebhookReply, WebhookRequest
from voicecall.server.forwarding import (
    ForwardingPolicy,
    public_path_prefix,
    public_request_url,
    reconstruct_url,
    split_path_and_query,
)
from voicecall.server.metrics import GatewayMetrics
from voicecall.server.replay import CachedResponse, ReplayCache

__all__ = [
    "DEFAULT_HOLD_MUSIC_URL",
    "HOLD_MUSIC_PATH",
    "IN_FLIGHT_PER_PEER",
    "WEBHOOK_BODY_LIMIT_BYTES",
    "WEBHOOK_BODY_TIMEOUT_S",
    "WEBHOOK_STATE",
    "WebhookState",
    "build_webhook_app",
    "hold_music_twiml",
    "skip_verification",
]

log = logging.getLogger(__name__)

WEBHOOK_BODY_LIMIT_BYTES = 65_536
WEBHOOK_BODY_TIMEOUT_S = 5.0
IN_FLIGHT_PER_PEER = 8
HOLD_MUSIC_PATH = "/voice/hold-music"
DEFAULT_HOLD_MUSIC_URL = "https://s3.amazonaws.com/com.twilio.music.classical/BusyStrings.mp3"

_XML_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>'
_XML_QUOTES = {'"': "&quot;", "'": "&apos;"}


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class WebhookState:
    """Everything the pipeline needs: the carrier, the runtime it feeds, and the §1.4 settings.

    A carrier may set ``webhook_replay_reply`` (a ``WebhookReply``) to fix what every replay
    answers (Twilio: an empty ``<Response>``); otherwise a replay gets the cached first response,
    or ``200 OK`` while the first delivery is still being processed.
    """

    carrier: Carrier
    control: CallControl
    metrics: GatewayMetrics
    path: str = "/voice/webhook"
    public_url: str | None = None
    skip_signature_verification: bool = False
    forwarding: ForwardingPolicy = field(default_factory=ForwardingPolicy)
    hold_music_url: str = DEFAULT_HOLD_MUSIC_URL
    clock_ms: Callable[[], int] = _wall_clock_ms
    replay_clock_ms: Callable[[], int] | None = None  # monotonic ms by default
    body_timeout_s: float = WEBHOOK_BODY_TIMEOUT_S
    replays: dict[str, ReplayCache] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: Any, *, carrier: Carrier, control: CallControl, metrics: GatewayMetrics
    ) -> WebhookState:
        """The pipeline for a ``VoicecallConfig`` (serve, publicUrl, webhookSecurity, tunnel)."""
        return cls(
            carrier=carrier,
            control=control,
            metrics=metrics,
            path=config.serve.path,
            public_url=config.public_url,
            skip_signature_verification=config.skip_signature_verification,
            forwarding=ForwardingPolicy.from_config(config),
            hold_music_url=config.serve.hold_music_url,
        )

    @property
    def provider(self) -> str:
        """The carrier name, used as the metrics label and the replay-cache key."""
        return self.carrier.name

    def replay_cache(self, provider: str) -> ReplayCache:
        """The provider's replay cache (SPEC §4.4), created on first use."""
        cache = self.replays.get(provider)
        if cache is None:
            cache = self.replays[provider] = ReplayCache(clock_ms=self.replay_clock_ms)
        return cache


WEBHOOK_STATE = web.AppKey("webhook_state", WebhookState)


def hold_music_twiml(hold_music_url: str) -> str:
    """T-HOLD (SPEC §3.2): a busy notice, then the hold music on loop."""
    url = escape(hold_music_url, _XML_QUOTES)
    return (
        f'{_XML_PROLOG}<Response><Say voice="alice">All agents are currently busy. Please hold.'
        f'</Say><Play loop="0">{url}</Play></Response>'
    )


def skip_verification(provider: str, request: WebhookRequest) -> Verification:
    """``skipSignatureVerification``: accept all, keyed ``<provider>:skip:sha256(request)``."""
    digest = hashlib.sha256(f"{request.method}\n{request.url}\n".encode() + request.body)
    return Verification(ok=True, request_key=f"{provider}:skip:{digest.hexdigest()}")


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


def _reply_response(status: int, body: bytes, content_type: str, headers: Any = ()) -> web.Response:
    response = web.Response(status=status, body=body, headers=dict(headers))
    response.headers["Content-Type"] = content_type
    return response


def _strip_slashes(path: str) -> str:
    return path.rstrip("/")


def _raw_path(request: web.Request) -> str:
    return split_path_and_query(request.raw_path)[0]


def _passes_header_gate(carrier: Carrier, request: web.Request) -> bool:
    groups = carrier.webhook_signature_headers
    if not groups:
        return True
    return any(all(request.headers.get(name, "").strip() for name in group) for group in groups)


async def _read_body(request: web.Request, timeout_s: float) -> bytes | int:
    """The body, or the HTTP status that refuses it (413 too large, 408 too slow)."""
    if request.content_length is not None and request.content_length > WEBHOOK_BODY_LIMIT_BYTES:
        return 413
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.read(WEBHOOK_BODY_LIMIT_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > WEBHOOK_BODY_LIMIT_BYTES:
                    return 413
    except TimeoutError:
        return 408
    return b"".join(chunks)


def _lower_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _build_request(request: web.Request, state: WebhookState, body: bytes) -> WebhookRequest | None:
    headers = _lower_headers(request)
    path_qs = request.raw_path
    if state.public_url:
        url: str | None = public_request_url(state.public_url, path_qs)
    else:
        url = reconstruct_url(
            state.forwarding, peer=request.remote, headers=headers, path_qs=path_qs
        )
    if url is None:
        return None
    query: dict[str, str] = {}
    for key, value in request.rel_url.query.items():
        query.setdefault(key, value)
    return WebhookRequest(
        method=request.method,
        url=url,
        headers=headers,
        body=body,
        query=query,
        host_header=request.headers.get("Host"),
        public_url=state.public_url,
        received_at_ms=state.clock_ms(),
    )


def _verify(state: WebhookState, request: WebhookRequest) -> Verification:
    if state.skip_signature_verification:
        return skip_verification(state.provider, request)
    try:
        return state.carrier.verify_webhook(request)
    except Exception as exc:  # a malformed signature must never turn into a 5xx
        log.warning("webhook verification raised: %r", exc)
        return Verification(ok=False, reason=f"verification raised {type(exc).__name__}")


def _replay_response(carrier: Carrier, cached: CachedResponse | None) -> web.Response:
    fixed = getattr(carrier, "webhook_replay_reply", None)
    if isinstance(fixed, WebhookReply):
        return _reply_response(fixed.status, fixed.body, fixed.content_type, fixed.headers)
    if cached is None:
        return _text(200, "OK")
    return _reply_response(cached.status, cached.body, cached.content_type)


async def _verified(request: web.Request, state: WebhookState) -> tuple[web.Response, str]:
    """Steps 6-10: body, verification, replay, then the carrier's handler."""
    body = await _read_body(request, state.body_timeout_s)
    if isinstance(body, int):
        if body == 413:
            return _text(413, "Payload Too Large"), "payload_too_large"
        return _text(408, "Request Timeout"), "timeout"
    hook = _build_request(request, state, body)
    if hook is None:
        log.warning("webhook refused: no valid Host header to rebuild the signed URL from")
        return _text(400, "Bad Request"), "error"
    verification = _verify(state, hook)
    key = verification.request_key
    if not verification.ok or not key:
        log.warning(
            "webhook signature rejected (%s): %s",
            state.provider,
            verification.reason or "no request key",
        )
        return _text(401, "Unauthorized"), "unauthorized"
    replay = state.replay_cache(state.provider)
    fresh, cached = replay.reserve(key)
    if not fresh:
        return _replay_response(state.carrier, cached), "replay"
    try:
        reply = await state.carrier.handle_webhook(hook, verification, state.control)
    except Exception:
        log.exception("webhook processing failed (%s)", state.provider)
        replay.release(key)
        return _text(500, "Internal Server Error"), "error"
    if reply.replayable:
        replay.release(key)
    else:
        replay.complete(key, CachedResponse(reply.status, reply.body, reply.content_type))
    response = _reply_response(reply.status, reply.body, reply.content_type, reply.headers)
    return response, "ok" if reply.status < 400 else "error"


async def _pipeline(request: web.Request, state: WebhookState) -> tuple[web.Response, str]:
    """Steps 2-5: path, method, pre-auth header gate and the per-peer in-flight cap."""
    if _strip_slashes(_raw_path(request)) != _strip_slashes(state.path):
        return _text(404, "Not Found"), "not_found"
    if request.method != "POST":
        return _text(405, "Method Not Allowed", Allow="POST"), "method_not_allowed"
    if not state.skip_signature_verification and not _passes_header_gate(state.carrier, request):
        log.warning("webhook refused: signature headers missing (%s)", state.provider)
        return _text(401, "Unauthorized"), "unauthorized"
    peer = request.remote or "unknown"
    if state.in_flight.get(peer, 0) >= IN_FLIGHT_PER_PEER:
        return _text(429, "Too Many Requests"), "too_many_requests"
    state.in_flight[peer] = state.in_flight.get(peer, 0) + 1
    try:
        return await _verified(request, state)
    finally:
        remaining = state.in_flight[peer] - 1
        if remaining:
            state.in_flight[peer] = remaining
        else:
            del state.in_flight[peer]


def _is_hold_music(request: web.Request, state: WebhookState) -> bool:
    if request.method not in ("GET", "POST"):
        return False
    path = _strip_slashes(_raw_path(request))
    prefix = public_path_prefix(state.public_url, state.path)
    return path in (HOLD_MUSIC_PATH, f"{prefix}{HOLD_MUSIC_PATH}")


async def _webhook(request: web.Request) -> web.StreamResponse:
    state = request.app[WEBHOOK_STATE]
    if _is_hold_music(request, state):
        return _reply_response(200, hold_music_twiml(state.hold_music_url).encode(), "text/xml")
    response, result = await _pipeline(request, state)
    state.metrics.webhook_requests.labels(provider=state.provider, result=result).inc()
    return response


def build_webhook_app(state: WebhookState) -> web.Application:
    """The carrier-facing aiohttp app; it never serves /rpc, /healthz or /metrics."""
    app = web.Application(client_max_size=WEBHOOK_BODY_LIMIT_BYTES)
    app[WEBHOOK_STATE] = state
    app.router.add_route("*", "/{tail:.*}", _webhook)
    return app
