"""Gemini Live provider session of the realtime bridge, on the ``google-genai`` SDK (SPEC §7.8).

:class:`GeminiLiveSession` opens ``{baseUrl}/ws/google.ai.generativelanguage.{apiVersion}.
GenerativeService.BidiGenerateContent`` with ``x-goog-api-key`` through
``genai.Client(...).aio.live.connect``, waits for ``setupComplete`` (10 s), then runs one reader
task (server messages -> events, through :class:`~voicecall.realtime.google_protocol.
GeminiLiveProtocol`) and one writer task (caller audio, PCM16 16 kHz batched ≥ 40 ms, at most
2 MiB queued with the oldest dropped). ``goAway`` and unexpected closes are resumed with the
newest ``sessionResumptionUpdate`` handle (up to 3 attempts per loss, 250 ms -> 2 s backoff; a
``goAway`` waits for the model's turn to end, or for the time it left minus 1 s); without a
handle a lost connection ends the session with ``SessionClosed("error")``.

Method mapping: ``request_response(text)`` and ``send_user_text`` send ``clientContent`` user
turns (``turnComplete`` unless ``respond=False``); the first ``request_response()`` without text
sends the greeting directive that ends the instructions (SPEC §7.4), later ones (or without a
directive) ``Speak to the caller now.``.
``send_tool_result`` sends ``toolResponse.functionResponses``. ``cancel_response`` and
``truncate`` send nothing: Gemini stops generating by itself when its VAD hears the caller
(``interrupted``) and keeps only what it had sent, and it has no truncate message.

What the SDK (google-genai 3.x) imposes, and how this module copes:

- API-key clients always use TLS: the SDK rewrites the base URL's scheme to ``wss``. A
  ``ws://``/``http://`` ``baseUrl`` is therefore reached as ``wss://``; a local fake must serve
  TLS, and ``ssl_context`` tells the session which certificate to trust.
- The SDK 3.x default API version is ``v1``; SPEC §7.8 says ``v1beta``, set explicitly here.
- The setup frame is the SPEC §7.8 message, but the SDK spells nested config fields in
  snake_case (``speechConfig.voice_config.prebuilt_voice_config.voice_name``,
  ``realtimeInputConfig.automatic_activity_detection.silence_duration_ms``,
  ``contextWindowCompression.sliding_window``) and the client frames ``realtime_input``,
  ``client_content``, ``tool_response``; proto3 JSON parsing accepts both spellings, as the
  service does. It also adds ``"role": "user"`` to ``systemInstruction``, upper-cases schema
  types (``OBJECT``, ``STRING``) and names sensitivities ``START_SENSITIVITY_LOW`` etc. A tool
  with no properties is declared without ``parameters`` (Gemini rejects an empty OBJECT).
- ``session.receive()`` ends after every ``turnComplete``; the reader calls it again. It raises
  ``APIError`` for a closed socket (told apart by its ``ConnectionClosed`` context) and
  ``ValueError``/``TypeError``/pydantic errors for frames it cannot parse; those frames are
  logged and skipped, never fatal.
- ``websockets`` logs the handshake headers (the API key) at DEBUG: the session hands the SDK
  its own logger whose filter redacts ``x-goog-api-key``. Error messages are redacted as well.
- permessage-deflate is switched off (audio barely compresses; it costs CPU per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from google import genai
from google.genai import errors as genai_errors
from google.genai import live as genai_live
from google.genai import types
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicecall.realtime.google_protocol import (
    INPUT_MIME_TYPE,
    INPUT_RATE_HZ,
    AudioQueue,
    GeminiLiveProtocol,
    GeminiOptions,
    build_connect_config,
)
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
from voicecall.wirelog import WIRE_LOG

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DEFAULT_VOICE",
    "GeminiLiveSession",
    "ReconnectPolicy",
]

DEFAULT_BASE_URL = "wss://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"
DEFAULT_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
DEFAULT_VOICE = "Kore"

_log = logging.getLogger("voicecall.realtime.google")

# Caller audio goes out in batches of at least this much, at most _MESSAGE_MS per message.
_BATCH_MS = 40
_MESSAGE_MS = 500
_BYTES_PER_MS = INPUT_RATE_HZ * 2 // 1000

# SPEC §7.4: the greeting directive ends the composed instructions.
_GREETING_DIRECTIVE = re.compile(r"Open the call by greeting the caller naturally\b.*\Z", re.S)
_DEFAULT_PROMPT = "Speak to the caller now."

_GO_AWAY = "the server asked to reconnect (goAway)"


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Connection limits of a Gemini Live session (SPEC §7.8)."""

    connect_timeout_s: float = 10.0
    max_reconnects: int = 3
    first_backoff_s: float = 0.25
    max_backoff_s: float = 2.0
    max_queued_bytes: int = 2 * 1024 * 1024
    close_timeout_s: float = 2.0
    go_away_margin_s: float = 1.0

    def backoff_s(self, attempt: int) -> float:
        """The wait before reconnect attempt ``attempt`` (0 -> none, 1 -> first backoff, …)."""
        if attempt <= 0:
            return 0.0
        return float(min(self.first_backoff_s * 2 ** (attempt - 1), self.max_backoff_s))


@dataclass(slots=True)
class _Connection:
    live: genai_live.AsyncSession
    stack: contextlib.AsyncExitStack


def _http_base_url(base_url: str | None) -> str:
    """The base URL as the SDK wants it (``https://host[:port][/prefix]``, no trailing slash)."""
    parts = urlsplit((base_url or DEFAULT_BASE_URL).strip())
    if parts.scheme.lower() not in ("wss", "ws", "https", "http") or not parts.netloc:
        raise RealtimeError(
            "realtime.providers.google.baseUrl must be a ws(s):// or http(s):// URL"
        )
    if parts.scheme.lower() in ("ws", "http"):
        _log.warning(
            "gemini live: %s is reached over TLS (wss://): google-genai always uses TLS with an "
            "API key",
            urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        )
    return urlunsplit(("https", parts.netloc, parts.path.rstrip("/"), "", ""))


def _closed_socket(exc: BaseException) -> ConnectionClosed | None:
    """The websocket close behind an SDK error, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionClosed):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class GeminiLiveSession(RealtimeSession):
    """One Gemini Live conversation for one call (see the module docstring)."""

    provider_id = "google"

    def __init__(
        self,
        config: SessionConfig,
        *,
        api_key: str,
        on_event: RealtimeEventCallback,
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        ssl_context: ssl.SSLContext | None = None,
        policy: ReconnectPolicy | None = None,
    ) -> None:
        if not api_key:
            raise RealtimeError("gemini live needs an API key (realtime.providers.google.apiKey)")
        try:
            self._options = GeminiOptions.from_options(config.options)
        except ValueError as exc:
            raise RealtimeError(str(exc)) from None
        self.config = config
        self.policy = policy or ReconnectPolicy()
        #: Caller audio dropped because the queue was full (bytes of PCM16 16 kHz).
        self.dropped_bytes = 0
        self._api_key = api_key
        self._on_event = on_event
        self._base_url = _http_base_url(base_url)
        self._api_version = api_version
        self._ssl_context = ssl_context
        self._protocol = GeminiLiveProtocol()
        self._queue = AudioQueue(
            max_bytes=self.policy.max_queued_bytes, batch_bytes=_BATCH_MS * _BYTES_PER_MS
        )
        self._client: genai.Client | None = None
        self._connection: _Connection | None = None
        self._changed = asyncio.Event()  # replaced each time the connection comes or goes
        self._wake = asyncio.Event()  # a batch of caller audio is ready
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._final_sent = False
        self._warned_drop = False
        self._greeted = False
        self._closing: asyncio.Future[None] | None = None  # aclose()'s shutdown, once begun

    # -- the contract -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connects and sends the setup; returns once ``setupComplete`` arrived."""
        if self._started:
            raise RuntimeError("gemini live session already started")
        self._started = True
        if self._closed:
            raise RealtimeError("gemini live session was closed before it started")
        try:
            self._client = self._make_client()
            connection = await self._connect()
        except asyncio.CancelledError:
            await self._release(None)
            self._closed = self._final_sent = True
            raise
        except Exception as exc:
            await self._release(None)
            # Before ready the caller gets the exception, not a SessionClosed (the contract).
            self._closed = self._final_sent = True
            message = f"gemini live session could not start: {self._describe(exc)}"
            _log.error("%s", message)
            raise RealtimeError(message) from None
        self._set_connection(connection)
        _log.info("gemini live session ready (model %s)", self.config.model)
        self._deliver(SessionReady())
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write(), name="gemini-live-writer")
        self._reader = loop.create_task(self._run(connection), name="gemini-live-reader")

    def send_audio(self, ulaw: bytes) -> None:
        """Queues caller µ-law 8 kHz as PCM16 16 kHz; never blocks."""
        if self._closed or not ulaw:
            return
        dropped = self._queue.push(self._protocol.caller_audio(ulaw))
        if dropped:
            self.dropped_bytes += dropped
            if not self._warned_drop:
                self._warned_drop = True
                _log.warning(
                    "gemini live: caller audio is not getting out; dropping the oldest beyond "
                    "%d KiB",
                    self.policy.max_queued_bytes // 1024,
                )
        if self._queue.batch_ready():
            self._wake.set()

    async def request_response(self, instructions: str | None = None) -> None:
        """A user turn with ``instructions`` and ``turnComplete``; with none, the greeting
        directive of the instructions the first time, ``Speak to the caller now.`` after that."""
        text = instructions or self._greeting_prompt()
        self._greeted = True
        await self._send("response request", lambda live: _send_user_turn(live, text, True))

    async def send_user_text(self, text: str, *, respond: bool = True) -> None:
        """A user text turn; ``respond=False`` leaves the turn open (``turnComplete: false``)."""
        await self._send("user text", lambda live: _send_user_turn(live, text, respond))

    async def cancel_response(self) -> None:
        """Nothing to send: Gemini interrupts itself when it hears the caller (``interrupted``)."""

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Nothing to send: Gemini has no truncate; it keeps only the audio it had sent."""

    async def send_tool_result(self, call: ToolCall, output: Mapping[str, Any]) -> None:
        """``toolResponse.functionResponses`` with the call's id and name."""
        response = types.FunctionResponse(id=call.call_id, name=call.name, response=dict(output))

        async def send(live: genai_live.AsyncSession) -> None:
            await live.send_tool_response(function_responses=[response])

        await self._send(f"tool result for {call.name}", send)

    async def aclose(self) -> None:
        """Closes the connection; ``SessionClosed("completed")`` unless the session had ended."""
        if self._closing is not None:  # another aclose() is closing: wait for it to finish
            await asyncio.shield(self._closing)
            return
        reader = self._reader
        if self._closed:
            if reader is not None and reader is not asyncio.current_task():
                await asyncio.wait({reader})
            return
        self._closed = True
        self._notify_changed()
        # Shielded: a caller cancelled mid-close (the bridge cancels the end_call tool task that
        # started the close) must not leave the websocket open.
        self._closing = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._closing)

    async def _shutdown(self) -> None:
        tasks = {t for t in (self._reader, self._writer) if t is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self._release(self._connection)
        self._deliver_final("completed")

    # -- connections ------------------------------------------------------------------------------
    def _make_client(self) -> genai.Client:
        client_args: dict[str, Any] = {
            "logger": WIRE_LOG,  # masks x-goog-api-key in the DEBUG handshake lines
            "compression": None,
            "close_timeout": self.policy.close_timeout_s,
        }
        if self._ssl_context is not None:
            client_args["ssl"] = self._ssl_context
        return genai.Client(
            api_key=self._api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=self._base_url,
                api_version=self._api_version,
                async_client_args=client_args,
            ),
        )

    async def _connect(self) -> _Connection:
        """Opens one websocket, sends the setup and waits for ``setupComplete``."""
        assert self._client is not None
        config = build_connect_config(
            self.config, self._options, resume_handle=self._protocol.resumption_handle
        )
        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(self.policy.connect_timeout_s):
                live = await stack.enter_async_context(
                    self._client.aio.live.connect(model=self.config.model, config=config)
                )
            if live.setup_complete is None:
                raise RealtimeError("the server answered the setup without setupComplete")
        except BaseException:
            await self._close_stack(stack)
            raise
        return _Connection(live, stack)

    async def _close_stack(self, stack: contextlib.AsyncExitStack) -> None:
        try:
            async with asyncio.timeout(self.policy.close_timeout_s + 1.0):
                await stack.aclose()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket is gone either way
            _log.debug("gemini live: closing the websocket: %s", self._describe(exc))

    def _set_connection(self, connection: _Connection | None) -> None:
        self._connection = connection
        self._notify_changed()

    def _notify_changed(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._wake.set()

    async def _release(self, connection: _Connection | None) -> None:
        """Closes the websocket and the SDK client (their HTTP pools included)."""
        self._connection = None
        if connection is not None:
            await self._close_stack(connection.stack)
        client, self._client = self._client, None
        if client is not None:
            client.close()
            await client.aio.aclose()

    # -- reader: server messages, reconnects ------------------------------------------------------
    async def _run(self, connection: _Connection) -> None:
        try:
            while True:
                why = await self._read(connection.live)
                self._set_connection(None)
                await self._close_stack(connection.stack)
                for event in self._protocol.connection_lost():
                    self._deliver(event)
                if self._closed:
                    return
                if not self._protocol.resumption_handle:
                    await self._fail(f"gemini live {why}; no session resumption handle to resume")
                    return
                resumed = await self._reconnect(why)
                if resumed is None:
                    return
                connection = resumed
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must end the session, never the process
            _log.exception("gemini live reader crashed")
            await self._fail(f"gemini live session failed: {self._describe(exc)}")

    async def _read(self, live: genai_live.AsyncSession) -> str:
        """Handles messages until the connection ends or a goAway is due; says why it stopped."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as go_away_deadline:
                while True:
                    try:
                        async with contextlib.aclosing(_messages(live)) as messages:
                            async for message in messages:
                                self._handle(message)
                                left = self._protocol.go_away_s
                                if left is None or not self._protocol.resumption_handle:
                                    continue
                                if not self._protocol.responding:
                                    return _GO_AWAY
                                if go_away_deadline.when() is None:
                                    margin = self.policy.go_away_margin_s
                                    go_away_deadline.reschedule(
                                        loop.time() + max(0.0, left - margin)
                                    )
                    except Exception as exc:
                        closed = _closed_socket(exc)
                        if closed is not None:
                            return _describe_close(closed)
                        _log.warning(
                            "gemini live: skipped a server frame the SDK could not read (%s)",
                            self._redact(f"{type(exc).__name__}: {exc}")[:200],
                        )
        except TimeoutError:
            return _GO_AWAY

    def _handle(self, message: types.LiveServerMessage) -> None:
        try:
            events = self._protocol.receive(message)
        except Exception:
            _log.exception("gemini live: could not handle a server message")
            return
        for event in events:
            self._deliver(event)

    async def _reconnect(self, why: str) -> _Connection | None:
        """Resumes with the newest handle; ends the session if every attempt fails."""
        attempts = self.policy.max_reconnects
        offset = 1 if why == _GO_AWAY else 0  # the server asked: the first attempt goes at once
        last = why
        for attempt in range(1, attempts + 1):
            _log.warning(
                "gemini live: %s; resuming the session (attempt %d/%d)", last, attempt, attempts
            )
            await asyncio.sleep(self.policy.backoff_s(attempt - offset))
            try:
                connection = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last = f"reconnect failed: {self._describe(exc)}"
                continue
            if self._closed:
                await self._close_stack(connection.stack)
                return None
            self._set_connection(connection)
            _log.info("gemini live session resumed")
            return connection
        await self._fail(f"gemini live {why}; could not resume after {attempts} attempts ({last})")
        return None

    async def _fail(self, message: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._notify_changed()
        message = self._redact(message)
        _log.error("%s", message)
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.wait({writer})
        await self._release(self._connection)
        self._deliver_final("error", message)

    # -- writer: caller audio ---------------------------------------------------------------------
    async def _write(self) -> None:
        queue = self._queue
        while not self._closed:
            changed = self._changed
            connection = self._connection
            if connection is None:
                await changed.wait()
                continue
            if not queue.batch_ready():
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = queue.take(_MESSAGE_MS * _BYTES_PER_MS)
            try:
                await connection.live.send_realtime_input(
                    audio=types.Blob(data=batch, mime_type=INPUT_MIME_TYPE)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _closed_socket(exc) is None:
                    _log.exception("gemini live: could not send caller audio; dropped")
                    continue
                queue.put_back(batch)  # it goes out on the resumed connection
                await changed.wait()

    # -- control messages -------------------------------------------------------------------------
    async def _send(
        self, what: str, send: Callable[[genai_live.AsyncSession], Awaitable[None]]
    ) -> None:
        """Sends on the current connection, waiting out a reconnect; dropped once closed."""
        if not self._started:
            raise RealtimeError("gemini live session not started")
        for _ in range(2):
            connection = self._connection
            while connection is None:
                if self._closed:
                    _log.warning("gemini live: %s dropped, the session is closed", what)
                    return
                await self._changed.wait()
                connection = self._connection
            changed = self._changed
            try:
                await send(connection.live)
                return
            except Exception as exc:
                if _closed_socket(exc) is None:
                    raise RealtimeError(
                        f"gemini live: could not send the {what}: {self._describe(exc)}"
                    ) from None
            if connection is self._connection:
                await changed.wait()
        _log.warning("gemini live: %s dropped, the connection was lost twice", what)

    def _greeting_prompt(self) -> str:
        match = None if self._greeted else _GREETING_DIRECTIVE.search(self.config.instructions)
        return match.group(0).strip() if match else _DEFAULT_PROMPT

    # -- events and messages ----------------------------------------------------------------------
    def _deliver(self, event: RealtimeEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            _log.exception("gemini live: the event handler failed")

    def _deliver_final(
        self, reason: Literal["completed", "error", "timeout"], message: str = ""
    ) -> None:
        if self._final_sent:
            return
        self._final_sent = True
        for event in self._protocol.finish():
            self._deliver(event)
        self._deliver(SessionClosed(reason, message))

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _describe(self, exc: BaseException) -> str:
        """What went wrong, for people: never the API key."""
        host = urlsplit(self._base_url).netloc
        if isinstance(exc, RealtimeError):
            text = str(exc)
        elif isinstance(exc, TimeoutError):
            text = f"no setupComplete from {host} within {self.policy.connect_timeout_s:g} s"
        elif isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            text = f"{host} refused the websocket upgrade (HTTP {status})"
            if status in (401, 403):
                text += "; check the API key"
        elif (closed := _closed_socket(exc)) is not None:
            text = _describe_close(closed)
        elif isinstance(exc, genai_errors.APIError):
            text = f"the server reported an error ({exc.code}: {exc.message or exc.details})"
        elif isinstance(exc, ssl.SSLError):
            text = f"TLS with {host} failed ({exc.reason or exc})"
        elif isinstance(exc, OSError):
            text = f"could not connect to {host} ({exc.strerror or exc})"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return self._redact(text)


def _describe_close(closed: ConnectionClosed) -> str:
    frame = closed.rcvd
    if frame is None:
        return "connection was lost (no close frame)"
    reason = f": {frame.reason}" if frame.reason else ""
    return f"connection was closed by the server (code {frame.code}{reason})"


def _messages(live: genai_live.AsyncSession) -> AsyncGenerator[types.LiveServerMessage, None]:
    """``receive()`` (typed as an iterator; it is an async generator, closed when left early)."""
    return cast("AsyncGenerator[types.LiveServerMessage, None]", live.receive())


async def _send_user_turn(live: genai_live.AsyncSession, text: str, complete: bool) -> None:
    await live.send_client_content(
        turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=complete
    )
