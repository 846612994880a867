"""The carrier side of media streams in tests: a Twilio simulator that connects media streams.

:class:`StreamingTwilio` is the fake Twilio of ``tests/fakes/twilio.py`` that also executes
``<Connect><Stream>``: it records the stream URL and token parameter and keeps the call in
``<Connect>`` (as Twilio does) while a test drives the media socket with
:class:`TwilioMediaClient`, which speaks Twilio's Media Streams frames over a real websocket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tests.fakes.media_socket import MediaSocket
from tests.fakes.twilio import FakeCall, FakeTwilio

__all__ = [
    "FRAME_BYTES",
    "Frame",
    "StreamDoc",
    "StreamingTwilio",
    "TwilioMediaClient",
    "frames",
    "speech",
]

DATA = Path(__file__).resolve().parents[1] / "data"
FRAME_BYTES = 160


def speech(name: str) -> bytes:
    """A recorded µ-law 8 kHz clip from tests/data."""
    return (DATA / f"{name}.ulaw").read_bytes()


@dataclass(frozen=True)
class Frame:
    """One media frame as Twilio numbers it."""

    chunk: int
    timestamp_ms: int
    payload: str


def frames(audio: bytes, *, first_chunk: int = 1) -> list[Frame]:
    """20 ms frames of ``audio`` (the last one padded with µ-law silence)."""
    out = []
    for index, offset in enumerate(range(0, len(audio), FRAME_BYTES)):
        chunk = audio[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")
        payload = base64.b64encode(chunk).decode()
        out.append(Frame(first_chunk + index, 20 * (first_chunk + index - 1), payload))
    return out


@dataclass(frozen=True)
class StreamDoc:
    """The ``<Stream>`` of a served T-STREAM document."""

    url: str
    token: str


class StreamingTwilio(FakeTwilio):
    """The fake Twilio, plus ``<Connect><Stream>``: the call waits there, as on Twilio."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__(account_sid, auth_token)
        self.stream_docs: dict[str, StreamDoc] = {}
        self._stream_served = asyncio.Condition()

    async def _execute(self, call: FakeCall, document: str) -> None:
        root = ET.fromstring(document)
        connect = root.find("Connect")
        stream = connect.find("Stream") if connect is not None else None
        if stream is None:
            return await super()._execute(call, document)
        call.documents.append(document)
        call.verbs.append("Connect")
        params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        async with self._stream_served:
            self.stream_docs[call.sid] = StreamDoc(
                stream.get("url") or "", params.get("token") or ""
            )
            self._stream_served.notify_all()
        await asyncio.Event().wait()  # in <Connect> until the call ends or is redirected
        return None

    async def stream_doc(self, sid: str) -> StreamDoc:
        """The stream document served for call ``sid`` (waits for it)."""
        async with asyncio.timeout(20), self._stream_served:
            await self._stream_served.wait_for(lambda: sid in self.stream_docs)
        return self.stream_docs[sid]


class TwilioMediaClient(MediaSocket):
    """One Twilio media-stream websocket to the gateway."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        super().__init__(session, url)
        self.stream_sid = "MZ" + uuid.uuid4().hex

    async def send(self, message: dict[str, Any]) -> None:
        """A frame with the next sequenceNumber."""
        self.sequence += 1
        await self.send_raw(json.dumps({**message, "sequenceNumber": str(self.sequence)}))

    async def connected(self) -> None:
        """The ``connected`` hello."""
        await self.send_raw(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )

    async def start(self, call_sid: str | None, token: str | None) -> None:
        """``connected`` then ``start`` naming the call and carrying the token parameter."""
        await self.connected()
        start: dict[str, Any] = {
            "accountSid": "AC" + "0" * 32,
            "streamSid": self.stream_sid,
            "tracks": ["inbound"],
            "customParameters": {} if token is None else {"token": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        if call_sid is not None:
            start["callSid"] = call_sid
        await self.send({"event": "start", "start": start, "streamSid": self.stream_sid})

    async def media(self, frame: Frame) -> None:
        """One inbound media frame."""
        media = {
            "track": "inbound",
            "chunk": str(frame.chunk),
            "timestamp": str(frame.timestamp_ms),
            "payload": frame.payload,
        }
        await self.send({"event": "media", "media": media, "streamSid": self.stream_sid})

    async def play(self, sequence: Iterable[Frame | None], *, frame_s: float = 0.02) -> None:
        """Send frames at real-time pace on an absolute clock; ``None`` is a 20 ms gap."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        for frame in sequence:
            if frame is not None:
                await self.media(frame)
            due += frame_s
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def dtmf(self, digit: str) -> None:
        """A key press."""
        dtmf = {"track": "inbound_track", "digit": digit}
        await self.send({"event": "dtmf", "dtmf": dtmf, "streamSid": self.stream_sid})

    async def stop(self) -> None:
        """``stop``: the stream is over."""
        stop = {"accountSid": "AC" + "0" * 32, "callSid": "CA"}
        await self.send({"event": "stop", "stop": stop, "streamSid": self.stream_sid})
