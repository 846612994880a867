"""The Deepgram live client: the shared session runtime over `websockets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession, Transport
from voicecall.stt.deepgram.protocol import DeepgramProtocol, DeepgramSettings
from voicecall.stt.protocol import ConnectRequest, parse_settings
from voicecall.stt.transport import open_websocket

__all__ = ["DeepgramSession", "create_session"]


class DeepgramSession(SttSession):
    """One call's Deepgram live session."""

    async def _connect(self, request: ConnectRequest) -> Transport:
        return await open_websocket(request)


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> DeepgramSession:
    """A session for `streaming.providers.deepgram` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(DeepgramSettings, raw, {})
    return DeepgramSession(DeepgramProtocol(settings), on_event, policy=policy)
