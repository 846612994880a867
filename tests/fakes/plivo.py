"""A faithful fake of Plivo on 127.0.0.1: the Voice API and a call simulator (protocols/plivo.md).

REST: the real paths under ``/v1/Account/{authId}/`` (trailing slashes required), HTTP Basic
auth, JSON bodies, Plivo's answer shapes (``request_uuid`` as an array, ``call transfered``) and
``{"api_id", "error"}`` errors. Calls: the simulator fetches answer and transfer URLs, runs the
Plivo XML it gets (``Speak``, ``GetInput``, ``Wait``, ``Hangup``), answers ``GetInput`` from a
script, and posts hangup callbacks — every request signed with Signature V3 (and V2) the way
Plivo signs them. ``<Stream>`` keeps the call in the stream (``keepCallAlive``) while a test
drives the audio socket Plivo would open with :class:`PlivoAudioStream` (protocols/plivo.md §5).
Now and then it retries a delivery (the same signed request again) and
re-delivers an earlier answer/status callback late, out of order, as a fresh request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from tests.fakes.media_socket import MediaSocket

from voicecall.carriers.plivo.webhook import sign_v2, sign_v3

__all__ = ["FakeCall", "FakePlivo", "PlivoAudioStream", "Posted"]

LIVE = ("ringing", "in-progress")


@dataclass(slots=True)
class Posted:
    """One callback the fake delivered to the gateway, with what came back."""

    url: str
    params: dict[str, str]
    status: int
    body: str
    nonce: str


@dataclass(slots=True)
class FakeCall:
    """The simulated far end of one Plivo call."""

    call_uuid: str
    request_uuid: str
    direction: str
    from_number: str
    to_number: str
    answer_url: str
    hangup_url: str | None
    outcome: str = "answer"
    send_digits: str | None = None
    status: str = "ringing"
    heard: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    dtmf_received: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    hangup_reason: str | None = None
    hangup_cause: str | None = None
    rest_hangups: int = 0
    recording_callback: str | None = None
    runner: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    stream_url: str | None = None
    stream_attrs: dict[str, str] = field(default_factory=dict)
    streaming: asyncio.Event = field(default_factory=asyncio.Event)


def _api_id() -> str:
    return str(uuid.uuid4())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"api_id": _api_id(), "error": message}, status=status)


class FakePlivo:
    """Serve with ``async with FakePlivo(...) as fake``; ``fake.api_base_url`` is the base."""

    def __init__(
        self,
        auth_id: str = "MAFAKEPLIVOACCOUNT01",
        auth_token: str = "fake-plivo-auth-token",
        *,
        script: Sequence[str] = ("Yes, that works for me.", "Thanks, goodbye."),
        speech_ms_per_char: float = 1.0,
        reply_ms: float = 20.0,
        ring_ms: float = 10.0,
        duplicate_every: int = 3,
        late_every: int = 4,
        sign_v2_too: bool = True,
    ) -> None:
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.script = list(script)
        self.speech_ms_per_char = speech_ms_per_char
        self.reply_ms = reply_ms
        self.ring_ms = ring_ms
        self.duplicate_every = duplicate_every
        self.late_every = late_every
        self.sign_v2_too = sign_v2_too
        self.calls: dict[str, FakeCall] = {}  # by CallUUID
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, json body)
        self.posted: list[Posted] = []
        self.outcomes_by_suffix: dict[str, str] = {}
        self._by_request: dict[str, FakeCall] = {}
        self._nonces = itertools.count(1_000_000)
        self._callbacks = itertools.count(1)
        self._earlier: list[tuple[str, dict[str, str]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # -- server lifecycle ------------------------------------------------------------------

    @property
    def api_base_url(self) -> str:
        """What ``plivo.apiBaseUrl`` is set to (``/Account/{authId}`` is appended by clients)."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakePlivo:
        app = web.Application()
        prefix = "/v1/Account/{auth_id}"
        app.router.add_post(f"{prefix}/Call/", self._create)
        app.router.add_get(f"{prefix}/Call/{{uuid}}/", self._get)
        app.router.add_post(f"{prefix}/Call/{{uuid}}/", self._transfer)
        app.router.add_delete(f"{prefix}/Call/{{uuid}}/", self._hangup)
        app.router.add_delete(f"{prefix}/Request/{{uuid}}/", self._cancel)
        app.router.add_post(f"{prefix}/Call/{{uuid}}/DTMF/", self._dtmf)
        app.router.add_post(f"{prefix}/Call/{{uuid}}/Record/", self._record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- REST --------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> web.Response | None:
        expected = base64.b64encode(f"{self.auth_id}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _error(401, "Authentication failed")
        if request.match_info["auth_id"] != self.auth_id:
            return _error(404, "Account not found")
        return None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = json.loads(raw) if raw.strip() else {}
        self.requests.append((request.method, request.path, body or None))
        return body if isinstance(body, dict) else {}

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = await self._body(request)
        missing = [key for key in ("from", "to", "answer_url") if not body.get(key)]
        if missing:
            return _error(400, f"{missing[0]} is required")
        to = str(body["to"])
        outcome = next((o for s, o in self.outcomes_by_suffix.items() if to.endswith(s)), "answer")
        call = FakeCall(
            call_uuid=str(uuid.uuid4()),
            request_uuid=str(uuid.uuid4()),
            direction="outbound",
            from_number=str(body["from"]).lstrip("+"),
            to_number=to.lstrip("+"),
            answer_url=str(body["answer_url"]),
            hangup_url=body.get("hangup_url"),
            outcome=outcome,
            send_digits=body.get("send_digits"),
            script=list(self.script),
        )
        self.calls[call.call_uuid] = call
        self._by_request[call.request_uuid] = call
        call.runner = self._spawn(self._run_outbound(call))
        return web.json_response(
            {"api_id": _api_id(), "message": "call fired", "request_uuid": [call.request_uuid]},
            status=201,
        )

    async def _get(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        await self._body(request)
        call = self.calls.get(request.match_info["uuid"])
        if call is None:
            return _error(404, "Call not found")
        return web.json_response(
            {
                "api_id": _api_id(),
                "call_uuid": call.call_uuid,
                "call_direction": call.direction,
                "call_status": call.status,
                "from_number": call.from_number,
                "to_number": call.to_number,
            }
        )

    def _live_call(self, call_uuid: str) -> FakeCall | None:
        call = self.calls.get(call_uuid)
        return call if call is not None and call.status in LIVE else None

    async def _transfer(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = await self._body(request)
        call = self._live_call(request.match_info["uuid"])
        if call is None:
            return _error(404, "Call not found")
        if body.get("legs") not in ("aleg", "bleg", "both") or not body.get("aleg_url"):
            return _error(400, "legs and aleg_url are required")
        self._restart(call, str(body["aleg_url"]))
        return web.json_response({"api_id": _api_id(), "message": "call transfered"}, status=202)

    async def _hangup(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        await self._body(request)
        call = self._live_call(request.match_info["uuid"])
        if call is None:
            return _error(404, "Call not found")
        call.rest_hangups += 1
        self._spawn(self._end(call, "completed", "NORMAL_CLEARING"))
        return web.Response(status=204)

    async def _cancel(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        await self._body(request)
        call = self._by_request.get(request.match_info["uuid"])
        if call is None or call.status != "ringing":
            return _error(404, "Request not found")
        call.rest_hangups += 1
        self._spawn(self._end(call, "cancel", "ORIGINATOR_CANCEL"))
        return web.Response(status=204)

    async def _dtmf(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = await self._body(request)
        call = self._live_call(request.match_info["uuid"])
        if call is None or call.status != "in-progress":
            return _error(404, "Call not found")
        digits = str(body.get("digits") or "")
        if not digits or body.get("leg", "aleg") not in ("aleg", "bleg"):
            return _error(400, "digits is required")
        call.dtmf_received.append(digits)
        return web.json_response({"api_id": _api_id(), "message": "digits sent"}, status=202)

    async def _record(self, request: web.Request) -> web.Response:
        if (refused := self._authorized(request)) is not None:
            return refused
        body = await self._body(request)
        call = self._live_call(request.match_info["uuid"])
        if call is None:
            return _error(404, "Call not found")
        call.recording_callback = body.get("callback_url")
        recording_id = f"rec-{call.call_uuid}"
        return web.json_response(
            {
                "api_id": _api_id(),
                "message": "call recording started",
                "recording_id": recording_id,
                "url": f"https://media.plivo.example/{recording_id}.mp3",
            },
            status=202,
        )

    # -- the simulated far end ---------------------------------------------------------------

    def dial_in(
        self,
        *,
        from_number: str,
        to_number: str,
        answer_url: str,
        hangup_url: str | None = None,
        script: Sequence[str] | None = None,
    ) -> FakeCall:
        """A caller dials our number: Plivo fetches the application's answer URL."""
        call = FakeCall(
            call_uuid=str(uuid.uuid4()),
            request_uuid=str(uuid.uuid4()),
            direction="inbound",
            from_number=from_number.lstrip("+"),
            to_number=to_number.lstrip("+"),
            answer_url=answer_url,
            hangup_url=hangup_url,
            script=list(self.script if script is None else script),
        )
        self.calls[call.call_uuid] = call
        call.runner = self._spawn(self._run_document(call, answer_url, answering=True))
        return call

    def callee_hangs_up(self, call: FakeCall) -> None:
        """The far end puts the phone down."""
        self._spawn(self._end(call, "completed", "NORMAL_CLEARING", source="Callee"))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _restart(self, call: FakeCall, url: str) -> None:
        if call.runner is not None and call.runner is not asyncio.current_task():
            call.runner.cancel()
        call.runner = self._spawn(self._run_document(call, url, answering=False))

    def _params(self, call: FakeCall, **extra: str) -> dict[str, str]:
        params = {
            "CallUUID": call.call_uuid,
            "ALegUUID": call.call_uuid,
            "From": call.from_number,
            "To": call.to_number,
            "Direction": call.direction,
            "CallStatus": call.status,
            "BillRate": "0.0085",
            "ParentAuthID": self.auth_id,
            "SessionStart": "2026-01-01 10:00:00.000000",
        }
        if call.direction == "outbound":
            params["RequestUUID"] = call.request_uuid
            params["ALegRequestUUID"] = call.request_uuid
        params.update(extra)
        return params

    async def _run_outbound(self, call: FakeCall) -> None:
        await asyncio.sleep(self.ring_ms / 1000)
        if call.outcome != "answer":
            await self._end(call, call.outcome, call.outcome.upper().replace("-", "_"))
            return
        await self._run_document(call, call.answer_url, answering=True)

    async def _run_document(self, call: FakeCall, url: str, *, answering: bool) -> None:
        if answering:
            if call.direction == "outbound":
                call.status = "in-progress"
            params = self._params(call, Event="StartApp")
        else:
            params = self._params(call, Event="Transfer")
        posted = await self.post(url, params)
        if posted is None or posted.status != 200:
            return
        call.documents.append(posted.body)
        await self._execute(call, posted.body)

    async def _execute(self, call: FakeCall, document: str) -> None:
        root = ET.fromstring(document)
        assert root.tag == "Response", document
        if call.status == "ringing" and len(root) and root[0].tag != "Hangup":
            call.status = "in-progress"  # running XML answers an inbound call
        for element in root:
            if call.status not in LIVE:
                return
            if element.tag == "Speak":
                call.heard.append(element.text or "")
                await asyncio.sleep(len(element.text or "") * self.speech_ms_per_char / 1000)
            elif element.tag == "GetInput":
                await self._get_input(call, element)
            elif element.tag == "Wait":
                await asyncio.sleep(float(element.attrib.get("length", "1")))
            elif element.tag == "Stream":
                call.stream_url = (element.text or "").strip()
                call.stream_attrs = dict(element.attrib)
                call.streaming.set()
                # keepCallAlive: the call stays in <Stream> until it ends or is transferred.
                await call.ended.wait()
            elif element.tag == "Hangup":
                call.hangup_reason = element.attrib.get("reason")
                cause = "CALL_REJECTED" if call.hangup_reason == "rejected" else "NORMAL_CLEARING"
                await self._end(call, "completed", cause, source="Plivo")
                return
            else:
                raise AssertionError(f"fake Plivo cannot run <{element.tag}>")

    async def _get_input(self, call: FakeCall, element: ET.Element) -> None:
        assert element.attrib["inputType"] in ("speech", "dtmf", "dtmf speech")
        assert element.attrib.get("method", "POST") == "POST"
        action = element.attrib["action"]
        if not call.script:
            self.callee_hangs_up(call)
            await call.ended.wait()
            return
        await asyncio.sleep(self.reply_ms / 1000)
        line = call.script.pop(0)
        if line.startswith("dtmf:"):
            extra = {"InputType": "dtmf", "Digits": line[5:]}
        else:
            extra = {"InputType": "speech", "Speech": line, "SpeechConfidenceScore": "0.91"}
        # redirect="false": Plivo reports the input and carries on with the next element.
        self._spawn(self.post(action, self._params(call, **extra)))

    async def _end(
        self, call: FakeCall, status: str, cause: str, *, source: str = "API Request"
    ) -> None:
        if call.status not in LIVE:
            return
        call.status = status
        call.hangup_cause = cause
        runner = call.runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
        call.ended.set()
        if call.recording_callback:
            recording_id = f"rec-{call.call_uuid}"
            extra = {
                "RecordUrl": f"https://media.plivo.example/{recording_id}.mp3",
                "RecordingID": recording_id,
                "RecordingDuration": "3",
                "RecordingDurationMs": "3000",
            }
            await self.post(call.recording_callback, self._params(call, **extra))
        if call.hangup_url:
            extra = {"Event": "Hangup", "HangupCause": cause, "HangupSource": source}
            await self.post(call.hangup_url, self._params(call, Duration="3", **extra))

    # -- signed delivery ---------------------------------------------------------------------

    def signed_headers(self, url: str, params: dict[str, str], nonce: str) -> dict[str, str]:
        """The signature headers Plivo puts on a POST of ``params`` to ``url``."""
        pairs = list(params.items())
        headers = {
            "X-Plivo-Signature-V3": sign_v3(self.auth_token, "POST", url, pairs, nonce),
            "X-Plivo-Signature-V3-Nonce": nonce,
        }
        if self.sign_v2_too:
            headers["X-Plivo-Signature-V2"] = sign_v2(self.auth_token, url, nonce)
            headers["X-Plivo-Signature-V2-Nonce"] = nonce
        return headers

    async def post(self, url: str, params: dict[str, str]) -> Posted | None:
        """Deliver a signed callback; sometimes twice, sometimes with an old one re-sent late."""
        number = next(self._callbacks)
        nonce = str(next(self._nonces))
        first = await self._deliver(url, params, nonce)
        if self.duplicate_every and number % self.duplicate_every == 0:
            await self._deliver(url, params, nonce)  # a retry is the same signed request again
        if self.late_every and number % self.late_every == 0 and self._earlier:
            old_url, old_params = self._earlier[number % len(self._earlier)]
            await self._deliver(old_url, old_params, str(next(self._nonces)))
        if "Speech" not in params and "Digits" not in params and len(self._earlier) < 8:
            self._earlier.append((url, params))
        return first

    async def _deliver(self, url: str, params: dict[str, str], nonce: str) -> Posted | None:
        assert self._session is not None
        headers = {
            **self.signed_headers(url, params, nonce),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        try:
            async with self._session.post(url, data=urlencode(params), headers=headers) as reply:
                posted = Posted(url, params, reply.status, await reply.text(), nonce)
        except aiohttp.ClientError:
            return None
        self.posted.append(posted)
        return posted

    async def wait_ended(self, call: FakeCall, timeout_s: float = 20.0) -> None:
        """Wait until the simulated call is over."""
        async with asyncio.timeout(timeout_s):
            await call.ended.wait()

    def call_for_request(self, request_uuid: str) -> FakeCall | None:
        """The call placed by a create request."""
        return self._by_request.get(request_uuid)

    async def stream_of(self, call: FakeCall, timeout_s: float = 20.0) -> str:
        """The ``<Stream>`` URL Plivo was told to connect to for ``call`` (waits for it)."""
        async with asyncio.timeout(timeout_s):
            await call.streaming.wait()
        assert call.stream_url is not None
        return call.stream_url

    def audio_stream(
        self, call: FakeCall, url: str | None = None, *, session: aiohttp.ClientSession
    ) -> PlivoAudioStream:
        """The audio websocket Plivo opens for ``call`` (to its ``<Stream>`` URL by default)."""
        return PlivoAudioStream(session, url or call.stream_url or "", call.call_uuid, self.auth_id)

    async def aclose_calls(self) -> None:
        """End every live call (test teardown)."""
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await self._end(call, "completed", "NORMAL_CLEARING")


FRAME_BYTES = 160  # 20 ms of µ-law at 8 kHz


class PlivoAudioStream(MediaSocket):
    """One Plivo audio-stream websocket to the gateway: Plivo's frames (protocols/plivo.md §5)."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, call_uuid: str, account_id: str
    ) -> None:
        super().__init__(session, url)
        self.call_uuid = call_uuid
        self.account_id = account_id
        self.stream_id = str(uuid.uuid4())
        self.chunk = 0
        self.epoch_ms = 1_700_000_000_000

    async def send(self, message: dict[str, Any]) -> None:
        """A frame with the next sequenceNumber and Plivo's ``extra_headers``."""
        self.sequence += 1
        frame = {**message, "sequenceNumber": self.sequence, "extra_headers": "{}"}
        await self.send_raw(json.dumps(frame))

    async def start(self, call_uuid: str | None = None) -> None:
        """``start`` naming the call (``callId``) and this stream (``streamId``)."""
        start = {
            "callId": call_uuid or self.call_uuid,
            "streamId": self.stream_id,
            "accountId": self.account_id,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        }
        await self.send({"event": "start", "start": start})

    async def media(self, ulaw: bytes) -> None:
        """One inbound audio chunk (``chunk`` from 1, ``timestamp`` epoch ms as a string)."""
        self.chunk += 1
        media = {
            "track": "inbound",
            "timestamp": str(self.epoch_ms + 20 * (self.chunk - 1)),
            "chunk": self.chunk,
            "payload": base64.b64encode(ulaw).decode(),
        }
        await self.send({"event": "media", "streamId": self.stream_id, "media": media})

    async def play(self, audio: bytes, *, frame_s: float = 0.02) -> None:
        """Stream ``audio`` in 20 ms chunks at real-time pace on an absolute clock."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        for offset in range(0, len(audio), FRAME_BYTES):
            await self.media(audio[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff"))
            due += frame_s
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def dtmf(self, digit: str) -> None:
        """A key press."""
        dtmf = {"track": "inbound", "digit": digit, "timestamp": str(self.epoch_ms)}
        await self.send({"event": "dtmf", "streamId": self.stream_id, "dtmf": dtmf})

    async def acknowledge(self, frame: dict[str, Any]) -> None:
        """Plivo answers a ``checkpoint`` with ``playedStream`` once the audio before it played."""
        if frame.get("event") == "checkpoint":
            name = frame["name"]
            await self.send({"event": "playedStream", "streamId": self.stream_id, "name": name})
            self.acknowledged.append(name)

    def played_audio(self) -> list[bytes]:
        """The µ-law payload of every outbound ``playAudio`` frame, in order."""
        return [
            base64.b64decode(frame["media"]["payload"])
            for frame in self.received
            if frame.get("event") == "playAudio"
        ]
