"""The provider session contract of the realtime bridge (SPEC §7.5, §7.8).

A :class:`RealtimeSession` is one provider conversation for one call. The bridge feeds it the
caller's audio as µ-law 8 kHz (whatever the provider wants is the session's business: OpenAI
takes ``audio/pcmu`` as is, Gemini gets PCM16 16 kHz through the media core) and receives
:data:`RealtimeEvent` values through one callback, in order, from the session's reader task:
the model's audio (always µ-law 8 kHz, in any chunk size), transcripts of both sides, the
provider's barge-in signal, tool calls, ends of responses, readiness and the end of the session.

Usage::

    session = OpenAIRealtimeSession(config, api_key=..., base_url=..., on_event=handle)
    await session.start()            # connect + configure; SessionReady arrives via handle()
    session.send_audio(ulaw_frame)   # non-blocking, from the media-stream read loop
    await session.request_response() # e.g. the greeting once the carrier stream started
    await session.send_tool_result(call, {"answer": "..."})
    await session.aclose()           # SessionClosed("completed") arrives via handle()

Errors the caller should see are :class:`RealtimeError` (connect refused, bad key, protocol
error before ready); after ready, failures arrive as ``SessionClosed(reason="error")``.

Lifecycle rules every provider follows: a failed :meth:`RealtimeSession.start` raises and
delivers no ``SessionClosed`` (``aclose()`` afterwards does nothing); ``aclose()`` during
``start()`` makes ``start()`` raise; after close, audio is dropped and requests are no-ops;
exactly one ``SessionClosed`` ends a session that became ready. Constructors share the keyword
arguments ``api_key``, ``base_url`` and ``on_event``; the rest is provider-specific.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from voicecall.errors import VoicecallError

__all__ = [
    "AssistantTranscript",
    "AudioOut",
    "RealtimeError",
    "RealtimeEvent",
    "RealtimeEventCallback",
    "RealtimeSession",
    "ResponseDone",
    "SessionClosed",
    "SessionConfig",
    "SessionReady",
    "SpeechStarted",
    "ToolCall",
    "ToolSpec",
    "UserTranscript",
]


class RealtimeError(VoicecallError):
    """The realtime provider session could not be opened or failed (the message says why)."""

    remote = True


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: ``parameters`` is a JSON-schema object (SPEC §7.6)."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What the provider session is configured with when it starts (SPEC §7.4, §7.8, §7.9).

    ``options`` carries the provider's own knobs from ``realtime.providers.<id>`` (e.g.
    ``vadThreshold``, ``prefixPaddingMs``, ``silenceDurationMs`` for openai;
    ``silenceDurationMs``, ``prefixPaddingMs``, ``startSensitivity``, ``endSensitivity``,
    ``sessionResumption``, ``contextWindowCompression`` for google), camelCase as configured.
    """

    model: str
    voice: str
    instructions: str
    tools: tuple[ToolSpec, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


# ---- events (provider -> bridge) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The session is configured (OpenAI ``session.updated``, Gemini ``setupComplete``)."""


@dataclass(frozen=True, slots=True)
class AudioOut:
    """Model audio, µ-law 8 kHz; ``item_id`` names the response item it belongs to (if known)."""

    audio: bytes
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserTranscript:
    """What the caller said: a partial (``final=False``, a delta to append) or the final text."""

    text: str
    final: bool
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class AssistantTranscript:
    """What the model said in one response item (final text)."""

    text: str
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The provider heard the caller start speaking (its native barge-in signal)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model calls ``name`` with ``arguments`` (already parsed; ``{}`` when it sent none)."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The model finished (or abandoned) one response."""

    response_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended: ``completed`` (closed normally), ``error`` or ``timeout``."""

    reason: Literal["completed", "error", "timeout"]
    message: str = ""


RealtimeEvent = (
    SessionReady
    | AudioOut
    | UserTranscript
    | AssistantTranscript
    | SpeechStarted
    | ToolCall
    | ResponseDone
    | SessionClosed
)
RealtimeEventCallback = Callable[[RealtimeEvent], None]


class RealtimeSession(abc.ABC):
    """One provider conversation for one call (see the module docstring)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and configure; raises :class:`RealtimeError` if that fails."""

    @abc.abstractmethod
    def send_audio(self, ulaw: bytes) -> None:
        """Caller audio (µ-law 8 kHz, any length); never blocks, dropped once closed."""

    @abc.abstractmethod
    async def request_response(self, instructions: str | None = None) -> None:
        """Ask the model to speak now (the greeting, ``voicecall.speak``), optionally steered."""

    @abc.abstractmethod
    async def send_user_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text item (e.g. a late consult result) and, by default, ask for a reply."""

    @abc.abstractmethod
    async def cancel_response(self) -> None:
        """Barge-in: stop the response being generated (no-op when none is)."""

    @abc.abstractmethod
    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Tell the provider the caller heard only ``audio_end_ms`` of ``item_id`` (may no-op)."""

    @abc.abstractmethod
    async def send_tool_result(self, call: ToolCall, output: Mapping[str, Any]) -> None:
        """Return a tool call's JSON result to the model and let it continue."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the session (idempotent); a final ``SessionClosed`` is delivered once."""
