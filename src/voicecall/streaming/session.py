"""One started media stream of one call: its inbound pump, its STT session, its call events.

Transcription events become call events (SPEC §5.2-5.3, §6.1): partial and final transcripts
are ``call.speech`` events through the call manager (a final one is the caller's turn), speech
start and readiness are mirrored into ``recentTalkEvents``, a dead provider ends the call with
a clear error. The initial message is due when the current stream's transcription first
reports ready (§2.5); the call runtime then plays it on this stream's playback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from voicecall.calls.record import CallRecord
from voicecall.carriers.media_stream import (
    DtmfReceived,
    MarkReceived,
    StreamErrorReported,
    StreamEvent,
    StreamProtocol,
)
from voicecall.streaming.bargein import BargeIn, SpeechSource
from voicecall.streaming.playback import FrameSink, Playback
from voicecall.streaming.pump import GarbageLog, InboundPump
from voicecall.stt import (
    EventCallback,
    FinalTranscript,
    PartialTranscript,
    SessionReady,
    SpeechStarted,
    SttEvent,
    SttSession,
    TranscriptionError,
)

__all__ = ["CallStream", "StreamControl", "SttFactory"]

log = logging.getLogger("voicecall.streaming")

SttFactory = Callable[[EventCallback], SttSession | None]
"""Builds the call's STT session (None: no usable provider; the warning is already logged)."""


class StreamControl(Protocol):
    """What a media stream needs from the call runtime (``CallRuntime`` implements it)."""

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None: ...

    def current_stream_id(self, call_id: str) -> str | None: ...

    async def stream_connected(self, call_id: str, stream_id: str) -> None: ...

    async def stream_disconnected(self, call_id: str, stream_id: str) -> None: ...

    async def stream_ready(self, call_id: str, stream_id: str) -> str | None: ...

    async def handle_events(
        self, events: list[dict[str, Any]], *, in_band_rejection: bool = False
    ) -> None: ...

    def talk_event(self, call_id: str, kind: str) -> None: ...


class CallStream:
    """A registered stream: feed it frames; it runs transcription and reports to the call."""

    def __init__(
        self,
        *,
        record: CallRecord,
        stream_id: str,
        protocol: StreamProtocol,
        control: StreamControl,
        clock_ms: Callable[[], int],
        fail: Callable[[int, str], Awaitable[None]],
        send_frame: FrameSink | None = None,
    ) -> None:
        self.call_id = record.call_id
        self.provider_call_id = record.provider_call_id
        self.stream_id = stream_id
        self.protocol = protocol
        self.garbage = GarbageLog(f"{stream_id} (call {record.call_id})")
        self.pump = InboundPump(
            protocol, garbage=self.garbage, on_speech_started=self._vad_speech_started
        )
        # Caller speech (VAD, STT speech-start/partial/final) goes to every listener.
        self.speech_listeners: list[Callable[[SpeechSource], object]] = []
        label = f"{stream_id} (call {record.call_id})"
        self.playback = Playback(
            sink=send_frame or (lambda _text: False),
            build_media=protocol.build_media,
            build_mark=protocol.build_mark,
            build_clear=protocol.build_clear,
            label=label,
        )
        self.barge_in = BargeIn(self.playback, outbound=record.direction == "outbound", label=label)
        self.speech_listeners.append(self.barge_in.caller_spoke)
        self.stt: SttSession | None = None
        self.stt_ready = False
        self._control = control
        self._clock_ms = clock_ms
        self._fail = fail
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._final_frame = 0  # VAD frame count at the previous final transcript

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self, stt_factory: SttFactory) -> None:
        """Register as the call's stream (a reconnect cancels the grace), start transcription."""
        await self._control.stream_connected(self.call_id, self.stream_id)
        log.info("media stream %s registered for call %s", self.stream_id, self.call_id)
        self.stt = stt_factory(self._on_stt_event)
        if self.stt is not None:
            self.pump.sink = self.stt.send_audio  # queued by the session until it is ready
            await self.stt.start()

    async def close(self) -> None:
        """Flush audio, finish transcription (last transcripts included), unregister."""
        if self._closed:
            return
        self._closed = True
        self.playback.close()
        self.pump.drain()
        stt, self.stt = self.stt, None
        if stt is not None:
            await stt.aclose()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.garbage.counts:
            log.info("media stream %s: malformed frames %s", self.stream_id, self.garbage.counts)
        await self._control.stream_disconnected(self.call_id, self.stream_id)

    @property
    def current(self) -> bool:
        """Whether this is still the call's current stream (not superseded, call not over)."""
        return self._control.current_stream_id(self.call_id) == self.stream_id

    # -- inbound ---------------------------------------------------------------------------------

    async def handle(self, event: StreamEvent) -> None:
        """A non-audio frame of this stream (the pump handles audio itself)."""
        if isinstance(event, DtmfReceived):
            await self._control.handle_events([self._event("call.dtmf", digits=event.digit)])
        elif isinstance(event, MarkReceived):
            log.debug("media stream %s: mark %s played", self.stream_id, event.name)
            self.playback.on_mark(event.name)
        elif isinstance(event, StreamErrorReported):
            log.warning(
                "media stream %s: carrier error %s %s %s",
                self.stream_id,
                event.code,
                event.title,
                event.detail,
            )

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "id": f"stream:{self.stream_id}:{uuid.uuid4()}",
            "callId": self.call_id,
            "providerCallId": self.provider_call_id,
            "timestamp": self._clock_ms(),
            **fields,
        }

    def _vad_speech_started(self) -> None:
        self._caller_spoke("vad")

    def _caller_spoke(self, source: SpeechSource) -> None:
        for listener in self.speech_listeners:
            listener(source)

    # -- transcription ---------------------------------------------------------------------------

    def _on_stt_event(self, event: SttEvent) -> None:
        if isinstance(event, SessionReady):
            self.stt_ready = True
            self._talk("session.started")
            if not event.reconnected:
                self._spawn(self._ready())
            return
        if isinstance(event, TranscriptionError):
            if event.fatal:
                self._spawn(self._stt_failed(event.message))
            else:
                log.warning("media stream %s: transcription: %s", self.stream_id, event.message)
            return
        if not self.current:
            return  # transcripts of a superseded stream are ignored (SPEC §5.2)
        if isinstance(event, SpeechStarted):
            self._talk("input.speech.started")
            self._caller_spoke("stt-speech-started")
        elif isinstance(event, PartialTranscript):
            self._talk("transcript.delta")
            if event.text.strip():
                self._caller_spoke("stt-partial")
            self._spawn(self._speech(event.text, is_final=False))
        elif isinstance(event, FinalTranscript):
            self._talk("transcript.done")
            if event.text.strip():
                self._caller_spoke("stt-final")
            self._spawn(self._speech(event.text, is_final=True, ended_at=self._speech_ended_at()))

    def _talk(self, kind: str) -> None:
        self._control.talk_event(self.call_id, kind)

    async def _ready(self) -> None:
        message = await self._control.stream_ready(self.call_id, self.stream_id)
        if message:
            log.info("call %s: initial message plays on stream %s", self.call_id, self.stream_id)

    def _speech_ended_at(self) -> int | None:
        """When the caller's latest utterance ended (epoch ms), by the VAD's last voiced frame.

        Frames arrive in real time, so the end lies ``frames since that frame × frame length``
        before now (give or take the jitter buffer's two frames). None when the VAD heard no
        speech since the previous final transcript (a quiet caller: the STT alone heard it).
        """
        vad = self.pump.vad
        last = vad.last_speech_frame
        if last < self._final_frame:
            return None
        self._final_frame = vad.frames
        return self._clock_ms() - (vad.frames - last - 1) * vad.frame_ms

    async def _speech(self, text: str, *, is_final: bool, ended_at: int | None = None) -> None:
        if not text.strip():
            return
        fields: dict[str, Any] = {"transcript": text, "isFinal": is_final}
        if ended_at is not None:
            fields["speechEndedAt"] = ended_at
        await self._control.handle_events([self._event("call.speech", **fields)])

    async def _stt_failed(self, message: str) -> None:
        log.error("call %s: transcription failed: %s", self.call_id, message)
        if not self.stt_ready:
            await self._fail(1011, "STT connection failed")
        await self._control.handle_events(
            [self._event("call.error", error=f"transcription failed: {message}", retryable=False)]
        )

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "media stream %s: call event failed", self.stream_id, exc_info=task.exception()
            )
