"""The realtime bridge of one call (SPEC §7.3-§7.7) with the real OpenAI session against the fake
GA server and a real pacer on a virtual clock writing to a recording carrier sink."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from tests.fakes.realtime_openai import API_KEY, MODEL, FakeOpenAIRealtime, ScriptedResponse
from tests.streaming.test_playback import Sink, VirtualClock, _protocol

from voicecall.realtime import SessionConfig
from voicecall.realtime.bridge import RealtimeBridge, RealtimeTurn, merge_transcript
from voicecall.realtime.gate import BargeInGate
from voicecall.realtime.openai import OpenAIRealtimeSession
from voicecall.realtime.pacer import RealtimePacer
from voicecall.realtime.tools import (
    AGENT_CONSULT_TOOL,
    END_CALL_TOOL,
    ConsultRequest,
    consult_pending_result,
    consult_result_injection,
)

FRAME = 160


def _audio(frames: int, seed: int = 0) -> bytes:
    return bytes((seed + i) % 251 + 1 for i in range(frames * FRAME))


class Harness:
    """One bridge wired like the realtime stream handler would wire it."""

    def __init__(
        self,
        fake: FakeOpenAIRealtime,
        *,
        direction: Literal["inbound", "outbound"] = "inbound",
        gate: BargeInGate | None = None,
        consult: Callable[[ConsultRequest], Any] | None = None,
        end_call_fails: bool = False,
        inline_wait_ms: int = 10_000,
        queue_cap_bytes: int = 960_000,
    ) -> None:
        self.fake = fake
        self.clock = VirtualClock()
        self.sink = Sink()
        proto = _protocol()
        self.pacer = RealtimePacer(
            sink=self.sink,
            build_media=proto.build_media,
            build_mark=proto.build_mark,
            build_clear=proto.build_clear,
            clock=self.clock,
            queue_cap_bytes=queue_cap_bytes,
        )
        self.emitted: list[dict[str, Any]] = []
        self.end_calls = 0
        self.end_call_fails = end_call_fails
        self.overflows = 0
        self.closed_with: list[tuple[str, str]] = []
        self.turns: list[RealtimeTurn] = []
        self._ms = 1_700_000_000_000
        config = SessionConfig(
            model=MODEL,
            voice="alloy",
            instructions="You are the live phone voice of the user's assistant.",
            tools=(END_CALL_TOOL, AGENT_CONSULT_TOOL),
        )
        self.session = OpenAIRealtimeSession(
            config,
            api_key=API_KEY,
            base_url=fake.base_url,
            on_event=lambda event: self.bridge.on_session_event(event),
        )
        self.bridge = RealtimeBridge(
            call_id="call-1",
            provider_call_id="CA1",
            direction=direction,
            session=self.session,
            pacer=self.pacer,
            emit=self._emit,
            clock_ms=self._clock_ms,
            gate=gate,
            consult=consult,
            end_call=self._end_call,
            on_overflow=self._overflow,
            on_session_closed=self._session_closed,
            on_turn=self.turns.append,
            consult_inline_wait_ms=inline_wait_ms,
        )

    def _clock_ms(self) -> int:
        self._ms += 7  # every stamp is later than the one before
        return self._ms

    async def _emit(self, events: list[dict[str, Any]]) -> None:
        self.emitted.extend(events)

    async def _end_call(self) -> None:
        self.end_calls += 1
        if self.end_call_fails:
            raise RuntimeError("the carrier refused the hangup")

    def _overflow(self) -> None:
        self.overflows += 1

    async def _session_closed(self, reason: str, message: str) -> None:
        self.closed_with.append((reason, message))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.emitted if e["type"] == kind]

    @property
    def received(self) -> int:
        """Model audio bytes the pacer accepted (sent or queued)."""
        return self.pacer.frames_sent * FRAME + self.pacer.queued_bytes

    async def until(self, condition: Callable[[], bool]) -> None:
        """Returns once `condition()` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(20):
            while not condition():
                await asyncio.sleep(0.002)

    async def play(self, seconds: float) -> None:
        """Let the virtual carrier play: advance the clock and echo every mark sent."""
        await self.clock.advance(seconds)
        for name in self.sink.marks():
            self.bridge.on_carrier_mark(name)
        await self.clock.advance(0)

    async def open(self, greeting: str | None = "Hi, this is the assistant.") -> None:
        await self.bridge.start(greeting)
        self.bridge.carrier_started()


@asynccontextmanager
async def harness(
    responses: list[ScriptedResponse] | None = None, **options: Any
) -> AsyncIterator[Harness]:
    async with FakeOpenAIRealtime(responses, **options.pop("fake", {})) as fake:
        h = Harness(fake, **options)
        try:
            yield h
        finally:
            await h.bridge.aclose()
        assert fake.problems == []


def _tool_outputs(fake: FakeOpenAIRealtime) -> list[dict[str, Any]]:
    items = [e["item"] for e in fake.connection.of_type("conversation.item.create")]
    return [json.loads(i["output"]) for i in items if i["type"] == "function_call_output"]


def _user_texts(fake: FakeOpenAIRealtime) -> list[str]:
    items = [e["item"] for e in fake.connection.of_type("conversation.item.create")]
    return [i["content"][0]["text"] for i in items if i["type"] == "message"]


async def test_the_greeting_waits_for_both_the_ready_session_and_the_carrier_start() -> None:
    async with harness([ScriptedResponse(_audio(4), "Hello")]) as h:
        await h.bridge.start("Hello")
        assert h.bridge.ready
        h.bridge.on_carrier_audio(_audio(4))  # a round trip: the fake has seen what came before
        await h.fake.wait_for(lambda: len(h.fake.audio) == 4 * FRAME)
        assert h.fake.connection.of_type("response.create") == []
        h.bridge.carrier_started()
        await h.fake.wait_for(lambda: len(h.fake.connection.of_type("response.create")) == 1)
        assert "response" not in h.fake.connection.of_type("response.create")[0]


async def test_a_carrier_start_before_the_session_is_ready_greets_once_it_is() -> None:
    async with harness([ScriptedResponse(_audio(4), "Hello")]) as h:
        h.bridge.carrier_started()
        await h.bridge.start("Hello")
        await h.fake.wait_for(lambda: len(h.fake.connection.of_type("response.create")) == 1)
        h.bridge.carrier_started()  # a repeated start asks for nothing more
        await h.until(lambda: h.received == 4 * FRAME)
        assert len(h.fake.connection.of_type("response.create")) == 1


async def test_model_audio_is_paced_to_the_carrier_as_160_byte_frames() -> None:
    audio = _audio(16) + b"\x05" * 50
    async with harness([ScriptedResponse(audio, "Hello there")]) as h:
        await h.open()
        await h.until(lambda: h.received >= len(audio) + (FRAME - 50))  # flushed on done
        await h.play(1)
        media = h.sink.media()
        assert all(len(frame) == FRAME for frame in media)
        assert b"".join(media) == audio + b"\xff" * (FRAME - 50)
        assert h.bridge.first_audio_ms == 0  # the virtual clock did not move before it
        await h.until(lambda: bool(h.of_type("call.assistant-speech")))
        [said] = h.of_type("call.assistant-speech")
        assert said["transcript"] == "Hello there"
        assert said["callId"] == "call-1" and said["providerCallId"] == "CA1"


async def test_caller_audio_reaches_the_provider() -> None:
    async with harness() as h:
        await h.open()
        frames = [_audio(1, seed) for seed in range(10)]
        for frame in frames:
            h.bridge.on_carrier_audio(frame)
        await h.fake.wait_for(lambda: len(h.fake.audio) == 10 * FRAME)
        assert h.fake.audio == b"".join(frames)


async def test_caller_partials_and_final_become_one_final_call_speech_and_a_turn() -> None:
    async with harness(
        [ScriptedResponse(_audio(2), "Hi"), ScriptedResponse(_audio(3), "Sun")]
    ) as h:
        await h.open()
        await h.until(lambda: h.received == 2 * FRAME)
        await h.fake.speech_started()
        await h.fake.user_says("what is the weather like today")
        await h.until(lambda: bool(h.of_type("call.speech")))
        await h.bridge.speak("It is sunny.")
        await h.until(lambda: bool(h.bridge.turns))  # the reply's first audio completes it
        [speech] = h.of_type("call.speech")
        assert speech["transcript"] == "what is the weather like today"
        assert speech["isFinal"] is True
        [create] = h.fake.connection.of_type("response.create")[1:]
        assert (
            create["response"]["instructions"]
            == 'Say this to the caller now, naturally: "It is sunny."'
        )
        [turn] = h.bridge.turns
        assert h.turns == [turn]
        assert turn.started_at_ms < turn.completed_at_ms
        assert turn.response_ms == turn.completed_at_ms - turn.started_at_ms


def test_transcript_merging_keeps_overlapping_text_once_and_at_most_1200_chars() -> None:
    assert merge_transcript("what is ", "the weather") == "what is the weather"
    assert merge_transcript("what is the weather", "what is the weather like") == (
        "what is the weather like"
    )
    assert merge_transcript("tell me the weather fore", "the weather forecast") == (
        "tell me the weather forecast"
    )
    assert merge_transcript("no no ", "no ") == "no no no "
    long = merge_transcript("a" * 1000, "b" * 1000)
    assert len(long) == 1200 and long.endswith("b" * 1000)


async def test_barge_in_clears_the_carrier_cancels_and_truncates_at_the_confirmed_ms() -> None:
    script = ScriptedResponse(_audio(30), "A long answer", hold=True)
    async with harness([script], fake={"chunk_bytes": 10 * FRAME}) as h:
        await h.open()
        await h.until(lambda: h.received == 10 * FRAME)  # held after the first delta
        await h.play(0)  # the 160 ms cushion and its mark go out; the mark is echoed
        assert h.pacer.confirmed_ms(next(iter(h.fake.item_audio))) == 160
        await h.fake.send_event("input_audio_buffer.speech_started", audio_start_ms=900)
        await h.fake.wait_for(lambda: bool(h.fake.connection.of_type("conversation.item.truncate")))
        assert "clear" in h.sink.events()
        assert len(h.fake.connection.of_type("response.cancel")) == 1
        [truncate] = h.fake.connection.of_type("conversation.item.truncate")
        assert truncate["item_id"] == next(iter(h.fake.item_audio))
        assert truncate["audio_end_ms"] == 160
        assert h.bridge.barge_ins == 1


async def test_barge_in_is_suppressed_while_an_outbound_greeting_plays() -> None:
    script = ScriptedResponse(_audio(20), "Hello, this is your assistant", hold=True)
    async with harness([script], direction="outbound", fake={"chunk_bytes": 10 * FRAME}) as h:
        await h.open()
        await h.until(lambda: h.received == 10 * FRAME)
        await h.play(0)
        await h.fake.send_event("input_audio_buffer.speech_started", audio_start_ms=900)
        await h.fake.user_says("hello")
        await h.until(lambda: bool(h.of_type("call.speech")))
        assert "clear" not in h.sink.events()
        assert h.fake.connection.of_type("response.cancel") == []
        assert h.bridge.suppressed
        h.fake.release.set()
        await h.until(lambda: h.received == 20 * FRAME)
        await h.until(lambda: h.fake._active is None)
        for _ in range(5):
            await h.play(0.2)
        assert len(h.sink.media()) == 20
        await h.until(lambda: not h.bridge.suppressed)  # played: barge-in is on again


async def test_the_local_gate_barges_in_on_loud_caller_audio() -> None:
    script = ScriptedResponse(_audio(20), "Hello", hold=True)
    async with harness([script], gate=BargeInGate()) as h:
        await h.open()
        await h.until(lambda: h.received > 0)
        await h.play(0)
        h.bridge.on_carrier_audio(b"\x00" * FRAME)  # µ-law full scale
        assert h.bridge.barge_ins == 0
        h.bridge.on_carrier_audio(b"\x00" * FRAME)
        assert h.bridge.barge_ins == 1
        assert "clear" in h.sink.events()
        await h.fake.wait_for(lambda: bool(h.fake.connection.of_type("response.cancel")))


async def test_end_call_discards_later_audio_drains_the_goodbye_then_ends_once() -> None:
    goodbye = _audio(10)
    responses = [ScriptedResponse(goodbye, "Goodbye!"), ScriptedResponse(tool=("end_call", "{}"))]
    async with harness(responses) as h:
        await h.open()
        await h.until(lambda: h.received == len(goodbye))
        await h.bridge.speak("Goodbye")
        await h.until(lambda: h.bridge.ending)
        late = base64.b64encode(_audio(5, 9)).decode()
        await h.fake.send_event(
            "response.output_audio.delta",
            response_id="resp_x",
            item_id="item_x",
            output_index=0,
            content_index=0,
            delta=late,
        )
        await h.until(lambda: h.bridge.discarded_bytes == 5 * FRAME)
        assert h.end_calls == 0  # the goodbye has not played yet
        for _ in range(3):
            await h.play(0.2)
        await h.until(lambda: h.bridge.ended and not h.session.ready)
        assert h.end_calls == 1
        assert b"".join(h.sink.media()) == goodbye
        assert _tool_outputs(h.fake) == []  # the call is over: no result, no further reply
        assert h.closed_with == []  # the bridge closed the session itself


async def test_a_failed_end_call_tells_the_model_and_the_call_goes_on() -> None:
    async with harness([ScriptedResponse(tool=("end_call", "{}"))], end_call_fails=True) as h:
        await h.open()
        await h.fake.wait_for(lambda: bool(_tool_outputs(h.fake)))
        assert _tool_outputs(h.fake) == [{"ok": False, "error": "the carrier refused the hangup"}]
        assert not h.bridge.ending and not h.bridge.ended
        await h.until(lambda: h.received > 0)  # the model's next reply plays


async def test_a_consult_answered_in_time_is_the_tool_result() -> None:
    asked: list[ConsultRequest] = []

    async def consult(request: ConsultRequest) -> Mapping[str, Any]:
        asked.append(request)
        return {"answer": "It is sunny in Paris.", "source": "agent"}

    tool = ("agent_consult", '{"question": "Weather in Paris?", "context": "trip"}')
    async with harness([ScriptedResponse(tool=tool)], consult=consult) as h:
        await h.open()
        await h.fake.wait_for(lambda: bool(_tool_outputs(h.fake)))
        assert _tool_outputs(h.fake) == [{"answer": "It is sunny in Paris.", "source": "agent"}]
        assert asked == [ConsultRequest("Weather in Paris?", "trip")]
        assert _user_texts(h.fake) == []


async def test_a_late_consult_answer_is_pending_then_injected() -> None:
    answer = asyncio.Event()

    async def consult(request: ConsultRequest) -> Mapping[str, Any]:
        await answer.wait()
        return {"answer": "Your order ships tomorrow.", "source": "agent"}

    tool = ("agent_consult", '{"question": "Where is my order?"}')
    async with harness([ScriptedResponse(tool=tool)], consult=consult, inline_wait_ms=0) as h:
        await h.open()
        await h.fake.wait_for(lambda: bool(_tool_outputs(h.fake)))
        assert _tool_outputs(h.fake) == [consult_pending_result()]
        await h.fake.speech_started()  # the caller talks over the "checking" turn
        answer.set()
        await h.fake.wait_for(lambda: bool(_user_texts(h.fake)))
        assert _user_texts(h.fake) == [consult_result_injection("Your order ships tomorrow.")]


async def test_an_unknown_tool_gets_the_not_implemented_error() -> None:
    async with harness([ScriptedResponse(tool=("lookup_order", '{"id": 7}'))]) as h:
        await h.open()
        await h.fake.wait_for(lambda: bool(_tool_outputs(h.fake)))
        assert _tool_outputs(h.fake) == [{"error": "tool lookup_order is not implemented"}]


async def test_a_dropped_provider_session_reports_the_end_reason_error() -> None:
    async with harness() as h:
        await h.open()
        await h.until(lambda: h.received > 0)
        h.fake.drop()
        await h.until(lambda: bool(h.closed_with))
        [(reason, message)] = h.closed_with
        assert reason == "error" and "closed unexpectedly" in message
        assert h.bridge.end_reason == "error"


async def test_an_overflowing_pacer_is_flagged_once() -> None:
    script = ScriptedResponse(_audio(30), "Too much")
    async with harness([script], queue_cap_bytes=10 * FRAME) as h:
        await h.open()
        await h.until(lambda: h.bridge.overflowed)
        await h.until(lambda: h.fake._active is None)
        assert h.overflows == 1


async def test_aclose_is_idempotent_and_closes_the_session() -> None:
    async with harness() as h:
        await h.open()
        await h.bridge.aclose()
        await h.bridge.aclose()
        assert h.bridge.closed and not h.session.ready
        assert h.closed_with == []
