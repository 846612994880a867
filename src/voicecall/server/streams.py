"""Carrier media streams on the webhook listener (SPEC §5.1): upgrade, caps, auth, read loop.

Admission, in order: while stopping or with ``maxConnections`` sockets open (pending, active
or upgrading) the upgrade is refused with HTTP 503; a socket over ``maxPendingConnections`` /
``maxPendingConnectionsPerIp`` is closed with 1013; then it must send a valid ``start`` within
``preStartTimeoutMs`` (1008 ``Start timeout``) naming a live call (1008 ``Unknown call`` /
``Missing call id``) with that call's current token, compared in constant time (1008
``Unauthorized stream``). Frames over 64 KiB close the socket with 1009 before any parsing. A
second ``start`` closes it with 1008 ``Duplicate start``. A newer stream of the same call
supersedes the older one, which is closed; the call manager's 2 s grace handles the rest.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from voicecall.carriers.base import Carrier
from voicecall.carriers.media_stream import (
    StreamFrameError,
    StreamProtocol,
    StreamStarted,
    StreamStopped,
)
from voicecall.server.metrics import GatewayMetrics
from voicecall.streaming import CallStream, StreamControl, SttFactory
from voicecall.streaming.playback import Playback
from voicecall.streaming.speaker import StreamSpeaker, Synthesizer
from voicecall.stt import EventCallback, SttSession, create_stt_session_or_warn
from voicecall.tts import TtsRegistry

__all__ = [
    "BACKPRESSURE_LIMIT_BYTES",
    "MAX_FRAME_BYTES",
    "StreamServer",
    "sanitize_reason",
]

log = logging.getLogger("voicecall.streams")

MAX_FRAME_BYTES = 64 * 1024
BACKPRESSURE_LIMIT_BYTES = 1024 * 1024
_FRAME_BYTES = 160  # 20 ms of u-law at 8 kHz
_MAX_FRAME_HEADER_BYTES = 10  # an unmasked server frame with a 64-bit length

_POLICY = WSCloseCode.POLICY_VIOLATION  # 1008
_TRY_AGAIN = WSCloseCode.TRY_AGAIN_LATER  # 1013
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_reason(reason: str) -> str:
    """A close reason safe to log and send: no control characters, at most 123 UTF-8 bytes."""
    clean = _CONTROL_CHARS.sub("", reason)
    return clean.encode()[:123].decode("utf-8", "ignore")


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """SPEC §1.5 caps of the media-stream listener."""

    pre_start_timeout_s: float = 5.0
    max_pending: int = 32
    max_pending_per_ip: int = 4
    max_connections: int = 128

    @classmethod
    def from_config(cls, streaming: Any) -> StreamLimits:
        """The caps of a ``streaming`` config section."""
        return cls(
            pre_start_timeout_s=streaming.pre_start_timeout_ms / 1000,
            max_pending=streaming.max_pending_connections,
            max_pending_per_ip=streaming.max_pending_connections_per_ip,
            max_connections=streaming.max_connections,
        )


class _Rejected(Exception):
    def __init__(self, code: int, reason: str, metric: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.metric = metric


class _Connection:
    """One accepted media socket."""

    __slots__ = ("closing", "stream", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.stream: CallStream | None = None
        self.closing = False


class _JitterCollector(Collector):
    """Per-call jitter counters of the open streams, and malformed frames of all streams."""

    def __init__(self, server: StreamServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Any]:
        jitter = CounterMetricFamily(
            "voicecall_media_jitter_frames",
            "Jitter-buffer frame counters of the open media streams, per call.",
            labels=["callId", "counter"],
        )
        for stream in self._server.streams():
            stats = stream.pump.jitter_stats
            for name in ("lost", "late", "concealed"):
                jitter.add_metric([stream.call_id, name], getattr(stats, name))
        yield jitter
        garbage = CounterMetricFamily(
            "voicecall_media_stream_malformed_frames",
            "Media-stream frames that could not be used, by problem.",
            labels=["kind"],
        )
        for kind, count in sorted(self._server.garbage_totals.items()):
            garbage.add_metric([kind], count)
        yield garbage
        pending = GaugeMetricFamily(
            "voicecall_media_streams_pending", "Media sockets waiting for a valid start."
        )
        pending.add_metric([], self._server.pending_count)
        yield pending


class StreamServer:
    """The classic media-stream endpoint of one gateway run (mounted on the webhook app)."""

    def __init__(
        self,
        config: Any,
        *,
        carrier: Carrier,
        control: StreamControl,
        metrics: GatewayMetrics,
        env: Mapping[str, str],
        stt_factory: Callable[[EventCallback], SttSession | None] | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        http_session: aiohttp.ClientSession | None = None,
        on_barge_in: Callable[[str], None] | None = None,
    ) -> None:
        streaming = config.streaming
        self.config = config
        self.limits = StreamLimits.from_config(streaming)
        self.stream_path = streaming.stream_path.rstrip("/")
        self.realtime_path = (config.realtime.stream_path or "").rstrip("/")
        from voicecall.exposure.webhook_url import public_path_prefix

        self.prefix = public_path_prefix(config).rstrip("/")
        self.carrier = carrier
        self.control = control
        self.metrics = metrics
        self.env = env
        self._stt_factory: SttFactory = stt_factory or self._default_stt
        self._clock_ms = clock_ms
        self.stopping = False
        self.garbage_totals: dict[str, int] = {}
        self._open = 0  # upgrading + pending + active sockets
        self._pending: dict[str, int] = {}  # client IP -> sockets before a valid start
        self._connections: set[_Connection] = set()
        self._by_call: dict[str, _Connection] = {}
        self._collector = _JitterCollector(self)
        metrics.registry.register(self._collector)
        self._gauge = metrics.media_streams_active.labels(kind="classic")
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_barge_in = on_barge_in
        self.tts = TtsRegistry(
            config,
            env=env,
            http_session=http_session,
            on_fallback=lambda first, used: metrics.tts_fallbacks.labels(first, used).inc(),
        )
        self.speaker = StreamSpeaker(self._chain, clock_ms=clock_ms, env=env)

    # -- wiring ----------------------------------------------------------------------------------

    def _default_stt(self, on_event: EventCallback) -> SttSession | None:
        return create_stt_session_or_warn(self.config, None, on_event=on_event, env=self.env)

    @property
    def pending_count(self) -> int:
        """Sockets that have not sent a valid ``start`` yet."""
        return sum(self._pending.values())

    def _chain(self, number: str | None) -> Synthesizer:
        return self.tts.chain(number=number)

    def playback_for(self, call_id: str) -> Playback | None:
        """The outbound audio of the call's open stream (None: no stream is open)."""
        conn = self._by_call.get(call_id)
        if conn is None or conn.stream is None or conn.closing or conn.ws.closed:
            return None
        return conn.stream.playback

    def streams(self) -> list[CallStream]:
        """The registered streams (one per call)."""
        return [c.stream for c in self._by_call.values() if c.stream is not None]

    def matches(self, path: str) -> bool:
        """Whether ``path`` is a classic media-stream path (SPEC §5.1 routing)."""
        path = path.rstrip("/")
        if self.realtime_path and path.startswith(self.realtime_path + "/"):
            return False
        for base in {self.stream_path, self.prefix + self.stream_path}:
            if path == base or (path.startswith(base + "/") and "/" not in path[len(base) + 1 :]):
                return True
        return False

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Route websocket upgrades on the stream path here; everything else to ``handler``."""
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and request.method == "GET" and self.matches(request.path):
            return await self.handle(request)
        return await handler(request)

    def close_call_stream(self, call_id: str, stream_id: str) -> None:
        """The call ended: close its stream (``CloseStream`` from the call manager)."""
        conn = self._by_call.get(call_id)
        if conn is not None and conn.stream is not None and conn.stream.stream_id == stream_id:
            self._close_later(conn, WSCloseCode.OK, "Call ended")

    async def aclose(self) -> None:
        """Refuse new upgrades and close every media socket with 1001 (SPEC §2.9)."""
        self.stopping = True
        await asyncio.gather(
            *(
                self._close(c, WSCloseCode.GOING_AWAY, "Server shutting down")
                for c in self._connections
            ),
            return_exceptions=True,
        )
        # The handlers unwind on their own tasks (aiohttp's); give them a bounded moment.
        async with asyncio.timeout(10):
            while self._connections or self._tasks:
                await asyncio.sleep(0.01)
        self.metrics.registry.unregister(self._collector)
        await self.speaker.aclose()
        await self.tts.aclose()

    # -- one connection --------------------------------------------------------------------------

    def _reject_metric(self, reason: str) -> None:
        self.metrics.media_stream_rejections.labels(reason=reason).inc()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The upgrade: HTTP 503 refusals, then the socket's whole life."""
        if self.stopping:
            self._reject_metric("stopping")
            return web.Response(status=503, text="Server shutting down")
        if self._open >= self.limits.max_connections:
            self._reject_metric("max_connections")
            log.warning("media stream refused: %d sockets open", self._open)
            return web.Response(status=503, text="Too many media stream connections")
        ip = request.remote or "unknown"
        self._open += 1
        try:
            ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True)
            await ws.prepare(request)
            transport = request.transport
            if isinstance(transport, asyncio.WriteTransport):
                # aiohttp awaits a drain once the transport pauses (64 KiB by default), which
                # would block a sender forever on a peer that never reads; pausing only past
                # the backpressure limit lets send() see the buffer grow and close with 1013.
                transport.set_write_buffer_limits(high=BACKPRESSURE_LIMIT_BYTES)
            conn = _Connection(ws, transport)
            self._connections.add(conn)
            try:
                await self._serve(conn, request, ip)
            finally:
                self._connections.discard(conn)
            return ws
        finally:
            self._open -= 1

    async def _serve(self, conn: _Connection, request: web.Request, ip: str) -> None:
        total_pending = self.pending_count
        if (
            total_pending >= self.limits.max_pending
            or self._pending.get(ip, 0) >= self.limits.max_pending_per_ip
        ):
            per_ip = total_pending < self.limits.max_pending
            self._reject_metric("max_pending_per_ip" if per_ip else "max_pending")
            await self._close(conn, _TRY_AGAIN, "Too many pending media stream connections")
            return
        protocol = self.carrier.stream_protocol()
        self._pending[ip] = self._pending.get(ip, 0) + 1
        try:
            started = await self._await_start(conn, protocol, request)
        except _Rejected as exc:
            self._reject_metric(exc.metric)
            log.warning("media stream refused (%s)", sanitize_reason(exc.reason))
            await self._close(conn, exc.code, exc.reason)
            return
        finally:
            self._pending[ip] -= 1
            if not self._pending[ip]:
                del self._pending[ip]
        if started is None or protocol is None:
            return
        await self._run(conn, protocol, started)

    async def _await_start(
        self, conn: _Connection, protocol: StreamProtocol | None, request: web.Request
    ) -> tuple[StreamStarted, Any] | None:
        """Read until a valid ``start``; None when the socket closed first."""
        ws = conn.ws
        try:
            async with asyncio.timeout(self.limits.pre_start_timeout_s):
                while True:
                    msg = await ws.receive()
                    if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                        if protocol is None:
                            raise _Rejected(_POLICY, "Unknown call", "unknown_call")
                        try:
                            event = protocol.parse(msg.data)
                        except StreamFrameError as exc:
                            self._count_garbage(exc.kind)
                            continue
                        if isinstance(event, StreamStarted):
                            return self._authorize(event, protocol, request)
                        if isinstance(event, StreamStopped):
                            return None
                        continue
                    if msg.type == WSMsgType.ERROR:
                        self._frame_error(ws)
                    return None
        except TimeoutError:
            raise _Rejected(_POLICY, "Start timeout", "start_timeout") from None

    def _frame_error(self, ws: web.WebSocketResponse) -> None:
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            self._reject_metric("frame_too_big")
            log.warning("media stream closed: frame over %d bytes", MAX_FRAME_BYTES)

    def _authorize(
        self, started: StreamStarted, protocol: StreamProtocol, request: web.Request
    ) -> tuple[StreamStarted, Any]:
        pcid = started.provider_call_id
        if not pcid:
            raise _Rejected(_POLICY, "Missing call id", "missing_call_id")
        record = self.control.find_by_provider_id(pcid)
        tokens = self.carrier.stream_tokens
        if record is None or record.ended_at_ms is not None or tokens is None:
            raise _Rejected(_POLICY, "Unknown call", "unknown_call")
        if protocol.token_in_path:
            token: str | None = request.path.rstrip("/").rpartition("/")[2]
        else:
            token = started.token or request.query.get("token")
        if not tokens.check(pcid, token):
            raise _Rejected(_POLICY, "Unauthorized stream", "unauthorized")
        return started, record

    async def _run(
        self, conn: _Connection, protocol: StreamProtocol, started: tuple[StreamStarted, Any]
    ) -> None:
        event, record = started
        stream = CallStream(
            record=record,
            stream_id=event.stream_id,
            protocol=protocol,
            control=self.control,
            clock_ms=self._clock_ms,
            fail=lambda code, reason: self._fail(conn, code, reason),
            send_frame=lambda text: self.send_now(record.call_id, text),
        )
        if self.on_barge_in is not None:
            barged_in, call_id = self.on_barge_in, record.call_id
            stream.barge_in.on_barge_in.append(lambda: barged_in(call_id))
        previous = self._by_call.get(record.call_id)
        conn.stream = stream
        self._by_call[record.call_id] = conn
        if previous is not None and previous is not conn:
            log.info("media stream %s supersedes the call's previous stream", event.stream_id)
            self._close_later(previous, WSCloseCode.OK, "Superseded by a newer stream")
        self._gauge.inc()
        try:
            await stream.open(self._stt_factory)
            await self._read_loop(conn, stream)
        finally:
            self._gauge.dec()
            if self._by_call.get(record.call_id) is conn:
                del self._by_call[record.call_id]
            for kind, count in stream.garbage.counts.items():
                self.garbage_totals[kind] = self.garbage_totals.get(kind, 0) + count
            try:
                await stream.close()
            finally:
                if not conn.ws.closed:
                    await conn.ws.close()

    async def _read_loop(self, conn: _Connection, stream: CallStream) -> None:
        ws = conn.ws
        feed = stream.pump.feed
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                event = feed(msg.data)
                if event is None:
                    continue
                if isinstance(event, StreamStarted):
                    self._reject_metric("duplicate_start")
                    await self._close(conn, _POLICY, "Duplicate start")
                    return
                if isinstance(event, StreamStopped):
                    log.info("media stream %s stopped by the carrier", stream.stream_id)
                    return
                await stream.handle(event)
                continue
            if kind == WSMsgType.ERROR:
                self._frame_error(ws)
            return

    # -- outbound --------------------------------------------------------------------------------

    async def send(self, call_id: str, text: str) -> bool:
        """Send one outbound frame on the call's stream; over 1 MiB buffered closes it (1013).

        A frame that would take the buffer past the limit is not sent: the socket is closed
        instead, so the buffer stays bounded and the send never waits on a peer that stopped
        reading (the transport pauses, and aiohttp would drain, only past the limit).
        """
        conn = self._by_call.get(call_id)
        if conn is None or conn.closing or conn.ws.closed:
            return False
        transport = conn.transport
        if (
            isinstance(transport, asyncio.WriteTransport)
            # Carrier frames are ASCII JSON: characters are bytes (no encode per frame).
            and transport.get_write_buffer_size() + len(text) + _MAX_FRAME_HEADER_BYTES
            > BACKPRESSURE_LIMIT_BYTES
        ):
            self._reject_metric("backpressure")
            self._close_later(conn, _TRY_AGAIN, "Backpressure: send buffer exceeded")
            return False
        await conn.ws.send_str(text)
        return True

    def send_now(self, call_id: str, text: str) -> bool:
        """:meth:`send` from a timer callback: writes at once, never creates a Task.

        Below the backpressure limit the transport is never paused, so aiohttp's send
        completes without suspending; should it suspend anyway, the socket is closed (1013)
        as a backpressure failure rather than waiting on it.
        """
        coro = self.send(call_id, text)
        try:
            coro.send(None)
        except StopIteration as done:
            return bool(done.value)
        except (ConnectionError, RuntimeError):  # the transport went away under us
            return False
        coro.close()
        conn = self._by_call.get(call_id)
        if conn is not None:
            self._reject_metric("backpressure")
            self._close_later(conn, _TRY_AGAIN, "Backpressure: send buffer exceeded")
        return False

    async def send_audio(self, call_id: str, ulaw: bytes) -> bool:
        """Queue u-law 8 kHz audio on the call's stream, in 20 ms frames of its carrier's format.

        The carrier plays queued frames in order, so this audio follows whatever was sent
        before it (SPEC §3.5: DTMF tones queued after audio already queued).
        """
        conn = self._by_call.get(call_id)
        if conn is None or conn.stream is None:
            return False
        build = conn.stream.protocol.build_media
        for start in range(0, len(ulaw), _FRAME_BYTES):
            payload = base64.b64encode(ulaw[start : start + _FRAME_BYTES]).decode("ascii")
            if not await self.send(call_id, build(payload)):
                return False
        return True

    # -- closing ---------------------------------------------------------------------------------

    def _count_garbage(self, kind: str) -> None:
        self.garbage_totals[kind] = self.garbage_totals.get(kind, 0) + 1

    async def _fail(self, conn: _Connection, code: int, reason: str) -> None:
        self._reject_metric("stt_failed")
        self._close_later(conn, code, reason)

    def _close_later(self, conn: _Connection, code: int, reason: str) -> None:
        # Marked closing now, not when the task runs: a send in between must not count or
        # close a second time.
        if conn.closing or conn.ws.closed:
            return
        conn.closing = True
        task = asyncio.ensure_future(self._send_close(conn, code, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, conn: _Connection, code: int, reason: str) -> None:
        if conn.closing or conn.ws.closed:
            return
        conn.closing = True
        await self._send_close(conn, code, reason)

    @staticmethod
    async def _send_close(conn: _Connection, code: int, reason: str) -> None:
        await conn.ws.close(code=code, message=sanitize_reason(reason).encode())
