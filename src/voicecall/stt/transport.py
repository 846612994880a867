"""The `websockets` client transport the providers without an official SDK client share."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect

from voicecall.stt.protocol import ConnectRequest
from voicecall.wirelog import WIRE_LOG

__all__ = ["WebsocketTransport", "open_websocket"]

_USER_AGENT = "voicecall"
# Transcripts are small; a generous cap still bounds a misbehaving peer.
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class WebsocketTransport:
    """A `websockets` client connection seen through the session's Transport interface."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, message: str | bytes) -> None:
        """Writes one text or binary frame."""
        await self._connection.send(message)

    async def recv(self) -> str | bytes:
        """The next message."""
        return await self._connection.recv()

    async def close(self) -> None:
        """Closes the socket with a normal closure."""
        await self._connection.close()


async def open_websocket(request: ConnectRequest) -> WebsocketTransport:
    """Opens ``request.url`` with its headers (the session bounds the time it may take)."""
    connection = await connect(
        request.url,
        additional_headers=request.headers,
        user_agent_header=_USER_AGENT,
        compression=None,  # audio does not compress; deflate would only cost CPU
        open_timeout=None,
        max_size=_MAX_MESSAGE_BYTES,
        logger=WIRE_LOG,  # its DEBUG handshake lines show no key
    )
    return WebsocketTransport(connection)
