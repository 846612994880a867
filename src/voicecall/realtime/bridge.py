"""The realtime bridge of one call (SPEC §7.3-§7.7): provider session ⇄ carrier stream.

One :class:`RealtimeBridge` per realtime call. It is carrier-neutral and socket-free: the owner
(the realtime media-stream handler) feeds it the carrier's frames and wires the provider
session's event callback to :meth:`RealtimeBridge.on_session_event`; the bridge drives the
session, the outbound :class:`~voicecall.realtime.pacer.RealtimePacer` (already built with the
carrier's frame builders and sink) and, when configured, the local
:class:`~voicecall.realtime.gate.BargeInGate`. Usage::

    bridge = RealtimeBridge(call_id=..., provider_call_id=..., direction="outbound",
                            session=session, pacer=pacer, emit=control.handle_events,
                            consult=run_consult, end_call=hang_up, clock_ms=now_ms,
                            on_overflow=close_1013, on_session_closed=end_with_reason)
    session = OpenAIRealtimeSession(config, ..., on_event=bridge.on_session_event)  # or a relay
    await bridge.start(greeting)      # connect; the opening response waits for carrier_started()
    bridge.carrier_started()          # the carrier `start` frame arrived
    bridge.on_carrier_audio(ulaw)     # every inbound media frame (sync, no task)
    bridge.on_carrier_mark(name)      # every mark echo
    await bridge.speak("...", until_played=True)  # voicecall.speak: back once it has played
    await bridge.aclose()             # idempotent

Decisions (what the owner relies on):

- Opening response: ``session.request_response()`` with no instructions, once BOTH the session
  is ready and :meth:`carrier_started` was called (§7.3). The greeting text itself is already in
  the session instructions (``compose_instructions(greeting=...)``, §7.4), and steering the
  response with instructions would replace them for that response on OpenAI. ``greeting`` only
  names what is queued (logged). For an outbound call the opening response is "the opening
  greeting": barge-in (native or gate) is suppressed from the request until its audio has been
  drained (played and its last mark echoed, or the pacer's drain bound).
- Call events go through ``emit`` in order, one background emitter task (never one per event
  nor per frame): the caller's final transcript as ``call.speech`` (``isFinal: true``; partials
  are aggregated — ≤1200 chars, overlapping text merged — but not emitted, to keep the call
  manager's load off the hot path) and assistant finals as ``call.assistant-speech``.
- Turn metrics (§10.2 ``realtime``): a turn starts at the caller's final transcript and
  completes at the first model audio handed to the pacer after it (written at once when the
  carrier is idle). They are appended to :attr:`RealtimeBridge.turns` and passed to the
  optional ``on_turn`` callback; the owner writes them with ``record.add_turn("realtime", ...)``.
  A reply whose audio started (since the caller's speech start or the previous response's end)
  before the transcript arrived is not measured (it would be negative);
  :attr:`RealtimeBridge.unmeasured_turns` counts those. A transcript that arrives after a short
  reply has already finished is measured against the next reply (a known imprecision: the
  contract has no "caller speech stopped" event to start the turn at).
- ``metadata.realtimeFirstAudioMs`` = :attr:`RealtimeBridge.first_audio_ms` (carrier start →
  first outbound frame, on the pacer clock).
- Overflow: a refused :meth:`~voicecall.realtime.pacer.RealtimePacer.push` sets
  :attr:`RealtimeBridge.overflowed` and calls ``on_overflow()`` once; the owner closes the
  carrier socket with ``OVERFLOW_CLOSE_CODE`` / ``OVERFLOW_REASON``.
- ``end_call`` (§7.7): model audio is discarded from the tool call on (barge-in too is ignored,
  so the goodbye plays), the pacer drains (bounded by the queued duration + 2 s, at most
  ``farewell_max_wait_ms``), then ``end_call()`` runs; on success the session and the pacer are
  closed and no tool result is sent (it would only make the model speak again into a call that
  is over). When ``end_call()`` raises, ``{"ok": false, "error": ...}`` is returned to the model
  and the call continues (audio flows again). The callback runs before the session is closed
  so that a failure can still be reported to the model.
- ``agent_consult``: ``consult(request)`` runs as a task; the tool result is its result if it is
  done within ``consult_inline_wait_ms``, else the pending result, and the late answer is then
  injected with ``session.send_user_text(consult_result_injection(answer))`` (a response is
  requested) even if the turn was cancelled meanwhile. A late ``{"error": ...}`` is injected as
  :data:`CONSULT_FAILED_TEXT` so the model does not leave the caller waiting. Snippet results
  (fastContext) are injected as their texts joined.
- Other tools go to ``call_tool(name, arguments)`` when given, else the model gets
  ``{"error": "tool <name> is not implemented"}``.
- Session end the bridge did not cause (provider closed, dropped, timed out): ``SessionClosed``
  reason (``completed``/``error``/``timeout``) is kept in :attr:`RealtimeBridge.end_reason` and
  ``on_session_closed(reason, message)`` is called once; the owner ends the call with it.
- Errors of the owner's callbacks are logged and never stop the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from voicecall.realtime.gate import GATE_STARTED, BargeInGate
from voicecall.realtime.instructions import speak_instructions
from voicecall.realtime.pacer import FAREWELL_MAX_WAIT_MS, ClearResult, RealtimePacer
from voicecall.realtime.session import (
    AssistantTranscript,
    AudioOut,
    RealtimeEvent,
    RealtimeSession,
    ResponseDone,
    SessionClosed,
    SessionReady,
    SpeechStarted,
    ToolCall,
    UserTranscript,
)
from voicecall.realtime.tools import (
    AGENT_CONSULT,
    END_CALL,
    ConsultRequest,
    consult_error_result,
    consult_pending_result,
    consult_result_injection,
    end_call_failure_result,
    parse_consult_arguments,
    tool_not_implemented_result,
)

__all__ = [
    "CONSULT_FAILED_TEXT",
    "CONSULT_INLINE_WAIT_MS",
    "TRANSCRIPT_MAX_CHARS",
    "CallToolHandler",
    "ConsultHandler",
    "EmitEvents",
    "RealtimeBridge",
    "RealtimeTurn",
    "merge_transcript",
]

log = logging.getLogger("voicecall.realtime.bridge")

TRANSCRIPT_MAX_CHARS: Final = 1200
CONSULT_INLINE_WAIT_MS: Final = 1500
CONSULT_FAILED_TEXT: Final = (
    "Internal consult failed. Tell the caller briefly that you could not get the answer right now."
)
_MIN_OVERLAP: Final = 8  # shorter overlaps are more likely a repeated word than a re-send
_EMIT_DRAIN_S: Final = 2.0

EmitEvents = Callable[[list[dict[str, Any]]], Awaitable[None]]
ConsultHandler = Callable[[ConsultRequest], Awaitable[Mapping[str, Any]]]
CallToolHandler = Callable[[str, Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]
EndReason = Literal["completed", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class RealtimeTurn:
    """One measured realtime turn (SPEC §10.2): epoch ms stamps and their difference."""

    started_at_ms: int
    completed_at_ms: int

    @property
    def response_ms(self) -> int:
        return self.completed_at_ms - self.started_at_ms


def _cut(text: str) -> str:
    return text if len(text) <= TRANSCRIPT_MAX_CHARS else text[-TRANSCRIPT_MAX_CHARS:]


def merge_transcript(before: str, after: str) -> str:
    """``before`` followed by ``after`` with overlapping text merged (≤1200 chars, the newest).

    ``after`` that repeats all of ``before`` (a cumulative re-send) replaces it; ``after`` that
    is already the end of ``before`` adds nothing; an overlap of at least 8 characters between
    the end of ``before`` and the start of ``after`` is kept once; otherwise they are joined.
    """
    if not before:
        return _cut(after)
    if not after:
        return _cut(before)
    head = before.strip()
    if head and after.lstrip().startswith(head):
        return _cut(after)
    if len(after.strip()) >= _MIN_OVERLAP and before.rstrip().endswith(after.strip()):
        return _cut(before)
    longest = min(len(before), len(after))
    for size in range(longest, _MIN_OVERLAP - 1, -1):
        if before.endswith(after[:size]):
            return _cut(before + after[size:])
    return _cut(before + after)


def _final_transcript(partial: str, final: str) -> str:
    """The caller's final text, merged with the partials heard before it."""
    if not final.strip():
        return partial.strip()
    if not partial.strip():
        return final.strip()
    return merge_transcript(partial, final).strip()


class RealtimeBridge:
    """One realtime call's bridge (see the module docstring)."""

    def __init__(
        self,
        *,
        call_id: str,
        provider_call_id: str | None,
        direction: Literal["inbound", "outbound"],
        session: RealtimeSession,
        pacer: RealtimePacer,
        emit: EmitEvents,
        clock_ms: Callable[[], int],
        gate: BargeInGate | None = None,
        consult: ConsultHandler | None = None,
        call_tool: CallToolHandler | None = None,
        end_call: Callable[[], Awaitable[None]] | None = None,
        on_overflow: Callable[[], None] | None = None,
        on_session_closed: Callable[[str, str], Awaitable[None]] | None = None,
        on_turn: Callable[[RealtimeTurn], None] | None = None,
        consult_inline_wait_ms: int = CONSULT_INLINE_WAIT_MS,
        farewell_max_wait_ms: int = FAREWELL_MAX_WAIT_MS,
    ) -> None:
        self.call_id = call_id
        self.provider_call_id = provider_call_id
        self.direction = direction
        self.session = session
        self.pacer = pacer
        self.gate = gate
        self._emit = emit
        self._clock_ms = clock_ms
        self._consult = consult
        self._call_tool = call_tool
        self._end_call = end_call
        self._on_overflow = on_overflow
        self._on_session_closed = on_session_closed
        self._on_turn = on_turn
        self.consult_inline_wait_ms = consult_inline_wait_ms
        self.farewell_max_wait_ms = farewell_max_wait_ms
        self.greeting: str | None = None
        self.ready = False
        self.started = False  # start() was called
        self.greeted = False  # the opening response was requested
        self.suppressed = False  # barge-in suppressed: an outbound greeting is playing
        self.ending = False  # end_call is in progress: model audio is discarded
        self.ended = False  # end_call completed
        self.overflowed = False
        self.end_reason: str | None = None  # SessionClosed reason the bridge did not cause
        self.turns: list[RealtimeTurn] = []
        self.unmeasured_turns = 0
        self.barge_ins = 0
        self.discarded_bytes = 0
        self._carrier_started_at: float | None = None
        self._closing = False
        self._user_partial = ""
        self._turn_started_ms: int | None = None
        self._greeting_draining = False
        self._reply_audible = False  # model audio arrived since the caller last spoke
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outbox: deque[dict[str, Any]] = deque()
        self._outbox_wake = asyncio.Event()
        self._emitter: asyncio.Task[None] | None = None
        self._speak_waiters: list[asyncio.Future[bool]] = []  # speak(): the next response

    # -- what the owner reads ------------------------------------------------------------------

    @property
    def first_audio_ms(self) -> int | None:
        """Carrier ``start`` → first outbound audio frame (``metadata.realtimeFirstAudioMs``)."""
        if self._carrier_started_at is None:
            return None
        return self.pacer.first_audio_ms(self._carrier_started_at)

    @property
    def closed(self) -> bool:
        return self._closing

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, greeting: str | None = None) -> None:
        """Start the provider session (raises its :class:`RealtimeError`); the opening response
        is requested once the session is ready and :meth:`carrier_started` was called."""
        if self.started or self._closing:
            return
        self.started = True
        self.greeting = greeting
        if self._emitter is None:
            self._emitter = asyncio.create_task(self._run_emitter(), name="realtime-bridge-emit")
        await self.session.start()
        self._maybe_greet()

    def carrier_started(self) -> None:
        """The carrier's ``start`` frame arrived: the stream can play audio now."""
        if self._carrier_started_at is None:
            self._carrier_started_at = self.pacer.now()
        self._maybe_greet()

    def _maybe_greet(self) -> None:
        if self.greeted or self._closing or not self.ready or self._carrier_started_at is None:
            return
        self.greeted = True
        if self.direction == "outbound":
            self._suppress(True)
        log.info(
            "call %s: realtime bridge started (greeting queued%s)",
            self.call_id,
            "" if self.greeting else ", none given",
        )
        self._spawn(self.session.request_response(), "the opening response")

    async def speak(self, message: str, *, until_played: bool = False) -> bool:
        """``voicecall.speak`` on a realtime call (SPEC §7.4): ask the model for a response with
        the speak instructions.

        Without ``until_played`` it returns once the response was requested (True). With it, it
        returns when the next response to complete has been drained from the pacer (sent and
        its last mark echoed: True; False at the drain bound — queued duration + 2 s, at most
        ``farewell_max_wait_ms`` —, on barge-in, or when the bridge or session closes). The
        contract has no response ids on request, so "the next response to complete" is the one
        requested unless another response was already under way. False at once when closed.
        """
        if self._closing or self.ending:
            return False
        if not until_played:
            await self.session.request_response(speak_instructions(message))
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._speak_waiters.append(done)
        try:
            await self.session.request_response(speak_instructions(message))
            return await done
        finally:
            if done in self._speak_waiters:
                self._speak_waiters.remove(done)

    def _settle_speakers(self, played: bool | None = None) -> None:
        """A response completed (``played`` None): the waiting speakers return once it has
        drained; otherwise they return ``played`` at once (closed)."""
        waiters, self._speak_waiters = self._speak_waiters, []
        if not waiters:
            return

        def settle(ok: bool) -> None:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(ok)

        if played is None:
            self.pacer.drain(settle, self.farewell_max_wait_ms)
        else:
            settle(played)

    async def aclose(self) -> None:
        """Close the session and the pacer, cancel tool work, deliver pending events."""
        if self._closing:
            return
        self._closing = True
        self._suppress(False)
        self._settle_speakers(False)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        self.pacer.close()
        try:
            await self.session.aclose()
        except Exception:
            log.exception("call %s: closing the realtime session failed", self.call_id)
        if tasks:
            await asyncio.wait(tasks)
        emitter = self._emitter
        if emitter is not None and emitter is not current:
            self._outbox_wake.set()
            with contextlib.suppress(Exception):
                await asyncio.wait([emitter], timeout=_EMIT_DRAIN_S)
            if not emitter.done():
                emitter.cancel()
                await asyncio.wait([emitter])

    # -- carrier side (hot path) ---------------------------------------------------------------

    def on_carrier_audio(self, ulaw: bytes) -> None:
        """One inbound media frame: to the provider, and through the gate when it has one."""
        self.session.send_audio(ulaw)
        gate = self.gate
        if gate is not None and GATE_STARTED in gate.process(ulaw):
            self._barge_in("gate")

    def on_carrier_mark(self, name: str) -> None:
        """A mark echo from the carrier."""
        self.pacer.on_mark(name)

    # -- session side --------------------------------------------------------------------------

    def on_session_event(self, event: RealtimeEvent) -> None:
        """The provider session's event callback (its reader task calls it, in order)."""
        try:
            self._on_event(event)
        except Exception:
            log.exception("call %s: realtime event %s failed", self.call_id, type(event).__name__)

    def _on_event(self, event: RealtimeEvent) -> None:
        if isinstance(event, AudioOut):
            self._audio_out(event)
        elif isinstance(event, ResponseDone):
            self.pacer.flush()
            self._reply_audible = False  # the next audio is a new reply
            if self.suppressed and not self._greeting_draining:
                # The opening greeting is complete: barge-in resumes once it has played.
                self._greeting_draining = True
                self.pacer.drain(self._greeting_done, self.farewell_max_wait_ms)
            self._settle_speakers()
        elif isinstance(event, UserTranscript):
            self._user_transcript(event)
        elif isinstance(event, AssistantTranscript):
            if event.text.strip() and not self.ending:
                self._queue_event("call.assistant-speech", transcript=event.text.strip())
        elif isinstance(event, SpeechStarted):
            self._barge_in("provider")
        elif isinstance(event, ToolCall):
            self._spawn(self._tool_call(event), f"tool call {event.name}")
        elif isinstance(event, SessionReady):
            self.ready = True
            self._maybe_greet()
        elif isinstance(event, SessionClosed):
            self._session_closed(event)

    def _audio_out(self, event: AudioOut) -> None:
        if self.ending or self._closing:
            self.discarded_bytes += len(event.audio)
            return
        if not self.pacer.push(event.audio, event.item_id):
            if not self.overflowed:
                self.overflowed = True
                log.warning("call %s: realtime audio queue overflow", self.call_id)
                if self._on_overflow is not None:
                    try:
                        self._on_overflow()
                    except Exception:
                        log.exception("call %s: the overflow callback failed", self.call_id)
            return
        if not self._reply_audible:
            self._reply_audible = True
            started = self._turn_started_ms
            if started is not None:
                self._turn_started_ms = None
                turn = RealtimeTurn(started, max(started, self._clock_ms()))
                self.turns.append(turn)
                if self._on_turn is not None:
                    try:
                        self._on_turn(turn)
                    except Exception:
                        log.exception("call %s: the turn callback failed", self.call_id)

    def _user_transcript(self, event: UserTranscript) -> None:
        if not event.final:
            self._user_partial = merge_transcript(self._user_partial, event.text)
            return
        text = _final_transcript(self._user_partial, event.text)
        self._user_partial = ""
        if not text:
            return
        self._queue_event("call.speech", transcript=text, isFinal=True)
        if self._reply_audible:
            # The reply was already playing when the transcript arrived: not measurable.
            self.unmeasured_turns += 1
        else:
            self._turn_started_ms = self._clock_ms()

    def _session_closed(self, event: SessionClosed) -> None:
        self.ready = False
        self._settle_speakers(False)
        if self._closing or self.ended:
            return  # we closed it
        self.end_reason = event.reason
        log.info(
            "call %s: realtime session closed (%s)%s",
            self.call_id,
            event.reason,
            f": {event.message}" if event.message else "",
        )
        if self._on_session_closed is not None:
            self._spawn(self._on_session_closed(event.reason, event.message), "session end")

    # -- barge-in ------------------------------------------------------------------------------

    def _suppress(self, on: bool) -> None:
        self.suppressed = on
        if self.gate is not None:
            self.gate.enabled = not on

    def _barge_in(self, source: str) -> None:
        self._reply_audible = False  # the caller speaks: what the model says next is a reply
        if self._closing or self.ending:
            return
        if self.suppressed:
            log.debug("call %s: barge-in (%s) suppressed: greeting playing", self.call_id, source)
            return
        self.barge_ins += 1
        cleared = self.pacer.clear()
        log.debug(
            "call %s: barge-in (%s): item %s heard %d ms, %d bytes dropped",
            self.call_id,
            source,
            cleared.item_id,
            cleared.confirmed_ms,
            cleared.dropped_bytes,
        )
        self._spawn(self._interrupt(cleared), "barge-in")

    async def _interrupt(self, cleared: ClearResult) -> None:
        await self.session.cancel_response()
        if cleared.item_id is not None:
            await self.session.truncate(cleared.item_id, cleared.confirmed_ms)

    def _greeting_done(self, ok: bool) -> None:
        if self.suppressed:
            self._suppress(False)

    # -- tools ---------------------------------------------------------------------------------

    async def _tool_call(self, call: ToolCall) -> None:
        if call.name == END_CALL:
            await self._end_call_tool(call)
        elif call.name == AGENT_CONSULT and self._consult is not None:
            await self._consult_tool(call)
        elif call.name not in (END_CALL, AGENT_CONSULT) and self._call_tool is not None:
            try:
                result = await self._call_tool(call.name, call.arguments)
            except Exception as exc:
                log.exception("call %s: tool %s failed", self.call_id, call.name)
                result = consult_error_result(f"tool {call.name} failed: {exc}")
            await self._tool_result(call, result or tool_not_implemented_result(call.name))
        else:
            await self._tool_result(call, tool_not_implemented_result(call.name))

    async def _tool_result(self, call: ToolCall, result: Mapping[str, Any]) -> None:
        if self._closing or self.ended:
            return
        await self.session.send_tool_result(call, result)

    async def _end_call_tool(self, call: ToolCall) -> None:
        if self.ending or self.ended:
            return
        self.ending = True
        log.info("call %s: the model ended the call; playing out the goodbye", self.call_id)
        drained: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(ok: bool) -> None:
            if not drained.done():
                drained.set_result(ok)

        self.pacer.drain(done, self.farewell_max_wait_ms)
        played = await drained
        if not played:
            log.info("call %s: goodbye not confirmed played; ending anyway", self.call_id)
        try:
            if self._end_call is None:
                raise RuntimeError("ending the call is not available")
            await self._end_call()
        except Exception as exc:
            log.warning("call %s: end_call failed: %s", self.call_id, exc)
            self.ending = False
            await self._tool_result(call, end_call_failure_result(str(exc) or type(exc).__name__))
            return
        self.ended = True
        self.pacer.close()
        await self.session.aclose()

    async def _consult_tool(self, call: ToolCall) -> None:
        assert self._consult is not None
        try:
            request = parse_consult_arguments(call.arguments)
        except ValueError as exc:
            await self._tool_result(call, consult_error_result(str(exc)))
            return
        work = asyncio.ensure_future(self._run_consult(self._consult, request))
        self._track(work, "consult")
        try:
            await asyncio.wait([work], timeout=max(self.consult_inline_wait_ms, 0) / 1000)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if work.done():
            await self._tool_result(call, work.result())
            return
        log.info("call %s: consult still running; the answer will follow", self.call_id)
        await self._tool_result(call, consult_pending_result())
        result = await work
        if self._closing or self.ending or self.ended:
            return
        await self.session.send_user_text(_late_text(result))

    async def _run_consult(
        self, consult: ConsultHandler, request: ConsultRequest
    ) -> Mapping[str, Any]:
        try:
            return dict(await consult(request))
        except Exception as exc:
            log.exception("call %s: consult failed", self.call_id)
            return consult_error_result(str(exc) or type(exc).__name__)

    # -- plumbing ------------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[Any], what: str) -> None:
        if self._closing:
            if isinstance(work, Coroutine):
                work.close()
            return
        self._track(asyncio.ensure_future(work), what)

    def _track(self, task: asyncio.Future[Any], what: str) -> None:
        assert isinstance(task, asyncio.Task)
        self._tasks.add(task)

        def finished(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "call %s: realtime %s failed", self.call_id, what, exc_info=task.exception()
                )

        task.add_done_callback(finished)

    def _queue_event(self, kind: str, **fields: Any) -> None:
        self._outbox.append(
            {
                "type": kind,
                "id": f"realtime:{self.call_id}:{uuid.uuid4()}",
                "callId": self.call_id,
                "providerCallId": self.provider_call_id,
                "timestamp": self._clock_ms(),
                **fields,
            }
        )
        self._outbox_wake.set()

    async def _run_emitter(self) -> None:
        outbox = self._outbox
        while True:
            await self._outbox_wake.wait()
            self._outbox_wake.clear()
            while outbox:
                batch = list(outbox)
                outbox.clear()
                try:
                    await self._emit(batch)
                except Exception:
                    log.exception("call %s: reporting realtime call events failed", self.call_id)
            if self._closing:
                return


def _late_text(result: Mapping[str, Any]) -> str:
    """The user item that delivers a late consult result."""
    answer = result.get("answer")
    if isinstance(answer, str) and answer.strip():
        return consult_result_injection(answer)
    snippets = result.get("snippets")
    if isinstance(snippets, list):
        texts = [s.get("text") for s in snippets if isinstance(s, dict)]
        joined = " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
        if joined:
            return consult_result_injection(joined)
    return CONSULT_FAILED_TEXT
