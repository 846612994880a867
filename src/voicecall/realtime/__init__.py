"""The realtime voice bridge (SPEC §7): a full-duplex provider session per call.

This package grows in slices. The contract every provider session implements lives in
:mod:`voicecall.realtime.session`; provider clients are ``openai`` (OpenAI Realtime, through the
``openai`` SDK) and ``google`` (Gemini Live, through ``google-genai``); the outbound pacer and the
local barge-in gate are sans-IO modules.
"""

from voicecall.realtime.session import (
    AssistantTranscript,
    AudioOut,
    RealtimeError,
    RealtimeEvent,
    RealtimeEventCallback,
    RealtimeSession,
    ResponseDone,
    SessionClosed,
    SessionConfig,
    SessionReady,
    SpeechStarted,
    ToolCall,
    ToolSpec,
    UserTranscript,
)

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
