"""The async pump around the sans-IO CallManager: runs its commands on carrier and store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from voicecall.agent import AgentRunner
from voicecall.calls import commands as cmd
from voicecall.calls.admission import OutboundRequest
from voicecall.calls.commands import CarrierCommand, Command, TimerKind
from voicecall.calls.events import event_from_dict
from voicecall.calls.manager import CallManager
from voicecall.calls.record import CallRecord
from voicecall.calls.view import CallView
from voicecall.carriers.base import Carrier
from voicecall.errors import CallEndedError, CallError, InvalidParamsError, UnknownCallError
from voicecall.runtime.responder import build_run_request, generate_reply
from voicecall.runtime.timers import TimerTable
from voicecall.streaming.playback import Playback
from voicecall.streaming.sentence_reply import SentenceReply
from voicecall.streaming.speaker import UNAVAILABLE, Spoken, StreamSpeaker

__all__ = ["CallRuntime"]

log = logging.getLogger("voicecall.runtime")

_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class _PersistAborted(CallError):
    """The critical first write of a call failed; nothing was dialled."""


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _webhook_url_configured(config: Any) -> bool:
    if config.provider == "mock":
        return True
    return bool(
        config.public_url or config.tunnel.provider != "none" or config.tailscale.mode != "off"
    )


def _is_gone(exc: BaseException) -> bool:
    """Whether a hangup failure means the call no longer exists (HTTP 404 or equivalent)."""
    if isinstance(exc, UnknownCallError | LookupError):
        return True
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    return status == 404 or "404" in str(exc)


class CallRuntime:
    """Runs calls: feeds events, requests and timer expiries to the manager; runs its commands."""

    def __init__(
        self,
        config: Any,
        *,
        carrier: Carrier,
        store: Any,
        runner: AgentRunner | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._config = config
        self._carrier = carrier
        self._store = store
        self._runner = runner
        self._clock_ms = clock_ms or _wall_clock_ms
        self._manager = CallManager(
            config,
            webhook_url_configured=_webhook_url_configured(config),
            supports_pre_connect_dtmf=bool(getattr(carrier, "supports_pre_connect_dtmf", False)),
            supports_inbound_queue=bool(getattr(carrier, "supports_inbound_queue", False)),
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: TimerTable | None = None
        self._store_error: str | None = None
        self._started = False
        self._stream_closer: Callable[[str, str], None] | None = None
        self._stream_playback: Callable[[str], Playback | None] | None = None
        self._speaker: StreamSpeaker | None = None
        self._realtime_speaker: Callable[[str, str], Awaitable[bool]] | None = None
        self._realtime_call: Callable[[str], bool] | None = None
        self._replies: dict[str, asyncio.Future[str]] = {}  # call id -> reply being generated
        self._sentence_replies: dict[str, SentenceReply] = {}  # call id -> reply being spoken
        self._finished_replies: dict[str, SentenceReply] = {}  # call id -> awaiting its PlayTts

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the carrier, restore calls of the previous run and arm the global timers."""
        loop = asyncio.get_running_loop()
        self._timers = TimerTable(loop, self._clock_ms, self._timer_fired)
        self._carrier.set_event_sink(self._on_carrier_event)
        self._carrier.bind_control(self)
        await self._carrier.start()
        snapshots = list(self._store.load_latest().values())
        now_ms = self._clock_ms()
        commands = self._manager.restore(snapshots, now_ms=now_ms)
        commands += self._manager.start(now_ms=now_ms)
        self._started = True
        await self._execute(commands)

    async def stop(self) -> None:
        """Reject waiters, stop timers and carrier work; calls stay up for the next start."""
        await self._execute(self._manager.stop())
        if self._timers is not None:
            self._timers.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(CallError("voicecall runtime stopped"))
        self._started = False
        await self._carrier.aclose()

    # ---- properties --------------------------------------------------------------------------

    @property
    def active_call_count(self) -> int:
        """Calls not yet in a terminal state."""
        return self._manager.active_call_count

    @property
    def has_pending_work(self) -> bool:
        """Whether calls are live or carrier/agent work is outstanding."""
        return self._manager.has_pending_work or bool(self._tasks)

    @property
    def store_error(self) -> str | None:
        """The last store write failure during a call, cleared by the next successful write."""
        return self._store_error

    @property
    def runner(self) -> AgentRunner | None:
        """The agent runner (realtime consults run on it too)."""
        return self._runner

    @property
    def manager(self) -> CallManager:
        """The sans-IO manager this runtime pumps (read-only use)."""
        return self._manager

    def get_record(self, call_id: str) -> CallRecord | None:
        """The current record of a call, live or recently ended."""
        return self._manager.get_record(call_id)

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        """The record that owns a carrier call id, if any."""
        return self._manager.find_by_provider_id(provider_call_id)

    def call_view(self, call_id: str) -> CallView | None:
        """The live view of a call for carrier reply decisions (None once ended)."""
        return self._manager.call_view(call_id)

    def status(self, call_id: str | None = None, sid: str | None = None) -> dict[str, Any]:
        """The §10.3 status payload (plus ``storeError`` while the store is failing)."""
        payload = self._manager.status(call_id, sid)
        if self._store_error is not None:
            payload["storeError"] = self._store_error
        return payload

    # ---- operations --------------------------------------------------------------------------

    async def initiate(
        self,
        *,
        to: str | None = None,
        message: str | None = None,
        mode: str | None = None,
        dtmf_sequence: str | None = None,
        from_number: str | None = None,
        agent_id: str | None = None,
        session_key: str | None = None,
        requester_session_key: str | None = None,
    ) -> dict[str, Any]:
        """Admit, persist and dial an outbound call; ``{"callId", "initiated": True}``."""
        request = OutboundRequest(
            to=to,
            message=message,
            mode=mode,
            dtmf_sequence=dtmf_sequence,
            from_number=from_number,
            agent_id=agent_id,
            session_key=session_key,
            requester_session_key=requester_session_key,
        )
        waiter_id, future = self._new_waiter()
        try:
            call_id, commands = self._manager.initiate(
                request, waiter_id=waiter_id, now_ms=self._clock_ms()
            )
            async with self._lock(call_id):
                try:
                    await self._execute(commands)
                except _PersistAborted:
                    self._manager.abort_initiate(call_id)
                    raise
            return await future
        finally:
            self._waiters.pop(waiter_id, None)

    async def continue_call(self, call_id: str, message: str) -> dict[str, Any]:
        """Speak, then wait for the caller's answer: ``{"success": True, "transcript"}``."""
        _require_text(message, "message")
        return await self._operate(
            call_id,
            lambda waiter, now: self._manager.continue_call(
                call_id, message, waiter_id=waiter, now_ms=now
            ),
        )

    async def speak(self, call_id: str, message: str) -> dict[str, Any]:
        """Speak ``message`` on the call and return once it has played.

        On a realtime call (SPEC §7.4) no bot line is written for ``message``: the model says it
        in its own words, which come back as ``call.assistant-speech``.
        """
        _require_text(message, "message")
        realtime = self._realtime_call is not None and self._realtime_call(call_id)
        return await self._operate(
            call_id,
            lambda waiter, now: self._manager.speak(
                call_id, message, waiter_id=waiter, now_ms=now, record_line=not realtime
            ),
        )

    async def send_dtmf(self, call_id: str, digits: str) -> dict[str, Any]:
        """Send DTMF digits on the call."""
        _require_text(digits, "digits")
        return await self._operate(
            call_id,
            lambda waiter, now: self._manager.send_dtmf(
                call_id, digits, waiter_id=waiter, now_ms=now
            ),
        )

    async def end_call(self, call_id: str) -> dict[str, Any]:
        """Hang up the call (idempotent)."""
        return await self._operate(
            call_id,
            lambda waiter, now: self._manager.end_call(call_id, waiter_id=waiter, now_ms=now),
        )

    async def handle_events(
        self, events: list[dict[str, Any]], *, in_band_rejection: bool = False
    ) -> None:
        """Process normalized-event dicts in order (a malformed one raises InvalidParamsError).

        ``in_band_rejection``: the carrier's reply refuses a rejected inbound caller itself,
        so no REST hangup is issued for that call (SPEC §12).
        """
        for raw in events:
            event = event_from_dict(raw)
            key = self._event_lock_key(event.call_id, event.provider_call_id)
            async with self._lock(key):
                commands = self._manager.handle_event(
                    event, now_ms=self._clock_ms(), in_band_rejection=in_band_rejection
                )
                await self._execute(commands)
            self._drop_lock_if_ended(key)

    async def claim_initial_message(self, call_id: str) -> str | None:
        """Take the pending initial message for the carrier's reply (recorded as spoken)."""
        async with self._lock(call_id):
            message, commands = self._manager.claim_initial_message(
                call_id, now_ms=self._clock_ms()
            )
            await self._execute(commands)
        return message

    # ---- media streams (SPEC §5, §2.7) -----------------------------------------------------

    def set_stream_closer(self, closer: Callable[[str, str], None] | None) -> None:
        """Who closes a call's media stream ``(call_id, stream_id)`` once the call has ended."""
        self._stream_closer = closer

    def set_stream_speaker(
        self, playback: Callable[[str], Playback | None] | None, speaker: StreamSpeaker | None
    ) -> None:
        """Where a call's live stream playback is, and who speaks on it (SPEC §8.2)."""
        self._stream_playback = playback
        self._speaker = speaker

    def set_realtime_speaker(
        self,
        speaker: Callable[[str, str], Awaitable[bool]] | None,
        is_realtime: Callable[[str], bool] | None = None,
    ) -> None:
        """Who speaks on a realtime call (SPEC §7.4 ``voicecall.speak`` on a realtime call).

        ``speaker(call_id, text)`` returns once the model's response has played; it is False
        when the call is not a realtime call (carrier speech then), and raises when the call is
        one whose stream is not connected yet. ``is_realtime(call_id)``: the call talks to a
        realtime model (admitted, or its stream document was served), so ``voicecall.speak``
        writes no bot line of its own.
        """
        self._realtime_speaker = speaker
        self._realtime_call = is_realtime

    async def take_realtime_greeting(self, call_id: str) -> str | None:
        """Take the pending greeting for the realtime bridge (no bot line is written)."""
        async with self._lock(call_id):
            message, commands = self._manager.take_realtime_greeting(
                call_id, now_ms=self._clock_ms()
            )
            await self._execute(commands)
        return message

    async def realtime_progress(
        self,
        call_id: str,
        *,
        turn: tuple[int, int] | None = None,
        first_audio_ms: int | None = None,
    ) -> None:
        """Record a realtime turn and/or ``metadata.realtimeFirstAudioMs`` (SPEC §10.2)."""
        await self._step(
            call_id,
            lambda now: self._manager.realtime_progress(
                call_id, now_ms=now, turn=turn, first_audio_ms=first_audio_ms
            ),
        )

    def caller_barged_in(self, call_id: str) -> None:
        """Caller speech on the stream (SPEC §2.8): the pending automatic reply is dropped."""
        stale = self._manager.invalidate_reply(call_id)
        streamed = self._sentence_replies.pop(call_id, None)
        if streamed is not None:
            streamed.cancel()
        reply = self._replies.pop(call_id, None)
        if reply is not None and not reply.done():
            reply.cancel()
        if stale:
            log.info("call %s: caller speech cancelled the pending automatic reply", call_id)

    def current_stream_id(self, call_id: str) -> str | None:
        """The call's current media stream id (None when it has none or has ended)."""
        return self._manager.current_stream_id(call_id)

    async def stream_connected(self, call_id: str, stream_id: str) -> None:
        """``stream_id`` is now the call's stream; a pending disconnect grace is cancelled."""
        await self._step(
            call_id,
            lambda now: self._manager.stream_connected(call_id, stream_id, now_ms=now),
        )

    async def stream_disconnected(self, call_id: str, stream_id: str) -> None:
        """A stream closed; only the current one arms the 2 s grace before the call ends."""
        await self._step(
            call_id,
            lambda now: self._manager.stream_disconnected(call_id, stream_id, now_ms=now),
        )

    async def stream_ready(self, call_id: str, stream_id: str) -> str | None:
        """Transcription on the current stream is ready: claim the initial message (§2.5)."""
        async with self._lock(call_id):
            message, commands = self._manager.stream_ready(
                call_id, stream_id, now_ms=self._clock_ms()
            )
            await self._execute(commands)
        return message

    def talk_event(self, call_id: str, kind: str) -> None:
        """Mirror a media/transcription event into the call's ``recentTalkEvents``."""
        self._manager.talk_event(call_id, kind, now_ms=self._clock_ms())

    # ---- internals ---------------------------------------------------------------------------

    async def _on_carrier_event(self, raw: dict[str, Any]) -> None:
        try:
            await self.handle_events([raw])
        except InvalidParamsError as exc:
            log.warning("dropping malformed carrier event: %s", exc)

    def _event_lock_key(self, call_id: str | None, provider_call_id: str | None) -> str:
        if call_id and self._manager.get_record(call_id) is not None:
            return call_id
        if provider_call_id:
            record = self._manager.find_by_provider_id(provider_call_id)
            return record.call_id if record else f"provider:{provider_call_id}"
        return call_id or ""

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _drop_lock_if_ended(self, key: str) -> None:
        lock = self._locks.get(key)
        record = self._manager.get_record(key)
        if lock is not None and not lock.locked() and (record is None or record.ended_at_ms):
            del self._locks[key]

    def _new_waiter(self) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        waiter_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[waiter_id] = future
        return waiter_id, future

    async def _operate(
        self, call_id: str, start: Callable[[str, int], list[Command]]
    ) -> dict[str, Any]:
        waiter_id, future = self._new_waiter()
        try:
            async with self._lock(call_id):
                await self._execute(start(waiter_id, self._clock_ms()))
            return await future
        finally:
            self._waiters.pop(waiter_id, None)

    async def _step(self, call_id: str, produce: Callable[[int], list[Command]]) -> None:
        async with self._lock(call_id):
            await self._execute(produce(self._clock_ms()))
        self._drop_lock_if_ended(call_id)

    async def _execute(self, commands: Iterable[Command]) -> None:
        for command in commands:
            if isinstance(command, cmd.PersistRecord):
                await self._persist(command)
            elif isinstance(command, cmd.StartTimer):
                if self._timers is not None:
                    self._timers.arm(command.call_id, command.kind, command.due_ms)
            elif isinstance(command, cmd.CancelTimer):
                if self._timers is not None:
                    self._timers.cancel(command.call_id, command.kind)
            elif isinstance(command, cmd.ResolveWaiter):
                self._settle(command.waiter_id, result=command.result)
            elif isinstance(command, cmd.RejectWaiter):
                error_class = CallEndedError if command.error_kind == "ended" else CallError
                self._settle(command.waiter_id, error=error_class(command.message))
            elif isinstance(command, cmd.LogMessage):
                log.log(_LOG_LEVELS.get(command.level, logging.INFO), "%s", command.message)
            elif isinstance(command, cmd.RunAutoResponse):
                self._spawn(self._auto_respond(command))
            elif isinstance(command, cmd.CloseStream):
                if self._stream_closer is not None:
                    self._stream_closer(command.call_id, command.stream_id)
            elif isinstance(command, cmd.PlayTts) and command.kind == "auto":
                # An automatic reply already spoken sentence by sentence is not synthesized again.
                streamed = self._finished_replies.pop(command.call_id, None)
                if streamed is not None and streamed.text != command.text:
                    streamed = None
                self._spawn(self._carrier_op(command, streamed))
            else:
                self._spawn(self._carrier_op(command))

    async def _persist(self, command: cmd.PersistRecord) -> None:
        try:
            await self._store.append(command.snapshot)
        except OSError as exc:
            if command.critical:
                raise _PersistAborted(f"could not persist call record: {exc}") from exc
            self._store_error = str(exc)
            log.error("call %s: store write failed, call continues: %s", command.call_id, exc)
        else:
            self._store_error = None

    def _settle(
        self,
        waiter_id: str,
        *,
        result: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        future = self._waiters.get(waiter_id)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or {})

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _timer_fired(self, call_id: str, kind: TimerKind) -> None:
        self._spawn(
            self._step(call_id, lambda now: self._manager.timer_expired(call_id, kind, now_ms=now))
        )

    async def _carrier_op(
        self, command: CarrierCommand, streamed: SentenceReply | None = None
    ) -> None:
        carrier = self._carrier
        outcome: dict[str, Any] = {}
        try:
            if isinstance(command, cmd.PlaceCall):
                outcome["provider_call_id"] = await carrier.initiate_call(
                    call_id=command.call_id,
                    from_number=command.from_number,
                    to_number=command.to_number,
                    mode=command.mode,
                    message=command.message,
                    dtmf_sequence=command.dtmf_sequence,
                )
            elif isinstance(command, cmd.HangUp):
                await carrier.hangup_call(command.provider_call_id)
            elif isinstance(command, cmd.PlayTts) and streamed is not None:
                outcome.update(_outcome(await streamed.outcome()))
            elif isinstance(command, cmd.PlayTts):
                outcome.update(await self._play(command))
            elif isinstance(command, cmd.StartListening):
                await carrier.start_listening(command.provider_call_id, command.turn_token)
            elif isinstance(command, cmd.StopListening):
                await carrier.stop_listening(command.provider_call_id)
            elif isinstance(command, cmd.SendDtmf):
                await carrier.send_dtmf(command.provider_call_id, command.digits)
            elif isinstance(command, cmd.DequeueCall):
                await carrier.dequeue_call(command.provider_call_id, command.call_id)
            else:
                status = await carrier.get_call_status(command.provider_call_id)
                outcome["terminal"] = status.terminal
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome["error"] = str(exc) or type(exc).__name__
            outcome["gone"] = isinstance(command, cmd.HangUp) and _is_gone(exc)
        op_id: str = command.op_id
        await self._step(
            command.call_id,
            lambda now: self._manager.carrier_result(op_id, now_ms=now, **outcome),
        )

    async def _play(self, command: cmd.PlayTts) -> dict[str, Any]:
        """Say ``command.text``: by the realtime model, on the media stream, or by the carrier."""
        speaker = self._realtime_speaker
        if speaker is not None and await speaker(command.call_id, command.text):
            return {}  # the realtime bridge had its model say it (and waited for it to play)
        playback = self._stream_playback(command.call_id) if self._stream_playback else None
        if playback is not None:
            return await self._play_on_stream(playback, command)
        await self._carrier.play_tts(command.provider_call_id, command.text)
        return {}

    async def _play_on_stream(self, playback: Playback, command: cmd.PlayTts) -> dict[str, Any]:
        """Speak on the call's media stream; never carrier-native speech (SPEC §8.2)."""
        if self._speaker is None:
            return {"error": UNAVAILABLE}
        spoken: Spoken = await self._speaker.speak(
            playback,
            command.text,
            number=self._route_number(command.call_id),
            greeting=command.kind == "initial",
        )
        return _outcome(spoken)

    def _route_number(self, call_id: str) -> str | None:
        """Our number on the call, whose route picks the TTS chain."""
        record = self._manager.get_record(call_id)
        if record is None:
            return None
        return record.to_number if record.direction == "inbound" else record.from_number

    def _start_sentence_reply(self, call_id: str) -> SentenceReply | None:
        """A sentence-by-sentence speaker for the reply, when the call has a live stream (§8.4)."""
        if self._speaker is None or self._stream_playback is None:
            return None
        if not self._config.streaming.sentence_streaming:
            return None
        playback = self._stream_playback(call_id)
        if playback is None:
            return None
        return SentenceReply(self._speaker, playback, number=self._route_number(call_id))

    async def _auto_respond(self, command: cmd.RunAutoResponse) -> None:
        record = self._manager.get_record(command.call_id)
        spoken, error = "", None
        if record is None:
            return
        call_id = command.call_id
        cancelled = False
        stages: dict[str, int] = {}
        if command.caller_stopped_at_ms is not None:
            stages["callerStoppedAt"] = command.caller_stopped_at_ms
        if self._runner is None:
            error = "no agent runner configured"
        else:
            request = build_run_request(self._config, record, command, now_ms=self._clock_ms())
            streamed = self._start_sentence_reply(call_id)
            if streamed is not None:
                self._sentence_replies[call_id] = streamed
            request = dataclasses.replace(request, on_text_delta=self._delta_sink(stages, streamed))
            # A newer caller turn supersedes this reply: its run is cancelled, not just ignored.
            older = self._replies.pop(call_id, None)
            if older is not None and not older.done():
                older.cancel()
            # The generation alone is cancellable by barge-in; reporting its end is not.
            reply = asyncio.ensure_future(generate_reply(self._runner, request))
            self._replies[call_id] = reply
            try:
                await asyncio.wait({reply})
            finally:
                if self._replies.get(call_id) is reply:
                    del self._replies[call_id]
                if not reply.done():
                    reply.cancel()
                if streamed is not None and self._sentence_replies.get(call_id) is streamed:
                    del self._sentence_replies[call_id]
            stages.setdefault("firstTokenAt", self._clock_ms())  # a runner that never streamed
            if reply.cancelled():
                request.cancel.set()
                cancelled = True
                error = "cancelled by caller speech"
            elif isinstance(reply.exception(), TimeoutError):
                error = f"timed out after {request.timeout_ms} ms"
            elif (exc := reply.exception()) is not None:
                error = str(exc) or type(exc).__name__
            else:
                spoken = reply.result()
            if streamed is not None and reply.cancelled():
                streamed.cancel()
                if streamed.started:
                    await self._record_interrupted(command, streamed, stages)
            elif streamed is not None:
                spoken, error = self._settle_sentence_reply(call_id, streamed, spoken, error)
        apologize = self._runner is not None and not cancelled
        await self._step(
            call_id,
            lambda now: self._manager.auto_reply_ready(
                call_id,
                command.reply_id,
                spoken,
                now_ms=now,
                error=error,
                stages=stages,
                apologize=apologize,
            ),
        )
        leftover = self._finished_replies.pop(call_id, None)
        if leftover is not None:  # the manager discarded the reply as stale
            leftover.cancel()

    def _delta_sink(
        self, stages: dict[str, int], streamed: SentenceReply | None
    ) -> Callable[[str], None]:
        """The runner's text-delta hook: stamps the first token, feeds sentence streaming."""
        clock_ms = self._clock_ms

        def on_delta(delta: str) -> None:
            if delta and "firstTokenAt" not in stages:
                stages["firstTokenAt"] = clock_ms()
            if streamed is not None:
                streamed.feed(delta)

        return on_delta

    async def _record_interrupted(
        self, command: cmd.RunAutoResponse, streamed: SentenceReply, stages: dict[str, int]
    ) -> None:
        """The caller cut off a reply still being written: record what they heard of it."""
        spoken = await streamed.outcome()
        heard = spoken.text_heard(streamed.text)
        stamps = {**stages, **spoken.timings}
        await self._step(
            command.call_id,
            lambda now: self._manager.reply_interrupted(
                command.call_id,
                heard,
                started_at_ms=command.caller_said_at_ms,
                stamps=stamps,
                now_ms=now,
            ),
        )

    def _settle_sentence_reply(
        self, call_id: str, streamed: SentenceReply, spoken: str, error: str | None
    ) -> tuple[str, str | None]:
        """The reply's words once its run ended; sentences already queued stay its words."""
        if error is None:
            streamed.finish()
        if not streamed.started:
            return spoken, error  # nothing streamed: spoken the usual way, as one utterance
        if error is not None:
            # What was already said stays said (and recorded); the unwritten rest is lost.
            log.warning("call %s: automatic reply cut short: %s", call_id, error)
            streamed.cancel()
        self._finished_replies[call_id] = streamed
        return streamed.text, None

    async def wait_idle(self) -> None:
        """Wait until no carrier or agent task is outstanding (tests and orderly shutdown)."""
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _outcome(spoken: Spoken) -> dict[str, Any]:
    """A stream utterance's result as ``carrier_result`` keywords."""
    outcome: dict[str, Any] = {"timings": spoken.timings}
    if spoken.error is not None:
        outcome["error"] = spoken.error
    if spoken.heard_text is not None:
        outcome["heard_text"] = spoken.heard_text
    if spoken.apology is not None:
        outcome["apology"] = spoken.apology
    return outcome


def _require_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParamsError(f"{name} is required")
