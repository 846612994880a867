"""A faithful fake Twilio on 127.0.0.1: the 2010-04-01 Calls REST API and a call simulator.

The simulator drives a gateway the way Twilio does: it posts signed status callbacks, fetches
the voice URL, executes the TwiML it gets back (``Say``, ``Play digits``, ``Gather``,
``Redirect``, ``Pause``, ``Hangup``, ``Reject``, ``Enqueue``), posts Gather results, and — when
asked — delivers a webhook twice (a retry with a new idempotency token) or the early status
callbacks out of order. A REST update replaces the document being executed, as on Twilio.
Asynchronous answering-machine detection posts the scripted ``AnsweredBy`` verdicts to the
``AsyncAmdStatusCallback`` once the first document runs; recordings (``Record=true`` on create,
or ``POST /Calls/{sid}/Recordings.json``) post their ``completed`` callback when the call ends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["FakeCall", "FakeTwilio", "RestCall", "sign", "wait_for"]

_API = "/2010-04-01/Accounts/{account}"


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature the way Twilio computes it (independent of the gateway's code)."""
    pairs = sorted(set(params))
    data = url + "".join(k + v for k, v in pairs)
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class RestCall:
    """One REST request the gateway made."""

    method: str
    path: str
    form: list[tuple[str, str]]


@dataclass
class FakeCall:
    """One simulated call: what the callee heard, pressed and answered."""

    sid: str
    direction: str  # outbound-api | inbound
    from_: str
    to: str
    status: str = "queued"
    status_callback: str | None = None
    answer_lines: deque[str] = field(default_factory=deque)
    answer_only_turns: bool = True
    heard: list[str] = field(default_factory=list)
    digits_played: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    sequence: int = 0
    task: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    timeline: list[str] = field(default_factory=list)  # "amd:<verdict>" and "say:<text>", in order
    recording_callbacks: list[tuple[str, str]] = field(default_factory=list)  # (sid, url)

    def json(self, account: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": account,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "direction": self.direction,
            "api_version": "2010-04-01",
            "answered_by": None,
            "uri": f"{_API.format(account=account)}/Calls/{self.sid}.json",
        }


class FakeTwilio:
    """The fake: ``await start()`` gives its base URL for ``twilio.apiBaseUrl``."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.rest: list[RestCall] = []
        self.calls: dict[str, FakeCall] = {}
        self.webhooks: list[tuple[str, dict[str, str], int, str]] = []
        self.retry_webhooks = False
        self.status_out_of_order = False
        self.answer_lines: list[str] = []
        self.amd_verdicts: list[str] = []  # AnsweredBy values posted in order for AsyncAmd calls
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- server ------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        api = _API.format(account="{account}")
        app.router.add_post(f"{api}/Calls.json", self._create)
        app.router.add_route("*", f"{api}/Calls/{{sid}}.json", self._call)
        app.router.add_post(f"{api}/Calls/{{sid}}/Recordings.json", self._start_recording)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession()
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        for call in self.calls.values():
            if call.task is not None:
                call.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _auth_ok(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}" and (
            request.match_info["account"] == self.account_sid
        )

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        body = {"code": code, "message": message, "more_info": "", "status": status}
        return web.json_response(body, status=status)

    async def _create(self, request: web.Request) -> web.Response:
        if not self._auth_ok(request):
            return self._error(401, 20003, "Authenticate")
        form = [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        self.rest.append(RestCall("POST", request.path, form))
        data = dict(form)
        if not data.get("To") or not data.get("From"):
            return self._error(400, 21201, "No 'To' number is specified")
        if ("Url" in data) == ("Twiml" in data):
            return self._error(400, 21205, "Url or Twiml is required")
        call = FakeCall(
            sid="CA" + uuid.uuid4().hex,
            direction="outbound-api",
            from_=data["From"],
            to=data["To"],
            status_callback=data.get("StatusCallback"),
            answer_lines=deque(self.answer_lines),
        )
        self.calls[call.sid] = call
        if data.get("Record") == "true" and data.get("RecordingStatusCallback"):
            call.recording_callbacks.append(
                ("RE" + uuid.uuid4().hex, data["RecordingStatusCallback"])
            )
        if data.get("AsyncAmd") == "true" and data.get("AsyncAmdStatusCallback"):
            self._spawn(self._detect_machine(call, data["AsyncAmdStatusCallback"]))
        call.task = self._spawn(self._run_outbound(call, data.get("Twiml"), data.get("Url")))
        return web.json_response(call.json(self.account_sid), status=201)

    async def _start_recording(self, request: web.Request) -> web.Response:
        if not self._auth_ok(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.match_info["sid"])
        form = [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        self.rest.append(RestCall("POST", request.path, form))
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        if call.ended.is_set():
            return self._error(400, 21220, "Call is not in-progress. Cannot create recording.")
        sid = "RE" + uuid.uuid4().hex
        callback = dict(form).get("RecordingStatusCallback")
        if callback:
            call.recording_callbacks.append((sid, callback))
        body = {"sid": sid, "call_sid": call.sid, "status": "in-progress", "channels": 1}
        return web.json_response(body, status=201)

    async def _detect_machine(self, call: FakeCall, callback: str) -> None:
        """Post each scripted verdict once the call runs its first document."""
        await wait_for(lambda: bool(call.documents) or call.ended.is_set())
        for verdict in self.amd_verdicts:
            if call.ended.is_set():
                return
            call.timeline.append(f"amd:{verdict}")
            params = [
                ("AccountSid", self.account_sid),
                ("CallSid", call.sid),
                ("AnsweredBy", verdict),
                ("MachineDetectionDuration", "2400"),
            ]
            await self.post(callback, params)

    async def _call(self, request: web.Request) -> web.Response:
        if not self._auth_ok(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.match_info["sid"])
        form = [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        self.rest.append(RestCall(request.method, request.path, form))
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        if request.method == "GET":
            return web.json_response(call.json(self.account_sid))
        data = dict(form)
        if call.status in ("completed", "canceled", "failed", "busy", "no-answer"):
            if "Twiml" in data or "Url" in data:
                return self._error(400, 21220, "Call is not in-progress. Cannot redirect.")
            return web.json_response(call.json(self.account_sid))
        if data.get("Status") in ("completed", "canceled"):
            self._replace(call, None)
            await self._end(call, data["Status"])
        elif "Twiml" in data:
            self._replace(call, self._execute(call, data["Twiml"]))
        elif "Url" in data:
            self._replace(call, self._fetch_and_execute(call, data["Url"]))
        return web.json_response(call.json(self.account_sid))

    def _replace(self, call: FakeCall, work: Any) -> None:
        current = asyncio.current_task()
        if call.task is not None and call.task is not current:
            call.task.cancel()
        call.task = self._spawn(work) if work is not None else None

    # -- webhooks ----------------------------------------------------------------------------

    def _params(self, call: FakeCall, **extra: str) -> list[tuple[str, str]]:
        base = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Direction": call.direction,
            "From": call.from_,
            "To": call.to,
            "Caller": call.from_,
            "Called": call.to,
        }
        base.update(extra)
        return list(base.items())

    async def post(self, url: str, params: list[tuple[str, str]]) -> str:
        """POST a signed webhook (twice when retrying) and return the body of the first answer."""
        assert self._session is not None
        signature = sign(self.auth_token, url, params)
        first = ""
        for attempt in range(2 if self.retry_webhooks else 1):
            headers = {
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            async with self._session.post(url, data=params, headers=headers) as response:
                text = await response.text()
                self.webhooks.append((url, dict(params), response.status, text))
            if attempt == 0:
                first = text
        return first

    async def _status(self, call: FakeCall, status: str) -> None:
        call.status = status
        if call.status_callback is None:
            return
        call.sequence += 1
        params = self._params(
            call, CallbackSource="call-progress-events", SequenceNumber=str(call.sequence - 1)
        )
        await self.post(call.status_callback, params)

    async def _end(self, call: FakeCall, status: str = "completed") -> None:
        if call.ended.is_set():
            return
        call.ended.set()
        await self._status(call, status)
        if call.recording_callbacks:
            self._spawn(self._post_recordings(call))  # after the call, as Twilio does

    async def _post_recordings(self, call: FakeCall) -> None:
        for sid, callback in call.recording_callbacks:
            params = [
                ("AccountSid", self.account_sid),
                ("CallSid", call.sid),
                ("RecordingSid", sid),
                (
                    "RecordingUrl",
                    f"{self.base_url}{_API.format(account=self.account_sid)}/Recordings/{sid}",
                ),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", "7"),
                ("RecordingChannels", "1"),
                ("ErrorCode", "0"),
            ]
            await self.post(callback, params)

    async def _run_outbound(self, call: FakeCall, inline: str | None, url: str | None) -> None:
        early = ["initiated", "ringing"]
        if self.status_out_of_order:
            await self._status(call, "in-progress")
            for status in early:
                call.sequence += 1
                params = self._params(call, CallbackSource="call-progress-events")
                params = [(k, status if k == "CallStatus" else v) for k, v in params]
                assert call.status_callback is not None
                await self.post(call.status_callback, params)
        else:
            for status in [*early, "in-progress"]:
                await self._status(call, status)
        if inline is not None:
            await self._execute(call, inline)
        elif url is not None:
            await self._fetch_and_execute(call, url)

    async def dial_in(self, from_: str, to: str, voice_url: str) -> FakeCall:
        """An inbound call: Twilio fetches the number's voice URL and runs the answer."""
        call = FakeCall(
            sid="CA" + uuid.uuid4().hex,
            direction="inbound",
            from_=from_,
            to=to,
            status="ringing",
            answer_lines=deque(self.answer_lines),
            answer_only_turns=False,
        )
        self.calls[call.sid] = call
        call.task = self._spawn(self._fetch_and_execute(call, voice_url))
        return call

    async def hang_up(self, sid: str) -> None:
        """The callee hangs up."""
        call = self.calls[sid]
        self._replace(call, None)
        await self._end(call)

    # -- TwiML execution ---------------------------------------------------------------------

    async def _fetch_and_execute(self, call: FakeCall, url: str) -> None:
        if call.status == "queued":
            call.status = "in-progress"
        document = await self.post(url, self._params(call))
        await self._execute(call, document)

    async def _execute(self, call: FakeCall, document: str) -> None:
        call.documents.append(document)
        root = ET.fromstring(document)
        for verb in root:
            call.verbs.append(verb.tag)
            if verb.tag == "Say":
                call.heard.append(verb.text or "")
                call.timeline.append(f"say:{verb.text or ''}")
            elif verb.tag == "Play" and verb.get("digits") is not None:
                call.digits_played.append(verb.get("digits") or "")
            elif verb.tag == "Pause":
                await asyncio.sleep(0.01)
            elif verb.tag == "Gather":
                action = verb.get("action") or ""
                if call.answer_only_turns and "turnToken=" not in action:
                    await asyncio.Event().wait()  # silent callee: until the document is replaced
                if not call.answer_lines:
                    await asyncio.Event().wait()
                line = call.answer_lines.popleft()
                reply = await self.post(
                    action, self._params(call, SpeechResult=line, Confidence="0.93")
                )
                return await self._execute(call, reply)
            elif verb.tag == "Redirect":
                return await self._fetch_and_execute(call, verb.text or "")
            elif verb.tag == "Hangup":
                return await self._end(call)
            elif verb.tag == "Reject":
                call.ended.set()
                call.status = "canceled"
                return None
            elif verb.tag == "Enqueue":
                await asyncio.Event().wait()  # held until a REST redirect dequeues the caller
        await self._end(call)
        return None

    async def wait_ended(self, sid: str) -> FakeCall:
        """Wait until the simulated call is over."""
        call = self.calls[sid]
        await asyncio.wait_for(call.ended.wait(), timeout=20)
        return call

    def rest_for(self, sid: str) -> list[RestCall]:
        """The REST requests that addressed one call."""
        return [r for r in self.rest if f"/Calls/{sid}" in r.path]


async def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until true (the simulator runs on the same loop)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)
