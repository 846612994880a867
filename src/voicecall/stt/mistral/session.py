"""The Mistral Voxtral realtime client: the shared session runtime over `websockets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession, Transport
from voicecall.stt.mistral.protocol import MistralProtocol, MistralSettings
from voicecall.stt.protocol import ConnectRequest, parse_settings
from voicecall.stt.transport import open_websocket

__all__ = ["MistralSession", "create_session"]


class MistralSession(SttSession):
    """One call's Mistral Voxtral realtime session."""

    async def _connect(self, request: ConnectRequest) -> Transport:
        return await open_websocket(request)


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> MistralSession:
    """A session for `streaming.providers.mistral` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(MistralSettings, raw, {})
    return MistralSession(MistralProtocol(settings), on_event, policy=policy)
