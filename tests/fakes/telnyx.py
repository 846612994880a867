"""A fake Telnyx on 127.0.0.1: Call Control v2 REST and a call simulator that signs its webhooks.

REST (protocols/telnyx.md §1-2): ``POST /v2/calls``, ``POST /v2/calls/{id}/actions/<action>``,
``GET /v2/calls/{id}``; ``Authorization: Bearer <key>`` or 401 (10009); the ``{"data": …}`` and
``{"errors": [{"code", "title", "detail"}]}`` envelopes; 404 (10005) for unknown calls, 422
(90018) for commands on ended calls; a repeated ``command_id`` within 60 s is ignored.

Webhooks (§3-4): JSON envelopes with ``meta.attempt``, signed with an Ed25519 key generated here
over ``"{timestamp}|{body}"``. Delivery is one at a time and in order, except that every
``reorder_every``-th event is held back until the next one has been delivered, and every
``redeliver_every``-th event is delivered twice (alternately the same bytes again, and a new
attempt with a fresh signature). A non-2xx answer is retried like Telnyx does.

Media streaming (§5): ``answer`` and ``streaming_start`` with a ``stream_url`` record it on the
call; :meth:`FakeTelnyx.media_stream` opens that websocket as Telnyx does (auth token header,
``connected``, ``start``) and :class:`TelnyxMediaStream` streams µ-law frames in Telnyx's shape.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.fakes.media_socket import MediaSocket

__all__ = ["Delivery", "FakeCall", "FakeTelnyx", "RestCall", "TelnyxMediaStream"]

_DIGITS = re.compile(r"[0-9A-D*#wW]+")
_COMMAND_ID_WINDOW_S = 60.0
_FRAME_BYTES = 160  # 20 ms of PCMU at 8 kHz


@dataclass
class RestCall:
    """One REST request the fake received."""

    method: str
    path: str
    action: str | None
    call_control_id: str | None
    body: dict[str, Any]
    status: int


@dataclass
class Delivery:
    """One webhook POST the fake made, and the gateway's answer."""

    event_type: str
    call_control_id: str
    attempt: int
    status: int
    body: bytes


@dataclass
class FakeCall:
    """One simulated call leg."""

    call_control_id: str
    direction: str  # "incoming" | "outgoing"
    from_number: str
    to_number: str
    webhook_url: str
    client_state: str | None = None
    state: str = "parked"
    alive: bool = True
    timeout_secs: int | None = None
    heard: list[str] = field(default_factory=list)
    dtmf_sent: list[str] = field(default_factory=list)
    transcribing: bool = False
    transcription_state: str | None = None  # client_state of the running transcription
    pending_speech: list[str] = field(default_factory=list)
    script_index: int = 0
    call_leg_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    call_session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    stream_url: str | None = None  # from answer / streaming_start
    stream_auth_token: str | None = None


def _error(status: int, code: str, title: str, detail: str) -> web.Response:
    body = {"errors": [{"code": code, "title": title, "detail": detail}]}
    return web.json_response(body, status=status)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeTelnyx:
    """Fake Telnyx Call Control; ``base_url`` goes into ``telnyx.apiBaseUrl``."""

    def __init__(
        self,
        *,
        api_key: str = "KEYfake0123456789",
        connection_id: str = "1494404757140276705",
        answer_delay_s: float = 0.05,
        speak_s_per_char: float = 0.001,
        reply_delay_s: float = 0.05,
        script: tuple[str, ...] = (),
        outcome: str = "answer",
        redeliver_every: int = 0,
        reorder_every: int = 0,
    ) -> None:
        self.api_key = api_key
        self.connection_id = connection_id
        self.answer_delay_s = answer_delay_s
        self.speak_s_per_char = speak_s_per_char
        self.reply_delay_s = reply_delay_s
        self.script = script
        self.outcome = outcome
        self.redeliver_every = redeliver_every
        self.reorder_every = reorder_every
        self.connection_webhook_url: str | None = None  # where inbound calls are announced
        self.private_key = Ed25519PrivateKey.generate()
        self.calls: dict[str, FakeCall] = {}
        self.rest: list[RestCall] = []
        self.deliveries: list[Delivery] = []
        self.timeline: list[str] = []  # "rest:<action>" and "hook:<event_type>" in order
        self._command_ids: dict[str, float] = {}
        self._outbox: asyncio.Queue[tuple[FakeCall, str, dict[str, Any]]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._event_count = 0
        self._redeliveries = 0
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def public_key_b64(self) -> str:
        """The Base64 raw public key, as Mission Control shows it (``telnyx.publicKey``)."""
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def base_url(self) -> str:
        """The REST base URL (``https://api.telnyx.com/v2`` in real life)."""
        return f"http://127.0.0.1:{self.port}/v2"

    async def start(self) -> None:
        """Serve REST on an ephemeral loopback port and start delivering webhooks."""
        app = web.Application()
        app.router.add_post("/v2/calls", self._dial)
        app.router.add_post("/v2/calls/{ccid}/actions/{action}", self._action)
        app.router.add_get("/v2/calls/{ccid}", self._get_call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        self._worker = asyncio.create_task(self._deliver_forever())

    async def close(self) -> None:
        """Stop the simulator, the webhook worker and the REST server."""
        for call in self.calls.values():
            self._cancel_timers(call)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- test controls -----------------------------------------------------------------------

    def place_inbound_call(self, *, from_number: str, to_number: str) -> str:
        """A caller dials in: announce ``call.initiated`` (parked) to the connection webhook."""
        assert self.connection_webhook_url, "set connection_webhook_url first"
        call = self._new_call("incoming", from_number, to_number, self.connection_webhook_url)
        self._emit(call, "call.initiated", direction="incoming", state="parked")
        return call.call_control_id

    def callee_hangs_up(self, ccid: str, cause: str = "normal_clearing") -> None:
        """The far end hangs up."""
        self._end(self.calls[ccid], cause, source="callee")

    def callee_says(self, ccid: str, text: str) -> None:
        """The far end speaks: transcribed now if a transcription runs, else at the next start."""
        call = self.calls[ccid]
        if call.transcribing:
            self._transcribe(call, text, call.transcription_state)
        else:
            call.pending_speech.append(text)

    def caller_presses(self, ccid: str, digits: str) -> None:
        """The far end presses keys (one ``call.dtmf.received`` per digit)."""
        for digit in digits:
            self._emit(self.calls[ccid], "call.dtmf.received", digit=digit)

    async def stream_url(self, ccid: str) -> str:
        """The media-stream URL the gateway gave for call ``ccid`` (waits for it)."""
        await self.wait_for(lambda: self.calls[ccid].stream_url is not None)
        url = self.calls[ccid].stream_url
        assert url is not None
        return url

    def media_stream(
        self, ccid: str, session: aiohttp.ClientSession, *, url: str | None = None
    ) -> TelnyxMediaStream:
        """A media websocket for call ``ccid`` to its stream URL (or to ``url``)."""
        call = self.calls[ccid]
        target = url or call.stream_url
        assert target, "no stream_url was given for this call"
        return TelnyxMediaStream(session, target, call, call.stream_auth_token)

    def stream_fails(self, ccid: str, reason: str = "connection_failed") -> None:
        """Telnyx reports that the call's media stream failed (``streaming.failed``)."""
        call = self.calls[ccid]
        self._emit(
            call,
            "streaming.failed",
            failure_reason=reason,
            stream_id=str(uuid.uuid4()),
            stream_type="websocket",
            stream_params={"stream_url": call.stream_url, "track": "inbound_track"},
        )

    def actions(self, ccid: str | None = None) -> list[str]:
        """The actions received (for one call, if given), in order; dial is ``dial``."""
        return [
            r.action or "dial"
            for r in self.rest
            if r.method == "POST" and (ccid is None or r.call_control_id == ccid)
        ]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Poll until ``predicate()`` holds."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.01)

    # ---- REST --------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _record(
        self,
        request: web.Request,
        body: dict[str, Any],
        response: web.Response,
        *,
        ccid: str | None = None,
        action: str | None = None,
    ) -> web.Response:
        self.rest.append(
            RestCall(request.method, request.path, action, ccid, body, response.status)
        )
        if request.method == "POST":
            self.timeline.append(f"rest:{action or 'dial'}")
        return response

    def _duplicate(self, body: dict[str, Any]) -> bool:
        command_id = body.get("command_id")
        if not isinstance(command_id, str):
            return False
        now = time.monotonic()
        seen = self._command_ids.get(command_id)
        if seen is not None and now - seen < _COMMAND_ID_WINDOW_S:
            return True
        self._command_ids[command_id] = now
        return False

    async def _dial(self, request: web.Request) -> web.Response:
        body = await self._json(request) or {}
        if not self._authorized(request):
            return self._record(request, body, _error(401, "10009", "Authentication failed", ""))
        for name in ("connection_id", "to", "from"):
            if not isinstance(body.get(name), str) or not body[name]:
                return self._record(
                    request,
                    body,
                    _error(422, "10004", "Missing required parameter", f"'{name}' is required"),
                )
        if body["connection_id"] != self.connection_id:
            detail = "connection_id does not belong to this account"
            return self._record(request, body, _error(422, "10015", "Bad Request", detail))
        webhook_url = body.get("webhook_url") or self.connection_webhook_url
        if not webhook_url:
            detail = "no webhook URL"
            return self._record(request, body, _error(422, "10015", "Bad Request", detail))
        call = self._new_call("outgoing", body["from"], body["to"], webhook_url)
        call.client_state = body.get("client_state")
        call.state = "bridging"
        call.timeout_secs = body.get("timeout_secs")
        data = {
            "call_control_id": call.call_control_id,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "is_alive": False,
            "record_type": "call",
        }
        self._emit(call, "call.initiated", direction="outgoing", state="bridging")
        self._later(call, self.answer_delay_s, self._settle_outbound)
        response = web.json_response({"data": data})
        return self._record(request, body, response, ccid=call.call_control_id, action=None)

    async def _get_call(self, request: web.Request) -> web.Response:
        ccid = request.match_info["ccid"]
        if not self._authorized(request):
            return self._record(request, {}, _error(401, "10009", "Authentication failed", ""))
        call = self.calls.get(ccid)
        if call is None:
            return self._record(request, {}, _error(404, "10005", "Resource not found", ccid))
        data = {
            "call_control_id": ccid,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "client_state": call.client_state,
            "is_alive": call.alive,
            "record_type": "call",
        }
        return self._record(request, {}, web.json_response({"data": data}), ccid=ccid)

    async def _action(self, request: web.Request) -> web.Response:
        ccid, action = request.match_info["ccid"], request.match_info["action"]
        body = await self._json(request)
        if body is None:
            body = {}
            response = _error(400, "10015", "Bad Request", "body is not a JSON object")
            return self._record(request, body, response, ccid=ccid, action=action)

        def done(response: web.Response) -> web.Response:
            return self._record(request, body, response, ccid=ccid, action=action)

        if not self._authorized(request):
            return done(_error(401, "10009", "Authentication failed", ""))
        call = self.calls.get(ccid)
        handler = getattr(self, f"_do_{action}", None)
        if call is None or handler is None:
            return done(_error(404, "10005", "Resource not found", f"{ccid}/{action}"))
        if not call.alive:
            return done(_error(422, "90018", "Call has already ended", ccid))
        if action not in ("answer", "hangup") and call.state != "answered":
            detail = "the call is not answered"
            return done(_error(422, "90015", "Invalid call state", detail))
        if self._duplicate(body):
            return done(web.json_response({"data": {"result": "ok"}}))
        problem = handler(call, body)
        if problem is not None:
            return done(_error(422, "10004", "Missing required parameter", problem))
        if isinstance(body.get("client_state"), str):
            call.client_state = body["client_state"]
        return done(web.json_response({"data": {"result": "ok"}}))

    # ---- actions (each returns a problem text, or None when accepted) -------------------------

    def _do_answer(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        if call.direction != "incoming" or call.state != "parked":
            return "only a parked incoming call can be answered"
        call.client_state = body.get("client_state", call.client_state)
        call.state = "answered"
        self._later(call, 0.01, lambda c: self._emit(c, "call.answered", state="answered"))
        if isinstance(body.get("stream_url"), str):
            self._stream_to(call, body)
        return None

    def _do_hangup(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        self._end(call, "normal_clearing", source="caller")
        return None

    def _do_speak(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        text, voice = body.get("payload"), body.get("voice")
        if not isinstance(text, str) or not text or not isinstance(voice, str) or not voice:
            return "'payload' and 'voice' are required"
        call.heard.append(text)
        state = body.get("client_state", call.client_state)
        self._emit(call, "call.speak.started", client_state=state)
        duration = self.speak_s_per_char * len(text)
        self._later(
            call,
            duration,
            lambda c: self._emit(c, "call.speak.ended", status="completed", client_state=state),
        )
        return None

    def _do_transcription_start(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        call.transcribing = True
        # Transcripts echo the client_state of the command that started them.
        state = body.get("client_state", call.client_state)
        call.transcription_state = state
        if call.pending_speech:
            line = call.pending_speech.pop(0)
            self._later(call, self.reply_delay_s, lambda c: self._transcribe(c, line, state))
        elif call.script_index < len(self.script):
            line = self.script[call.script_index]
            call.script_index += 1
            self._later(call, self.reply_delay_s, lambda c: self._transcribe(c, line, state))
        return None

    def _do_transcription_stop(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        call.transcribing = False
        return None

    def _do_send_dtmf(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        digits = body.get("digits")
        if not isinstance(digits, str) or not _DIGITS.fullmatch(digits):
            return "'digits' must be 0-9, A-D, *, #, w or W"
        call.dtmf_sent.append(digits)
        return None

    def _do_record_start(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        return None if body.get("format") in ("mp3", "wav") else "'format' must be mp3 or wav"

    def _do_streaming_start(self, call: FakeCall, body: dict[str, Any]) -> str | None:
        if not body.get("stream_url"):
            return "'stream_url' is required"
        self._stream_to(call, body)
        return None

    def _stream_to(self, call: FakeCall, body: dict[str, Any]) -> None:
        call.stream_url = str(body["stream_url"])
        token = body.get("stream_auth_token")
        call.stream_auth_token = token if isinstance(token, str) else None
        url = call.stream_url
        self._later(call, 0.01, lambda c: self._emit(c, "streaming.started", stream_url=url))

    # ---- the simulated far end ---------------------------------------------------------------

    def _new_call(self, direction: str, from_number: str, to_number: str, url: str) -> FakeCall:
        ccid = "v3:" + secrets.token_urlsafe(24)
        call = FakeCall(ccid, direction, from_number, to_number, url)
        self.calls[ccid] = call
        return call

    def _settle_outbound(self, call: FakeCall) -> None:
        if self.outcome == "answer":
            call.state = "answered"
            self._emit(call, "call.answered", state="answered")
        else:
            self._end(call, self.outcome, source="callee")

    def _transcribe(self, call: FakeCall, line: str, state: str | None) -> None:
        if call.transcribing:
            data = {"transcript": line, "confidence": 0.97, "is_final": True}
            self._emit(call, "call.transcription", transcription_data=data, client_state=state)

    def _end(self, call: FakeCall, cause: str, *, source: str) -> None:
        if not call.alive:
            return
        self._cancel_timers(call)
        call.alive = False
        call.state = "hangup"
        call.transcribing = False
        self._emit(call, "call.hangup", hangup_cause=cause, hangup_source=source, state="hangup")

    def _later(self, call: FakeCall, delay_s: float, action: Callable[[FakeCall], None]) -> None:
        def fire() -> None:
            if call.alive:
                action(call)

        call.timers.append(asyncio.get_running_loop().call_later(delay_s, fire))

    def _cancel_timers(self, call: FakeCall) -> None:
        for handle in call.timers:
            handle.cancel()
        call.timers.clear()

    # ---- webhook delivery --------------------------------------------------------------------

    def _emit(self, call: FakeCall, event_type: str, **fields: Any) -> None:
        payload: dict[str, Any] = {
            "call_control_id": call.call_control_id,
            "call_leg_id": call.call_leg_id,
            "call_session_id": call.call_session_id,
            "connection_id": self.connection_id,
            "from": call.from_number,
            "to": call.to_number,
            "client_state": call.client_state,
        }
        payload.update(fields)
        if payload["client_state"] is None:
            del payload["client_state"]
        data = {
            "record_type": "event",
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": _iso_now(),
            "payload": payload,
        }
        self._outbox.put_nowait((call, event_type, data))

    def _sign(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = self.private_key.sign(timestamp.encode() + b"|" + body)
        return {
            "Content-Type": "application/json",
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
            "telnyx-timestamp": timestamp,
        }

    async def _deliver_forever(self) -> None:
        held: tuple[FakeCall, str, dict[str, Any]] | None = None
        while True:
            if held is None:
                item = await self._outbox.get()
            else:
                try:
                    item = await asyncio.wait_for(self._outbox.get(), timeout=0.1)
                except TimeoutError:
                    item, held = held, None
            self._event_count += 1
            if (
                held is None
                and self.reorder_every
                and self._event_count % self.reorder_every == 0
                and item[1] != "call.initiated"  # Telnyx must announce a call before anything
            ):
                held = item  # delivered after the next event: out of order
                continue
            await self._deliver(*item)
            if held is not None and item is not held:
                held_item, held = held, None
                await self._deliver(*held_item)

    async def _deliver(self, call: FakeCall, event_type: str, data: dict[str, Any]) -> None:
        body = await self._post(call, event_type, data, attempt=1)
        if self.redeliver_every and self._event_count % self.redeliver_every == 0:
            self._redeliveries += 1
            if self._redeliveries % 2 and body is not None:
                await self._post_bytes(call, event_type, body, self._sign(body), attempt=1)
            else:
                await self._post(call, event_type, data, attempt=2)

    async def _post(
        self, call: FakeCall, event_type: str, data: dict[str, Any], *, attempt: int
    ) -> bytes | None:
        for retry in range(3):
            envelope = {
                "data": data,
                "meta": {"attempt": attempt + retry, "delivered_to": call.webhook_url},
            }
            body = json.dumps(envelope).encode()
            status = await self._post_bytes(call, event_type, body, self._sign(body), attempt)
            if 200 <= status < 300:
                return body
            await asyncio.sleep(0.05 * (retry + 1))
        return None

    async def _post_bytes(
        self, call: FakeCall, event_type: str, body: bytes, headers: dict[str, str], attempt: int
    ) -> int:
        assert self._session is not None
        try:
            async with self._session.post(call.webhook_url, data=body, headers=headers) as resp:
                status = resp.status
                await resp.read()
        except aiohttp.ClientError:
            status = 0
        self.deliveries.append(Delivery(event_type, call.call_control_id, attempt, status, body))
        self.timeline.append(f"hook:{event_type}")
        return status


class TelnyxMediaStream(MediaSocket):
    """One Telnyx media-stream websocket to the gateway, in Telnyx's frame shapes."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, call: FakeCall, token: str | None
    ) -> None:
        headers = {"x-telnyx-streaming-auth-token": token} if token else {}
        super().__init__(session, url, headers)
        self.call = call
        self.token = token
        self.stream_id = str(uuid.uuid4()).upper()
        self.chunk = 0

    async def send(self, message: dict[str, Any]) -> None:
        """A frame with the next sequence_number and this stream's id."""
        assert self.ws is not None
        self.sequence += 1
        frame = {**message, "sequence_number": str(self.sequence), "stream_id": self.stream_id}
        await self.ws.send_str(json.dumps(frame))

    async def start(self) -> None:
        """``connected`` (with the auth token) then ``start`` naming the call."""
        assert self.ws is not None
        hello: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
        await self.ws.send_str(json.dumps(hello))
        start = {
            "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
            "call_control_id": self.call.call_control_id,
            "call_session_id": self.call.call_session_id,
            "from": self.call.from_number,
            "to": self.call.to_number,
            "client_state": self.call.client_state,
            "custom_parameters": {},
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        }
        await self.send({"event": "start", "start": start})

    async def play(self, audio: bytes, *, frame_s: float = 0.02) -> None:
        """Stream ``audio`` (PCMU 8 kHz) in 20 ms frames at real-time pace."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        for offset in range(0, len(audio), _FRAME_BYTES):
            piece = audio[offset : offset + _FRAME_BYTES].ljust(_FRAME_BYTES, b"\xff")
            self.chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(20 * (self.chunk - 1)),
                "payload": base64.b64encode(piece).decode(),
            }
            await self.send({"event": "media", "media": media})
            due += frame_s
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def stop(self) -> None:
        """``stop``: the stream is over."""
        stop = {"user_id": "3E6F995F", "call_control_id": self.call.call_control_id}
        await self.send({"event": "stop", "stop": stop})

    async def acknowledge(self, frame: dict[str, Any]) -> None:
        """Telnyx echoes a ``mark`` once the media before it played (at once here)."""
        if frame.get("event") == "mark":
            name = frame["mark"]["name"]
            await self.send({"event": "mark", "mark": {"name": name}})
            self.acknowledged.append(name)

    def played_audio(self) -> list[bytes]:
        """The µ-law payload of every outbound ``media`` frame, in order."""
        return [
            base64.b64decode(frame["media"]["payload"])
            for frame in self.received
            if frame.get("event") == "media"
        ]
