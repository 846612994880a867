"""The OpenAI Realtime speech-to-speech protocol (GA, SPEC §7.8), sans-IO.

:class:`OpenAIRealtimeProtocol` builds every client event the session sends (as JSON text) and
turns server frames into contract events (:mod:`voicecall.realtime.session`). It keeps the
little state the wire needs: whether ``session.updated`` arrived, which responses are active
(``response.created`` … ``response.done``), and ``response.create`` requests held back while a
response is active (the server rejects a second one with
``conversation_already_has_active_response``; a held request is sent when the active response
is done, and dropped when the caller starts speaking or the bridge cancels: server VAD then
answers the caller's new turn, with every tool output and text item already in the
conversation).

Server frames are untrusted: :meth:`OpenAIRealtimeProtocol.feed` never raises on any input;
a malformed event is logged and skipped. Beta event names (``response.audio.delta``,
``response.audio_transcript.done``) are accepted next to the GA ones.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from voicecall.realtime.session import (
    AssistantTranscript,
    AudioOut,
    RealtimeError,
    RealtimeEvent,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    ToolCall,
    UserTranscript,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "TRANSCRIPTION_MODEL",
    "Feed",
    "OpenAIRealtimeProtocol",
    "build_session_update",
    "redact",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TRANSCRIPTION_MODEL = "gpt-4o-transcribe"

# `realtime.providers.openai` option -> (server_vad field, type).
_VAD_OPTIONS: tuple[tuple[str, str, type[float] | type[int]], ...] = (
    ("vadThreshold", "threshold", float),
    ("prefixPaddingMs", "prefix_padding_ms", int),
    ("silenceDurationMs", "silence_duration_ms", int),
)
# Error codes that are expected races (a cancel after the server already ended the response).
_QUIET_ERRORS = frozenset({"response_cancel_not_active"})
_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*.]{4,}")
_MAX_LOGGED = 300


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with ``secret`` and anything shaped like an OpenAI key masked (for logs, errors)."""
    if secret:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("sk-***", text)


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists (what orjson serializes)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _vad_option(options: Mapping[str, Any], key: str, kind: type[float] | type[int]) -> Any:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RealtimeError(f"OpenAI Realtime: option {key} must be a number, not {value!r}")
    if kind is int and value != int(value):
        raise RealtimeError(f"OpenAI Realtime: option {key} must be a whole number of ms")
    return kind(value)


def build_session_update(config: SessionConfig) -> dict[str, Any]:
    """The ``session.update`` event of SPEC §7.8 (VAD knobs only when configured)."""
    turn_detection: dict[str, Any] = {
        "type": "server_vad",
        "create_response": True,
        "interrupt_response": True,
    }
    for key, wire, kind in _VAD_OPTIONS:
        value = _vad_option(config.options, key, kind)
        if value is not None:
            turn_detection[wire] = value
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": config.instructions,
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": TRANSCRIPTION_MODEL},
                    "turn_detection": turn_detection,
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": config.voice},
            },
            "tools": [
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": _plain(tool.parameters),
                }
                for tool in config.tools
            ],
        },
    }


class _Malformed(Exception):
    """A known server event without the fields it must have."""


def _field(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _Malformed(f"{key} is {type(value).__name__}, not a string")
    return value


def _optional(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _response_id(data: Mapping[str, Any]) -> str | None:
    response = data.get("response")
    return _optional(response, "id") if isinstance(response, dict) else None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_LOGGED else text[:_MAX_LOGGED] + "…"


@dataclass(slots=True)
class Feed:
    """What one server frame means: contract events, client events to send now, and signals."""

    events: list[RealtimeEvent] = field(default_factory=list)
    send: list[str] = field(default_factory=list)
    ready: bool = False  # this frame was the first `session.updated`
    error: str | None = None  # a server `error` event, described (secrets masked)


_UNKNOWN_RESPONSE = "(unidentified)"


class OpenAIRealtimeProtocol:
    """Client events out, contract events in, for one speech-to-speech session."""

    def __init__(self, config: SessionConfig, *, secret: str | None = None) -> None:
        self.config = config
        self.ready = False
        self._secret = secret
        self._session_update = _dumps(build_session_update(config))  # validates the options
        self._active: set[str] = set()
        self._cancel_sent = False
        self._awaiting_created = 0  # response.create sent, response.created not yet seen
        self._deferred: list[str] = []
        self._handlers: dict[str, Callable[[dict[str, Any], Feed], None]] = {
            "session.updated": self._on_session_updated,
            "error": self._on_error,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            "response.output_audio.delta": self._on_audio_delta,
            "response.audio.delta": self._on_audio_delta,  # beta
            "response.output_audio_transcript.done": self._on_assistant_transcript,
            "response.audio_transcript.done": self._on_assistant_transcript,  # beta
            "conversation.item.input_audio_transcription.delta": self._on_user_delta,
            "conversation.item.input_audio_transcription.completed": self._on_user_final,
            "conversation.item.input_audio_transcription.failed": self._on_user_failed,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "response.function_call_arguments.done": self._on_function_call,
        }

    # ---- client events ---------------------------------------------------------------------

    @property
    def response_active(self) -> bool:
        """Whether a response is being generated (or requested and not yet created)."""
        return bool(self._active) or self._awaiting_created > 0

    def session_update(self) -> str:
        """The ``session.update`` sent right after connecting."""
        return self._session_update

    @staticmethod
    def audio_append(ulaw: bytes) -> str:
        """``input_audio_buffer.append`` with µ-law audio."""
        # Base64 text needs no JSON escaping.
        audio = base64.b64encode(ulaw).decode("ascii")
        return '{"type":"input_audio_buffer.append","audio":"' + audio + '"}'

    def response_create(self, instructions: str | None = None) -> list[str]:
        """``response.create`` (steered by ``instructions``), or nothing while one is active."""
        event: dict[str, Any] = {"type": "response.create"}
        if instructions:
            event["response"] = {"instructions": instructions}
        message = _dumps(event)
        if self.response_active:
            log.debug("OpenAI Realtime: response.create held until the active response is done")
            self._deferred.append(message)
            return []
        self._awaiting_created += 1
        return [message]

    def user_text(self, text: str, *, respond: bool = True) -> list[str]:
        """A user text item, then ``response.create`` when ``respond``."""
        item = {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
        return [_dumps(item), *(self.response_create() if respond else [])]

    def tool_output(self, call_id: str, output: Mapping[str, Any]) -> list[str]:
        """A ``function_call_output`` item, then ``response.create`` so the model continues."""
        item = {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call_id,
                "output": _dumps(_plain(output)),
            },
        }
        return [_dumps(item), *self.response_create()]

    def cancel(self) -> list[str]:
        """``response.cancel`` while a response is active (once); drops held requests."""
        self._drop_deferred("the response was cancelled")
        if not self._active or self._cancel_sent:
            return []
        self._cancel_sent = True
        return ['{"type":"response.cancel"}']

    @staticmethod
    def truncate(item_id: str, audio_end_ms: int) -> str:
        """``conversation.item.truncate`` of the item's first content part."""
        return _dumps(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": max(0, int(audio_end_ms)),
            }
        )

    def _drop_deferred(self, why: str) -> None:
        if self._deferred:
            count = len(self._deferred)
            log.debug("OpenAI Realtime: %d held response.create dropped: %s", count, why)
            self._deferred.clear()

    # ---- server events ---------------------------------------------------------------------

    def feed(self, frame: bytes | str) -> Feed:
        """Interprets one server frame; never raises (bad frames are logged and skipped)."""
        out = Feed()
        try:
            data = orjson.loads(frame)
        except orjson.JSONDecodeError:
            log.warning("OpenAI Realtime: ignored a server frame that is not JSON")
            return out
        if not isinstance(data, dict):
            log.warning("OpenAI Realtime: ignored a server frame that is not a JSON object")
            return out
        kind = data.get("type")
        if not isinstance(kind, str):
            log.warning("OpenAI Realtime: ignored a server event without a type")
            return out
        handler = self._handlers.get(kind)
        if handler is None:
            log.debug("OpenAI Realtime: ignored server event %s", _clip(kind))
            return out
        try:
            handler(data, out)
        except _Malformed as exc:
            log.warning("OpenAI Realtime: ignored a malformed %s event (%s)", kind, exc)
        return out

    def _on_session_updated(self, data: dict[str, Any], out: Feed) -> None:
        if not self.ready:
            self.ready = True
            out.ready = True

    def _on_error(self, data: dict[str, Any], out: Feed) -> None:
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        code = _optional(error, "code")
        message = _optional(error, "message") or "no message"
        kind = _optional(error, "type")
        label = ", ".join(part for part in (kind, code) if part)
        described = redact(_clip(f"{message} ({label})" if label else message), self._secret)
        out.error = described
        # A failed request never gets its response.created.
        self._awaiting_created = 0
        if code in _QUIET_ERRORS:
            log.debug("OpenAI Realtime: server error: %s", described)
        else:
            log.warning("OpenAI Realtime: server error: %s", described)

    def _on_response_created(self, data: dict[str, Any], out: Feed) -> None:
        self._awaiting_created = max(0, self._awaiting_created - 1)
        self._active.add(_response_id(data) or _UNKNOWN_RESPONSE)

    def _on_response_done(self, data: dict[str, Any], out: Feed) -> None:
        response_id = _response_id(data)
        if response_id is not None and response_id in self._active:
            self._active.discard(response_id)
        elif _UNKNOWN_RESPONSE in self._active:
            self._active.discard(_UNKNOWN_RESPONSE)
        elif response_id is None:
            self._active.clear()  # a done without an id ends whatever was running
        if not self._active:
            self._cancel_sent = False
        out.events.append(ResponseDone(response_id))
        if self._deferred and not self.response_active:
            out.send.append(self._deferred.pop(0))
            self._awaiting_created += 1

    def _on_audio_delta(self, data: dict[str, Any], out: Feed) -> None:
        try:
            audio = base64.b64decode(_field(data, "delta"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Malformed("delta is not base64") from exc
        if audio:
            out.events.append(AudioOut(audio, _optional(data, "item_id")))

    def _on_assistant_transcript(self, data: dict[str, Any], out: Feed) -> None:
        text = _field(data, "transcript")
        out.events.append(AssistantTranscript(text, _optional(data, "item_id")))

    def _on_user_delta(self, data: dict[str, Any], out: Feed) -> None:
        text = _field(data, "delta")
        if text:
            out.events.append(UserTranscript(text, final=False, item_id=_optional(data, "item_id")))

    def _on_user_final(self, data: dict[str, Any], out: Feed) -> None:
        text = _field(data, "transcript")
        out.events.append(UserTranscript(text, final=True, item_id=_optional(data, "item_id")))

    def _on_user_failed(self, data: dict[str, Any], out: Feed) -> None:
        error = data.get("error")
        message = _optional(error, "message") if isinstance(error, dict) else None
        log.warning(
            "OpenAI Realtime: caller transcription failed: %s",
            redact(_clip(message or "no message"), self._secret),
        )

    def _on_speech_started(self, data: dict[str, Any], out: Feed) -> None:
        # Server VAD answers the caller's new turn itself (create_response).
        self._drop_deferred("the caller started speaking")
        out.events.append(SpeechStarted())

    def _on_function_call(self, data: dict[str, Any], out: Feed) -> None:
        call_id = _field(data, "call_id")
        name = _field(data, "name")
        raw = data.get("arguments")
        arguments: Mapping[str, Any] = {}
        if isinstance(raw, str) and raw.strip():
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                arguments = parsed
            else:
                log.warning(
                    "OpenAI Realtime: tool call %s (%s) has arguments that are not a JSON object;"
                    " calling it with {}",
                    _clip(name),
                    _clip(call_id),
                )
        elif raw is not None and not isinstance(raw, str):
            log.warning("OpenAI Realtime: tool call %s has non-string arguments; using {}", name)
        out.events.append(ToolCall(call_id, name, arguments))
