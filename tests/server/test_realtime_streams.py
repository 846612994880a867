"""The realtime-bridge socket server (SPEC §7.1, §7.2) on a real loopback aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from voicecall.carriers.media_stream import StreamProtocol
from voicecall.carriers.telnyx.stream import TelnyxStreamProtocol
from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.server.realtime_streams import (
    MAX_FRAME_BYTES,
    PRE_ADMISSION_CLOSE_CODE,
    PRE_ADMISSION_REASON,
    RealtimeConnection,
    RealtimeStart,
    RealtimeStreamServer,
)
from voicecall.server.streams import BACKPRESSURE_LIMIT_BYTES

PATH = "/voice/stream/realtime"
HOST = "voice.example.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A handler that writes down everything it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()

    def on_media(self, ulaw: bytes) -> None:
        self.events.append(("media", ulaw))

    def on_mark(self, name: str) -> None:
        self.events.append(("mark", name))

    def on_dtmf(self, digit: str) -> None:
        self.events.append(("dtmf", digit))

    def on_stop(self) -> None:
        self.events.append(("stop", None))

    def on_disconnect(self) -> None:
        self.events.append(("disconnect", None))
        self.disconnected.set()


class Harness:
    def __init__(self, protocol: Callable[[], StreamProtocol | None]) -> None:
        self.clock = FakeClock()
        self.released: list[str] = []
        self.admitted: list[tuple[RealtimeConnection, RealtimeStart]] = []
        self.handler = Recorder()
        self.gate: asyncio.Event | None = None  # admission waits for it when set
        self.server = RealtimeStreamServer(
            realtime_path=PATH,
            on_admitted=self._admit,
            protocol_factory=protocol,
            public_host=lambda: HOST,
            released=self.released.append,
            clock=self.clock,
        )
        app = web.Application(middlewares=[self.server.middleware])
        self.http = TestServer(app, host="127.0.0.1", port=0)
        self.session = aiohttp.ClientSession()

    async def _admit(self, conn: RealtimeConnection, start: RealtimeStart) -> Recorder:
        self.admitted.append((conn, start))
        if self.gate is not None:
            await self.gate.wait()
        return self.handler

    def url(self, token: str) -> str:
        return str(self.http.make_url(f"{PATH}/{token}"))

    async def connect(self, token: str) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(self.url(token), max_msg_size=0)

    async def refused(self, token: str) -> int:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await self.connect(token)
        return info.value.status


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def factory(
        protocol: Callable[[], StreamProtocol | None] = TwilioStreamProtocol,
    ) -> Harness:
        h = Harness(protocol)
        await h.http.start_server()
        made.append(h)
        return h

    yield factory
    for h in made:
        await h.session.close()
        await h.server.aclose()
        await h.http.close()


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):  # guards a hang only; not a timing threshold
        while not predicate():
            await asyncio.sleep(0.005)


def start(sid: str = "MZ1", call_sid: str = "CA1") -> str:
    return json.dumps({"event": "start", "start": {"streamSid": sid, "callSid": call_sid}})


def media(audio: bytes, chunk: int = 1, track: str = "inbound") -> str:
    payload = base64.b64encode(audio).decode()
    media = {"track": track, "chunk": str(chunk), "timestamp": "0", "payload": payload}
    return json.dumps({"event": "media", "streamSid": "MZ1", "media": media})


def mark(name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": name}})


STOP = json.dumps({"event": "stop", "streamSid": "MZ1"})


async def close_of(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read until the server's close; its code and reason."""
    async with asyncio.timeout(30):
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                return ws.close_code, str(msg.extra or "")
            if msg.type == WSMsgType.ERROR:
                return ws.close_code, ""


# -- tokens and upgrade ----------------------------------------------------------------------------


async def test_an_unknown_token_is_refused_with_401(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    h.server.mint("call-1", "CA1")
    assert await h.refused("00000000-0000-4000-8000-000000000000") == 401
    assert h.admitted == []


async def test_minted_tokens_are_uuid4() -> None:
    import uuid

    server = RealtimeStreamServer(
        realtime_path=PATH, on_admitted=lambda c, s: Recorder(), protocol_factory=lambda: None
    )
    token = server.mint("call-1", "CA1")
    assert uuid.UUID(token).version == 4
    assert server.mint("call-1", "CA1") != token
    await server.aclose()


async def test_an_expired_token_is_refused_with_401_and_released(
    make: Callable[..., Awaitable[Harness]], caplog: pytest.LogCaptureFixture
) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    h.clock.now += 30.0
    with caplog.at_level(logging.WARNING, "voicecall.realtime.streams"):
        assert await h.refused(token) == 401
    assert h.released == [token]
    assert h.admitted == []
    assert any("call call-1 never connected" in r.getMessage() for r in caplog.records)


async def test_a_token_is_single_use(make: Callable[..., Awaitable[Harness]]) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    assert await h.refused(token) == 401
    await ws.close()
    await h.handler.disconnected.wait()
    assert await h.refused(token) == 401
    assert h.released == []  # admitted: the bridge owns the session now


async def test_upgrades_are_refused_with_503_while_stopping(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    h.server.stopping = True
    assert await h.refused(token) == 503


async def test_other_paths_fall_through(make: Callable[..., Awaitable[Harness]]) -> None:
    h = await make()
    h.server.mint("call-1", "CA1")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await h.session.ws_connect(str(h.http.make_url(f"{PATH}/a/b")))
    assert info.value.status == 404
    assert h.server.token_of(f"{PATH}/tok") == "tok"
    assert h.server.token_of(PATH) is None
    assert h.server.token_of("/voice/stream/tok") is None


def test_the_route_also_answers_under_the_public_prefix() -> None:
    server = RealtimeStreamServer(
        realtime_path=PATH + "/",
        prefix="/gw/",
        on_admitted=lambda c, s: Recorder(),
        protocol_factory=lambda: None,
    )
    assert server.token_of(f"/gw{PATH}/tok") == "tok"
    assert server.token_of(f"{PATH}/tok/") == "tok"
    assert server.url_for("tok") == f"wss://unknown-host/gw{PATH}/tok"


async def test_a_token_never_used_logs_the_exact_message_and_is_released(
    make: Callable[..., Awaitable[Harness]], caplog: pytest.LogCaptureFixture
) -> None:
    h = await make()
    token = h.server.mint("call-42", "CA42")
    later = h.server.mint("call-43", "CA43")
    h.clock.now += 29.0
    assert h.server.sweep() == 0
    h.clock.now += 1.0
    with caplog.at_level(logging.WARNING, "voicecall.realtime.streams"):
        assert h.server.sweep() == 2
    assert h.released == [token, later]
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "realtime stream for call call-42 never connected; the carrier could not reach "
        f"wss://{HOST}{PATH}/{token}"
    ) in messages
    assert h.server.pending_tokens == 0
    assert await h.refused(token) == 401


async def test_the_expiry_timer_sweeps_on_its_own(make: Callable[..., Awaitable[Harness]]) -> None:
    h = await make()
    h.server.ttl_s = 0.0  # due at once on the (fake) clock; the loop timer does the sweep
    token = h.server.mint("call-1", "CA1")
    await until(lambda: h.released == [token])


# -- admission and inbound ------------------------------------------------------------------------


async def test_admission_hands_the_start_and_the_handler_gets_media_marks_and_stop(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
    await ws.send_str(start())
    await until(lambda: h.handler is not None and bool(h.admitted))
    conn, info = h.admitted[0]
    assert info == RealtimeStart(
        token=token,
        call_id="call-1",
        provider_call_id="CA1",
        stream_id="MZ1",
        carrier="twilio",
        parameters={},
    )
    audio = bytes(range(160))
    await ws.send_str(media(audio))
    await ws.send_str(media(b"\x00" * 160, track="outbound"))  # not the caller: dropped
    await ws.send_str("{not json")  # counted and skipped
    await ws.send_str(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}))
    await ws.send_str(mark("m-1"))
    await ws.send_str(STOP)
    assert await close_of(ws) == (1000, "")
    await h.handler.disconnected.wait()
    assert h.handler.events == [
        ("media", audio),
        ("dtmf", "5"),
        ("mark", "m-1"),
        ("stop", None),
        ("disconnect", None),
    ]
    assert h.server.garbage_totals == {"json": 1}
    assert conn.closed


async def test_frames_before_admission_are_delivered_in_order_after_it(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    h.gate = asyncio.Event()
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.send_str(media(b"\x01" * 160, chunk=1))  # ahead of start (unordered carriers)
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))  # the factory runs and waits on the gate
    await ws.send_str(media(b"\x02" * 160, chunk=2))
    await ws.send_str(mark("m-1"))
    await ws.send_str(media(b"\x03" * 160, chunk=3))
    await ws.send_str("garbage")  # a sync point: once counted, everything before was read
    await until(lambda: h.server.garbage_totals.get("json") == 1)
    assert h.handler.events == []
    h.gate.set()
    await until(lambda: len(h.handler.events) == 4)
    await ws.send_str(media(b"\x04" * 160, chunk=4))
    await until(lambda: len(h.handler.events) == 5)
    assert h.handler.events == [
        ("media", b"\x01" * 160),
        ("media", b"\x02" * 160),
        ("mark", "m-1"),
        ("media", b"\x03" * 160),
        ("media", b"\x04" * 160),
    ]
    await ws.close()


async def test_more_than_1_mib_before_admission_terminates_the_socket(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    h.gate = asyncio.Event()  # admission never completes
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    chunk = media(b"\xff" * (150 * 1024))  # ~200 KiB of JSON, under the frame cap
    assert len(chunk) < MAX_FRAME_BYTES
    sent = 0
    while sent <= 1024 * 1024:
        await ws.send_str(chunk)
        sent += len(chunk)
    assert await close_of(ws) == (PRE_ADMISSION_CLOSE_CODE, PRE_ADMISSION_REASON)
    await until(lambda: h.released == [token])  # the pending admission was abandoned
    assert h.handler.events == []


async def test_a_frame_over_256_kib_closes_with_1009(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    await ws.send_str("x" * (MAX_FRAME_BYTES + 1))
    code, _ = await close_of(ws)
    assert code == 1009
    await h.handler.disconnected.wait()
    assert h.handler.events == [("disconnect", None)]


async def test_a_start_for_another_call_is_unauthorized(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.send_str(start(call_sid="CA-other"))
    assert await close_of(ws) == (1008, "Unauthorized stream")
    await until(lambda: h.released == [token])
    assert h.admitted == []


async def test_a_second_start_closes_the_socket(make: Callable[..., Awaitable[Harness]]) -> None:
    h = await make()
    ws = await h.connect(h.server.mint("call-1", "CA1"))
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    await ws.send_str(start())
    assert await close_of(ws) == (1008, "Duplicate start")
    await h.handler.disconnected.wait()


async def test_a_socket_closed_before_start_releases_the_token(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    token = h.server.mint("call-1", "CA1")
    ws = await h.connect(token)
    await ws.close()
    await until(lambda: h.released == [token])


async def test_telnyx_start_names_the_stream_and_the_call_control_id(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(TelnyxStreamProtocol)
    token = h.server.mint("call-7", "v3:ccid")
    ws = await h.connect(token)
    frame = {"event": "start", "stream_id": "S-9", "start": {"call_control_id": "v3:ccid"}}
    await ws.send_str(json.dumps(frame))
    await until(lambda: bool(h.admitted))
    _, info = h.admitted[0]
    assert (info.stream_id, info.provider_call_id, info.carrier) == ("S-9", "v3:ccid", "telnyx")
    await ws.close()


# -- outbound --------------------------------------------------------------------------------------


async def test_outbound_frames_reach_the_carrier(make: Callable[..., Awaitable[Harness]]) -> None:
    h = await make()
    ws = await h.connect(h.server.mint("call-1", "CA1"))
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    conn, _ = h.admitted[0]
    frame = conn.protocol.build_media(base64.b64encode(b"\xff" * 160).decode())
    assert conn.send(frame)
    assert conn.send(conn.protocol.build_mark("playout-1"))
    assert json.loads(await ws.receive_str()) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
    }
    assert json.loads(await ws.receive_str())["mark"] == {"name": "playout-1"}
    await ws.close()


async def test_a_peer_that_never_reads_is_closed_for_backpressure(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    ws = await h.connect(h.server.mint("call-1", "CA1"))
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    conn, _ = h.admitted[0]
    transport = conn.transport
    assert isinstance(transport, asyncio.WriteTransport)
    frame = conn.protocol.build_media(base64.b64encode(b"\xff" * 160).decode())
    most_buffered = 0
    sent = 0
    while conn.send(frame):  # the peer is not reading meanwhile
        sent += 1
        most_buffered = max(most_buffered, transport.get_write_buffer_size())
    assert sent > 0
    assert most_buffered <= BACKPRESSURE_LIMIT_BYTES
    assert not conn.send(frame)
    code, reason = await close_of(ws)  # the peer finally reads: its frames, then the close
    assert (code, reason) == (1013, "Backpressure: send buffer exceeded")
    await h.handler.disconnected.wait()


async def test_shutdown_closes_open_sockets_with_1001(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    ws = await h.connect(h.server.mint("call-1", "CA1"))
    await ws.send_str(start())
    await until(lambda: bool(h.admitted))
    closing = asyncio.ensure_future(h.server.aclose())
    assert await close_of(ws) == (1001, "Server shutting down")
    await closing
    assert h.handler.events == [("disconnect", None)]
