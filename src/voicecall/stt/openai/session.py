"""The OpenAI Realtime transcription client: the session runtime over the `openai` SDK's socket."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, cast

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession, Transport
from voicecall.stt.openai.protocol import DEFAULT_BASE_URL, OpenAIProtocol, OpenAISettings
from voicecall.stt.protocol import ConnectRequest, parse_settings
from voicecall.wirelog import WIRE_LOG

__all__ = ["OpenAISession", "create_session"]


@lru_cache(maxsize=8)
def _client(api_key: str, websocket_base_url: str) -> AsyncOpenAI:
    # One SDK client per key and endpoint for the process; its HTTP pool is never used here.
    return AsyncOpenAI(api_key=api_key, websocket_base_url=websocket_base_url, max_retries=0)


class _SdkTransport:
    """The SDK's realtime connection seen through the session's Transport interface."""

    def __init__(self, connection: AsyncRealtimeConnection) -> None:
        self._connection = connection

    async def send(self, message: str | bytes) -> None:
        await self._connection.send_raw(message)

    async def recv(self) -> str | bytes:
        return await self._connection.recv_bytes()

    async def close(self) -> None:
        await self._connection.close()


class OpenAISession(SttSession):
    """One call's OpenAI transcription session."""

    def __init__(
        self,
        protocol: OpenAIProtocol,
        on_event: EventCallback,
        *,
        policy: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(protocol, on_event, policy=policy)
        self._settings = protocol.settings

    async def _connect(self, request: ConnectRequest) -> Transport:
        # The SDK builds `{baseUrl}/realtime?intent=transcription` with Bearer auth itself; no
        # `model` in the URL (that would make a conversation session). Its own reconnects stay
        # off: the uniform policy of the shared runtime applies.
        base_url = (self._settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        client = _client(self._settings.api_key, base_url)
        manager = client.realtime.connect(
            extra_query={"intent": "transcription"},
            # The wire logger masks the Bearer key in websockets' DEBUG handshake lines.
            websocket_connection_options=cast(Any, {"compression": None, "logger": WIRE_LOG}),
        )
        return _SdkTransport(await manager.enter())


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> OpenAISession:
    """A session for `streaming.providers.openai` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(OpenAISettings, raw, {})
    return OpenAISession(OpenAIProtocol(settings), on_event, policy=policy)
