"""The Deepgram live client: the shared session runtime over `websockets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession
from voicecall.stt.deepgram.protocol import DeepgramProtocol, DeepgramSettings
from voicecall.stt.protocol import parse_settings

__all__ = ["DeepgramSession", "create_session"]


class DeepgramSession(SttSession):
    """One call's Deepgram live session."""


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> DeepgramSession:
    """A session for `streaming.providers.deepgram` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(DeepgramSettings, raw, {})
    return DeepgramSession(DeepgramProtocol(settings), on_event, policy=policy)
