"""The Telnyx Call Control v2 client (SPEC §3.3): REST commands out, signed webhooks in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from voicecall.carriers.api import ApiRequest, ApiResponse, CarrierApiError
from voicecall.carriers.base import (
    CallControl,
    CallStatus,
    Carrier,
    EventSink,
    StreamHooks,
    Verification,
    WebhookReply,
    WebhookRequest,
)
from voicecall.carriers.http import CarrierHttp
from voicecall.carriers.media_stream import StreamTokens
from voicecall.carriers.telnyx import commands
from voicecall.carriers.telnyx.stream import TelnyxStreamProtocol
from voicecall.carriers.telnyx.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TelnyxEvent,
    load_public_key,
    parse_webhook,
    verify_signature,
)
from voicecall.errors import CallEndedError, CallError, InvalidParamsError

__all__ = ["SPEAK_FALLBACK_S", "TelnyxCarrier"]

log = logging.getLogger(__name__)

#: SPEC §2.5: without ``call.speak.ended``, playback counts as finished this long after `speak`.
SPEAK_FALLBACK_S = 60.0
_CALL_ENDED_CODE = "90018"


def _tts_entry(config: Any) -> Mapping[str, Any]:
    tts = getattr(config, "tts", None)
    providers = getattr(tts, "providers", None) or {}
    entry = providers.get(getattr(tts, "provider", None) or "", None)
    return entry if isinstance(entry, Mapping) else {}


def _voice(config: Any) -> str | None:
    """A Telnyx voice from the TTS provider entry (``Provider.Model.Voice``, male or female)."""
    entry = _tts_entry(config)
    for key in ("speakerVoice", "speakerVoiceId", "voice", "voiceId"):
        value = entry.get(key)
        if isinstance(value, str) and ("." in value or value in ("male", "female")):
            return value
    return None


def _locale(config: Any) -> str | None:
    value = _tts_entry(config).get("language")
    return value if isinstance(value, str) and value else None


class TelnyxCarrier(Carrier):
    """Places, answers and drives calls through Telnyx Call Control v2."""

    name = "telnyx"
    supports_pre_connect_dtmf = True
    webhook_signature_headers = ((SIGNATURE_HEADER, TIMESTAMP_HEADER),)

    def __init__(
        self,
        config: Any,
        *,
        http: CarrierHttp | None = None,
        speak_fallback_s: float = SPEAK_FALLBACK_S,
    ) -> None:
        telnyx = config.telnyx
        self._config = config
        self._api_key: str = telnyx.api_key or ""
        self._connection_id: str = telnyx.connection_id or ""
        self._base_url: str = telnyx.api_base_url
        self._public_key = load_public_key(telnyx.public_key) if telnyx.public_key else None
        recording = getattr(config, "recording", None)
        self._record = bool(getattr(recording, "enabled", False))
        self._record_dual = getattr(recording, "channels", "mono") == "dual"
        self._voice = _voice(config)
        self._locale = _locale(config)
        self._speak_fallback_s = speak_fallback_s
        self._http = http
        self._owned_session: aiohttp.ClientSession | None = None
        self._sink: EventSink | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Per call: our callId, playbacks waiting for call.speak.ended (oldest first), the gate
        # that holds speech until pre-connect DTMF has played, inbound calls already answered.
        self._call_ids: dict[str, str] = {}
        self._speaking: dict[str, deque[asyncio.Future[None]]] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._pre_connect_dtmf: dict[str, str] = {}
        self._answered: set[str] = set()
        self._streaming = bool(config.streaming.enabled)
        self._stream_tokens = self.stream_tokens = StreamTokens()
        self._streams_started: set[str] = set()  # calls whose caller is heard on a stream
        self._realtime_mint: Callable[[str, str], str] | None = None

    def stream_protocol(self) -> TelnyxStreamProtocol:
        return TelnyxStreamProtocol()

    def bind_realtime(self, mint: Callable[[str, str], str] | None) -> None:
        """Realtime calls stream to the realtime path with a token from ``mint(call_id, ccid)``.

        Bound by the gateway when the realtime bridge runs (SPEC §3.3, §7.1): conversation calls
        (accepted inbound, outbound ``conversation``) then get the realtime path in the
        ``stream_url`` of ``answer``/``streaming_start`` instead of the classic stream path.
        Unbound, calls take the streaming/classic steps.
        """
        self._realtime_mint = mint

    def _realtime(self) -> Callable[[str, str], str] | None:
        """The bound mint while realtime is on (None: classic streaming or none)."""
        mint = self._realtime_mint
        realtime = getattr(self._config, "realtime", None)
        return mint if mint is not None and getattr(realtime, "enabled", False) else None

    def _media_streams(self) -> bool:
        """Whether conversation calls get a media stream (classic or realtime)."""
        return self._streaming or self._realtime() is not None

    # ---- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        # Telnyx events arrive only through webhooks (handle_webhook feeds CallControl).
        self._sink = sink

    async def start(self) -> None:
        if self._http is None:
            session = self.context.http_session
            if session is None:
                session = self._owned_session = aiohttp.ClientSession()
            self._http = CarrierHttp(
                "telnyx",
                session,
                self._base_url,
                headers={"Authorization": f"Bearer {self._api_key}"},
            )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for waiters in self._speaking.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(CallError("telnyx carrier closed"))
        self._speaking.clear()
        for gate in self._ready.values():
            if not gate.done():
                gate.set_result(None)
        self._ready.clear()
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None
        self._http = None

    # ---- REST ------------------------------------------------------------------------------

    async def _send(self, request: ApiRequest) -> ApiResponse:
        if self._http is None:
            raise CallError("telnyx carrier is not started")
        return await self._http.request(request)

    def _webhook_url(self) -> str:
        url = self.context.webhook_url or getattr(self._config, "public_url", None)
        if not url:
            raise CallError("Webhook URL not configured")
        return str(url)

    async def initiate_call(
        self,
        *,
        call_id: str,
        from_number: str,
        to_number: str,
        mode: str,
        message: str | None,
        dtmf_sequence: str | None,
    ) -> str:
        request = commands.dial(
            connection_id=self._connection_id,
            to_number=to_number,
            from_number=from_number,
            webhook_url=self._webhook_url(),
            call_id=call_id,
            ring_timeout_ms=int(self._config.ring_timeout_ms),
        )
        if dtmf_sequence:
            commands.carrier_dtmf(dtmf_sequence)  # refuse bad digits before dialling
            self._pre_connect_dtmf[call_id] = dtmf_sequence
        try:
            data = (await self._send(request)).json()
        except BaseException:
            self._pre_connect_dtmf.pop(call_id, None)
            raise
        ccid = data.get("data", {}).get("call_control_id") if isinstance(data, dict) else None
        if not isinstance(ccid, str) or not ccid:
            self._pre_connect_dtmf.pop(call_id, None)
            raise CarrierApiError("telnyx", 200, "dial answer has no data.call_control_id")
        self._call_ids[ccid] = call_id
        return ccid

    async def hangup_call(self, provider_call_id: str) -> None:
        try:
            await self._send(commands.hangup(provider_call_id))
        except CarrierApiError as exc:
            # 404, or Telnyx's "call has already ended" (90018): either way the call is gone.
            if not (exc.not_found or str(exc.code) == _CALL_ENDED_CODE):
                raise
            log.info("telnyx call %s was already gone at hangup", provider_call_id)

    async def play_tts(self, provider_call_id: str, text: str) -> None:
        await self._wait_ready(provider_call_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._speaking.setdefault(provider_call_id, deque())
        # Registered before the request: call.speak.ended may overtake the REST answer.
        waiters.append(future)
        try:
            await self._send(
                commands.speak(provider_call_id, text, voice=self._voice, language=self._locale)
            )
            try:
                async with asyncio.timeout(self._speak_fallback_s):
                    await asyncio.shield(future)
            except TimeoutError:
                log.warning(
                    "telnyx call %s: no call.speak.ended within %g s; treating speech as played",
                    provider_call_id,
                    self._speak_fallback_s,
                )
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a hang-up may have failed it unobserved
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters and self._speaking.get(provider_call_id) is waiters:
                del self._speaking[provider_call_id]

    async def start_listening(self, provider_call_id: str, turn_token: str | None) -> None:
        if provider_call_id in self._streams_started:
            return  # the media stream's transcription hears the caller; no Telnyx listen turn
        await self._wait_ready(provider_call_id)
        request = commands.transcription_start(
            provider_call_id,
            call_id=self._call_id_for(provider_call_id),
            turn_token=turn_token,
            language=(self._locale or "en").split("-")[0],
        )
        await self._send(request)

    async def stop_listening(self, provider_call_id: str) -> None:
        if provider_call_id in self._streams_started:
            return
        call_id = self._call_id_for(provider_call_id)
        await self._send(commands.transcription_stop(provider_call_id, call_id=call_id))

    async def send_dtmf(self, provider_call_id: str, digits: str) -> None:
        try:
            request = commands.send_dtmf(provider_call_id, digits)
        except ValueError as exc:
            raise InvalidParamsError(str(exc)) from None
        await self._send(request)

    async def get_call_status(self, provider_call_id: str) -> CallStatus:
        try:
            data = (await self._send(commands.get_call(provider_call_id))).json()
        except CarrierApiError as exc:
            if exc.not_found:
                return CallStatus(status="not-found", terminal=True)
            raise
        alive = data.get("data", {}).get("is_alive") if isinstance(data, dict) else None
        if alive is False:
            return CallStatus(status="ended", terminal=True)
        if alive is True:
            return CallStatus(status="alive", terminal=False)
        return CallStatus(status="unknown", terminal=False)

    # ---- webhooks --------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> Verification:
        check = verify_signature(
            public_key=self._public_key,
            headers=request.headers,
            body=request.body,
            now_s=request.received_at_ms // 1000,
        )
        return Verification(check.ok, check.request_key, check.reason)

    async def handle_webhook(
        self, request: WebhookRequest, verification: Verification, control: CallControl
    ) -> WebhookReply:
        try:
            event = parse_webhook(
                request.body,
                request_key=verification.request_key or "",
                now_ms=request.received_at_ms,
            )
        except InvalidParamsError as exc:
            log.warning("telnyx webhook: %s", exc)
            return WebhookReply(status=400, body=b"Bad Request", replayable=True)
        for warning in event.warnings:
            log.warning("telnyx webhook: %s", warning)
        ccid = event.call_control_id
        if ccid is not None and event.call_id is not None:
            self._call_ids.setdefault(ccid, event.call_id)
        if event.event_type == "call.answered" and ccid is not None:
            self._hold_for_pre_connect_dtmf(event, ccid)
        await control.handle_events(list(event.events))
        if ccid is not None:
            self._after_events(event, ccid, control)
        return WebhookReply()

    def _after_events(self, event: TelnyxEvent, ccid: str, control: CallControl) -> None:
        kind = event.event_type
        if kind == "call.initiated" and event.direction == "inbound":
            self._answer_if_accepted(ccid, control)
        elif kind == "call.answered":
            if self._record:
                self._spawn(self._record_call(ccid))
            self._stream_if_conversation(ccid, control)
        elif kind == "call.speak.ended":
            waiters = self._speaking.get(ccid)
            if waiters:
                future = waiters.popleft()
                if not future.done():
                    future.set_result(None)
        elif kind == "call.hangup":
            self._forget(ccid, event.call_id)
        elif kind in ("streaming.started", "streaming.stopped", "streaming.failed"):
            level = logging.WARNING if kind == "streaming.failed" else logging.INFO
            reason = event.payload.get("failure_reason")
            log.log(level, "telnyx call %s: %s %s", ccid, kind, reason or "")
            if kind == "streaming.failed":
                self._spawn(self._stream_failed(ccid, event, control))

    def _answer_if_accepted(self, ccid: str, control: CallControl) -> None:
        record = control.find_by_provider_id(ccid)
        if record is None or record.ended_at_ms or ccid in self._answered:
            return  # unknown, rejected by the inbound policy (hung up once), or answered
        self._answered.add(ccid)
        self._call_ids[ccid] = record.call_id
        self._spawn(self._answer(ccid, record.call_id))

    async def _answer(self, ccid: str, call_id: str) -> None:
        # An accepted inbound call is a conversation: with streaming or realtime on, the answer
        # itself starts the media stream (the token minted here is the one the socket presents).
        stream = self._stream_params(ccid, call_id) if self._media_streams() else None
        if stream is not None:
            self._streams_started.add(ccid)
        try:
            await self._send(commands.answer(ccid, call_id=call_id, stream=stream))
        except Exception as exc:
            # A redelivered call.initiated may try again.
            self._answered.discard(ccid)
            self._streams_started.discard(ccid)
            log.warning("answering telnyx call %s failed: %s", ccid, exc)

    # ---- media streams (SPEC §3.3, §5) -------------------------------------------------------

    def _stream_params(self, ccid: str, call_id: str) -> commands.StreamParams:
        """The stream fields with a freshly minted token: the realtime path while realtime is
        bound (SPEC §7.1 "Telnyx: realtime path in stream_url"), else the classic stream path."""
        from voicecall.exposure.webhook_url import public_path_prefix, public_route_url

        mint = self._realtime()
        path = self._config.realtime.stream_path if mint else self._config.streaming.stream_path
        base = public_route_url(
            self._webhook_url(),
            path.rstrip("/"),
            prefix=public_path_prefix(self._config),
            websocket=True,
        )
        if mint is not None:
            token = mint(call_id, ccid)
            log.info("telnyx call %s: realtime stream_url sent", call_id)
            return commands.StreamParams(url=f"{base}/{quote(token, safe='')}", token=token)
        token = self._stream_tokens.mint(ccid)
        return commands.StreamParams(url=f"{base}/{token}", token=token)

    def _stream_if_conversation(self, ccid: str, control: CallControl) -> None:
        if not self._media_streams() or ccid in self._streams_started:
            return
        record = control.find_by_provider_id(ccid)
        if record is None or record.ended_at_ms or record.direction != "outbound":
            return
        if (record.mode or "conversation") != "conversation":
            return
        self._streams_started.add(ccid)
        self._spawn(self._start_stream(ccid, record.call_id))

    async def _start_stream(self, ccid: str, call_id: str) -> None:
        await self._wait_ready(ccid)  # pre-connect DTMF plays before the stream starts
        try:
            await self._send(commands.streaming_start(ccid, self._stream_params(ccid, call_id)))
            log.info("telnyx call %s: media stream requested", call_id)
        except Exception as exc:
            self._streams_started.discard(ccid)  # a redelivered call.answered may try again
            log.warning("starting the media stream of telnyx call %s failed: %s", ccid, exc)

    async def _stream_failed(self, ccid: str, event: TelnyxEvent, control: CallControl) -> None:
        """``streaming.failed`` counts as a disconnect of the call's stream (2 s grace)."""
        hooks = control if isinstance(control, StreamHooks) else None
        record = control.find_by_provider_id(ccid)
        if hooks is None or record is None or record.ended_at_ms:
            return
        call_id = record.call_id
        current = hooks.current_stream_id(call_id)
        if current is None:
            # The stream never connected: register the failed one so that its disconnect arms
            # the same grace (a stream that connects within it still keeps the call).
            failed = event.payload.get("stream_id")
            current = f"telnyx-failed:{failed if isinstance(failed, str) else ccid}"
            await hooks.stream_connected(call_id, current)
        await hooks.stream_disconnected(call_id, current)

    async def _record_call(self, ccid: str) -> None:
        try:
            await self._send(commands.record_start(ccid, dual_channel=self._record_dual))
        except Exception as exc:
            log.warning("starting the recording of telnyx call %s failed: %s", ccid, exc)

    # ---- pre-connect DTMF (SPEC §3.5) -------------------------------------------------------

    def _hold_for_pre_connect_dtmf(self, event: TelnyxEvent, ccid: str) -> None:
        digits = self._pre_connect_dtmf.pop(event.call_id or "", None)
        if not digits or ccid in self._ready:
            return
        # Speech and listening wait for this gate, so the greeting follows the digits.
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ready[ccid] = gate
        self._spawn(self._play_pre_connect_dtmf(ccid, digits, gate))

    async def _play_pre_connect_dtmf(
        self, ccid: str, digits: str, gate: asyncio.Future[None]
    ) -> None:
        try:
            await self._send(commands.send_dtmf(ccid, digits))
            await asyncio.sleep(commands.dtmf_duration_ms(digits) / 1000)
        except Exception as exc:
            log.warning("telnyx call %s: pre-connect DTMF failed: %s", ccid, exc)
        finally:
            if not gate.done():
                gate.set_result(None)
            if self._ready.get(ccid) is gate:
                del self._ready[ccid]

    async def _wait_ready(self, ccid: str) -> None:
        gate = self._ready.get(ccid)
        if gate is not None:
            await asyncio.shield(gate)

    # ---- bookkeeping -----------------------------------------------------------------------

    def _call_id_for(self, ccid: str) -> str:
        call_id = self._call_ids.get(ccid)
        if call_id is None and self.control is not None:
            record = self.control.find_by_provider_id(ccid)
            call_id = record.call_id if record is not None else None
        return call_id or ccid

    def _forget(self, ccid: str, call_id: str | None) -> None:
        for future in self._speaking.pop(ccid, deque()):
            if not future.done():
                future.set_exception(CallEndedError(f"call ended: {ccid}"))
        self._call_ids.pop(ccid, None)
        self._answered.discard(ccid)
        self._streams_started.discard(ccid)
        self._stream_tokens.forget(ccid)
        self._pre_connect_dtmf.pop(call_id or "", None)

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
