"""Gemini Live without I/O: the setup config, caller-audio batching and server-message translation.

:class:`GeminiLiveProtocol` turns the ``google-genai`` SDK's parsed server messages into the
bridge's :data:`~voicecall.realtime.session.RealtimeEvent` values and converts audio both ways
through the media core (µ-law 8 kHz -> PCM16 16 kHz in, PCM16 24 kHz -> µ-law 8 kHz out, with
the resampler state carried across chunks). :class:`AudioQueue` holds caller audio until a batch
is worth a message. :func:`build_connect_config` is the SPEC §7.8 setup as the SDK's
``LiveConnectConfig``. Nothing here touches a socket, an event loop or a clock.

Turns and items: Gemini has no item ids, so every model turn gets one (``turn-<n>``), carried
by its :class:`AudioOut`, :class:`AssistantTranscript` and :class:`ResponseDone`; caller
utterances are ``user-<n>``. A caller utterance is final when Gemini marks its transcription
``finished`` or when the model turn that answers it completes (``turnComplete``), whichever
comes first; until then each ``inputTranscription`` is a ``final=False`` delta. A turn ends at
``turnComplete``, or at ``interrupted`` if the model had already produced output (the server
stops generating then; a ``turnComplete`` that follows with nothing new is not a second end).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from google.genai import types

from voicecall.media import SUPPORTED_RATES_HZ, FrameDecoder, FrameEncoder
from voicecall.realtime.session import (
    AssistantTranscript,
    AudioOut,
    RealtimeEvent,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    ToolCall,
    ToolSpec,
    UserTranscript,
)

__all__ = [
    "INPUT_MIME_TYPE",
    "INPUT_RATE_HZ",
    "OUTPUT_RATE_HZ",
    "AudioQueue",
    "GeminiLiveProtocol",
    "GeminiOptions",
    "build_connect_config",
    "function_declaration",
    "parse_duration_s",
]

_log = logging.getLogger("voicecall.realtime.google")

_Enum = TypeVar("_Enum", types.StartSensitivity, types.EndSensitivity)

INPUT_RATE_HZ = 16000
INPUT_MIME_TYPE = f"audio/pcm;rate={INPUT_RATE_HZ}"
#: What Gemini's native-audio models speak when the mime type names no rate.
OUTPUT_RATE_HZ = 24000

_RATE = re.compile(r"rate\s*=\s*(\d+)")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s\s*$")

_START_SENSITIVITY = {
    "low": types.StartSensitivity.START_SENSITIVITY_LOW,
    "high": types.StartSensitivity.START_SENSITIVITY_HIGH,
    "start_sensitivity_low": types.StartSensitivity.START_SENSITIVITY_LOW,
    "start_sensitivity_high": types.StartSensitivity.START_SENSITIVITY_HIGH,
}
_END_SENSITIVITY = {
    "low": types.EndSensitivity.END_SENSITIVITY_LOW,
    "high": types.EndSensitivity.END_SENSITIVITY_HIGH,
    "end_sensitivity_low": types.EndSensitivity.END_SENSITIVITY_LOW,
    "end_sensitivity_high": types.EndSensitivity.END_SENSITIVITY_HIGH,
}


# ---- setup ------------------------------------------------------------------------------------


def _ms_option(options: Mapping[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"google realtime option {key} must be a whole number of ms >= 0")
    return value


def _bool_option(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, True)
    if not isinstance(value, bool):
        raise ValueError(f"google realtime option {key} must be true or false")
    return value


def _sensitivity_option(
    options: Mapping[str, Any], key: str, table: Mapping[str, _Enum]
) -> _Enum | None:
    value = options.get(key)
    if value is None:
        return None
    found = table.get(str(value).strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"google realtime option {key} must be 'low' or 'high'")
    return found


@dataclass(frozen=True, slots=True)
class GeminiOptions:
    """The provider knobs of ``realtime.providers.google`` (SPEC §7.9), validated."""

    silence_duration_ms: int | None = None
    prefix_padding_ms: int | None = None
    start_sensitivity: types.StartSensitivity | None = None
    end_sensitivity: types.EndSensitivity | None = None
    session_resumption: bool = True
    context_window_compression: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GeminiOptions:
        """Reads the camelCase options; a bad value raises ``ValueError`` naming the key."""
        return cls(
            silence_duration_ms=_ms_option(options, "silenceDurationMs"),
            prefix_padding_ms=_ms_option(options, "prefixPaddingMs"),
            start_sensitivity=_sensitivity_option(options, "startSensitivity", _START_SENSITIVITY),
            end_sensitivity=_sensitivity_option(options, "endSensitivity", _END_SENSITIVITY),
            session_resumption=_bool_option(options, "sessionResumption"),
            context_window_compression=_bool_option(options, "contextWindowCompression"),
        )

    def activity_detection(self) -> types.AutomaticActivityDetection | None:
        """Server VAD settings, only when one of them is configured."""
        if (
            self.silence_duration_ms is None
            and self.prefix_padding_ms is None
            and self.start_sensitivity is None
            and self.end_sensitivity is None
        ):
            return None
        return types.AutomaticActivityDetection(
            silence_duration_ms=self.silence_duration_ms,
            prefix_padding_ms=self.prefix_padding_ms,
            start_of_speech_sensitivity=self.start_sensitivity,
            end_of_speech_sensitivity=self.end_sensitivity,
        )


def function_declaration(spec: ToolSpec) -> types.FunctionDeclaration:
    """A tool as Gemini declares it.

    A tool without properties gets no ``parameters`` (Gemini rejects an OBJECT schema with no
    properties). Otherwise the schema goes through the SDK's ``Schema`` (upper-cased types, as
    the SDK sends them); a JSON schema that ``Schema`` cannot hold (``$schema``, ``$ref``, …) is
    sent as ``parametersJsonSchema`` instead.
    """
    parameters = dict(spec.parameters)
    if not parameters.get("properties"):
        return types.FunctionDeclaration(name=spec.name, description=spec.description)
    try:
        schema = types.Schema.model_validate(parameters)
    except pydantic.ValidationError:
        return types.FunctionDeclaration(
            name=spec.name, description=spec.description, parameters_json_schema=parameters
        )
    return types.FunctionDeclaration(
        name=spec.name, description=spec.description, parameters=schema
    )


def build_connect_config(
    config: SessionConfig, options: GeminiOptions, *, resume_handle: str | None = None
) -> types.LiveConnectConfig:
    """The SPEC §7.8 ``setup`` (minus the model, which ``connect`` takes) for one connection."""
    tools: list[types.ToolUnion] | None = None
    if config.tools:
        tools = [types.Tool(function_declarations=[function_declaration(t) for t in config.tools])]
    detection = options.activity_detection()
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=config.voice)
            )
        ),
        system_instruction=types.Content(parts=[types.Part(text=config.instructions)])
        if config.instructions
        else None,
        tools=tools,
        session_resumption=types.SessionResumptionConfig(handle=resume_handle)
        if options.session_resumption
        else None,
        context_window_compression=types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow()
        )
        if options.context_window_compression
        else None,
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        realtime_input_config=types.RealtimeInputConfig(automatic_activity_detection=detection)
        if detection is not None
        else None,
    )


def parse_duration_s(value: str | None) -> float | None:
    """A protobuf JSON duration (``"10s"``, ``"0.5s"``) in seconds; ``None`` if unreadable."""
    if not value:
        return None
    match = _DURATION.match(value)
    return float(match.group(1)) if match else None


# ---- caller audio -----------------------------------------------------------------------------


class AudioQueue:
    """Caller PCM waiting for the writer: bounded, the oldest chunks dropped first."""

    def __init__(self, *, max_bytes: int, batch_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.batch_bytes = batch_bytes
        self._chunks: deque[bytes] = deque()
        self._size = 0

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting to be sent."""
        return self._size

    def batch_ready(self) -> bool:
        """Whether at least one batch (SPEC: ≥ 40 ms) is waiting."""
        return self._size >= self.batch_bytes

    def push(self, pcm16: bytes) -> int:
        """Queues a chunk; returns how many bytes of older audio were dropped to make room."""
        if not pcm16:
            return 0
        self._chunks.append(pcm16)
        self._size += len(pcm16)
        dropped = 0
        while self._size > self.max_bytes and len(self._chunks) > 1:
            oldest = self._chunks.popleft()
            self._size -= len(oldest)
            dropped += len(oldest)
        return dropped

    def take(self, limit: int) -> bytes:
        """Whole chunks from the front, up to ``limit`` bytes (at least one chunk)."""
        parts: list[bytes] = []
        size = 0
        while self._chunks and (not parts or size + len(self._chunks[0]) <= limit):
            chunk = self._chunks.popleft()
            parts.append(chunk)
            size += len(chunk)
        self._size -= size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def put_back(self, pcm16: bytes) -> None:
        """Returns a batch that could not be sent to the front of the queue."""
        if pcm16:
            self._chunks.appendleft(pcm16)
            self._size += len(pcm16)

    def clear(self) -> None:
        """Forgets everything queued."""
        self._chunks.clear()
        self._size = 0


# ---- server messages --------------------------------------------------------------------------


def _output_rate_hz(mime_type: str | None) -> int | None:
    """The sample rate of a model audio part; ``None`` when it is not PCM16 we can convert."""
    if mime_type is None:
        return OUTPUT_RATE_HZ
    mime = mime_type.strip().lower()
    if not (mime.startswith("audio/pcm") or mime.startswith("audio/l16")):
        return None
    match = _RATE.search(mime)
    rate = int(match.group(1)) if match else OUTPUT_RATE_HZ
    return rate if rate in SUPPORTED_RATES_HZ else None


class GeminiLiveProtocol:
    """Translates one Gemini Live conversation (across reconnects) into realtime events."""

    def __init__(self) -> None:
        #: The newest ``sessionResumptionUpdate.newHandle`` (sent on the next connect).
        self.resumption_handle: str | None = None
        #: Seconds the server gave in its last ``goAway`` (0.0 when it named none), else None.
        self.go_away_s: float | None = None
        self._decoder = FrameDecoder(INPUT_RATE_HZ, "ulaw")
        self._encoder: FrameEncoder | None = None
        self._odd_byte = b""
        self._turn = 1
        self._responding = False
        self._closed_by_interrupt = False
        self._assistant: list[str] = []
        self._user: list[str] = []
        self._user_item = 1

    # -- state ------------------------------------------------------------------------------------
    @property
    def turn_id(self) -> str:
        """The id of the model turn being (or next to be) generated."""
        return f"turn-{self._turn}"

    @property
    def responding(self) -> bool:
        """Whether the model has produced output in a turn that has not ended yet."""
        return self._responding

    # -- audio ------------------------------------------------------------------------------------
    def caller_audio(self, ulaw: bytes) -> bytes:
        """Carrier µ-law 8 kHz -> PCM16 16 kHz (streaming; the filter state carries over)."""
        return self._decoder.decode_raw(ulaw) if ulaw else b""

    def discard_output(self) -> None:
        """Drops the resampler tail of the model audio (barge-in: it will not be played)."""
        if self._encoder is not None:
            self._encoder.reset()
        self._odd_byte = b""

    def _model_audio(self, data: bytes, rate_hz: int) -> bytes:
        if self._encoder is None or self._encoder.src_rate_hz != rate_hz:
            self._odd_byte = b""
            self._encoder = FrameEncoder(rate_hz, "ulaw")
        if self._odd_byte:
            data = self._odd_byte + data
            self._odd_byte = b""
        if len(data) % 2:
            data, self._odd_byte = data[:-1], data[-1:]
        return self._encoder.encode_raw(data) if data else b""

    def _audio_tail(self) -> bytes:
        self._odd_byte = b""
        return self._encoder.flush(False) if self._encoder is not None else b""

    # -- translation ------------------------------------------------------------------------------
    def receive(self, message: types.LiveServerMessage) -> list[RealtimeEvent]:
        """The events one server message means (in order); updates the handle and goAway."""
        events: list[RealtimeEvent] = []
        content = message.server_content
        if content is not None:
            self._server_content(content, events)
        if message.tool_call is not None:
            for number, call in enumerate(message.tool_call.function_calls or (), start=1):
                if not call.name:
                    _log.warning("gemini live: a function call without a name was ignored")
                    continue
                self._output_started()
                call_id = call.id or f"{self.turn_id}-call-{number}"
                events.append(ToolCall(call_id, call.name, dict(call.args or {})))
        if message.tool_call_cancellation is not None:
            _log.info(
                "gemini live cancelled tool calls %s (the bridge has no event for it)",
                message.tool_call_cancellation.ids or [],
            )
        update = message.session_resumption_update
        if update is not None and update.new_handle and update.resumable is not False:
            self.resumption_handle = update.new_handle
        if message.go_away is not None:
            left = parse_duration_s(message.go_away.time_left)
            self.go_away_s = left if left is not None else 0.0
        return events

    def _server_content(
        self, content: types.LiveServerContent, events: list[RealtimeEvent]
    ) -> None:
        if content.interrupted:
            self.discard_output()
            events.append(SpeechStarted())
            if self._responding:
                self._end_turn(events, with_tail=False)
                self._closed_by_interrupt = True
        transcription = content.input_transcription
        if transcription is not None and transcription.text:
            self._user.append(transcription.text)
            events.append(UserTranscript(transcription.text, False, self._user_item_id))
        if transcription is not None and transcription.finished:
            self._finish_user(events)
        if content.model_turn is not None:
            for part in content.model_turn.parts or ():
                blob = part.inline_data
                if blob is None or not blob.data:
                    continue
                rate = _output_rate_hz(blob.mime_type)
                if rate is None:
                    _log.debug("gemini live: skipped a %s part", blob.mime_type)
                    continue
                self._output_started()
                audio = self._model_audio(blob.data, rate)
                if audio:
                    events.append(AudioOut(audio, self.turn_id))
        said = content.output_transcription
        if said is not None and said.text:
            self._output_started()
            self._assistant.append(said.text)
        if content.turn_complete:
            self._finish_user(events)
            if self._closed_by_interrupt and not self._responding:
                self._closed_by_interrupt = False  # already ended at the interruption
            else:
                self._end_turn(events, with_tail=True)

    @property
    def _user_item_id(self) -> str:
        return f"user-{self._user_item}"

    def _output_started(self) -> None:
        self._responding = True
        self._closed_by_interrupt = False

    def _finish_user(self, events: list[RealtimeEvent]) -> None:
        if not self._user:
            return
        text = "".join(self._user).strip()
        item = self._user_item_id
        self._user.clear()
        self._user_item += 1
        if text:
            events.append(UserTranscript(text, True, item))

    def _end_turn(self, events: list[RealtimeEvent], *, with_tail: bool) -> None:
        turn = self.turn_id
        tail = self._audio_tail() if with_tail else b""
        if tail:
            events.append(AudioOut(tail, turn))
        text = "".join(self._assistant).strip()
        self._assistant.clear()
        if text:
            events.append(AssistantTranscript(text, turn))
        events.append(ResponseDone(turn))
        self._turn += 1
        self._responding = False

    def connection_lost(self) -> list[RealtimeEvent]:
        """Ends a turn cut off by a lost connection (its rest never comes, even on resume)."""
        events: list[RealtimeEvent] = []
        self.go_away_s = None
        if self._responding:
            self.discard_output()
            self._end_turn(events, with_tail=False)
        self._closed_by_interrupt = False
        return events

    def finish(self) -> list[RealtimeEvent]:
        """What is still owed when the session ends: the caller's unfinished utterance."""
        events: list[RealtimeEvent] = []
        self._finish_user(events)
        return events
