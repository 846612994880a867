"""The OpenAI Realtime provider session against a fake GA server (SPEC §7.5, §7.8).

What a user of the bridge can observe: the wire the provider receives (session config, caller
audio, tool results, barge-in frames) and the contract events the session delivers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.realtime_openai import API_KEY, MODEL, FakeOpenAIRealtime, ScriptedResponse

from voicecall.realtime import (
    AssistantTranscript,
    AudioOut,
    RealtimeError,
    RealtimeEvent,
    ResponseDone,
    SessionClosed,
    SessionConfig,
    SessionReady,
    SpeechStarted,
    ToolCall,
    ToolSpec,
    UserTranscript,
)
from voicecall.realtime.openai import BATCH_BYTES, MAX_QUEUED_BYTES, OpenAIRealtimeSession
from voicecall.realtime.openai_protocol import OpenAIRealtimeProtocol

DATA = Path(__file__).resolve().parents[1] / "data"
FRAME_BYTES = 160  # 20 ms of µ-law 8 kHz
GREETING = bytes(range(256)) * 10  # 2560 bytes of "model audio", 320 ms
END_CALL = ToolSpec("end_call", "End the phone call after you have said goodbye.")
CONSULT = ToolSpec(
    "agent_consult",
    "Hand the caller's request to the configured agent.",
    {
        "type": "object",
        "properties": {"question": {"type": "string"}, "context": {"type": "string"}},
        "required": ["question"],
    },
)


def config(**options: Any) -> SessionConfig:
    """The session config a bridge would build (defaults of SPEC §7.9)."""
    return SessionConfig(
        model=MODEL,
        voice="alloy",
        instructions="You are the live phone voice of the user's assistant.",
        tools=(END_CALL, CONSULT),
        options=options,
    )


class Events:
    """Records contract events and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.items: list[RealtimeEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: RealtimeEvent) -> None:
        self.items.append(event)
        self._changed.set()

    async def wait_for(self, condition: Callable[[Events], bool], timeout_s: float = 20) -> None:
        """Returns once `condition(self)` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type[Any]) -> list[Any]:
        """The events of one type, in order."""
        return [e for e in self.items if isinstance(e, kind)]

    @property
    def audio(self) -> bytes:
        """All model audio delivered."""
        return b"".join(e.audio for e in self.of(AudioOut))


def session_for(
    fake: FakeOpenAIRealtime, events: Events, cfg: SessionConfig | None = None, **kwargs: Any
) -> OpenAIRealtimeSession:
    """A session aimed at the fake."""
    kwargs.setdefault("api_key", API_KEY)
    return OpenAIRealtimeSession(cfg or config(), base_url=fake.base_url, on_event=events, **kwargs)


async def started(
    fake: FakeOpenAIRealtime, cfg: SessionConfig | None = None
) -> tuple[OpenAIRealtimeSession, Events]:
    """A session that completed start()."""
    events = Events()
    session = session_for(fake, events, cfg)
    await session.start()
    return session, events


async def stream(session: OpenAIRealtimeSession, data: bytes) -> None:
    """Feeds 20 ms frames as the media read loop does (yielding between frames)."""
    for offset in range(0, len(data), FRAME_BYTES):
        session.send_audio(data[offset : offset + FRAME_BYTES])
        await asyncio.sleep(0)


async def synced(fake: FakeOpenAIRealtime, session: OpenAIRealtimeSession) -> None:
    """Returns once the fake has everything the session sent so far (a marker text item)."""
    count = len(fake.connection.of_type("conversation.item.create"))
    await session.send_user_text("marker", respond=False)
    await fake.wait_for(lambda: len(fake.connection.of_type("conversation.item.create")) > count)


# ---- handshake -----------------------------------------------------------------------------


async def test_handshake_sends_the_spec_session_update_and_becomes_ready() -> None:
    """GA URL with the model, Bearer key, then SPEC §7.8's session.update; ready on updated."""
    async with FakeOpenAIRealtime() as fake:
        cfg = config(vadThreshold=0.6, prefixPaddingMs=200, silenceDurationMs=700)
        session, events = await started(fake, cfg)
        await session.aclose()
    conn = fake.connection
    assert conn.path == "/v1/realtime"
    assert conn.query == {"model": MODEL}
    assert conn.headers["Authorization"] == f"Bearer {API_KEY}"
    assert conn.events[0] == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "You are the live phone voice of the user's assistant.",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": "gpt-4o-transcribe"},
                    "turn_detection": {
                        "type": "server_vad",
                        "create_response": True,
                        "interrupt_response": True,
                        "threshold": 0.6,
                        "prefix_padding_ms": 200,
                        "silence_duration_ms": 700,
                    },
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
            },
            "tools": [
                {
                    "type": "function",
                    "name": "end_call",
                    "description": "End the phone call after you have said goodbye.",
                    "parameters": {"type": "object", "properties": {}},
                },
                {
                    "type": "function",
                    "name": "agent_consult",
                    "description": "Hand the caller's request to the configured agent.",
                    "parameters": dict(CONSULT.parameters),
                },
            ],
        },
    }
    assert events.items[0] == SessionReady()
    assert events.items[-1] == SessionClosed("completed")
    assert fake.problems == []


async def test_vad_knobs_are_left_out_unless_configured() -> None:
    """Without vadThreshold/prefixPaddingMs/silenceDurationMs the server's defaults apply."""
    async with FakeOpenAIRealtime() as fake:
        session, _ = await started(fake)
        await session.aclose()
    vad = fake.connection.events[0]["session"]["audio"]["input"]["turn_detection"]
    assert vad == {"type": "server_vad", "create_response": True, "interrupt_response": True}
    assert fake.problems == []


def test_a_vad_option_that_is_not_a_number_is_refused() -> None:
    """A broken provider option fails when the session is built, naming the option."""
    with pytest.raises(RealtimeError, match="vadThreshold"):
        OpenAIRealtimeSession(config(vadThreshold="loud"), api_key=API_KEY, on_event=lambda e: None)


async def test_a_wss_base_url_reaches_the_same_endpoint() -> None:
    """`baseUrl` may be written ws(s)://… as in SPEC §7.8; the SDK still gets http(s)."""
    async with FakeOpenAIRealtime() as fake:
        events = Events()
        ws_url = fake.base_url.replace("http://", "ws://")
        session = OpenAIRealtimeSession(config(), api_key=API_KEY, base_url=ws_url, on_event=events)
        await session.start()
        await session.aclose()
    assert fake.connection.path == "/v1/realtime"
    assert fake.problems == []


# ---- start failures ------------------------------------------------------------------------


async def test_a_bad_key_is_a_realtime_error_that_does_not_show_the_key() -> None:
    """HTTP 401 on the upgrade names the auth failure; neither key appears in the message."""
    wrong = "sk-wrong-key-abcdefghijklmnop"
    async with FakeOpenAIRealtime() as fake:
        events = Events()
        session = session_for(fake, events, api_key=wrong)
        with pytest.raises(RealtimeError) as caught:
            await session.start()
        await session.aclose()
    message = str(caught.value)
    assert message.startswith("OpenAI Realtime: ")
    assert "401" in message and "authentication" in message
    assert wrong not in message and API_KEY not in message
    assert events.items == []


async def test_an_error_before_ready_is_a_realtime_error() -> None:
    """A server `error` answering session.update fails start() with the server's message."""
    async with FakeOpenAIRealtime(reject_session="Invalid value: 'nova'") as fake:
        events = Events()
        with pytest.raises(RealtimeError, match="Invalid value: 'nova'"):
            await session_for(fake, events).start()
    assert events.items == []


async def test_no_session_updated_within_the_timeout_is_a_realtime_error() -> None:
    """A server that never confirms the session fails start() once connect_timeout passes."""
    async with FakeOpenAIRealtime() as fake:
        fake.hold_ready.clear()
        events = Events()
        session = session_for(fake, events, connect_timeout=0.3)
        with pytest.raises(RealtimeError, match=r"timed out .* session\.updated"):
            await session.start()
        fake.hold_ready.set()
    assert events.items == []


async def test_nothing_listening_is_a_realtime_error() -> None:
    """A refused TCP connection names the endpoint it tried."""
    async with FakeOpenAIRealtime() as fake:
        base_url = fake.base_url
    with pytest.raises(RealtimeError, match=r"cannot connect to ws://127\.0\.0\.1:\d+/v1/realtime"):
        await OpenAIRealtimeSession(
            config(), api_key=API_KEY, base_url=base_url, on_event=lambda e: None
        ).start()


async def test_closing_while_starting_fails_start_without_a_closed_event() -> None:
    """A pre-warmed session released before it was ready: start() raises, nothing is emitted."""
    async with FakeOpenAIRealtime() as fake:
        fake.hold_ready.clear()
        events = Events()
        session = session_for(fake, events)
        starting = asyncio.create_task(session.start())
        await fake.wait_for(lambda: bool(fake.connections and fake.connection.events))
        await session.aclose()
        with pytest.raises(RealtimeError, match="closed before it was ready"):
            await starting
        fake.hold_ready.set()
    assert events.items == []


async def test_the_key_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Even at DEBUG, where the websocket library logs every handshake header (the fake aside)."""
    wrong = "wrong-key-without-a-recognisable-shape"
    with caplog.at_level(logging.DEBUG):
        async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Hi.")]) as fake:
            session, events = await started(fake)
            await session.request_response()
            await events.wait_for(lambda e: bool(e.of(ResponseDone)))
            await session.aclose()
            with pytest.raises(RealtimeError):
                await session_for(fake, Events(), api_key=wrong).start()
    client_side = [
        r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server")
    ]
    assert "> Authorization: Bearer ***" in client_side
    assert not [m for m in client_side if API_KEY in m or wrong in m]


# ---- audio in ------------------------------------------------------------------------------


async def test_caller_audio_arrives_byte_identical_in_batches() -> None:
    """20 ms frames reach the provider whole and in order, as ≥40 ms appends (but the last)."""
    clip = (DATA / "hello.ulaw").read_bytes()
    before = clip[:1000]  # sent while the session is still connecting
    async with FakeOpenAIRealtime() as fake:
        events = Events()
        session = session_for(fake, events)
        session.send_audio(before)
        await session.start()
        await stream(session, clip)
        await session.aclose()
        session.send_audio(b"\xff" * 800)  # dropped: the session is closed
    conn = fake.connection
    assert fake.audio == before + clip
    assert all(size >= BATCH_BYTES for size in conn.appends[:-1])
    assert len(conn.appends) < len(clip) // FRAME_BYTES
    assert conn.events[0]["type"] == "session.update"
    assert fake.problems == []


async def test_a_short_remainder_is_flushed_on_close() -> None:
    """Audio below one batch is not sent on its own, but it is when the session closes."""
    async with FakeOpenAIRealtime() as fake:
        session, _ = await started(fake)
        session.send_audio(b"\x7f" * 100)
        await synced(fake, session)
        assert fake.audio == b""
        await session.aclose()
    assert fake.connection.appends == [100]
    assert fake.problems == []


async def test_a_backlog_beyond_the_cap_drops_the_oldest_audio(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past 2 MiB waiting, the oldest audio goes first, with one warning."""
    old = b"\x00" * (512 * 1024)
    recent = bytes(range(256)) * (MAX_QUEUED_BYTES // 256)
    async with FakeOpenAIRealtime() as fake:
        events = Events()
        session = session_for(fake, events)
        with caplog.at_level(logging.WARNING, "voicecall.realtime"):
            for offset in range(0, len(old), 4096):  # the socket is not open yet
                session.send_audio(old[offset : offset + 4096])
            for offset in range(0, len(recent), 4096):
                session.send_audio(recent[offset : offset + 4096])
        await session.start()
        await fake.wait_for(lambda: len(fake.audio) >= len(recent))
        await session.aclose()
    assert fake.audio == recent
    assert len([r for r in caplog.records if "dropping the oldest" in r.getMessage()]) == 1
    assert fake.problems == []


# ---- model output and transcripts -----------------------------------------------------------


async def test_the_greeting_arrives_as_audio_with_its_item_and_transcript() -> None:
    """request_response → response.create; the model's audio and transcript come back."""
    script = ScriptedResponse(GREETING, "Hello, this is Ava.")
    async with FakeOpenAIRealtime([script]) as fake:
        session, events = await started(fake)
        await session.request_response('Say this to the caller now, naturally: "Hi"')
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    assert fake.connection.of_type("response.create") == [
        {
            "type": "response.create",
            "response": {"instructions": 'Say this to the caller now, naturally: "Hi"'},
        }
    ]
    assert events.audio == GREETING
    item_ids = {e.item_id for e in events.of(AudioOut)}
    assert len(item_ids) == 1 and item_ids <= set(fake.item_audio)
    assert events.of(AssistantTranscript) == [AssistantTranscript("Hello, this is Ava.", *item_ids)]
    done = events.of(ResponseDone)
    assert len(done) == 1 and done[0].response_id is not None
    kinds = [type(e) for e in events.items]
    assert kinds.index(AssistantTranscript) < kinds.index(ResponseDone)
    assert fake.problems == []


async def test_a_plain_response_request_has_no_response_body() -> None:
    """Without instructions the request is the bare `{"type": "response.create"}`."""
    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Hi.")]) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    assert fake.connection.of_type("response.create") == [{"type": "response.create"}]


async def test_caller_transcripts_arrive_as_partials_then_the_final() -> None:
    """Transcription deltas are partials; `completed` is the final, all for the caller's item."""
    async with FakeOpenAIRealtime() as fake:
        session, events = await started(fake)
        await fake.speech_started()
        item = await fake.user_says("I need a table for two")
        await events.wait_for(lambda e: any(t.final for t in e.of(UserTranscript)))
        await session.aclose()
    transcripts = events.of(UserTranscript)
    assert [t.text for t in transcripts if not t.final] == [
        "I ",
        "need ",
        "a ",
        "table ",
        "for ",
        "two ",
    ]
    assert transcripts[-1] == UserTranscript("I need a table for two", True, item)
    assert {t.item_id for t in transcripts} == {item}
    assert events.of(SpeechStarted) == [SpeechStarted()]


async def test_the_caller_talking_over_the_model_is_a_barge_in() -> None:
    """speech_started arrives as SpeechStarted; the server's cancel as a ResponseDone."""
    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Hello there.", hold=True)]) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(AudioOut)))
        await fake.speech_started()
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    kinds = [type(e) for e in events.items]
    assert kinds.index(SpeechStarted) < kinds.index(ResponseDone)
    assert not events.of(AssistantTranscript)  # the response was cut off
    assert fake.problems == []


async def test_beta_event_names_are_accepted() -> None:
    """`response.audio.delta` and `response.audio_transcript.done` work like the GA names."""
    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Hi.")], beta_names=True) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    assert events.audio == GREETING
    assert [t.text for t in events.of(AssistantTranscript)] == ["Hi."]


# ---- tools ---------------------------------------------------------------------------------


async def test_a_tool_call_round_trip() -> None:
    """The model's call arrives parsed; the result goes back as function_call_output + create."""
    scripts = [
        ScriptedResponse(tool=("agent_consult", '{"question": "When do you open?"}')),
        ScriptedResponse(GREETING, "We open at nine."),
    ]
    async with FakeOpenAIRealtime(scripts) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        [call] = events.of(ToolCall)
        await session.send_tool_result(call, {"answer": "We open at 9 am.", "source": "agent"})
        await events.wait_for(lambda e: len(e.of(ResponseDone)) == 2)
        await session.aclose()
    assert call.name == "agent_consult"
    assert call.call_id in fake.calls
    assert call.arguments == {"question": "When do you open?"}
    conn = fake.connection
    [output] = conn.of_type("conversation.item.create")
    assert output["item"]["type"] == "function_call_output"
    assert output["item"]["call_id"] == call.call_id
    assert json.loads(output["item"]["output"]) == {"answer": "We open at 9 am.", "source": "agent"}
    assert conn.events[-2:] == [output, {"type": "response.create"}]
    assert events.audio == GREETING
    assert fake.problems == []


async def test_a_tool_result_ready_before_the_response_ends_waits_for_it() -> None:
    """response.create is held until response.done (the server rejects a second one)."""
    scripts = [
        ScriptedResponse(tool=("agent_consult", '{"question": "Hours?"}'), hold=True),
        ScriptedResponse(GREETING, "Nine to five."),
    ]
    async with FakeOpenAIRealtime(scripts) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ToolCall)))
        await session.send_tool_result(events.of(ToolCall)[0], {"answer": "9 to 5"})
        await synced(fake, session)
        assert len(fake.connection.of_type("response.create")) == 1
        fake.release.set()
        await events.wait_for(lambda e: len(e.of(ResponseDone)) == 2)
        await session.aclose()
    assert len(fake.connection.of_type("response.create")) == 2
    assert events.audio == GREETING
    assert fake.problems == []


async def test_a_held_continuation_is_dropped_when_the_caller_barges_in() -> None:
    """The caller talks before the held response.create went out: server VAD answers instead."""
    scripts = [ScriptedResponse(tool=("agent_consult", '{"question": "Hours?"}'), hold=True)]
    async with FakeOpenAIRealtime(scripts) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ToolCall)))
        await session.send_tool_result(events.of(ToolCall)[0], {"answer": "9 to 5"})
        await fake.speech_started()  # the server cancels the response (turn_detected)
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await synced(fake, session)
        await session.aclose()
    assert len(fake.connection.of_type("response.create")) == 1  # only the first request
    assert fake.connection.of_type("conversation.item.create")[0]["item"]["type"] == (
        "function_call_output"
    )
    assert fake.problems == []


async def test_tool_arguments_that_are_not_json_become_empty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Malformed arguments: the call still arrives, with {} and a warning."""
    scripts = [ScriptedResponse(tool=("end_call", '{"reason": "bye"'))]
    async with FakeOpenAIRealtime(scripts) as fake:
        session, events = await started(fake)
        with caplog.at_level(logging.WARNING, "voicecall.realtime"):
            await session.request_response()
            await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    [call] = events.of(ToolCall)
    assert call.name == "end_call" and call.arguments == {}
    assert any("not a JSON object" in r.getMessage() for r in caplog.records)


# ---- barge-in frames -----------------------------------------------------------------------


async def test_cancel_and_truncate_send_their_frames() -> None:
    """Barge-in: response.cancel while a response runs, then the truncate of SPEC §7.5."""
    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Hello there.", hold=True)]) as fake:
        session, events = await started(fake)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(AudioOut)))
        item = events.of(AudioOut)[0].item_id
        assert item is not None
        await session.cancel_response()
        await session.truncate(item, 60)
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.cancel_response()  # nothing is active any more: no frame
        await synced(fake, session)
        await session.aclose()
    conn = fake.connection
    assert conn.of_type("response.cancel") == [{"type": "response.cancel"}]
    assert conn.of_type("conversation.item.truncate") == [
        {
            "type": "conversation.item.truncate",
            "item_id": item,
            "content_index": 0,
            "audio_end_ms": 60,
        }
    ]
    assert fake.problems == []


async def test_cancel_with_no_response_sends_nothing() -> None:
    """cancel_response is a no-op when the model is not speaking."""
    async with FakeOpenAIRealtime() as fake:
        session, _ = await started(fake)
        await session.cancel_response()
        await synced(fake, session)
        await session.aclose()
    assert fake.connection.of_type("response.cancel") == []


async def test_user_text_adds_a_message_and_asks_for_a_reply() -> None:
    """send_user_text → a user input_text item, then response.create."""
    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Sure.")]) as fake:
        session, events = await started(fake)
        await session.send_user_text("Internal consult result is ready.")
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    conn = fake.connection
    assert conn.events[1:3] == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Internal consult result is ready."}],
            },
        },
        {"type": "response.create"},
    ]
    assert fake.problems == []


# ---- the end of the session ----------------------------------------------------------------


async def test_aclose_delivers_one_completed() -> None:
    """aclose (twice, concurrently and again) ends with exactly one SessionClosed('completed')."""
    async with FakeOpenAIRealtime() as fake:
        session, events = await started(fake)
        await asyncio.gather(session.aclose(), session.aclose())
        await session.aclose()
        await session.request_response()  # after close: ignored
        await session.cancel_response()
    assert events.of(SessionClosed) == [SessionClosed("completed")]
    assert events.items[-1] == SessionClosed("completed")
    assert fake.connection.of_type("response.create") == []


async def test_a_dropped_connection_is_an_error_close() -> None:
    """An abrupt loss of the socket delivers SessionClosed('error') once; aclose adds nothing."""
    async with FakeOpenAIRealtime() as fake:
        session, events = await started(fake)
        fake.drop()
        await events.wait_for(lambda e: bool(e.of(SessionClosed)))
        session.send_audio(b"\xff" * 800)  # dropped quietly
        await session.request_response()  # the closure is already reported: no raise
        await session.aclose()
    [closed] = events.of(SessionClosed)
    assert closed.reason == "error"
    assert closed.message.startswith("OpenAI Realtime: the connection closed unexpectedly")
    assert API_KEY not in closed.message


async def test_a_server_close_names_the_last_server_error() -> None:
    """A close after a server error carries that error in the SessionClosed message."""
    async with FakeOpenAIRealtime() as fake:
        session, events = await started(fake)
        await fake.send_event(
            "error",
            error={"type": "server_error", "code": "session_expired", "message": "Session expired"},
        )
        await fake.connection.ws.close(1011, "bye")
        await events.wait_for(lambda e: bool(e.of(SessionClosed)))
        await session.aclose()
    [closed] = events.of(SessionClosed)
    assert closed.reason == "error"
    assert "code 1011: bye" in closed.message and "Session expired" in closed.message


# ---- untrusted server frames ---------------------------------------------------------------

GARBAGE: list[str | bytes] = [
    b"\x00\x01binary",
    "not json at all",
    "[1, 2, 3]",
    '{"no": "type"}',
    '{"type": 42}',
    '{"type": "response.output_audio.delta", "delta": "***not base64***", "item_id": "x"}',
    '{"type": "response.output_audio.delta", "delta": 7}',
    '{"type": "response.output_audio_transcript.done"}',
    '{"type": "response.function_call_arguments.done", "call_id": null, "name": "x"}',
    '{"type": "response.done", "response": "nope"}',
    '{"type": "error", "error": null}',
    '{"type": "conversation.item.input_audio_transcription.completed", "transcript": {}}',
    '{"type": "some.future.event", "payload": {"deep": [1, 2]}}',
    "{" * 5000,
]


async def test_garbage_frames_do_not_end_the_session() -> None:
    """Broken frames are skipped; the session keeps working and is not closed."""
    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Still here.")]) as fake:
        session, events = await started(fake)
        for frame in GARBAGE:
            await fake.send_raw(frame)
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    assert events.audio == GREETING
    assert events.of(SessionClosed) == [SessionClosed("completed")]
    assert not events.of(ToolCall)


async def test_a_failing_event_handler_does_not_stop_the_session() -> None:
    """An exception in the bridge's callback is logged; later events still arrive."""
    events = Events()

    def handler(event: RealtimeEvent) -> None:
        events(event)
        if isinstance(event, AudioOut):
            raise RuntimeError("bridge bug")

    async with FakeOpenAIRealtime([ScriptedResponse(GREETING, "Hi.")]) as fake:
        session = OpenAIRealtimeSession(
            config(), api_key=API_KEY, base_url=fake.base_url, on_event=handler
        )
        await session.start()
        await session.request_response()
        await events.wait_for(lambda e: bool(e.of(ResponseDone)))
        await session.aclose()
    assert events.audio == GREETING
    assert events.items[-1] == SessionClosed("completed")


_KNOWN_TYPES = [
    "session.created",
    "session.updated",
    "error",
    "response.created",
    "response.done",
    "response.output_audio.delta",
    "response.audio.delta",
    "response.output_audio_transcript.done",
    "response.audio_transcript.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "input_audio_buffer.speech_started",
    "response.function_call_arguments.done",
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    ["delta", "transcript", "item_id", "call_id", "name", "arguments", "response", "error"]
)
_EVENT = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(_KNOWN_TYPES),
    st.dictionaries(_FIELDS, _JSON | st.text(alphabet="QUJD+/=", max_size=12), max_size=6),
)
_FRAMES = (
    st.binary(max_size=64)
    | st.text(max_size=64)
    | _JSON.map(json.dumps)
    | _EVENT.map(json.dumps)
    | _EVENT.map(lambda e: json.dumps(e).encode())
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAMES, max_size=12))
def test_no_server_frame_makes_the_reader_raise(frames: list[str | bytes]) -> None:
    """Whatever the server sends, the protocol's feed returns (the reader never dies)."""
    protocol = OpenAIRealtimeProtocol(config())
    for frame in frames:
        feed = protocol.feed(frame)
        for event in feed.events:
            if isinstance(event, ToolCall):
                assert isinstance(event.arguments, dict)
            if isinstance(event, AudioOut):
                assert isinstance(event.audio, bytes) and event.audio
        assert all(isinstance(message, str) for message in feed.send)
