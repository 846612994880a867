"""Realtime-bridge sockets on the webhook listener (SPEC §7.1, §7.2): tokens, upgrade, admission.

The transport half of the realtime voice bridge. It knows nothing of the bridge itself: the
owner injects ``on_admitted(conn, start) -> handler`` and gets inbound events through the
handler's methods, outbound frames through :meth:`RealtimeConnection.send`.

Tokens (§7.1): :meth:`RealtimeStreamServer.mint` issues a UUID v4 per stream document (T-REALTIME,
Telnyx ``stream_url``, Plivo ``<Stream>``). A token is single use and lives ``TOKEN_TTL_S``
(30 s) on the injectable clock; lookups go through a SHA-256 index and the stored token is
compared with :func:`hmac.compare_digest`. A token never used within its TTL is dropped by
:meth:`RealtimeStreamServer.sweep` (armed on a loop timer at the earliest deadline, and run on
every upgrade), logging ``realtime stream for call <id> never connected; the carrier could not
reach wss://<url>`` and calling ``released(token)`` so the owner releases a pre-warmed provider
session (§7.3). ``released`` is also called for a token whose socket ended before admission
(the pre-warmed session was never handed to a handler either).

Upgrade (§7.2), on ``{realtimePath}/{token}`` (also under the public path prefix): while
stopping → HTTP 503; unknown, expired or already used token → HTTP 401, both before upgrading.
Frames over ``MAX_FRAME_BYTES`` (256 KiB) close the socket with 1009 (aiohttp, before parsing).

Admission: frames are parsed with the carrier's :class:`StreamProtocol` (Twilio
``start.streamSid`` + ``start.callSid``, Telnyx ``stream_id`` + ``start.call_control_id``, …).
Everything received before admission completes — frames ahead of ``start`` (Telnyx does not
order frames) and frames while ``on_admitted`` is still running — is kept and delivered, in
arrival order, right after the handler exists. Those frames may total ``PRE_ADMISSION_LIMIT_BYTES``
(1 MiB, raw frame bytes, ``start`` included); past that the socket is closed with
``PRE_ADMISSION_CLOSE_CODE`` 1008 ``Pre-admission buffer exceeded``. No ``start`` within
``start_timeout_s`` → 1008 ``Start timeout``; a ``start`` naming another provider call than the
token's → 1008 ``Unauthorized stream``; a second ``start`` → 1008 ``Duplicate start``;
``on_admitted`` raising → 1011 ``Realtime bridge failed``.

Inbound dispatch (synchronous, no Task per frame): inbound-track media → ``on_media(ulaw)``
(base64 decoded), ``mark`` → ``on_mark(name)``, ``dtmf`` → ``on_dtmf(digit)``, ``stop`` →
``on_stop()`` (the server then closes the socket with 1000), and exactly once at the end, however
the socket ended, ``on_disconnect()``. The owner applies the 2 s disconnect grace (§7.7).
Malformed frames are counted in :attr:`RealtimeStreamServer.garbage_totals` and skipped.

Outbound: :meth:`RealtimeConnection.send` writes one text frame at once (usable as the pacer's
``FrameSink``); past ``BACKPRESSURE_LIMIT_BYTES`` (1 MiB) buffered it refuses the frame and
closes the socket with 1013 ``Backpressure: send buffer exceeded`` (as the classic streams do).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from voicecall.carriers.media_stream import (
    DtmfReceived,
    MarkReceived,
    MediaReceived,
    StreamConnected,
    StreamErrorReported,
    StreamEvent,
    StreamFrameError,
    StreamProtocol,
    StreamStarted,
    StreamStopped,
    decode_payload,
)
from voicecall.server.streams import BACKPRESSURE_LIMIT_BYTES, sanitize_reason

__all__ = [
    "MAX_FRAME_BYTES",
    "PRE_ADMISSION_CLOSE_CODE",
    "PRE_ADMISSION_LIMIT_BYTES",
    "PRE_ADMISSION_REASON",
    "TOKEN_TTL_S",
    "AdmitFactory",
    "RealtimeConnection",
    "RealtimeHandler",
    "RealtimeStart",
    "RealtimeStreamServer",
]

log = logging.getLogger("voicecall.realtime.streams")

MAX_FRAME_BYTES = 256 * 1024
PRE_ADMISSION_LIMIT_BYTES = 1024 * 1024
PRE_ADMISSION_CLOSE_CODE = int(WSCloseCode.POLICY_VIOLATION)  # 1008
PRE_ADMISSION_REASON = "Pre-admission buffer exceeded"
TOKEN_TTL_S = 30.0
START_TIMEOUT_S = 10.0
BACKPRESSURE_REASON = "Backpressure: send buffer exceeded"
_FRAME_HEADER_BYTES = 10  # an unmasked server frame with a 64-bit length
_POLICY = int(WSCloseCode.POLICY_VIOLATION)
_GOING_AWAY = int(WSCloseCode.GOING_AWAY)


@dataclass(frozen=True, slots=True)
class RealtimeStart:
    """What admission learned: the minted call and the carrier's ``start``."""

    token: str
    call_id: str
    provider_call_id: str
    stream_id: str
    carrier: str
    parameters: dict[str, str] = field(default_factory=dict)


class RealtimeHandler(Protocol):
    """The owner's per-socket receiver; every method is called synchronously on the loop."""

    def on_media(self, ulaw: bytes) -> None:
        """One inbound frame of the caller's audio (G.711 µ-law 8 kHz)."""

    def on_mark(self, name: str) -> None:
        """The carrier played everything sent before the mark ``name``."""

    def on_dtmf(self, digit: str) -> None:
        """The caller pressed a key."""

    def on_stop(self) -> None:
        """The carrier sent ``stop`` (the socket closes next)."""

    def on_disconnect(self) -> None:
        """The socket is gone (called once, last, however it ended)."""


AdmitFactory = Callable[
    ["RealtimeConnection", RealtimeStart], "RealtimeHandler | Awaitable[RealtimeHandler]"
]


@dataclass(slots=True)
class _Minted:
    token: str
    call_id: str
    provider_call_id: str
    deadline: float


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class RealtimeConnection:
    """One realtime media socket; handed to ``on_admitted`` once the carrier's ``start`` is in."""

    __slots__ = (
        "_spawn",
        "closing",
        "handler",
        "protocol",
        "start",
        "token",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        protocol: StreamProtocol,
        token: str,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.ws = ws
        self.transport = transport
        #: The carrier's frame codec (``build_media``/``build_mark``/``build_clear`` for the pacer).
        self.protocol = protocol
        self.token = token
        self.start: RealtimeStart | None = None
        self.handler: RealtimeHandler | None = None
        self.closing = False
        self._spawn = spawn

    @property
    def closed(self) -> bool:
        """Whether the socket is closed or closing (sends are refused)."""
        return self.closing or self.ws.closed

    def send(self, text: str) -> bool:
        """Write one text frame now; False when closed or refused for backpressure.

        A frame that would take the send buffer past 1 MiB is not written: the socket is closed
        with 1013 instead, so the buffer stays bounded and no send waits on a peer that stopped
        reading. Never suspends and never creates a Task per frame.
        """
        if self.closed:
            return False
        transport = self.transport
        # Carrier frames are ASCII JSON: characters are bytes.
        if (
            isinstance(transport, asyncio.WriteTransport)
            and transport.get_write_buffer_size() + len(text) + _FRAME_HEADER_BYTES
            > BACKPRESSURE_LIMIT_BYTES
        ):
            self.close(int(WSCloseCode.TRY_AGAIN_LATER), BACKPRESSURE_REASON)
            return False
        coro = self.ws.send_str(text)
        try:
            coro.send(None)
        except StopIteration:
            return True
        except (ConnectionError, RuntimeError):  # the transport went away under us
            return False
        coro.close()  # it would have waited for a drain: treat as backpressure
        self.close(int(WSCloseCode.TRY_AGAIN_LATER), BACKPRESSURE_REASON)
        return False

    def close(self, code: int = int(WSCloseCode.OK), reason: str = "") -> None:
        """Close the socket (once) with ``code``/``reason``; returns at once."""
        if self.closed:
            return
        self.closing = True
        self._spawn(self._send_close(code, reason))

    async def aclose(self, code: int, reason: str) -> None:
        """Close the socket (once) and wait for the close handshake to be sent."""
        if self.closed:
            return
        self.closing = True
        await self._send_close(code, reason)

    async def _send_close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=sanitize_reason(reason).encode())


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RealtimeStreamServer:
    """The realtime-bridge socket endpoint of one gateway run (mounted on the webhook app).

    ``protocol_factory`` returns a fresh carrier frame codec per socket (``carrier.stream_protocol``
    for Twilio/Telnyx). ``public_host`` names the host the carrier dials (for the never-connected
    log line). ``clock`` is monotonic seconds; ``sweep`` uses it, the loop timer only wakes it.
    """

    def __init__(
        self,
        *,
        realtime_path: str,
        on_admitted: AdmitFactory,
        protocol_factory: Callable[[], StreamProtocol | None],
        prefix: str = "",
        public_host: Callable[[], str | None] | None = None,
        released: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = TOKEN_TTL_S,
        start_timeout_s: float = START_TIMEOUT_S,
        metrics: Any = None,
    ) -> None:
        self.realtime_path = realtime_path.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self.on_admitted = on_admitted
        self.protocol_factory = protocol_factory
        self.public_host = public_host
        self.released = released
        self.ttl_s = ttl_s
        self.start_timeout_s = start_timeout_s
        self.metrics = metrics
        self.stopping = False
        self.garbage_totals: dict[str, int] = {}
        self._clock = clock
        self._tokens: dict[bytes, _Minted] = {}  # sha256(token) -> minted, in mint order
        self._timer: asyncio.TimerHandle | None = None
        self._connections: set[RealtimeConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- tokens ----------------------------------------------------------------------------------

    def mint(self, call_id: str, provider_call_id: str) -> str:
        """A fresh single-use token (UUID v4) for one stream document of the call."""
        token = str(uuid.uuid4())
        self._tokens[_digest(token)] = _Minted(
            token, call_id, provider_call_id, self._clock() + self.ttl_s
        )
        self._arm()
        return token

    @property
    def pending_tokens(self) -> int:
        """Minted tokens not used and not expired yet."""
        return len(self._tokens)

    def url_for(self, token: str) -> str:
        """``wss://{host}{prefix}{realtimePath}/{token}``."""
        host = (self.public_host() if self.public_host is not None else None) or "unknown-host"
        return f"wss://{host}{self.prefix}{self.realtime_path}/{token}"

    def sweep(self) -> int:
        """Expire every token past its TTL (log + ``released``); how many expired."""
        now = self._clock()
        expired = 0
        while self._tokens:
            key, minted = next(iter(self._tokens.items()))
            if minted.deadline > now:
                break
            del self._tokens[key]
            expired += 1
            log.warning(
                "realtime stream for call %s never connected; the carrier could not reach %s",
                minted.call_id,
                self.url_for(minted.token),
            )
            self._release(minted.token)
        return expired

    def _release(self, token: str) -> None:
        if self.released is None:
            return
        try:
            self.released(token)
        except Exception:
            log.exception("releasing the realtime session of a stream token failed")

    def _arm(self) -> None:
        """One loop timer at the earliest deadline (tokens are kept in mint = deadline order)."""
        if self._timer is not None or not self._tokens:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # minted outside a loop: swept on the next upgrade
            return
        first = next(iter(self._tokens.values()))
        self._timer = loop.call_later(max(0.0, first.deadline - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.sweep() == 0 and self._tokens:
            # Woke early (loop clock slack) or the injected clock has not moved: re-arm once
            # the first deadline is ahead, not in a busy loop.
            first = next(iter(self._tokens.values()))
            delay = max(first.deadline - self._clock(), 0.05)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
            return
        self._arm()

    def _take(self, token: str) -> _Minted | None:
        """The token's mint, consumed (single use); None when unknown or expired."""
        self.sweep()
        minted = self._tokens.get(_digest(token))
        if minted is None or not hmac.compare_digest(minted.token.encode(), token.encode()):
            return None
        del self._tokens[_digest(token)]
        return minted

    # -- routing ---------------------------------------------------------------------------------

    def token_of(self, path: str) -> str | None:
        """The token of a realtime path ``{realtimePath}/{token}``; None for any other path."""
        if not self.realtime_path:
            return None
        path = path.rstrip("/")
        for base in {self.realtime_path, self.prefix + self.realtime_path}:
            if path.startswith(base + "/"):
                token = path[len(base) + 1 :]
                if token and "/" not in token:
                    return token
        return None

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Route websocket upgrades on the realtime path here; everything else to ``handler``."""
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and request.method == "GET":
            token = self.token_of(request.path)
            if token is not None:
                return await self.handle(request, token)
        return await handler(request)

    async def aclose(self) -> None:
        """Refuse new upgrades, close every socket with 1001 and stop the expiry timer."""
        self.stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await asyncio.gather(
            *(
                c.aclose(int(WSCloseCode.GOING_AWAY), "Server shutting down")
                for c in self._connections
            ),
            return_exceptions=True,
        )
        async with asyncio.timeout(10):
            while self._connections or self._tasks:
                await asyncio.sleep(0.01)

    def _metric(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.media_stream_rejections.labels(reason=f"realtime_{reason}").inc()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one connection --------------------------------------------------------------------------

    async def handle(self, request: web.Request, token: str) -> web.StreamResponse:
        """The upgrade: HTTP 503/401 refusals, then the socket's whole life."""
        if self.stopping:
            self._metric("stopping")
            return web.Response(status=503, text="Server shutting down")
        minted = self._take(token)
        if minted is None:
            self._metric("unauthorized")
            log.warning("realtime stream refused: unknown or expired token")
            return web.Response(status=401, text="Unauthorized stream")
        protocol = self.protocol_factory()
        if protocol is None:
            self._metric("no_protocol")
            self._release(minted.token)
            return web.Response(status=404, text="No media streams for this carrier")
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True)
        await ws.prepare(request)
        transport = request.transport
        if isinstance(transport, asyncio.WriteTransport):
            # As in the classic streams: pause only past the backpressure limit, so a send to a
            # peer that stopped reading sees the buffer grow instead of awaiting a drain.
            transport.set_write_buffer_limits(high=BACKPRESSURE_LIMIT_BYTES)
        conn = RealtimeConnection(ws, transport, protocol, minted.token, self._spawn)
        self._connections.add(conn)
        gauge = self.metrics.media_streams_active.labels(kind="realtime") if self.metrics else None
        if gauge is not None:
            gauge.inc()
        try:
            await _Session(self, conn, minted).run()
        finally:
            self._connections.discard(conn)
            if gauge is not None:
                gauge.dec()
            if not ws.closed:
                await ws.close()
        return ws


def _disconnect(handler: RealtimeHandler) -> None:
    try:
        handler.on_disconnect()
    except Exception:
        log.exception("realtime handler failed on disconnect")


class _Session:
    """The read loop of one socket: pre-admission buffering, admission, then dispatch."""

    __slots__ = (
        "admission",
        "buffered",
        "buffered_bytes",
        "conn",
        "finished",
        "minted",
        "server",
    )

    def __init__(
        self, server: RealtimeStreamServer, conn: RealtimeConnection, minted: _Minted
    ) -> None:
        self.server = server
        self.conn = conn
        self.minted = minted
        self.buffered: list[StreamEvent] = []
        self.buffered_bytes = 0
        self.admission: asyncio.Task[None] | None = None
        self.finished = False

    async def run(self) -> None:
        conn = self.conn
        try:
            async with asyncio.timeout(self.server.start_timeout_s):
                while conn.start is None:
                    if not await self._receive_one():
                        return
            while await self._receive_one():
                pass
        except TimeoutError:
            self.server._metric("start_timeout")
            await conn.aclose(_POLICY, "Start timeout")
        except _Refused as exc:
            self.server._metric(exc.reason.lower().replace(" ", "_"))
            log.warning("realtime stream closed (%s)", exc.reason)
            await conn.aclose(exc.code, exc.reason)
        finally:
            self._finish()

    def _finish(self) -> None:
        # Synchronous on purpose: nothing here waits on the peer or on the owner's factory.
        self.finished = True
        admission = self.admission
        if admission is not None and not admission.done():
            # The socket ended before admission completed: the owner's factory is cancelled
            # (it cleans up on CancelledError) and the token's session released.
            admission.cancel()
        handler = self.conn.handler
        if handler is None:
            self.server._release(self.minted.token)
        else:
            _disconnect(handler)

    async def _receive_one(self) -> bool:
        """Read and route one message; False once the socket is done."""
        conn = self.conn
        msg = await conn.ws.receive()
        if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
            if msg.type == WSMsgType.ERROR and conn.ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
                self.server._metric("frame_too_big")
                log.warning("realtime stream closed: frame over %d bytes", MAX_FRAME_BYTES)
            return False
        if conn.handler is None:
            self.buffered_bytes += len(msg.data)
            if self.buffered_bytes > PRE_ADMISSION_LIMIT_BYTES:
                raise _Refused(PRE_ADMISSION_CLOSE_CODE, PRE_ADMISSION_REASON)
        try:
            event = conn.protocol.parse(msg.data)
        except StreamFrameError as exc:
            garbage = self.server.garbage_totals
            garbage[exc.kind] = garbage.get(exc.kind, 0) + 1
            return True
        if isinstance(event, StreamStarted):
            if conn.start is not None:
                raise _Refused(_POLICY, "Duplicate start")
            self._admit(event)
            return True
        if conn.handler is None:
            if isinstance(event, StreamStopped) and conn.start is None:
                return False  # stopped before it started: nothing to admit
            if not isinstance(event, StreamConnected):
                self.buffered.append(event)
            return True
        return self._dispatch(conn.handler, event)

    def _admit(self, started: StreamStarted) -> None:
        minted, conn = self.minted, self.conn
        pcid = started.provider_call_id
        if pcid and pcid != minted.provider_call_id:
            raise _Refused(_POLICY, "Unauthorized stream")
        conn.start = RealtimeStart(
            token=minted.token,
            call_id=minted.call_id,
            provider_call_id=minted.provider_call_id,
            stream_id=started.stream_id,
            carrier=conn.protocol.carrier,
            parameters=dict(started.parameters),
        )
        log.info("realtime stream %s started for call %s", started.stream_id, minted.call_id)
        self.admission = admission = asyncio.ensure_future(self._admission(conn.start))
        self.server._tasks.add(admission)
        admission.add_done_callback(self.server._tasks.discard)

    async def _admission(self, start: RealtimeStart) -> None:
        conn = self.conn
        try:
            made = self.server.on_admitted(conn, start)
            handler = await made if inspect.isawaitable(made) else made
        except Exception:
            log.exception("realtime admission failed for call %s", start.call_id)
            self.server._metric("admission_failed")
            await conn.aclose(int(WSCloseCode.INTERNAL_ERROR), "Realtime bridge failed")
            return
        if self.finished:  # the socket went away while the factory ran (and it ignored the cancel)
            _disconnect(handler)
            return
        # Buffered frames first, in order, before the read loop can dispatch anything newer
        # (this runs without suspending, so no frame overtakes them).
        buffered, self.buffered = self.buffered, []
        conn.handler = handler
        try:
            for event in buffered:
                if not self._dispatch(handler, event):
                    conn.close()
                    return
        except Exception:
            log.exception("realtime handler failed on a buffered frame (call %s)", start.call_id)
            conn.close(int(WSCloseCode.INTERNAL_ERROR), "Realtime bridge failed")

    def _dispatch(self, handler: RealtimeHandler, event: StreamEvent) -> bool:
        """One event to the handler; False after ``stop``."""
        if isinstance(event, MediaReceived):
            if event.inbound:
                try:
                    ulaw = decode_payload(event.payload)
                except StreamFrameError as exc:
                    garbage = self.server.garbage_totals
                    garbage[exc.kind] = garbage.get(exc.kind, 0) + 1
                    return True
                handler.on_media(ulaw)
        elif isinstance(event, MarkReceived):
            handler.on_mark(event.name)
        elif isinstance(event, DtmfReceived):
            handler.on_dtmf(event.digit)
        elif isinstance(event, StreamStopped):
            log.info("realtime stream of call %s stopped by the carrier", self.minted.call_id)
            handler.on_stop()
            return False
        elif isinstance(event, StreamErrorReported):
            log.warning(
                "realtime stream error from the carrier: %s %s",
                sanitize_reason(event.code),
                sanitize_reason(event.title),
            )
        return True
