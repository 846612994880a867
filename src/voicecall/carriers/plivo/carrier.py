"""The Plivo carrier: Voice API over the shared HTTP session, Plivo XML answers (SPEC §3.4).

Plivo runs XML documents it fetches from our webhook. Speech and listening mid-call are
transfers (``POST /Call/{uuid}/`` with ``aleg_url=…&flow=<flow>&callId=<id>&seq=<n>``): the
carrier stores the document first, and the fetch that follows the transfer serves it. ``seq``
(our addition) names the document, so a retried fetch gets the same one and two quick transfers
never swap texts (nor share a replay key under ``skipSignatureVerification``). For
conversation calls a speak document also listens (``xml-speak-listen``), so the manager's
following ``start_listening`` needs no second transfer that would cut the speech short.
With ``streaming.enabled`` a conversation call's answer document is a bidirectional
``<Stream>`` (token in the path) and no transfer replaces it while the stream is live. With
``realtime.enabled`` and the realtime bridge bound (:meth:`PlivoCarrier.bind_realtime`) the
same ``<Stream>`` carries the realtime path and a token minted by the bridge (SPEC §3.4, §7.1).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from voicecall.carriers.base import (
    CallControl,
    CallStatus,
    Carrier,
    EventSink,
    Verification,
    WebhookReply,
    WebhookRequest,
)
from voicecall.carriers.http import CarrierApiError, CarrierHttp, basic_auth
from voicecall.carriers.media_stream import StreamTokens
from voicecall.carriers.plivo import rest
from voicecall.carriers.plivo import xml as plivo_xml
from voicecall.carriers.plivo.settings import PlivoSettings, webhook_base
from voicecall.carriers.plivo.stream import PlivoStreamProtocol
from voicecall.carriers.plivo.webhook import (
    V2_HEADERS,
    V3_HEADERS,
    event_from_params,
    group_params,
    parse_form,
    provider_ids,
    verify_signature,
)
from voicecall.errors import CallError

if TYPE_CHECKING:
    from voicecall.calls.record import CallRecord

__all__ = ["DOCUMENT_FLOWS", "PlivoCarrier"]

log = logging.getLogger(__name__)

#: Flows whose XML is a document the carrier queued before transferring the call to it.
DOCUMENT_FLOWS = frozenset({"xml-speak", "xml-speak-listen", "xml-notify", "xml-listen"})
_XML = "text/xml"
_MAX_TRACKED = 4096  # calls whose ids and documents are remembered (oldest forgotten first)
_DOCS_PER_CALL = 8


@dataclass(frozen=True, slots=True)
class _Document:
    flow: str
    text: str | None = None


@dataclass(slots=True)
class _CallDocs:
    """The documents one call was transferred to, by ``seq``; whether the latest one listens."""

    documents: OrderedDict[int, _Document] = field(default_factory=OrderedDict)
    next_seq: int = 1
    listening: bool = False

    def add(self, document: _Document) -> int:
        seq = self.next_seq
        self.next_seq += 1
        self.documents[seq] = document
        while len(self.documents) > _DOCS_PER_CALL:
            self.documents.popitem(last=False)
        return seq

    def find(self, flow: str, seq: int | None) -> _Document | None:
        if seq is not None:
            document = self.documents.get(seq)
            return document if document is not None and document.flow == flow else None
        matching = [d for d in self.documents.values() if d.flow == flow]
        return matching[-1] if matching else None


def _bounded_set(mapping: OrderedDict[str, Any], key: str, value: Any) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > _MAX_TRACKED:
        mapping.popitem(last=False)


def _fallback_key(request: WebhookRequest) -> str:
    """SPEC §3.4's dedupe key when verification gave none: the nonce, else the body hash."""
    for prefix, (_, nonce_header) in (("v3", V3_HEADERS), ("v2", V2_HEADERS)):
        nonce = request.headers.get(nonce_header)
        if nonce:
            return f"plivo:{prefix}:{nonce}"
    return "plivo:body:" + hashlib.sha256(request.body).hexdigest()


def _infer_flow(fields: dict[str, str]) -> str | None:
    """The flow of a request without ``?flow=`` (an application's own answer/hangup URL)."""
    event = fields.get("Event", "")
    if event == "StartApp":
        return "answer"
    if event == "Hangup":
        return "hangup"
    return None


class PlivoCarrier(Carrier):
    """Places and controls calls through the Plivo Voice API and answers Plivo's XML fetches."""

    name = "plivo"
    supports_pre_connect_dtmf = True  # send_digits on create (SPEC §3.5)
    webhook_signature_headers = (V3_HEADERS, V2_HEADERS)

    def __init__(self, config: Any = None, *, settings: PlivoSettings | None = None) -> None:
        self.settings = settings if settings is not None else PlivoSettings.from_config(config)
        self._http: CarrierHttp | None = None
        self._sink: EventSink | None = None
        self._webhook_control: CallControl | None = None
        self._docs: OrderedDict[str, _CallDocs] = OrderedDict()  # callId -> documents
        self._call_ids: OrderedDict[str, str] = OrderedDict()  # provider id -> callId
        self._call_uuids: OrderedDict[str, str] = OrderedDict()  # RequestUUID -> CallUUID
        self._notify_messages: OrderedDict[str, str] = OrderedDict()  # callId -> text
        self._rejected: OrderedDict[str, None] = OrderedDict()  # answered with reject XML
        self._background: set[asyncio.Task[None]] = set()
        self._recording: OrderedDict[str, None] = OrderedDict()  # CallUUIDs being recorded
        self._stream_ids: OrderedDict[str, str] = OrderedDict()  # callId -> streamed CallUUID
        if self.settings.stream_path is not None:
            self.stream_tokens = StreamTokens()
        self._realtime_mint: Callable[[str, str], str] | None = None

    def stream_protocol(self) -> PlivoStreamProtocol | None:
        """A Plivo frame codec while this carrier serves streams (classic, or realtime bound).

        The realtime socket server gets its codecs here too; the classic stream server still
        refuses a classic socket when classic streaming is off (no stream tokens).
        """
        return self.realtime_stream_protocol() if self._serves_streams() else None

    def realtime_stream_protocol(self) -> PlivoStreamProtocol:
        """A fresh Plivo frame codec for one realtime-bridge socket (SPEC §3.4, §7.2)."""
        return PlivoStreamProtocol()

    def bind_realtime(self, mint: Callable[[str, str], str] | None) -> None:
        """Realtime calls get the realtime ``<Stream>`` with a token from ``mint(callId, uuid)``.

        Bound by the gateway when the realtime bridge runs; unbound, calls take the
        streaming/classic documents.
        """
        self._realtime_mint = mint

    def _realtime(self) -> Callable[[str, str], str] | None:
        """The bound mint while realtime is on (None: classic streaming or none)."""
        return self._realtime_mint if self.settings.realtime_path is not None else None

    def _serves_streams(self) -> bool:
        return self.settings.stream_path is not None or self._realtime() is not None

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        # Plivo events arrive only through webhooks (handle_webhook feeds them to the runtime).
        self._sink = sink

    async def start(self) -> None:
        session = self.context.http_session
        if session is not None:
            self._http = CarrierHttp(
                "plivo",
                session,
                rest.account_base_url(self.settings.api_base_url, self.settings.auth_id),
                headers={
                    "Authorization": basic_auth(self.settings.auth_id, self.settings.auth_token)
                },
            )

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._http = None  # the shared session belongs to the gateway

    # -- webhooks --------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> Verification:
        result = verify_signature(
            auth_token=self.settings.auth_token,
            method=request.method,
            url=request.url,
            headers=request.headers,
            params=parse_form(request.body),
        )
        return Verification(ok=result.ok, request_key=result.request_key, reason=result.reason)

    async def handle_webhook(
        self, request: WebhookRequest, verification: Verification, control: CallControl
    ) -> WebhookReply:
        self._webhook_control = control
        params = parse_form(request.body)
        fields = {key: values[-1] for key, values in group_params(params).items()}
        flow = request.query.get("flow") or _infer_flow(fields)
        call_uuid, request_uuids = provider_ids(fields)
        for request_uuid in request_uuids:
            if call_uuid and request_uuid != call_uuid:
                _bounded_set(self._call_uuids, request_uuid, call_uuid)
        event = event_from_params(
            params,
            flow=flow,
            call_id=request.query.get("callId") or None,
            dedupe_key=verification.request_key or _fallback_key(request),
            received_at_ms=request.received_at_ms,
            resolve_call_id=lambda ids: self._resolve_call_id(ids, control),
        )
        if event is not None:
            # Only the answer document can refuse a caller in-band (<Hangup reason="rejected"/>).
            await control.handle_events([event], in_band_rejection=flow == "answer")
        call_id = (event or {}).get("callId") or request.query.get("callId")
        ids = [i for i in (call_uuid, *request_uuids) if i]
        record = self._lookup_record(call_id, ids, control)
        if record is not None:
            for provider_id in ids:
                _bounded_set(self._call_ids, provider_id, record.call_id)
        seq_text = request.query.get("seq", "")
        seq = int(seq_text) if seq_text.isdigit() and len(seq_text) < 10 else None
        body = self._reply_body(flow, seq, record, ids, call_uuid, request.host_header)
        if (
            flow == "answer"
            and self.settings.recording
            and call_uuid
            and call_uuid not in self._recording
            and record is not None
            and record.ended_at_ms is None
        ):
            self._start_recording(call_uuid, record.call_id)
        if event is not None and event["type"] == "call.ended" and record is not None:
            self._forget(record.call_id)
        return WebhookReply(status=200, body=body.encode(), content_type=_XML)

    def _reply_body(
        self,
        flow: str | None,
        seq: int | None,
        record: CallRecord | None,
        ids: list[str],
        call_uuid: str | None,
        host: str | None,
    ) -> str:
        if flow == "answer":
            if record is not None and record.metadata.get("rejectionReason") == "inbound-policy":
                for provider_id in ids:
                    _bounded_set(self._rejected, provider_id, None)
                return plivo_xml.xml_reject()
            if record is not None and record.mode == "notify":
                message = record.metadata.get("initialMessage")
                if not isinstance(message, str) or not message:
                    message = self._notify_messages.get(record.call_id)
                if message:
                    return plivo_xml.xml_notify(message, locale=self.settings.locale)
            if (
                record is not None
                and call_uuid
                and (stream := self._stream_doc(record, call_uuid, host))
            ):
                return stream
            return plivo_xml.xml_wait()
        if flow == "getinput":
            if record is not None and (docs := self._docs.get(record.call_id)) is not None:
                docs.listening = False
            return plivo_xml.xml_wait()
        if flow in DOCUMENT_FLOWS and record is not None and record.ended_at_ms is None:
            return self._serve_document(record.call_id, flow, seq)
        return plivo_xml.xml_empty()

    def _stream_doc(self, record: CallRecord, call_uuid: str, host: str | None) -> str | None:
        """The ``<Stream>`` answer with a freshly minted token, when streaming applies.

        Realtime (bridge bound) comes first, as step 8 before step 9 on Twilio; either way only
        conversation calls (inbound calls the policy let in, outbound ``conversation``) stream:
        notify calls never open media streams (SPEC §2.5).
        """
        from voicecall.exposure.webhook_url import public_route_url

        conversation = record.direction == "inbound" or record.mode == "conversation"
        if not conversation or record.ended_at_ms is not None:
            return None
        mint, realtime_path = self._realtime(), self.settings.realtime_path
        if mint is not None and realtime_path is not None:
            url = public_route_url(
                self._webhook_url(),
                realtime_path,
                prefix=self.settings.stream_prefix,
                websocket=True,
                request_host=host,
            )
            token = mint(record.call_id, call_uuid)
            log.info("plivo: realtime stream XML served for call %s", record.call_id)
            return plivo_xml.xml_stream(f"{url.rstrip('/')}/{quote(token, safe='')}")
        stream_path, tokens = self.settings.stream_path, self.stream_tokens
        if stream_path is None or tokens is None:
            return None
        url = public_route_url(
            self._webhook_url(),
            stream_path,
            prefix=self.settings.stream_prefix,
            websocket=True,
            request_host=host,
        )
        token = tokens.mint(call_uuid)
        _bounded_set(self._stream_ids, record.call_id, call_uuid)
        log.info("plivo: stream XML served for call %s", record.call_id)
        return plivo_xml.xml_stream(f"{url.rstrip('/')}/{token}")

    def _serve_document(self, call_id: str, flow: str, seq: int | None) -> str:
        docs = self._docs.get(call_id)
        document = docs.find(flow, seq) if docs is not None else None
        if document is None:
            log.warning("plivo: no %s document stored for call %s; holding the line", flow, call_id)
            return plivo_xml.xml_wait()
        return self._render(call_id, document)

    def _render(self, call_id: str, document: _Document) -> str:
        locale = self.settings.locale
        text = document.text or ""
        if document.flow == "xml-speak":
            return plivo_xml.xml_speak(text, locale=locale)
        if document.flow == "xml-notify":
            return plivo_xml.xml_notify(text, locale=locale)
        webhook_url = self._webhook_url()
        if document.flow == "xml-speak-listen":
            return plivo_xml.xml_speak_listen(
                text, locale=locale, webhook_url=webhook_url, call_id=call_id
            )
        return plivo_xml.xml_listen(webhook_url=webhook_url, call_id=call_id, language=locale)

    # -- commands --------------------------------------------------------------------------

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
        request = rest.create_call(
            call_id=call_id,
            from_number=from_number,
            to_number=to_number,
            webhook_url=self._webhook_url(),
            ring_timeout_s=self.settings.ring_timeout_s,
            send_digits=dtmf_sequence,
        )
        if mode == "notify" and message:
            _bounded_set(self._notify_messages, call_id, message)
        response = await self._client().request(request)
        request_uuid = rest.request_uuid_from(response.body)
        if request_uuid is None:
            raise CallError("plivo API answered without a request_uuid")
        _bounded_set(self._call_ids, request_uuid, call_id)
        return request_uuid

    async def hangup_call(self, provider_call_id: str) -> None:
        if provider_call_id in self._rejected:
            return  # the answer XML already refused this caller in-band (SPEC §12)
        http = self._client()
        call_uuid = self._call_uuids.get(provider_call_id)
        try:
            await http.request(rest.hangup_call(call_uuid or provider_call_id))
            return
        except CarrierApiError as exc:
            if not exc.not_found:
                raise
            if call_uuid is not None:
                return  # the connected call is already gone
        try:
            # Not connected yet: the id is the create request's, so cancel the request.
            await http.request(rest.cancel_request(provider_call_id))
        except CarrierApiError as exc:
            if not exc.not_found:
                raise

    async def play_tts(self, provider_call_id: str, text: str) -> None:
        call_id = self._call_id_for(provider_call_id)
        if self._streaming(call_id):
            # A transfer would replace the live <Stream> and cut the caller's audio off.
            raise CallError("telephony TTS unavailable while a media stream is active")
        record = self._record(call_id)
        conversation = record is None or (record.direction == "inbound" or record.mode != "notify")
        flow = "xml-speak-listen" if conversation else "xml-speak"
        # Plivo reports no end of playback: the transfer being accepted is as far as we can see.
        await self._transfer(provider_call_id, call_id, _Document(flow, text))

    async def start_listening(self, provider_call_id: str, turn_token: str | None) -> None:
        call_id = self._call_id_for(provider_call_id)
        if self._streaming(call_id):
            return  # the media stream already carries the caller's speech to transcription
        docs = self._docs.get(call_id)
        if docs is not None and docs.listening:
            return  # the speak document already listens (xml-speak-listen)
        await self._transfer(provider_call_id, call_id, _Document("xml-listen"))

    async def stop_listening(self, provider_call_id: str) -> None:
        # GetInput ends by itself (a result or executionTimeout); nothing to cancel at Plivo.
        docs = self._docs.get(self._call_id_for(provider_call_id))
        if docs is not None:
            docs.listening = False

    async def send_dtmf(self, provider_call_id: str, digits: str) -> None:
        await self._client().request(rest.send_dtmf(self._live_uuid(provider_call_id), digits))

    async def get_call_status(self, provider_call_id: str) -> CallStatus:
        try:
            request = rest.get_call(self._live_uuid(provider_call_id))
            response = await self._client().request(request)
        except CarrierApiError as exc:
            if exc.not_found:
                return CallStatus(status="not-found", terminal=True)
            raise
        status, terminal = rest.call_status_from(response.body)
        return CallStatus(status=status, terminal=terminal)

    def _start_recording(self, call_uuid: str, call_id: str) -> None:
        """Opt-in recording (SPEC §1.8, I9): started once per answered call, off the reply path."""
        _bounded_set(self._recording, call_uuid, None)
        request = rest.start_recording(call_uuid, webhook_url=self._webhook_url(), call_id=call_id)

        async def record() -> None:
            try:
                await self._client().request(request)
            except CallError as exc:
                self._recording.pop(call_uuid, None)
                log.warning("plivo: starting the recording of call %s failed: %s", call_id, exc)

        task = asyncio.get_running_loop().create_task(record())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- helpers ---------------------------------------------------------------------------

    def _client(self) -> CarrierHttp:
        if self._http is None:
            raise CallError("plivo carrier is not started (no HTTP session)")
        return self._http

    def _webhook_url(self) -> str:
        url = webhook_base(self.context.webhook_url) or self.settings.public_url
        if not url:
            raise CallError("Webhook URL not configured")
        return url

    def _live_uuid(self, provider_call_id: str) -> str:
        return self._call_uuids.get(provider_call_id, provider_call_id)

    def _control(self) -> CallControl | None:
        return self.control or self._webhook_control

    def _record(self, call_id: str) -> CallRecord | None:
        control = self._control()
        return control.get_record(call_id) if control is not None else None

    def _streaming(self, call_id: str) -> bool:
        control = self._control()
        view = control.call_view(call_id) if control is not None else None
        return view is not None and view.stream_connected

    def _call_id_for(self, provider_call_id: str) -> str:
        call_id = self._call_ids.get(provider_call_id)
        if call_id is None and (control := self._control()) is not None:
            record = control.find_by_provider_id(provider_call_id)
            call_id = record.call_id if record is not None else None
        if call_id is None:
            raise CallError(f"plivo: unknown call {provider_call_id}")
        return call_id

    def _resolve_call_id(self, ids: list[str] | Any, control: CallControl) -> str | None:
        for provider_id in ids:
            record = control.find_by_provider_id(provider_id)
            if record is not None:
                return record.call_id
            if provider_id in self._call_ids:
                return self._call_ids[provider_id]
        return None

    def _lookup_record(
        self, call_id: str | None, ids: list[str], control: CallControl
    ) -> CallRecord | None:
        if call_id and (record := control.get_record(call_id)) is not None:
            return record
        for provider_id in ids:
            if (record := control.find_by_provider_id(provider_id)) is not None:
                return record
        return None

    async def _transfer(self, provider_call_id: str, call_id: str, document: _Document) -> None:
        docs = self._docs.get(call_id)
        if docs is None:
            docs = _CallDocs()
            _bounded_set(self._docs, call_id, docs)
        seq = docs.add(document)
        listening_before = docs.listening
        docs.listening = document.flow in ("xml-speak-listen", "xml-listen")
        url = plivo_xml.callback_url(self._webhook_url(), flow=document.flow, call_id=call_id)
        url = f"{url}&seq={seq}"
        try:
            await self._client().request(rest.transfer_call(self._live_uuid(provider_call_id), url))
        except BaseException:
            docs.documents.pop(seq, None)
            docs.listening = listening_before
            raise

    def _forget(self, call_id: str) -> None:
        self._docs.pop(call_id, None)
        self._notify_messages.pop(call_id, None)
        streamed = self._stream_ids.pop(call_id, None)
        if streamed is not None and self.stream_tokens is not None:
            self.stream_tokens.forget(streamed)
