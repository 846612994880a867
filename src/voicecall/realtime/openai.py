"""The OpenAI Realtime provider session (SPEC §7.8) over the ``openai`` SDK's GA realtime client.

``OpenAIRealtimeSession`` opens ``client.realtime.connect(model=...)`` (the SDK derives
``wss://…/v1/realtime?model=…`` from ``baseUrl`` and sends ``Authorization: Bearer``), sends the
``session.update`` of :mod:`voicecall.realtime.openai_protocol` and is ready on
``session.updated``. Connecting and configuring are bounded by ``connect_timeout`` (10 s).

Caller audio is batched: :meth:`send_audio` only appends to a buffer (bounded at 2 MiB, oldest
audio dropped first) and wakes one writer task once 40 ms (320 bytes) are waiting; the writer
sends everything waiting as one ``input_audio_buffer.append``. Whatever is left is flushed when
the session closes. One reader task turns server frames into contract events, in order.

The SDK's own reconnects stay off (a provider conversation cannot be resumed; an unexpected
close ends the session with ``SessionClosed("error")``). The API key is never logged nor put in
an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from openai import AsyncOpenAI, OpenAIError
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.websocket_connection_options import WebSocketConnectionOptions
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from voicecall.realtime.openai_protocol import DEFAULT_BASE_URL, OpenAIRealtimeProtocol, redact
from voicecall.realtime.session import (
    RealtimeError,
    RealtimeEvent,
    RealtimeEventCallback,
    RealtimeSession,
    SessionClosed,
    SessionConfig,
    SessionReady,
    ToolCall,
)

__all__ = [
    "BATCH_BYTES",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "MAX_QUEUED_BYTES",
    "OpenAIRealtimeSession",
]

log = logging.getLogger(__name__)

BATCH_BYTES = 320  # 40 ms of µ-law 8 kHz: the smallest append sent (but the final flush)
MAX_APPEND_BYTES = 32_000  # 4 s: the largest append, when the writer fell behind
MAX_QUEUED_BYTES = 2 * 1024 * 1024  # ~4 min of caller audio waiting for the socket
DEFAULT_CONNECT_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 2.0  # closing handshake, and the final audio flush
_MAX_FRAME_BYTES = 16 * 1024 * 1024
_AUTHORIZATION = re.compile(r"(?i)(authorization:\s*\S+\s+)\S+")


class _RedactingFilter(logging.Filter):
    """Masks credentials in the websocket library's records (at DEBUG it logs every header)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _AUTHORIZATION.sub(r"\1***", redact(message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# The connection's own logger (instead of `websockets.client`), so the handshake's
# `Authorization: Bearer …` line is masked before any handler sees it.
_wire_log = logging.getLogger(f"{__name__}.websocket")
_wire_log.addFilter(_RedactingFilter())


@lru_cache(maxsize=8)
def _client(api_key: str, base_url: str) -> AsyncOpenAI:
    # Building an SDK client costs tens of ms (its HTTP pool's TLS context), so one per key and
    # endpoint serves every call; only its websocket side is used, its HTTP pool never opens.
    return AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)


def _http_base_url(base_url: str | None) -> str:
    """``baseUrl`` as the SDK's ``base_url`` (``ws``/``wss`` accepted as ``http``/``https``)."""
    url = (base_url or DEFAULT_BASE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise RealtimeError(
            f"OpenAI Realtime: baseUrl {parts.scheme}://{parts.hostname or ''}{parts.path} is not"
            " an http(s) or ws(s) URL"
        )
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _endpoint(http_base: str) -> str:
    """Where the socket goes, for messages: scheme, host, port and path only."""
    parts = urlsplit(http_base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{parts.hostname}{port}{parts.path.rstrip('/')}/realtime"


def _close_detail(exc: ConnectionClosed) -> str:
    close = exc.rcvd
    if close is None:
        return "no close frame (connection lost)"
    return f"code {close.code}" + (f": {close.reason}" if close.reason else "")


class OpenAIRealtimeSession(RealtimeSession):
    """One call's OpenAI Realtime conversation (see the module docstring)."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        api_key: str,
        base_url: str | None = None,
        on_event: RealtimeEventCallback,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        if not api_key:
            raise RealtimeError("OpenAI Realtime: no API key (realtime.providers.openai.apiKey)")
        self._config = config
        self._api_key = api_key
        self._base_url = _http_base_url(base_url)
        self._endpoint = _endpoint(self._base_url)
        self._on_event = on_event
        self._connect_timeout = connect_timeout
        self._protocol = OpenAIRealtimeProtocol(config, secret=api_key)
        self._conn: AsyncRealtimeConnection | None = None
        self._opening: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pending = bytearray()
        self._audio_waiting = asyncio.Event()
        self._flushing = False
        self._overflow_warned = False
        self._ready = False
        self._closing = False  # aclose() was called
        self._finished = False  # SessionClosed was delivered (or the session never opened)
        self._closed = asyncio.Event()
        self._last_error: str | None = None

    @property
    def ready(self) -> bool:
        """Whether ``session.updated`` arrived and the session is not closed."""
        return self._ready and not self._finished

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._opening is not None or self._closing:
            raise RealtimeError("OpenAI Realtime: the session was already started or closed")
        self._opening = asyncio.create_task(self._open())
        try:
            await self._opening
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closing and task is not None and not task.cancelling():
                raise RealtimeError(
                    "OpenAI Realtime: the session was closed before it was ready"
                ) from None
            raise

    async def _open(self) -> None:
        phase = f"while connecting to {self._endpoint}"
        early: list[RealtimeEvent] = []
        options = cast(
            WebSocketConnectionOptions,
            {
                "compression": None,
                "max_size": _MAX_FRAME_BYTES,
                "open_timeout": None,  # bounded below, with session.updated
                "close_timeout": _CLOSE_TIMEOUT_S,
                "logger": _wire_log,
            },
        )
        try:
            async with asyncio.timeout(self._connect_timeout):
                manager = _client(self._api_key, self._base_url).realtime.connect(
                    model=self._config.model, websocket_connection_options=options
                )
                self._conn = await manager.enter()
                phase = "while waiting for session.updated"
                await self._conn.send_raw(self._protocol.session_update())
                while not self._protocol.ready:
                    feed = self._protocol.feed(await self._conn.recv_bytes())
                    if feed.error is not None:
                        raise RealtimeError(
                            f"OpenAI Realtime: the server rejected the session: {feed.error}"
                        )
                    early.extend(feed.events)
        except BaseException as exc:
            self._finished = True
            self._closed.set()
            await self._discard_connection()
            if isinstance(exc, RealtimeError | asyncio.CancelledError):
                raise
            if isinstance(exc, Exception):
                raise self._open_error(exc, phase) from None
            raise
        self._ready = True
        log.info(
            "OpenAI Realtime session ready (model %s, voice %s)",
            self._config.model,
            self._config.voice,
        )
        self._emit(SessionReady())
        for event in early:
            self._emit(event)
        self._reader = asyncio.create_task(self._read(), name="openai-realtime-reader")
        self._writer = asyncio.create_task(self._write(), name="openai-realtime-writer")
        if len(self._pending) >= BATCH_BYTES:
            self._audio_waiting.set()

    def _open_error(self, exc: Exception, phase: str) -> RealtimeError:
        if isinstance(exc, TimeoutError):
            what = f"timed out after {self._connect_timeout:g} s {phase}"
        elif isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            if status == 401:
                what = f"authentication failed (HTTP 401 from {self._endpoint}); check the API key"
            elif status == 403:
                what = f"access denied (HTTP 403 from {self._endpoint})"
            else:
                what = f"{self._endpoint} refused the connection with HTTP {status}"
        elif isinstance(exc, ConnectionClosed):
            what = f"the server closed the connection {phase} ({_close_detail(exc)})"
        elif isinstance(exc, OSError):
            what = f"cannot connect to {self._endpoint}: {exc.strerror or exc}"
        elif isinstance(exc, WebSocketException | OpenAIError):
            what = f"cannot open a session at {self._endpoint}: {exc}"
        else:
            what = f"failed {phase}: {type(exc).__name__}: {exc}"
        return RealtimeError("OpenAI Realtime: " + redact(what, self._api_key))

    async def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()  # start() raises RealtimeError
            await asyncio.wait([self._opening])
        if not self._ready:
            self._finished = True
            self._closed.set()
            return
        try:
            if self._writer is not None and not self._finished:
                self._flushing = True
                self._audio_waiting.set()
                await self._settle(self._writer)
            await self._discard_connection()
            if self._reader is not None:
                await self._settle(self._reader)
        finally:
            if self._reader is not None and not self._reader.done():
                self._reader.cancel()  # aclose() itself was cancelled
            self._finish("completed")

    @staticmethod
    async def _settle(task: asyncio.Task[None]) -> None:
        """Lets ``task`` finish within the close timeout, then cancels it."""
        if not task.done():
            await asyncio.wait([task], timeout=_CLOSE_TIMEOUT_S)
        if not task.done():
            task.cancel()
            await asyncio.wait([task])

    def _finish(self, reason: Literal["completed", "error"], message: str = "") -> None:
        """Delivers the one ``SessionClosed`` and stops taking audio."""
        if self._finished:
            return
        self._finished = True
        self._pending.clear()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        if reason == "error":
            log.warning("%s", message)
        else:
            log.info("OpenAI Realtime session closed")
        self._emit(SessionClosed(reason, message))
        self._closed.set()

    # ---- audio in --------------------------------------------------------------------------

    def send_audio(self, ulaw: bytes) -> None:
        if self._finished or self._closing or not ulaw:
            return
        self._pending += ulaw
        excess = len(self._pending) - MAX_QUEUED_BYTES
        if excess > 0:
            del self._pending[:excess]
            if not self._overflow_warned:
                self._overflow_warned = True
                log.warning(
                    "OpenAI Realtime: caller audio is not leaving fast enough; dropping the oldest"
                    " beyond %d bytes (warned once per session)",
                    MAX_QUEUED_BYTES,
                )
        if self._writer is not None and len(self._pending) >= BATCH_BYTES:
            self._audio_waiting.set()

    async def _write(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            await self._audio_waiting.wait()
            self._audio_waiting.clear()
            while len(self._pending) >= BATCH_BYTES or (self._flushing and self._pending):
                size = min(len(self._pending), MAX_APPEND_BYTES)
                chunk = bytes(self._pending[:size])
                del self._pending[:size]
                try:
                    await conn.send_raw(self._protocol.audio_append(chunk))
                except (ConnectionClosed, OpenAIError):
                    return  # the reader reports the close
            if self._flushing:
                return

    # ---- events out ------------------------------------------------------------------------

    def _emit(self, event: RealtimeEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            log.exception("OpenAI Realtime: the event handler failed on %s", type(event).__name__)

    async def _read(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while True:
                frame = await conn.recv_bytes()
                try:
                    feed = self._protocol.feed(frame)
                except Exception:  # feed() never raises; a bug must not end the call
                    log.exception("OpenAI Realtime: a server event could not be handled")
                    continue
                if feed.error is not None:
                    self._last_error = feed.error
                for event in feed.events:
                    if self._finished:
                        return
                    self._emit(event)
                await self._send_all(feed.send)
        except ConnectionClosed as exc:
            detail = _close_detail(exc)
        except Exception as exc:  # anything else from the SDK's receive path
            detail = f"{type(exc).__name__}: {redact(str(exc), self._api_key)}"
        if self._closing:
            return
        message = f"OpenAI Realtime: the connection closed unexpectedly ({detail})"
        if self._last_error:
            message += f"; last server error: {self._last_error}"
        self._finish("error", message)

    # ---- requests --------------------------------------------------------------------------

    async def _send_all(self, messages: list[str]) -> None:
        conn = self._conn
        if not messages or conn is None or self._finished:
            return
        for message in messages:
            try:
                await conn.send_raw(message)
            except (ConnectionClosed, OpenAIError) as exc:
                log.debug("OpenAI Realtime: not sent, the connection is closed (%s)", exc)
                return

    def _check_started(self) -> None:
        if not self._ready and not self._closing:
            raise RealtimeError("OpenAI Realtime: the session is not ready (call start() first)")

    async def request_response(self, instructions: str | None = None) -> None:
        self._check_started()
        await self._send_all(self._protocol.response_create(instructions))

    async def send_user_text(self, text: str, *, respond: bool = True) -> None:
        self._check_started()
        await self._send_all(self._protocol.user_text(text, respond=respond))

    async def cancel_response(self) -> None:
        self._check_started()
        await self._send_all(self._protocol.cancel())

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self._check_started()
        await self._send_all([self._protocol.truncate(item_id, audio_end_ms)])

    async def send_tool_result(self, call: ToolCall, output: Mapping[str, Any]) -> None:
        self._check_started()
        await self._send_all(self._protocol.tool_output(call.call_id, output))
