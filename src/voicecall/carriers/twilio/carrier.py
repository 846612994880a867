"""The Twilio carrier: REST control over the shared session and the §3.2 webhook decisions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from voicecall.calls.view import CallView
from voicecall.carriers.api import ApiRequest, ApiResponse, CarrierApiError
from voicecall.carriers.base import (
    CallControl,
    CallStatus,
    Carrier,
    EventSink,
    Verification,
    WebhookReply,
    WebhookRequest,
)
from voicecall.carriers.http import CarrierHttp, basic_auth
from voicecall.carriers.media_stream import StreamTokens
from voicecall.carriers.twilio import rest, twiml
from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.carriers.twilio.webhook import SIGNATURE_HEADER, parse_webhook, verify_signature
from voicecall.errors import CallError
from voicecall.media.dtmf import dtmf_ulaw

__all__ = ["TwilioCarrier"]

log = logging.getLogger(__name__)

_TWIML_RETRY_DELAYS_S = (0.25, 0.75)  # error 21220 ("call not in-progress yet"), SPEC §3.1
_CALL_NOT_READY = 21220
_HOLD_MUSIC_PATH = "/voice/hold-music"
_MACHINE_VERDICTS = ("machine_start", "machine_end_", "fax")  # AnsweredBy values (prefixes)


def _xml(document: str) -> WebhookReply:
    return WebhookReply(body=twiml.served(document).encode(), content_type="text/xml")


class TwilioCarrier(Carrier):
    """Twilio Programmable Voice: inline/served TwiML, Gather turns, signed webhooks."""

    name = "twilio"
    supports_pre_connect_dtmf = True
    supports_inbound_queue = True
    webhook_signature_headers = ((SIGNATURE_HEADER,),)
    #: SPEC §4.1 step 8: a replayed Twilio webhook always gets an empty document.
    webhook_replay_reply = _xml(twiml.empty())

    def __init__(self, config: Any) -> None:
        self._config = config
        twilio = config.twilio
        self._account_sid: str = twilio.account_sid or ""
        self._auth_token: str = twilio.auth_token or ""
        self._base_url: str = twilio.rest_base_url()
        self._http: CarrierHttp | None = None
        self._sink: EventSink | None = None
        self._one_shot: dict[str, str] = {}  # callId -> TwiML served once (DTMF, long notify)
        self._notify_on_answer: set[str] = set()  # callIds whose notify TwiML carries the message
        self._holding: set[str] = set()  # callIds whose opening waits for the AMD verdict
        self._leaving_message: set[str] = set()  # callIds speaking their voicemail message
        self._recording: set[str] = set()  # callIds whose inbound recording was requested
        self._tasks: set[asyncio.Task[None]] = set()
        self._sleep = asyncio.sleep
        self._stream_tokens = self.stream_tokens = StreamTokens()
        self._realtime_mint: Callable[[str, str], str] | None = None

    def stream_protocol(self) -> TwilioStreamProtocol:
        return TwilioStreamProtocol()

    def bind_realtime(self, mint: Callable[[str, str], str] | None) -> None:
        """Realtime calls get T-REALTIME with a token from ``mint(call_id, provider_call_id)``.

        Bound by the gateway when the realtime bridge runs (SPEC §3.2 step 8); unbound, calls
        take the streaming/classic steps.
        """
        self._realtime_mint = mint

    # -- lifecycle ---------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    async def start(self) -> None:
        session = self.context.http_session
        if session is not None:
            headers = {"Authorization": basic_auth(self._account_sid, self._auth_token)}
            self._http = CarrierHttp("twilio", session, self._base_url, headers=headers)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._http = None
        self._one_shot.clear()
        for calls in (self._notify_on_answer, self._holding, self._leaving_message):
            calls.clear()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        url = self.context.webhook_url or self._config.public_url
        if not url:
            raise CallError("Webhook URL not configured")
        return str(url)

    async def _send(self, request: ApiRequest) -> ApiResponse:
        if self._http is None:
            raise CallError("twilio carrier is not started (no HTTP session)")
        return await self._http.request(request)

    def _voice(self) -> str:
        return twiml.voice_for(self._config.tts)

    def _locale(self) -> str:
        return twiml.locale_for(self._config.tts)

    def _keepalive_url(self, call_id: str) -> str:
        return twiml.with_query(self.webhook_url, {"callId": call_id, "flow": "keepalive"})

    def _action_url(self, call_id: str, turn_token: str | None) -> str:
        params = {"callId": call_id}
        if turn_token:
            params["turnToken"] = turn_token
        return twiml.with_query(self.webhook_url, params)

    def _speak_doc(self, call_id: str, text: str, turn_token: str | None) -> str:
        return twiml.speak(
            text,
            voice=self._voice(),
            locale=self._locale(),
            action_url=self._action_url(call_id, turn_token),
            keepalive_url=self._keepalive_url(call_id),
        )

    def _listen_doc(self, call_id: str, turn_token: str | None) -> str:
        return twiml.listen(
            locale=self._locale(),
            action_url=self._action_url(call_id, turn_token),
            keepalive_url=self._keepalive_url(call_id),
        )

    def _view_for(self, provider_call_id: str) -> CallView | None:
        control = self.control
        if control is None:
            return None
        record = control.find_by_provider_id(provider_call_id)
        return control.call_view(record.call_id) if record is not None else None

    async def _update_twiml(self, provider_call_id: str, document: str) -> None:
        request = rest.update_twiml(self._account_sid, provider_call_id, document)
        await self._send_when_ready(request)

    async def _send_when_ready(self, request: ApiRequest) -> None:
        """Send, retrying while Twilio says the call is not in progress yet (error 21220)."""
        for delay in (*_TWIML_RETRY_DELAYS_S, None):
            try:
                await self._send(request)
                return
            except CarrierApiError as exc:
                if exc.code != _CALL_NOT_READY or delay is None:
                    raise
                await self._sleep(delay)

    # -- Carrier: REST -------------------------------------------------------------------------

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
        webhook = self.webhook_url
        voicemail = self._config.voicemail if self._config.voicemail.detection == "twilio" else None
        inline: str | None = None
        if mode == "notify" and message:
            document = twiml.notify(message, self._voice())
            # AMD needs the voice fetch to hold the message; long documents cannot go inline.
            if voicemail is None and len(document) <= rest.MAX_INLINE_TWIML_CHARS:
                inline = document
            elif voicemail is None:
                self._one_shot[call_id] = document
            if voicemail is None:
                # The document speaks the message once the callee answers (transcript then).
                self._notify_on_answer.add(call_id)
        if dtmf_sequence:
            # The redirect must differ from the first voice fetch (same URL and parameters would
            # be the same signed request, which the replay cache answers with T-EMPTY).
            redirect = twiml.with_query(webhook, {"callId": call_id, "flow": "predial"})
            self._one_shot[call_id] = twiml.play_dtmf(dtmf_sequence, redirect)
        recording = self._config.recording
        request = rest.create_call(
            self._account_sid,
            to=to_number,
            from_=from_number,
            webhook_url=webhook,
            call_id=call_id,
            ring_timeout_ms=self._config.ring_timeout_ms,
            twiml=inline,
            voicemail=voicemail,
            recording_channels=recording.channels if recording.enabled else None,
        )
        try:
            response = await self._send(request)
        except BaseException:
            self._one_shot.pop(call_id, None)
            self._notify_on_answer.discard(call_id)
            raise
        data = response.json()
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not sid:
            self._one_shot.pop(call_id, None)
            self._notify_on_answer.discard(call_id)
            raise CallError("twilio API error: create call answered without a sid")
        return sid

    async def hangup_call(self, provider_call_id: str) -> None:
        view = self._view_for(provider_call_id)
        ringing = view is not None and view.record.answered_at_ms is None
        request = rest.hang_up(self._account_sid, provider_call_id, not_yet_answered=ringing)
        try:
            await self._send(request)
        except CarrierApiError as exc:
            if not exc.not_found:
                raise

    async def play_tts(self, provider_call_id: str, text: str) -> None:
        view = self._view_for(provider_call_id)
        if view is None:
            raise CallError(f"call not found for {provider_call_id}")
        if view.stream_connected:
            # Never replace <Connect><Stream> with a TwiML update (SPEC §3.2, §8.2).
            raise CallError("telephony TTS unavailable while a media stream is active")
        call_id = view.record.call_id
        if view.record.mode == "notify" and view.record.direction == "outbound":
            document = twiml.notify(text, self._voice())
        else:
            document = self._speak_doc(call_id, text, view.turn_token)
        await self._update_twiml(provider_call_id, document)

    async def start_listening(self, provider_call_id: str, turn_token: str | None) -> None:
        """Nothing to send: every speaking document (T-SPEAK) already ends in a listening
        ``<Gather>`` whose action URL carries the turn token."""

    async def stop_listening(self, provider_call_id: str) -> None:
        """Nothing to send: a Gather result simply stops being awaited."""

    async def send_dtmf(self, provider_call_id: str, digits: str) -> None:
        view = self._view_for(provider_call_id)
        if view is None:
            raise CallError(f"call not found for {provider_call_id}")
        if view.stream_connected:
            # SPEC §3.5 (I2): a TwiML update would replace <Connect><Stream> and end the stream,
            # so the digits go in-band, as Q.23 tones queued after the audio already sent.
            sender = self.stream_sender
            if sender is None or not await sender(view.record.call_id, dtmf_ulaw(digits)):
                raise CallError("the call's media stream is not accepting audio; DTMF not sent")
            return
        document = twiml.play_dtmf(digits, self._keepalive_url(view.record.call_id))
        await self._update_twiml(provider_call_id, document)

    async def get_call_status(self, provider_call_id: str) -> CallStatus:
        try:
            response = await self._send(rest.fetch_call(self._account_sid, provider_call_id))
        except CarrierApiError as exc:
            if exc.not_found:
                return CallStatus("not-found", True)
            raise
        data = response.json()
        status = str(data.get("status", "unknown")) if isinstance(data, dict) else "unknown"
        return CallStatus(status, status in rest.TERMINAL_STATUSES)

    async def dequeue_call(self, provider_call_id: str, call_id: str) -> None:
        url = twiml.with_query(self.webhook_url, {"callId": call_id})
        await self._send(rest.redirect_call(self._account_sid, provider_call_id, url))

    # -- Carrier: webhooks ---------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> Verification:
        check = verify_signature(
            self._auth_token,
            url=request.url,
            signature=request.headers.get(SIGNATURE_HEADER),
            body=request.body,
            query=request.query,
            public_url=request.public_url,
            host_header=request.host_header,
        )
        return Verification(ok=check.ok, request_key=check.request_key, reason=check.reason)

    async def handle_webhook(
        self, request: WebhookRequest, verification: Verification, control: CallControl
    ) -> WebhookReply:
        params: dict[str, str] = {}
        if "bodySHA256" not in request.query:
            for key, value in parse_qsl(request.body.decode("utf-8", "replace"), True):
                params.setdefault(key, value)
        call_sid = params.get("CallSid") or None
        call_id = request.query.get("callId") or None
        if call_id is None and call_sid:
            known = control.find_by_provider_id(call_sid)
            call_id = known.call_id if known is not None else None
        hook = parse_webhook(
            params,
            request.query,
            dedupe_key=verification.request_key or "",
            call_id=call_id,
            now_ms=request.received_at_ms,
        )
        # 1. status / AMD / recording callbacks.
        if hook.kind in ("status", "amd", "recording"):
            events = hook.events
            if call_id in self._leaving_message:
                # The voicemail message was spoken; its <Hangup/> ends the call as `voicemail`.
                events = [_as_voicemail(event) for event in events]
            await control.handle_events(events)
            if call_id is not None:
                await self._after_callback(call_id, hook, control)
            return _xml(twiml.empty())
        # 2. keep-alive redirects (a held opening is decided again on each one).
        if hook.flow == "keepalive":
            view = control.call_view(call_id) if call_id else None
            if view is not None and call_id in self._holding:
                stream_doc = self._realtime_doc(view, request) or self._stream_doc(view, request)
                if stream_doc is not None:
                    return _xml(stream_doc)
                return _xml(await self._classic_doc(view, control, request.received_at_ms))
            return _xml(self._idle_doc(view))
        inbound = hook.direction == "inbound"
        await control.handle_events(hook.events, in_band_rejection=inbound)
        if call_id is None and call_sid:
            known = control.find_by_provider_id(call_sid)
            call_id = known.call_id if known is not None else None
        view = control.call_view(call_id) if call_id else None
        # 3. Gather results.
        if hook.gather_result:
            return _xml(self._idle_doc(view))
        # 4. stored one-shot TwiML (pre-connect DTMF, long notify).
        if call_id and call_id in self._one_shot:
            log.info("initial TwiML consumed for call %s", call_id)
            return _xml(self._one_shot.pop(call_id))
        # 5. inbound refused by the policy: in band, no REST hangup (I20).
        if inbound and view is None:
            record = control.find_by_provider_id(call_sid) if call_sid else None
            if record is not None and record.metadata.get("rejectionReason") == "inbound-policy":
                return _xml(twiml.reject())
            return _xml(twiml.empty())
        # 6. inbound while at capacity (I11).
        if inbound and view is not None and view.queued:
            return _xml(twiml.queue(self._hold_url()))
        # 7. not a call of ours and not answered.
        ours = call_id is not None and hook.direction == "outbound"
        if not inbound and not ours and hook.call_status != "in-progress":
            return _xml(twiml.empty())
        if view is None:
            return _xml(twiml.empty())
        if inbound:
            await control.handle_events([self._answered_event(hook, view, request)])
            view = control.call_view(view.record.call_id) or view
            self._start_inbound_recording(view)
        # 8. realtime (conversation): the call talks to the realtime model over a media stream.
        realtime_doc = self._realtime_doc(view, request)
        if realtime_doc is not None:
            return _xml(realtime_doc)
        # 9. streaming (conversation): the caller's audio comes over a media stream.
        stream_doc = self._stream_doc(view, request)
        if stream_doc is not None:
            return _xml(stream_doc)
        return _xml(await self._classic_doc(view, control, request.received_at_ms))

    def _hold_for_verdict(self, view: CallView, now_ms: int) -> str | None:
        """T-KEEPALIVE while the AMD verdict is pending (the opening waits for it), else None."""
        call_id = view.record.call_id
        if self._voicemail_pending(view, now_ms):
            self._holding.add(call_id)
            return twiml.keepalive(self._keepalive_url(call_id))
        self._holding.discard(call_id)
        return None

    # -- decisions -------------------------------------------------------------------------------

    def _idle_doc(self, view: CallView | None) -> str:
        """T-LISTEN for a conversation (or a pending turn), else T-KEEPALIVE."""
        if view is None:
            return twiml.empty()
        record = view.record
        conversation = record.direction == "inbound" or record.mode == "conversation"
        if conversation or view.has_waiter:
            return self._listen_doc(record.call_id, view.turn_token)
        return twiml.keepalive(self._keepalive_url(record.call_id))

    async def _classic_doc(self, view: CallView, control: CallControl, now_ms: int) -> str:
        record = view.record
        call_id = record.call_id
        hold = self._hold_for_verdict(view, now_ms)
        if hold is not None:
            return hold
        message = await control.claim_initial_message(call_id)
        if message:
            if record.mode == "notify" and record.direction == "outbound":
                return twiml.notify(message, self._voice())
            fresh = control.call_view(call_id)
            return self._speak_doc(call_id, message, fresh.turn_token if fresh else None)
        return self._idle_doc(control.call_view(call_id) or view)

    def _realtime_doc(self, view: CallView, request: WebhookRequest) -> str | None:
        """T-REALTIME with a freshly minted token, when the realtime bridge takes this call.

        Conversation calls only (inbound calls the policy let in, outbound ``conversation``):
        notify calls never open media streams (SPEC §2.5) and keep their classic documents.
        An outbound call whose answering-machine verdict is pending is held as for T-STREAM.
        The URL follows the webhook URL's scheme like T-STREAM (``wss`` for an https URL).
        """
        from voicecall.exposure.webhook_url import public_path_prefix, public_route_url

        mint = self._realtime_mint
        record = view.record
        conversation = record.direction == "inbound" or record.mode == "conversation"
        pcid = record.provider_call_id
        if mint is None or not self._config.realtime.enabled or not conversation or not pcid:
            return None
        hold = self._hold_for_verdict(view, request.received_at_ms)
        if hold is not None:
            return hold
        token = mint(record.call_id, pcid)
        base = public_route_url(
            self.webhook_url,
            self._config.realtime.stream_path.rstrip("/"),
            prefix=public_path_prefix(self._config),
            websocket=True,
            request_host=request.host_header,
        )
        log.info("realtime TwiML served for call %s", record.call_id)
        return twiml.realtime(f"{base}/{quote(token, safe='')}")

    def _stream_doc(self, view: CallView, request: WebhookRequest) -> str | None:
        """T-STREAM with a freshly minted token, when streaming applies to this call.

        While an outbound call's answering-machine verdict is pending it is held (T-KEEPALIVE)
        instead: a machine never gets the stream, so ``leave-message`` speaks the message with
        carrier speech and hangs up; a human verdict redirects here and gets the stream.
        """
        from voicecall.exposure.webhook_url import public_path_prefix, public_route_url

        record = view.record
        conversation = record.direction == "inbound" or record.mode == "conversation"
        pcid = record.provider_call_id
        if not self._config.streaming.enabled or not conversation or not pcid:
            return None
        hold = self._hold_for_verdict(view, request.received_at_ms)
        if hold is not None:
            return hold
        url = public_route_url(
            self.webhook_url,
            self._config.streaming.stream_path,
            prefix=public_path_prefix(self._config),
            websocket=True,
            request_host=request.host_header,
        )
        token = self._stream_tokens.mint(pcid)
        log.info("stream TwiML served for call %s", record.call_id)
        return twiml.stream(url, token)

    def _voicemail_pending(self, view: CallView, now_ms: int) -> bool:
        record = view.record
        if self._config.voicemail.detection != "twilio" or record.direction != "outbound":
            return False
        verdict = record.metadata.get("answeredBy")
        if isinstance(verdict, str) and not verdict.startswith(_MACHINE_VERDICTS):
            return False
        # A machine verdict never releases the opening: the verdict handler hangs up or leaves
        # the message (leave-message waits past machine_start for the end of the greeting).
        waited_ms = now_ms - (record.answered_at_ms or record.started_at_ms)
        return bool(waited_ms < self._config.voicemail.hold_opening_max_ms)

    # -- callbacks: answer, AMD verdicts, recording ----------------------------------------------

    async def _after_callback(self, call_id: str, hook: Any, control: CallControl) -> None:
        answered = hook.kind == "status" and hook.call_status == "in-progress"
        if answered and call_id in self._notify_on_answer:
            self._notify_on_answer.discard(call_id)
            await control.claim_initial_message(call_id)  # the bot transcript entry
        if hook.kind == "status" and control.call_view(call_id) is None:
            for calls in (self._notify_on_answer, self._holding, self._leaving_message):
                calls.discard(call_id)
            self._recording.discard(call_id)
        if hook.kind == "amd":
            for event in hook.events:
                await self._on_verdict(call_id, str(event["answeredBy"]), control, event)

    async def _on_verdict(
        self, call_id: str, answered_by: str, control: CallControl, event: dict[str, Any]
    ) -> None:
        """SPEC §3.2 Voicemail: hang up on a machine, leave the message, or proceed."""
        view = control.call_view(call_id)
        settings = self._config.voicemail
        if view is None or settings.detection != "twilio" or view.record.direction != "outbound":
            return
        pcid = view.record.provider_call_id or ""
        machine = answered_by.startswith(_MACHINE_VERDICTS)
        if answered_by == "fax" or (machine and settings.on_machine == "hang-up"):
            self._holding.discard(call_id)
            await control.handle_events([_ended(event, "voicemail")])
            await self.hangup_call(pcid)
        elif machine:
            if not answered_by.startswith("machine_end_") or call_id in self._leaving_message:
                return  # the greeting is still playing: wait for the beep (or its end)
            await self._leave_message(view, control, event)
        elif call_id in self._holding:
            # A human (or unknown): the held opening goes out now rather than at the next
            # keep-alive; the flow query keeps this fetch distinct from the first one.
            self._holding.discard(call_id)
            url = twiml.with_query(self.webhook_url, {"callId": call_id, "flow": "amd"})
            await self._send(rest.redirect_call(self._account_sid, pcid, url))

    async def _leave_message(
        self, view: CallView, control: CallControl, event: dict[str, Any]
    ) -> None:
        call_id = view.record.call_id
        pcid = view.record.provider_call_id or ""
        self._holding.discard(call_id)
        message = None if view.stream_connected else await control.claim_initial_message(call_id)
        if not message:
            if view.stream_connected:
                log.warning("voicemail for %s: no TwiML update on a live stream", call_id)
            await control.handle_events([_ended(event, "voicemail")])
            await self.hangup_call(pcid)
            return
        self._leaving_message.add(call_id)
        log.info("leaving a voicemail message on call %s", call_id)
        await self._update_twiml(pcid, twiml.notify(message, self._voice()))

    def _start_inbound_recording(self, view: CallView) -> None:
        recording = self._config.recording
        call_id = view.record.call_id
        pcid = view.record.provider_call_id
        if not recording.enabled or not pcid or call_id in self._recording:
            return
        self._recording.add(call_id)
        request = rest.start_recording(
            self._account_sid,
            pcid,
            webhook_url=self.webhook_url,
            call_id=call_id,
            channels=recording.channels,
        )
        # After the reply: Twilio answers the call only once it runs the TwiML we return.
        task = asyncio.ensure_future(self._record(call_id, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, call_id: str, request: ApiRequest) -> None:
        try:
            await self._send_when_ready(request)
        except (CallError, CarrierApiError) as exc:
            log.warning("could not start recording call %s: %s", call_id, exc)

    def _hold_url(self) -> str:
        from voicecall.exposure.webhook_url import public_path_prefix

        base = self.webhook_url
        scheme, _, rest_ = base.partition("://")
        origin = f"{scheme}://{rest_.split('/', 1)[0]}"
        return f"{origin}{public_path_prefix(self._config)}{_HOLD_MUSIC_PATH}"

    @staticmethod
    def _answered_event(hook: Any, view: CallView, request: WebhookRequest) -> dict[str, Any]:
        key = f"{hook.events[0]['dedupeKey']}:answered" if hook.events else "twilio:answered"
        return {
            "type": "call.answered",
            "id": key,
            "dedupeKey": key,
            "callId": view.record.call_id,
            "providerCallId": view.record.provider_call_id,
            "timestamp": request.received_at_ms,
        }


def _ended(cause: dict[str, Any], reason: str) -> dict[str, Any]:
    """A ``call.ended`` the carrier concludes from ``cause`` (an AMD verdict)."""
    key = f"{cause.get('dedupeKey') or cause.get('id')}:ended"
    fields = ("callId", "providerCallId", "timestamp")
    return {
        "type": "call.ended",
        "id": key,
        "dedupeKey": key,
        "reason": reason,
        **{k: cause[k] for k in fields if cause.get(k)},
    }


def _as_voicemail(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "call.ended" and event.get("reason") == "completed":
        return {**event, "reason": "voicemail"}
    return event
