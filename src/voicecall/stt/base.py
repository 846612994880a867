"""The streaming-transcription session the media-stream layer drives: one per call, any provider.

Uniform runtime for every provider (SPEC §6.1, improvement I21): connect timeout 10 s (socket
open and session ready), up to 5 reconnects in a row 1 s apart, audio queued while
(re)connecting up to 2 MiB with the oldest dropped first. A provider session only says how to
open its socket; everything else is the provider's sans-IO protocol.

Usage::

    session = create_stt_session(config, None, on_event=handle, env=loaded.env)
    await session.start()          # returns at once; SessionReady arrives through handle()
    session.send_audio(ulaw_frame)  # non-blocking, from the media-stream read loop
    await session.aclose()          # last transcripts arrive through handle() before it returns
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicecall.errors import VoicecallError
from voicecall.stt.audio import AudioConverter
from voicecall.stt.events import SessionReady, SttEvent, TranscriptionError
from voicecall.stt.protocol import ConnectRequest, SttProtocol
from voicecall.stt.transport import open_websocket

__all__ = [
    "EventCallback",
    "ReconnectPolicy",
    "SttAuthError",
    "SttSession",
    "Transport",
]

EventCallback = Callable[[SttEvent], None]

_log = logging.getLogger("voicecall.stt")

# Audio is sent in batches of at least this much (fewer, larger provider messages; SPEC allows
# 40-100 ms without latency that matters), and whatever is left when the session closes.
_BATCH_MS = 40


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Connection limits shared by every provider (SPEC §6.1)."""

    connect_timeout_s: float = 10.0
    max_reconnects: int = 5
    reconnect_delay_s: float = 1.0
    max_queued_bytes: int = 2 * 1024 * 1024


class SttAuthError(VoicecallError):
    """The provider refused the credentials; retrying cannot help."""

    remote = True


class _Fatal(VoicecallError):
    """The protocol reported an error that ends the session."""


class Transport(Protocol):
    """One open websocket to a provider."""

    async def send(self, message: str | bytes) -> None:
        """Writes a text (str) or binary (bytes) frame."""

    async def recv(self) -> str | bytes:
        """The next message; raises ``websockets.ConnectionClosed`` once the socket is gone."""

    async def close(self) -> None:
        """Closes the socket (idempotent)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} at connect"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionClosed):
        return "the connection was dropped"
    return str(exc) or type(exc).__name__


class SttSession:
    """A provider's transcription session for one call; subclasses only open the socket."""

    def __init__(
        self,
        protocol: SttProtocol,
        on_event: EventCallback,
        *,
        policy: ReconnectPolicy | None = None,
    ) -> None:
        self.provider_id = protocol.provider_id
        self.policy = policy or ReconnectPolicy()
        self.dropped_bytes = 0
        self._protocol = protocol
        self._on_event = on_event
        self._converter = AudioConverter(protocol.audio_format)
        fmt = protocol.audio_format
        self._batch_bytes = fmt.bytes_for_ms(_BATCH_MS)
        self._message_bytes = fmt.bytes_for_ms(protocol.max_message_ms)
        self._sample_bytes = 2 if fmt.encoding == "pcm16" else 1
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._failed = False
        self._ready_count = 0
        self._ready_this_connection = False

    # -- the interface the media-stream layer uses ------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether audio is flowing to the provider right now."""
        return self._protocol.ready and not self._failed

    @property
    def failed(self) -> bool:
        """Whether the session ended with a fatal error."""
        return self._failed

    async def start(self) -> None:
        """Starts connecting in the background; audio sent from now on is queued until ready."""
        if self._runner is not None:
            raise RuntimeError("session already started")
        self._runner = asyncio.get_running_loop().create_task(
            self._run(), name=f"stt-{self.provider_id}"
        )

    def send_audio(self, ulaw_8k: bytes) -> None:
        """Queues carrier audio (G.711 µ-law, 8 kHz); never blocks, never raises on I/O."""
        if self._closing or self._failed:
            return
        audio = self._converter.convert(ulaw_8k)
        if not audio:
            return
        self._queue.append(audio)
        self._queued_bytes += len(audio)
        limit = self.policy.max_queued_bytes
        while self._queued_bytes > limit and len(self._queue) > 1:
            oldest = self._queue.popleft()
            self._queued_bytes -= len(oldest)
            self.dropped_bytes += len(oldest)
        if self._queued_bytes >= self._batch_bytes and self._protocol.ready:
            self._wake.set()

    async def aclose(self) -> None:
        """Sends what is queued, asks the provider for its last transcripts, then closes."""
        runner = self._runner
        if runner is None or self._closing:
            if runner is not None:
                await asyncio.wait({runner})
            return
        self._closing = True
        if not self._protocol.ready:
            runner.cancel()
        self._wake.set()
        done, _ = await asyncio.wait({runner}, timeout=self._protocol.close_timeout_s + 2.0)
        if not done:
            runner.cancel()
            await asyncio.wait({runner})

    # -- subclass hook -------------------------------------------------------------------------
    async def _connect(self, request: ConnectRequest) -> Transport:
        """Opens the provider's websocket (plain ``websockets``; OpenAI's session uses its SDK)."""
        return await open_websocket(request)

    # -- runtime -------------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while True:
            self._ready_this_connection = False
            try:
                await self._serve_connection()
                reason = "the connection was closed"
            except (SttAuthError, _Fatal) as exc:
                self._fail(str(exc))
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidStatus) as exc:
                reason = _describe(exc)
            except Exception as exc:  # a bug in a protocol: end the session, never the call
                _log.exception("%s transcription session crashed", self.provider_id)
                self._fail(f"{self.provider_id} transcription failed: {_describe(exc)}")
                return
            if self._closing:
                return
            if self._ready_this_connection:
                failures = 0
            if failures >= self.policy.max_reconnects:
                self._fail(
                    f"{self.provider_id} transcription unavailable: {reason}; "
                    f"gave up after {failures} reconnect attempts"
                )
                return
            failures += 1
            _log.warning(
                "%s transcription: %s; reconnecting (%d/%d)",
                self.provider_id,
                reason,
                failures,
                self.policy.max_reconnects,
            )
            await asyncio.sleep(self.policy.reconnect_delay_s)

    async def _serve_connection(self) -> None:
        loop = asyncio.get_running_loop()
        ready_deadline = loop.time() + self.policy.connect_timeout_s
        request = self._protocol.connect_request()
        try:
            async with asyncio.timeout(self.policy.connect_timeout_s):
                transport = await self._connect(request)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise SttAuthError(
                    f"{self.provider_id} rejected the API key (HTTP {status})"
                ) from None
            raise
        try:
            self._protocol.connection_opened(loop.time())
            self._dispatch()  # a provider without a handshake is ready right away
            reader = loop.create_task(self._read(transport))
            writer = loop.create_task(self._write(transport, ready_deadline))
            try:
                done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, writer):
                    task.cancel()
                await asyncio.wait({reader, writer})
            for task in done:
                task.result()
        finally:
            self._protocol.ready = False
            await transport.close()

    async def _read(self, transport: Transport) -> None:
        protocol = self._protocol
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await transport.recv()
            except ConnectionClosed:
                if protocol.closing:
                    return
                raise
            protocol.receive(message, loop.time())
            self._dispatch()
            if protocol.finished:
                return

    async def _write(self, transport: Transport, ready_deadline: float) -> None:
        protocol = self._protocol
        loop = asyncio.get_running_loop()
        close_deadline: float | None = None
        while True:
            for message in protocol.data_to_send():
                await transport.send(message)
            now = loop.time()
            if protocol.ready:
                while self._queue:
                    protocol.send_audio(self._take(self._message_bytes), now)
                    for message in protocol.data_to_send():
                        await transport.send(message)
                if self._closing and not protocol.closing:
                    protocol.close(now)
                    close_deadline = now + protocol.close_timeout_s
                    continue
            elif now >= ready_deadline:
                raise TimeoutError(f"{self.provider_id} session not ready in time")
            if protocol.finished:
                return
            if close_deadline is not None and now >= close_deadline:
                _log.warning("%s transcription: no last transcript in time", self.provider_id)
                return
            deadlines = [d for d in (protocol.next_deadline(), close_deadline) if d is not None]
            if not protocol.ready:
                deadlines.append(ready_deadline)
            self._wake.clear()
            try:
                async with asyncio.timeout_at(min(deadlines) if deadlines else None):
                    await self._wake.wait()
            except TimeoutError:
                pass
            protocol.tick(loop.time())
            self._dispatch()

    def _take(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._queue and size < limit:
            chunk = self._queue[0]
            room = limit - size
            if len(chunk) <= room:
                parts.append(self._queue.popleft())
                size += len(chunk)
                continue
            cut = room - room % self._sample_bytes
            if cut <= 0:
                break
            parts.append(chunk[:cut])
            self._queue[0] = chunk[cut:]
            size += cut
        self._queued_bytes -= size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _dispatch(self) -> None:
        fatal: str | None = None
        for event in self._protocol.events_received():
            if isinstance(event, SessionReady):
                event = SessionReady(reconnected=self._ready_count > 0)
                self._ready_count += 1
                self._ready_this_connection = True
                self._wake.set()
            elif isinstance(event, TranscriptionError) and event.fatal:
                fatal = event.message
                continue
            self._deliver(event)
        if self._protocol.data_to_send_pending():
            self._wake.set()
        if fatal is not None:
            raise _Fatal(fatal)

    def _fail(self, message: str) -> None:
        if self._failed:
            return
        self._failed = True
        self._queue.clear()
        self._queued_bytes = 0
        _log.error("%s", message)
        self._deliver(TranscriptionError(message, fatal=True))

    def _deliver(self, event: SttEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            _log.exception("%s transcription event handler failed", self.provider_id)
