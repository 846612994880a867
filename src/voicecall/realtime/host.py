"""The realtime bridge's host: admitted media sockets become bridged calls (SPEC §7.1-§7.7).

:class:`RealtimeHost` is the ``on_admitted(conn, start)`` factory of the
:class:`~voicecall.server.realtime_streams.RealtimeStreamServer`. For each admitted socket it:

- finds the call (the token's call id, else the ``start``'s provider call id), emits
  ``call.answered`` when the call has no ``answeredAt`` yet, and registers the socket as the
  call's stream (``stream_connected``; a reconnect cancels the disconnect grace);
- takes the greeting (``metadata.initialMessage``: an outbound opening message, or the inbound
  greeting the call was registered with) without writing a bot line — the model's own words
  come back as ``call.assistant-speech``;
- composes the instructions (greeting directive included) and the tools, builds the pacer on
  ``conn.send`` with the carrier's frame builders, the provider session and the
  :class:`~voicecall.realtime.bridge.RealtimeBridge`, and starts it;
- routes the socket: media → the bridge (and the inactivity watch), marks → the bridge, ``stop``
  or disconnect → the bridge closes and the stream is reported disconnected (2 s grace);
- routes the bridge: call events → ``runtime.handle_events``; turns and the first-audio delay →
  ``runtime.realtime_progress``; ``end_call`` → ``runtime.end_call`` (``hangup-bot``); a provider
  session that ended by itself → ``call.ended`` with its reason (completed/error/timeout);
  overflow → close 1013; ``agent_consult`` → the agent runner (§7.6 extra system prompt,
  ``responseTimeoutMs``); custom tools → the runner's ``call_tool`` when it has one.

No inbound media for ``inactivityTimeoutMs`` (+2 s grace) ends the call with ``timeout``.
``voicecall.speak`` on a realtime call reaches :meth:`RealtimeHost.speak` (the runtime's
realtime speaker hook): no bot line is written for the request (the model's words come back as
``call.assistant-speech``) and it returns once the response's audio has played; before the
socket is admitted it fails with ``realtime stream not connected yet`` (never carrier speech,
never queued).

Pre-warm (§7.3, ``realtime.prewarm``): :meth:`RealtimeHost.minted` (the gateway wraps the
stream server's ``mint``, so it runs when the stream document is served) opens the provider
session at once, keyed by the token; its events are buffered until the bridge exists, so the
early ``SessionReady`` is not lost. Admission attaches it (a failed pre-warm is replaced by a
fresh session); the greeting still waits for both the ready session and the carrier ``start``.
A token that is never used is released by the stream server (``released(token)``), which closes
the pre-warmed session. Not done here: fastContext and the ``always`` consult policy's host-run
consult (§7.6).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

from voicecall.agent import AgentRunner
from voicecall.calls.commands import RunAutoResponse
from voicecall.calls.record import CallRecord
from voicecall.realtime.bridge import RealtimeBridge, RealtimeTurn
from voicecall.realtime.instructions import realtime_instructions
from voicecall.realtime.pacer import OVERFLOW_CLOSE_CODE, OVERFLOW_REASON, RealtimePacer
from voicecall.realtime.registry import RealtimeSelection, create_realtime_session
from voicecall.realtime.session import (
    RealtimeError,
    RealtimeEvent,
    RealtimeSession,
    SessionReady,
    ToolCall,
)
from voicecall.realtime.tools import (
    CONSULT_SYSTEM_PROMPT,
    ConsultRequest,
    consult_answer_result,
    consult_error_result,
    consult_tools_allow,
    realtime_tools,
)
from voicecall.runtime.responder import build_run_request, generate_reply
from voicecall.server.realtime_streams import RealtimeConnection, RealtimeStart
from voicecall.streaming.playback import LoopClock

__all__ = [
    "INACTIVITY_GRACE_MS",
    "NOT_CONNECTED",
    "STREAM_CLOSED",
    "RealtimeControl",
    "RealtimeHost",
]

log = logging.getLogger("voicecall.realtime.host")

INACTIVITY_GRACE_MS = 2000
_CALL_ENDED_REASON = "Call ended"
NOT_CONNECTED = "realtime stream not connected yet"
STREAM_CLOSED = "realtime stream closed"


class RealtimeControl(Protocol):
    """What the host needs of the call runtime (``CallRuntime`` implements it)."""

    @property
    def runner(self) -> AgentRunner | None: ...

    def get_record(self, call_id: str) -> CallRecord | None: ...

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None: ...

    async def handle_events(self, events: list[dict[str, Any]]) -> None: ...

    async def stream_connected(self, call_id: str, stream_id: str) -> None: ...

    async def stream_disconnected(self, call_id: str, stream_id: str) -> None: ...

    async def take_realtime_greeting(self, call_id: str) -> str | None: ...

    async def realtime_progress(
        self,
        call_id: str,
        *,
        turn: tuple[int, int] | None = None,
        first_audio_ms: int | None = None,
    ) -> None: ...

    async def end_call(self, call_id: str) -> dict[str, Any]: ...


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _ended(record: CallRecord | None) -> bool:
    return record is None or record.ended_at_ms is not None


class _Call:
    """One admitted realtime socket and its bridge: the socket server's handler."""

    def __init__(
        self,
        host: RealtimeHost,
        conn: RealtimeConnection,
        start: RealtimeStart,
        call_id: str,
    ) -> None:
        self.host = host
        self.conn = conn
        self.start = start
        self.call_id = call_id
        self.stream_id = start.stream_id
        self.bridge: RealtimeBridge | None = None
        self.first_audio_written = False
        self.last_media = time.monotonic()
        self.watch: asyncio.Task[None] | None = None
        self.finished = False

    # -- socket → bridge (synchronous, hot path) ---------------------------------------------

    def on_media(self, ulaw: bytes) -> None:
        self.last_media = time.monotonic()
        if self.bridge is not None:
            self.bridge.on_carrier_audio(ulaw)

    def on_mark(self, name: str) -> None:
        bridge = self.bridge
        if bridge is not None:
            bridge.on_carrier_mark(name)
            # The first echoed mark means the greeting is being heard: record realtimeFirstAudioMs
            # now, not only at a turn or the end (a carrier hang-up may end the call first).
            if not self.first_audio_written and bridge.first_audio_ms is not None:
                self.first_audio_written = True
                self.host.spawn(
                    self.host.control.realtime_progress(
                        self.call_id, first_audio_ms=bridge.first_audio_ms
                    )
                )

    def on_dtmf(self, digit: str) -> None:
        log.debug("call %s: realtime stream DTMF %s ignored", self.call_id, digit)

    def on_stop(self) -> None:
        self.host.spawn(self.finish())

    def on_disconnect(self) -> None:
        self.host.spawn(self.finish())

    async def finish(self) -> None:
        """The socket is over: close the bridge, report the stream gone (disconnect grace)."""
        if self.finished:
            return
        self.finished = True
        if self.host.calls.get(self.call_id) is self:
            del self.host.calls[self.call_id]
        if self.watch is not None and self.watch is not asyncio.current_task():
            self.watch.cancel()
        bridge = self.bridge
        if bridge is not None:
            await self.write_first_audio()
            await bridge.aclose()
        self.conn.close(1000, _CALL_ENDED_REASON)
        await self.host.control.stream_disconnected(self.call_id, self.stream_id)

    # -- bridge → runtime -------------------------------------------------------------------

    async def write_first_audio(self) -> None:
        bridge = self.bridge
        if self.first_audio_written or bridge is None:
            return
        first = bridge.first_audio_ms
        if first is None:
            return
        self.first_audio_written = True
        await self.host.control.realtime_progress(self.call_id, first_audio_ms=first)

    def on_turn(self, turn: RealtimeTurn) -> None:
        bridge = self.bridge
        first = None
        if not self.first_audio_written and bridge is not None:
            first = bridge.first_audio_ms
            self.first_audio_written = first is not None
        self.host.spawn(
            self.host.control.realtime_progress(
                self.call_id,
                turn=(turn.started_at_ms, turn.completed_at_ms),
                first_audio_ms=first,
            )
        )

    async def end_call(self) -> None:
        await self.write_first_audio()
        await self.host.control.end_call(self.call_id)

    async def session_closed(self, reason: str, message: str) -> None:
        """The provider session ended by itself: the call ends with its reason (§7.7)."""
        await self.write_first_audio()
        await self.end_with(reason, f"realtime session closed: {message or reason}")

    async def end_with(self, reason: str, why: str) -> None:
        if _ended(self.host.control.get_record(self.call_id)):
            return
        log.info("call %s: ending (%s): %s", self.call_id, reason, why)
        key = f"realtime:{self.start.token}:ended"
        await self.host.control.handle_events(
            [
                {
                    "type": "call.ended",
                    "id": key,
                    "dedupeKey": key,
                    "callId": self.call_id,
                    "providerCallId": self.start.provider_call_id,
                    "timestamp": self.host.clock_ms(),
                    "reason": reason,
                }
            ]
        )
        self.conn.close(1000, _CALL_ENDED_REASON)

    def overflow(self) -> None:
        self.conn.close(OVERFLOW_CLOSE_CODE, OVERFLOW_REASON)

    async def consult(self, request: ConsultRequest) -> Mapping[str, Any]:
        return await self.host.consult(self.call_id, request)

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return await self.host.call_tool(self.call_id, name, arguments)

    async def watch_inactivity(self, timeout_ms: int) -> None:
        """No inbound media for ``timeout_ms`` (+2 s grace) → end ``timeout`` (§7.7)."""
        limit_s = (timeout_ms + INACTIVITY_GRACE_MS) / 1000
        while not self.finished:
            idle = time.monotonic() - self.last_media
            if idle >= limit_s:
                await self.end_with("timeout", f"no inbound media for {int(idle * 1000)} ms")
                return
            await asyncio.sleep(limit_s - idle)


class _Prewarm:
    """A provider session opened when the stream document was served (SPEC §7.3), by token.

    The session's events (``SessionReady`` first) are kept in order until :meth:`attach` hands
    them, and every later one, to the bridge's callback: nothing the session says before the
    socket is admitted is lost.
    """

    def __init__(self, token: str, call_id: str) -> None:
        self.token = token
        self.call_id = call_id
        self.session: RealtimeSession | None = None
        self.task: asyncio.Task[None] | None = None  # session.start()
        self.ready = False  # SessionReady arrived
        self._buffer: list[RealtimeEvent] = []
        self._target: Callable[[RealtimeEvent], None] | None = None

    def deliver(self, event: RealtimeEvent) -> None:
        """The pre-warmed session's event callback."""
        if isinstance(event, SessionReady):
            self.ready = True
        if self._target is not None:
            self._target(event)
        else:
            self._buffer.append(event)

    def attach(self, target: Callable[[RealtimeEvent], None]) -> None:
        """Replay the buffered events to ``target``, in order, then forward the rest."""
        buffered, self._buffer = self._buffer, []
        for event in buffered:
            target(event)
        self._target = target

    @property
    def failed(self) -> bool:
        task = self.task
        return task is not None and task.done() and (task.cancelled() or bool(task.exception()))


class _PrewarmedSession(RealtimeSession):
    """The bridge's view of a pre-warmed session: ``start()`` waits for the start already under
    way (raising its error) and then attaches the bridge, replaying the buffered events."""

    def __init__(self, prewarm: _Prewarm, on_event: Callable[[RealtimeEvent], None]) -> None:
        assert prewarm.session is not None and prewarm.task is not None
        self.prewarm = prewarm
        self.inner: RealtimeSession = prewarm.session
        self._on_event = on_event

    async def start(self) -> None:
        task = self.prewarm.task
        assert task is not None
        await asyncio.shield(task)
        self.prewarm.attach(self._on_event)

    def send_audio(self, ulaw: bytes) -> None:
        self.inner.send_audio(ulaw)

    async def request_response(self, instructions: str | None = None) -> None:
        await self.inner.request_response(instructions)

    async def send_user_text(self, text: str, *, respond: bool = True) -> None:
        await self.inner.send_user_text(text, respond=respond)

    async def cancel_response(self) -> None:
        await self.inner.cancel_response()

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        await self.inner.truncate(item_id, audio_end_ms)

    async def send_tool_result(self, call: ToolCall, output: Mapping[str, Any]) -> None:
        await self.inner.send_tool_result(call, output)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RealtimeHost:
    """Every realtime call of one gateway run (see the module docstring)."""

    def __init__(
        self,
        config: Any,
        *,
        selection: RealtimeSelection,
        control: RealtimeControl,
        env: Mapping[str, str] | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        session_factory: Callable[..., RealtimeSession] = create_realtime_session,
    ) -> None:
        self.config = config
        self.selection = selection
        self.control = control
        self.env: Mapping[str, str] = dict(env or {})
        self.clock_ms = clock_ms
        self._session_factory = session_factory
        self.calls: dict[str, _Call] = {}  # call id -> its current realtime socket
        self._minted: dict[str, str] = {}  # token -> call id: stream documents not yet admitted
        self.prewarms: dict[str, _Prewarm] = {}  # token -> its pre-warmed session (§7.3)
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("realtime host task failed", exc_info=task.exception())

        task.add_done_callback(done)

    # -- admission ------------------------------------------------------------------------------

    def _find(self, start: RealtimeStart) -> CallRecord | None:
        record = self.control.get_record(start.call_id)
        if record is None:
            record = self.control.find_by_provider_id(start.provider_call_id)
        return record

    async def on_admitted(self, conn: RealtimeConnection, start: RealtimeStart) -> _Call:
        """The server's ``on_admitted``: bridge the socket to the call's realtime session."""
        record = self._find(start)
        if record is None or _ended(record):
            raise LookupError(f"no live call for realtime stream {start.provider_call_id}")
        call_id = record.call_id
        if record.answered_at_ms is None:
            key = f"realtime:{start.token}:answered"
            await self.control.handle_events(
                [
                    {
                        "type": "call.answered",
                        "id": key,
                        "dedupeKey": key,
                        "callId": call_id,
                        "providerCallId": start.provider_call_id,
                        "timestamp": self.clock_ms(),
                    }
                ]
            )
        call = _Call(self, conn, start, call_id)
        self._minted.pop(start.token, None)
        await self.control.stream_connected(call_id, start.stream_id)
        previous = self.calls.get(call_id)
        self.calls[call_id] = call
        if previous is not None:  # a reconnect supersedes the older socket
            previous.conn.close(1000, "Superseded")
        greeting = await self.control.take_realtime_greeting(call_id)
        realtime = self.config.realtime
        instructions = self._instructions(record, greeting)
        tools = realtime_tools(self.config)
        protocol = conn.protocol
        pacer = RealtimePacer(
            sink=conn.send,
            build_media=protocol.build_media,
            build_mark=protocol.build_mark,
            build_clear=protocol.build_clear,
            clock=LoopClock(),
            label=f"{start.stream_id} (call {call_id})",
        )

        def forward(event: RealtimeEvent) -> None:
            # The session needs its callback before the bridge (which needs the session) exists.
            if call.bridge is not None:
                call.bridge.on_session_event(event)

        prewarm = self.prewarms.pop(start.token, None)
        if prewarm is not None and prewarm.failed:
            log.info("call %s: the pre-warmed session failed; opening a new one", call_id)
            prewarm = None
        session: RealtimeSession
        if prewarm is not None:
            session = _PrewarmedSession(prewarm, forward)
        else:
            session = self._session_factory(
                self.selection, self.selection.session_config(instructions, tools), forward
            )
        direction: Literal["inbound", "outbound"] = (
            "inbound" if record.direction == "inbound" else "outbound"
        )
        bridge = RealtimeBridge(
            call_id=call_id,
            provider_call_id=start.provider_call_id,
            direction=direction,
            session=session,
            pacer=pacer,
            emit=self.control.handle_events,
            clock_ms=self.clock_ms,
            consult=call.consult,
            call_tool=call.call_tool,
            end_call=call.end_call,
            on_overflow=call.overflow,
            on_session_closed=call.session_closed,
            on_turn=call.on_turn,
            consult_inline_wait_ms=realtime.consult_inline_wait_ms,
            farewell_max_wait_ms=realtime.farewell_max_wait_ms,
        )
        call.bridge = bridge
        bridge.carrier_started()  # the carrier's start is in: first-audio delay counts from here
        try:
            await bridge.start(greeting)
        except asyncio.CancelledError:  # the socket ended during admission
            await bridge.aclose()
            if self.calls.get(call_id) is call:
                del self.calls[call_id]
            raise
        except Exception as exc:
            log.error("call %s: the realtime session could not start: %s", call_id, exc)
            await bridge.aclose()
            if self.calls.get(call_id) is call:
                del self.calls[call_id]
            await self._fail(call_id, start, str(exc) or type(exc).__name__)
            raise
        call.watch = asyncio.ensure_future(call.watch_inactivity(realtime.inactivity_timeout_ms))
        return call

    async def _fail(self, call_id: str, start: RealtimeStart, error: str) -> None:
        key = f"realtime:{start.token}:error"
        await self.control.handle_events(
            [
                {
                    "type": "call.error",
                    "id": key,
                    "dedupeKey": key,
                    "callId": call_id,
                    "providerCallId": start.provider_call_id,
                    "timestamp": self.clock_ms(),
                    "error": f"realtime session failed: {error}",
                }
            ]
        )

    def _instructions(self, record: CallRecord, greeting: str | None) -> str:
        realtime = self.config.realtime
        context = realtime.agent_context
        workspace = self.config.store_dir(self.env) / "workspace"
        return realtime_instructions(
            instructions=realtime.instructions,
            consult_policy=realtime.consult_policy,
            agent_context_enabled=context.enabled,
            agent_name=self.config.agent.name or record.agent_id or self.config.agent_id,
            workspace_dir=workspace,
            files=context.files,
            max_chars=context.max_chars,
            include_identity=context.include_identity,
            include_workspace_files=context.include_workspace_files,
            greeting=greeting,
        )

    # -- runtime hooks ----------------------------------------------------------------------------

    def minted(self, token: str, call_id: str, provider_call_id: str) -> None:
        """A realtime stream document with ``token`` was served for the call (SPEC §7.1).

        With ``realtime.prewarm`` the provider session is opened now (SPEC §7.3): connect and
        session config (instructions with the pending greeting, tools, formats), kept by token
        until the socket is admitted or the token is released.
        """
        self._minted[token] = call_id
        if not self.config.realtime.prewarm:
            return
        record = self.control.get_record(call_id)
        if _ended(record):
            return
        assert record is not None
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not on the loop: the session opens on admission
            return
        message = record.metadata.get("initialMessage")
        greeting = message if isinstance(message, str) and message else None
        prewarm = _Prewarm(token, call_id)
        try:
            session = self._session_factory(
                self.selection,
                self.selection.session_config(
                    self._instructions(record, greeting), realtime_tools(self.config)
                ),
                prewarm.deliver,
            )
        except Exception as exc:
            log.warning("call %s: realtime pre-warm failed: %s", call_id, exc)
            return
        prewarm.session = session
        prewarm.task = task = asyncio.ensure_future(session.start())

        def started(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.warning(
                    "call %s: the pre-warmed realtime session did not start: %s",
                    call_id,
                    task.exception(),
                )

        task.add_done_callback(started)
        self.prewarms[token] = prewarm
        log.info("call %s: realtime session pre-warming", call_id)

    def released(self, token: str) -> None:
        """The stream server's ``released(token)``: the token was never used (or its socket
        ended before admission); its pre-warmed session is closed."""
        self._minted.pop(token, None)
        prewarm = self.prewarms.pop(token, None)
        if prewarm is not None and prewarm.session is not None:
            log.info("call %s: pre-warmed realtime session released", prewarm.call_id)
            self.spawn(prewarm.session.aclose())

    def is_realtime(self, call_id: str) -> bool:
        """The call talks to a realtime model: admitted, or its stream document was served."""
        return call_id in self.calls or call_id in self._minted.values()

    async def speak(self, call_id: str, text: str) -> bool:
        """``voicecall.speak`` on a realtime call (SPEC §7.4): returns once the model's response
        has played (see :meth:`RealtimeBridge.speak`); False when the call is not a realtime
        call (carrier speech then).

        A realtime call whose socket is not admitted yet fails with ``realtime stream not
        connected yet`` rather than falling back to carrier speech (that would replace the
        stream document and drop the realtime session) or being queued (the caller of
        ``voicecall.speak`` would wait on a stream that may never come).
        """
        call = self.calls.get(call_id)
        if call is None and call_id not in self._minted.values():
            return False
        bridge = call.bridge if call is not None else None
        if bridge is None:
            raise RealtimeError(NOT_CONNECTED)
        if bridge.closed:
            raise RealtimeError(STREAM_CLOSED)
        await bridge.speak(text, until_played=True)
        return True

    def close_call_stream(self, call_id: str, stream_id: str) -> None:
        """The call ended (``CloseStream``): close its realtime socket."""
        call = self.calls.get(call_id)
        if call is not None and call.stream_id == stream_id:
            call.conn.close(1000, _CALL_ENDED_REASON)

    async def aclose(self) -> None:
        """Close pre-warmed sessions; wait for the sockets' teardown work (the stream server
        closes the sockets)."""
        for token in list(self.prewarms):
            self.released(token)
        for call in list(self.calls.values()):
            if call.watch is not None:
                call.watch.cancel()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- tools ------------------------------------------------------------------------------------

    async def consult(self, call_id: str, request: ConsultRequest) -> Mapping[str, Any]:
        """``agent_consult`` (§7.6): one agent run with the consult prompt and tool policy."""
        runner = self.control.runner
        record = self.control.get_record(call_id)
        if runner is None:
            return consult_error_result("no agent runner configured")
        if record is None:
            return consult_error_result(f"call not found: {call_id}")
        realtime = self.config.realtime
        now_ms = self.clock_ms()
        command = RunAutoResponse(
            call_id=call_id,
            reply_id=str(uuid.uuid4()),
            message=_consult_message(request),
            caller_said_at_ms=now_ms,
        )
        allow = consult_tools_allow(realtime.tool_policy)
        run = dataclasses.replace(
            build_run_request(self.config, record, command, now_ms=now_ms),
            run_id=f"voice:{call_id}:consult:{now_ms}",
            tools_allow=None if allow is None else list(allow),
            thinking_level=realtime.consult_thinking_level,
            fast_mode=realtime.consult_fast_mode,
            extra_system_prompt=CONSULT_SYSTEM_PROMPT,
        )
        try:
            answer = await generate_reply(runner, run)
        except TimeoutError:
            return consult_error_result(f"the agent timed out after {run.timeout_ms} ms")
        except Exception as exc:
            return consult_error_result(str(exc) or type(exc).__name__)
        if not answer.strip():
            return consult_error_result("the agent gave no answer")
        return consult_answer_result(answer)

    async def call_tool(
        self, call_id: str, name: str, arguments: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """A custom tool: the runner's ``call_tool(name, args, context)`` when it has one."""
        call_tool = getattr(self.control.runner, "call_tool", None)
        if not callable(call_tool):
            return None
        record = self.control.get_record(call_id)
        context = {
            "callId": call_id,
            "sessionKey": record.session_key if record is not None else None,
            "agentId": record.agent_id if record is not None else None,
        }
        result = await call_tool(name, dict(arguments), context)
        return result if isinstance(result, Mapping) else None


def _consult_message(request: ConsultRequest) -> str:
    parts = [request.question]
    if request.context:
        parts.append(f"Context: {request.context}")
    if request.response_style:
        parts.append(f"Response style: {request.response_style}")
    return "\n\n".join(parts)
