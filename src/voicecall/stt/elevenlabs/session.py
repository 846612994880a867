"""The ElevenLabs realtime STT client: the shared session runtime over `websockets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession
from voicecall.stt.elevenlabs.protocol import ElevenLabsProtocol, ElevenLabsSettings
from voicecall.stt.protocol import parse_settings

__all__ = ["ElevenLabsSession", "create_session"]


class ElevenLabsSession(SttSession):
    """One call's ElevenLabs realtime STT session."""


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> ElevenLabsSession:
    """A session for `streaming.providers.elevenlabs` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(ElevenLabsSettings, raw, {})
    return ElevenLabsSession(ElevenLabsProtocol(settings), on_event, policy=policy)
