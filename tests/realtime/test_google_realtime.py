"""The Gemini Live provider session against a fake BidiGenerateContent server (SPEC §7.5–7.9)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pytest
import soxr
from google.genai import types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.realtime_gemini import (
    API_KEY,
    BAD_KEY_CLOSE_CODE,
    FakeGeminiLive,
    tone_pcm16,
)

from voicecall.media import FrameDecoder, ulaw_to_pcm16
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
from voicecall.realtime.google import GeminiLiveSession, ReconnectPolicy
from voicecall.realtime.google_protocol import (
    AudioQueue,
    GeminiLiveProtocol,
    GeminiOptions,
    function_declaration,
    parse_duration_s,
)

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
INSTRUCTIONS = "You are the live phone voice of the user's assistant."
GREETING = (
    "Open the call by greeting the caller naturally, and include this greeting in your first "
    'spoken reply: "Hi, this is Sam from the clinic."'
)
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
E = TypeVar("E")
FAST = ReconnectPolicy(first_backoff_s=0.01, max_backoff_s=0.05)


def load_audioop() -> ModuleType:
    """CPython's audioop (deprecated on 3.11/3.12, audioop-lts on 3.13+): the G.711 oracle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


audioop = load_audioop()


class Events:
    """Records what the session delivers."""

    def __init__(self) -> None:
        self.items: list[RealtimeEvent] = []

    def __call__(self, event: RealtimeEvent) -> None:
        self.items.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.items if isinstance(e, kind)]

    @property
    def audio(self) -> bytes:
        return b"".join(e.audio for e in self.of(AudioOut))

    async def wait_for(self, predicate: Callable[[Events], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                await asyncio.sleep(0.005)


SessionFactory = Callable[..., GeminiLiveSession]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiLive]:
    async with FakeGeminiLive() as server:
        yield server


@pytest.fixture
async def make_session() -> AsyncIterator[SessionFactory]:
    """Builds sessions aimed at a fake; every one is closed when the test ends."""
    made: list[GeminiLiveSession] = []

    def make(
        server: FakeGeminiLive,
        events: Callable[[RealtimeEvent], None],
        *,
        instructions: str = INSTRUCTIONS,
        tools: tuple[ToolSpec, ...] = (END_CALL, CONSULT),
        api_key: str = API_KEY,
        policy: ReconnectPolicy | None = None,
        **options: Any,
    ) -> GeminiLiveSession:
        config = SessionConfig(MODEL, "Kore", instructions, tools, options)
        session = GeminiLiveSession(
            config,
            api_key=api_key,
            on_event=events,
            base_url=server.base_url,
            ssl_context=server.client_ssl,
            policy=policy,
        )
        made.append(session)
        return session

    yield make
    for session in made:
        await session.aclose()


async def started(make: SessionFactory, server: FakeGeminiLive, **kw: Any) -> tuple[Any, Events]:
    events = Events()
    session = make(server, events, **kw)
    await session.start()
    return session, events


def samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, "<i2").astype(np.float64)


def snr_db(reference: np.ndarray, signal: np.ndarray, edge: int) -> float:
    """Signal-to-difference ratio over the overlap, ``edge`` samples trimmed at both ends."""
    n = min(len(reference), len(signal))
    ref, got = reference[edge : n - edge], signal[edge : n - edge]
    noise = max(float(np.sum((got - ref) ** 2)), 1e-9)  # identical signals: a finite +inf
    return float(10 * np.log10(float(np.sum(ref**2)) / noise))


def caller_ulaw(seconds: float) -> bytes:
    """A caller tone as the carrier sends it: µ-law 8 kHz (the audioop oracle encodes it)."""
    return bytes(audioop.lin2ulaw(tone_pcm16(seconds, 8000, (300, 850)), 2))


def send_frames(session: GeminiLiveSession, ulaw: bytes) -> None:
    for offset in range(0, len(ulaw), 160):
        session.send_audio(ulaw[offset : offset + 160])


# ---- setup ------------------------------------------------------------------------------------


async def test_setup_frame_is_the_spec_setup(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """The first frame carries model, audio modality, voice, instructions, tools, resumption,
    compression, transcription and the configured VAD knobs; SessionReady follows setupComplete."""
    _, events = await started(
        make_session, fake, silenceDurationMs=700, prefixPaddingMs=40, startSensitivity="low"
    )
    conn = fake.current
    assert events.items == [SessionReady()]
    assert conn.path.endswith(
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    assert conn.headers["x-goog-api-key"] == API_KEY
    setup = conn.setup
    assert setup is not None
    assert setup["model"] == f"models/{MODEL}"
    assert setup["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
    }
    assert setup["systemInstruction"]["parts"] == [{"text": INSTRUCTIONS}]
    declarations = setup["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["end_call", "agent_consult"]
    assert "parameters" not in declarations[0]
    consult = declarations[1]["parameters"]
    assert consult["type"] == "OBJECT"
    assert consult["required"] == ["question"]
    assert set(consult["properties"]) == {"question", "context"}
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    assert setup["inputAudioTranscription"] == {}
    assert setup["outputAudioTranscription"] == {}
    assert setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {
            "silenceDurationMs": 700,
            "prefixPaddingMs": 40,
            "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
        }
    }
    assert fake.problems == []


async def test_optional_setup_parts_follow_the_options(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """Resumption and compression can be switched off; no VAD knobs means no realtimeInputConfig."""
    await started(make_session, fake, sessionResumption=False, contextWindowCompression=False)
    setup = fake.current.setup
    assert setup is not None
    assert "sessionResumption" not in setup
    assert "contextWindowCompression" not in setup
    assert "realtimeInputConfig" not in setup
    assert fake.problems == []


def test_bad_options_are_refused_naming_the_key() -> None:
    """A sensitivity that is not low/high is a RealtimeError that names the option."""
    config = SessionConfig(MODEL, "Kore", INSTRUCTIONS, options={"endSensitivity": "loud"})
    with pytest.raises(RealtimeError, match="endSensitivity"):
        GeminiLiveSession(config, api_key=API_KEY, on_event=Events())


# ---- audio ------------------------------------------------------------------------------------


async def test_caller_audio_arrives_as_pcm16_16k(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """Carrier µ-law 8 kHz reaches Gemini as PCM16 16 kHz matching a reference conversion, in
    realtimeInput messages of at least 40 ms."""
    session, _ = await started(make_session, fake)
    ulaw = caller_ulaw(1.0)
    for offset in range(0, len(ulaw), 160):
        session.send_audio(ulaw[offset : offset + 160])
        await asyncio.sleep(0)  # as frames arrive from a carrier, one by one
    await fake.wait_for(lambda: len(fake.current.audio) >= 16000 * 2 * 9 // 10)
    received = samples(bytes(fake.current.audio))
    reference = soxr.resample(samples(audioop.ulaw2lin(ulaw, 2)), 8000, 16000)
    assert len(received) <= len(reference)
    assert snr_db(reference, received, edge=160) > 40
    assert all(size >= 40 * 32 for size in fake.current.audio_messages)
    assert fake.problems == []


async def test_model_audio_comes_out_as_ulaw_8k(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """A spoken reply (PCM16 24 kHz) comes out as µ-law 8 kHz: a third as many samples, close to
    a reference conversion, all tagged with the turn's id."""
    session, events = await started(make_session, fake)
    await session.request_response("Say hello.")
    await events.wait_for(lambda e: bool(e.of(ResponseDone)))
    out = events.of(AudioOut)
    assert {e.item_id for e in out} == {"turn-1"}
    ulaw = events.audio
    assert len(ulaw) == len(fake.reply_audio) // 2 // 3
    reference = soxr.resample(samples(fake.reply_audio), 24000, 8000)
    reference_ulaw = audioop.lin2ulaw(np.round(reference).astype("<i2").tobytes(), 2)
    assert (
        snr_db(samples(audioop.ulaw2lin(reference_ulaw, 2)), samples(ulaw_to_pcm16(ulaw)), 40) > 30
    )
    assert fake.current.turns == [("Say hello.", True)]
    assert fake.problems == []


async def test_a_full_queue_drops_the_oldest_audio_with_one_warning(
    fake: FakeGeminiLive, make_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Audio that cannot get out is bounded: the oldest goes first, one warning says so, and the
    newest audio is what reaches Gemini."""
    events = Events()
    session = make_session(fake, events, policy=ReconnectPolicy(max_queued_bytes=32_000))
    ulaw = np.random.default_rng(7).integers(0, 256, 8000 * 3, dtype=np.uint8).tobytes()
    with caplog.at_level(logging.WARNING, logger="voicecall.realtime.google"):
        send_frames(session, ulaw)  # before the connection is up: all of it waits
        await session.start()
        await fake.wait_for(lambda: len(fake.current.audio) >= 30_000)
    expected = FrameDecoder(16000, "ulaw").decode_raw(ulaw)
    received = bytes(fake.current.audio)
    offset = expected.find(received)
    assert session.dropped_bytes > 0
    assert offset > 0
    assert len(expected) - (offset + len(received)) < 40 * 32
    assert sum("dropping the oldest" in m for m in caplog.messages) == 1


# ---- events -----------------------------------------------------------------------------------


async def test_transcripts_of_both_sides(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """Caller transcription pieces arrive as deltas and as one final when the model's turn
    completes; the model's transcription arrives whole at turnComplete, before ResponseDone."""
    _, events = await started(make_session, fake)
    await fake.input_transcription("What's the")
    await fake.input_transcription(" weather today?")
    await fake.model_turn()
    await events.wait_for(lambda e: bool(e.of(ResponseDone)))
    kinds = [e for e in events.items if not isinstance(e, AudioOut | SessionReady)]
    assert kinds == [
        UserTranscript("What's the", False, "user-1"),
        UserTranscript(" weather today?", False, "user-1"),
        UserTranscript("What's the weather today?", True, "user-1"),
        AssistantTranscript(fake.reply_text, "turn-1"),
        ResponseDone("turn-1"),
    ]


async def test_a_finished_transcription_is_final_at_once(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """``finished: true`` ends the caller's utterance without waiting for the model."""
    _, events = await started(make_session, fake)
    await fake.input_transcription("Bye.", finished=True)
    await events.wait_for(lambda e: bool(e.of(UserTranscript)) and e.of(UserTranscript)[-1].final)
    assert events.of(UserTranscript) == [
        UserTranscript("Bye.", False, "user-1"),
        UserTranscript("Bye.", True, "user-1"),
    ]


async def test_interrupted_is_speech_started_and_ends_the_turn_once(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """Gemini's ``interrupted`` is the barge-in signal; the cut turn ends once (the turnComplete
    after it is not a second end) and the next reply is a new turn."""
    _, events = await started(make_session, fake)
    await fake.model_turn(interrupt_after=3)
    await events.wait_for(lambda e: bool(e.of(ResponseDone)))
    await fake.model_turn()
    await events.wait_for(lambda e: len(e.of(ResponseDone)) == 2)
    spoken = [e for e in events.items if not isinstance(e, AudioOut | SessionReady)]
    assert spoken[0] == SpeechStarted()
    assert spoken[1] == AssistantTranscript("Hello, this is", "turn-1")
    assert events.of(ResponseDone) == [ResponseDone("turn-1"), ResponseDone("turn-2")]
    first_turn = [e for e in events.of(AudioOut) if e.item_id == "turn-1"]
    assert sum(len(e.audio) for e in first_turn) <= 3 * fake.chunk_bytes // 2 // 3
    assert (
        sum(len(e.audio) for e in events.of(AudioOut) if e.item_id == "turn-2")
        == len(fake.reply_audio) // 6
    )


async def test_tool_call_round_trip(fake: FakeGeminiLive, make_session: SessionFactory) -> None:
    """A function call becomes a ToolCall; its result goes back as a functionResponse."""
    session, events = await started(make_session, fake)
    call_id = await fake.tool_call("agent_consult", {"question": "Is it open on Sunday?"})
    await events.wait_for(lambda e: bool(e.of(ToolCall)))
    call = events.of(ToolCall)[0]
    assert call == ToolCall(call_id, "agent_consult", {"question": "Is it open on Sunday?"})
    await session.send_tool_result(call, {"answer": "Closed on Sundays.", "source": "agent"})
    await fake.wait_for(lambda: bool(fake.current.tool_responses))
    assert fake.current.tool_responses == [
        {
            "id": call_id,
            "name": "agent_consult",
            "response": {"answer": "Closed on Sundays.", "source": "agent"},
        }
    ]
    assert fake.problems == []


async def test_greeting_and_user_text_are_client_turns(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """The first response request without text sends the greeting directive of the
    instructions, a later one a plain prompt; user text without a reply leaves the turn open."""
    session, _ = await started(make_session, fake, instructions=f"{INSTRUCTIONS}\n\n{GREETING}")
    await session.request_response()
    await fake.wait_for(lambda: len(fake.current.turns) == 1)
    await session.send_user_text("The caller's account is 1234.", respond=False)
    await session.request_response()
    await fake.wait_for(lambda: len(fake.current.turns) == 3)
    assert fake.current.turns == [
        (GREETING, True),
        ("The caller's account is 1234.", False),
        ("Speak to the caller now.", True),
    ]
    assert fake.problems == []


# ---- reconnects -------------------------------------------------------------------------------


async def test_go_away_resumes_with_the_handle_and_audio_keeps_flowing(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """After goAway the session reconnects with the newest resumption handle, closes the old
    connection, and caller audio and replies continue on the new one without a new ready."""
    session, events = await started(make_session, fake)
    await fake.wait_for(lambda: bool(fake.handles))
    send_frames(session, caller_ulaw(0.2))
    await fake.wait_for(lambda: len(fake.current.audio) > 0)
    handle = await fake.resumption_update()
    await fake.go_away("30s")
    await fake.wait_connections(2)
    old, new = fake.connections
    await fake.wait_closed(old)
    assert new.resumed_handle == handle
    before = len(new.audio)
    send_frames(session, caller_ulaw(0.2))
    await fake.wait_for(lambda: len(new.audio) > before)
    await session.request_response("Go on.")
    await events.wait_for(lambda e: bool(e.of(ResponseDone)))
    assert events.of(SessionReady) == [SessionReady()]
    assert not events.of(SessionClosed)
    assert new.turns == [("Go on.", True)]
    assert fake.problems == []


async def test_go_away_during_a_reply_waits_for_the_turn_to_end(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """A goAway in the middle of a spoken reply lets the reply finish before reconnecting."""
    events = Events()
    connections_at_done: list[int] = []

    def probe(event: RealtimeEvent) -> None:
        events(event)
        if isinstance(event, ResponseDone):
            connections_at_done.append(len(fake.connections))

    session = make_session(fake, probe)
    await session.start()
    await fake.wait_for(lambda: bool(fake.handles))
    await fake.model_turn(inject={3: {"goAway": {"timeLeft": "30s"}}})
    await fake.wait_connections(2)
    assert connections_at_done == [1]
    assert len(events.audio) == len(fake.reply_audio) // 6
    assert fake.connections[1].resumed_handle in fake.handles
    assert not events.of(SessionClosed)
    assert fake.problems == []


async def test_an_unexpected_close_resumes_with_the_handle(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """A connection the server closes with an error is resumed when a handle is known."""
    _, events = await started(make_session, fake)
    await fake.wait_for(lambda: bool(fake.handles))
    await fake.close(1011, "Internal error encountered.")
    await fake.wait_connections(2)
    assert fake.current.resumed_handle == fake.handles[0]
    await fake.model_turn()
    await events.wait_for(lambda e: bool(e.of(ResponseDone)))
    assert not events.of(SessionClosed)


async def test_a_lost_connection_without_a_handle_ends_with_error(
    make_session: SessionFactory,
) -> None:
    """Without a resumption handle a dropped connection ends the session: one SessionClosed
    ("error"), even after aclose."""
    async with FakeGeminiLive(issue_handles=False) as fake:
        session, events = await started(make_session, fake)
        fake.drop()
        await events.wait_for(lambda e: bool(e.of(SessionClosed)))
        await session.aclose()
    closed = events.of(SessionClosed)
    assert len(closed) == 1
    assert closed[0].reason == "error"
    assert "no session resumption handle" in closed[0].message
    assert isinstance(events.items[-1], SessionClosed)


async def test_reconnecting_gives_up_after_three_attempts(make_session: SessionFactory) -> None:
    """When every resume attempt fails, the session ends with error after three of them."""
    async with FakeGeminiLive(refuse_after=1) as fake:
        _, events = await started(make_session, fake, policy=FAST)
        await fake.wait_for(lambda: bool(fake.handles))
        fake.drop()
        await events.wait_for(lambda e: bool(e.of(SessionClosed)))
    assert fake.attempts == 1 + 3
    closed = events.of(SessionClosed)
    assert [c.reason for c in closed] == ["error"]
    assert "after 3 attempts" in closed[0].message
    assert "HTTP 503" in closed[0].message


# ---- failures, secrets, close -----------------------------------------------------------------


async def test_a_bad_key_is_a_realtime_error_without_the_key(make_session: SessionFactory) -> None:
    """A wrong key fails start() with the service's reason and never shows the key."""
    wrong = "AIzaSy-wrong-key-0123456789"
    async with FakeGeminiLive() as fake:
        events = Events()
        session = make_session(fake, events, api_key=wrong)
        with pytest.raises(RealtimeError) as caught:
            await session.start()
    message = str(caught.value)
    assert wrong not in message
    assert str(BAD_KEY_CLOSE_CODE) in message
    assert "API key not valid" in message
    assert events.items == []
    await session.aclose()
    assert events.items == []  # a session that never started has nothing to close


async def test_a_refused_upgrade_is_a_realtime_error(make_session: SessionFactory) -> None:
    """An HTTP refusal at the upgrade says so (and hints at the key) without showing it."""
    async with FakeGeminiLive(http_status=403) as fake:
        session = make_session(fake, Events())
        with pytest.raises(RealtimeError, match="HTTP 403") as caught:
            await session.start()
    assert API_KEY not in str(caught.value)
    assert "API key" in str(caught.value)


async def test_no_setup_complete_times_out(make_session: SessionFactory) -> None:
    """A server that never answers the setup fails start() after the connect timeout."""
    async with FakeGeminiLive(answer_setup=False) as fake:
        session = make_session(fake, Events(), policy=ReconnectPolicy(connect_timeout_s=0.3))
        with pytest.raises(RealtimeError, match="no setupComplete"):
            await session.start()


async def test_logs_never_show_the_key(
    fake: FakeGeminiLive, make_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Even at DEBUG, the handshake header with the key is logged redacted."""
    with caplog.at_level(logging.DEBUG):
        session, _ = await started(make_session, fake)
        await session.aclose()
    client_side = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    assert all(API_KEY not in r.getMessage() for r in client_side)
    assert any("x-goog-api-key: ***" in r.getMessage() for r in client_side)


async def test_aclose_delivers_one_completed(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """aclose() closes the connection and delivers exactly one SessionClosed("completed"), last;
    audio and requests after it are dropped quietly."""
    session, events = await started(make_session, fake)
    await session.aclose()
    await session.aclose()
    await fake.wait_closed(fake.current)
    session.send_audio(b"\xff" * 160)
    await session.request_response("Anyone there?")
    assert events.of(SessionClosed) == [SessionClosed("completed")]
    assert events.items[-1] == SessionClosed("completed")
    assert fake.current.closed
    assert fake.current.turns == []


async def test_aclose_cancelled_midway_still_closes_the_connection(
    fake: FakeGeminiLive, make_session: SessionFactory
) -> None:
    """The bridge cancels the end_call tool task that began aclose() and calls aclose() itself:
    the connection is still closed, and the second aclose() waits for the first one's close."""
    session, events = await started(make_session, fake)
    first = asyncio.ensure_future(session.aclose())
    await asyncio.sleep(0)  # the close has begun
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    await session.aclose()
    await fake.wait_closed(fake.current)
    assert fake.current.closed
    assert events.of(SessionClosed) == [SessionClosed("completed")]


# ---- garbage from the server ------------------------------------------------------------------

# Server messages shaped like the real ones, each field valid or junk; plus frames that are not
# messages at all. (No goAway here: reconnecting is a behaviour of its own, tested above.)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_JUNK = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes junk (about one in eight)."""
    coins = st.tuples(st.booleans(), st.booleans(), st.booleans())
    return coins.flatmap(lambda bits: _JUNK if all(bits) else valid)


def _object(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: _maybe(v) for k, v in fields.items()})


_TEXT = st.text(max_size=12)
_PCM_B64 = st.binary(max_size=41).map(lambda b: base64.b64encode(b).decode())
_MIME = st.sampled_from(
    ["audio/pcm;rate=24000", "audio/pcm", "audio/pcm;rate=16000", "audio/pcm;rate=7", "image/png"]
)
_TRANSCRIPTION = _object(text=_TEXT, finished=st.booleans())
_PART = _object(inlineData=_object(mimeType=_MIME, data=_PCM_B64), text=_TEXT)
_CONTENT = _object(
    modelTurn=_object(parts=st.lists(_maybe(_PART), max_size=3)),
    interrupted=st.booleans(),
    turnComplete=st.booleans(),
    generationComplete=st.booleans(),
    inputTranscription=_TRANSCRIPTION,
    outputTranscription=_TRANSCRIPTION,
)
_CALL = _object(id=_TEXT, name=_TEXT, args=st.dictionaries(_TEXT, _SCALARS, max_size=3))
_MESSAGE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "serverContent": _CONTENT,
    "toolCall": _object(functionCalls=st.lists(_maybe(_CALL), max_size=2)),
    "toolCallCancellation": _object(ids=st.lists(_TEXT, max_size=2)),
    "sessionResumptionUpdate": _object(newHandle=_TEXT, resumable=st.booleans()),
    "setupComplete": st.just({}),
    "usageMetadata": _object(totalTokenCount=st.integers(0, 99)),
}
_MESSAGE = _object(**_MESSAGE_FIELDS)
_MESSAGE_OR_GO_AWAY = _object(
    **_MESSAGE_FIELDS, goAway=_object(timeLeft=st.sampled_from(["10s", "0.5s", "x"]))
)
_FRAMES = st.one_of(
    _MESSAGE.map(json.dumps),
    _MESSAGE.map(lambda m: json.dumps(m).encode()),
    st.binary(max_size=48),
    st.text(st.characters(codec="utf-8"), max_size=48),
    _JUNK.map(json.dumps),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(_FRAMES, min_size=1, max_size=8))
async def test_garbage_server_frames_never_break_the_reader(
    frames: list[str | bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the server sends, the session keeps running and still hears the next reply."""
    caplog.clear()
    async with FakeGeminiLive(issue_handles=False, reply_text="still alive") as fake:
        events = Events()
        config = SessionConfig(MODEL, "Kore", INSTRUCTIONS)
        session = GeminiLiveSession(
            config,
            api_key=API_KEY,
            on_event=events,
            base_url=fake.base_url,
            ssl_context=fake.client_ssl,
        )
        await session.start()
        try:
            for frame in frames:
                await fake.send_raw(frame)
            await fake.model_turn(audio=tone_pcm16(0.12))
            await events.wait_for(
                lambda e: any(t.text.endswith("still alive") for t in e.of(AssistantTranscript))
            )
            assert not events.of(SessionClosed)
        finally:
            await session.aclose()
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("voicecall")
    ]
    assert errors == []


# ---- sans-IO parts ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(_MESSAGE_OR_GO_AWAY, max_size=10))
def test_any_parsed_message_translates_without_raising(messages: list[dict[str, Any]]) -> None:
    """Every message the SDK can parse becomes events without an exception; turns end in order
    and finals are never empty."""
    protocol = GeminiLiveProtocol()
    events: list[RealtimeEvent] = []
    for raw in messages:
        try:
            message = types.LiveServerMessage.model_validate(raw)
        except ValueError:
            continue
        events += protocol.receive(message)
    done = [
        int(str(e.response_id).removeprefix("turn-")) for e in events if isinstance(e, ResponseDone)
    ]
    assert done == list(range(1, len(done) + 1))
    assert all(e.text for e in events if isinstance(e, UserTranscript) and e.final)
    assert all(e.audio for e in events if isinstance(e, AudioOut))


def test_audio_queue_drops_whole_chunks_oldest_first() -> None:
    """The queue keeps the newest audio within its bound and hands out whole chunks."""
    queue = AudioQueue(max_bytes=1000, batch_bytes=400)
    dropped = sum(queue.push(bytes([i]) * 300) for i in range(5))
    assert dropped == 600
    assert queue.queued_bytes == 900
    assert queue.batch_ready()
    batch = queue.take(700)
    assert batch == bytes([2]) * 300 + bytes([3]) * 300
    queue.put_back(batch)
    assert queue.take(10_000) == bytes([2]) * 300 + bytes([3]) * 300 + bytes([4]) * 300
    assert not queue.batch_ready()


def test_durations_and_options_parse() -> None:
    """goAway durations and the google options read as the SPEC names them."""
    assert parse_duration_s("10s") == 10.0
    assert parse_duration_s("0.5s") == 0.5
    assert parse_duration_s("soon") is None
    options = GeminiOptions.from_options({"startSensitivity": "HIGH", "endSensitivity": "low"})
    assert options.start_sensitivity == types.StartSensitivity.START_SENSITIVITY_HIGH
    assert options.end_sensitivity == types.EndSensitivity.END_SENSITIVITY_LOW
    assert options.session_resumption and options.context_window_compression
    with pytest.raises(ValueError, match="silenceDurationMs"):
        GeminiOptions.from_options({"silenceDurationMs": -1})


def test_a_schema_the_sdk_cannot_hold_goes_as_json_schema() -> None:
    """A custom tool whose JSON schema has keywords Schema lacks is sent as parametersJsonSchema."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"q": {"type": "string"}},
    }
    declaration = function_declaration(ToolSpec("lookup", "Look something up.", schema))
    assert declaration.parameters is None
    assert declaration.parameters_json_schema == schema


def test_odd_audio_chunks_carry_their_last_byte() -> None:
    """Model audio split mid-sample converts as if it had arrived whole."""
    pcm = tone_pcm16(0.3)
    whole, split = GeminiLiveProtocol(), GeminiLiveProtocol()

    def turn(protocol: GeminiLiveProtocol, chunks: list[bytes]) -> bytes:
        out: list[RealtimeEvent] = []
        for chunk in chunks:
            out += protocol.receive(_audio_message(chunk))
        out += protocol.receive(
            types.LiveServerMessage.model_validate({"serverContent": {"turnComplete": True}})
        )
        return b"".join(e.audio for e in out if isinstance(e, AudioOut))

    cuts = [0, 1001, 2003, 5000, len(pcm)]
    assert turn(split, [pcm[a:b] for a, b in itertools.pairwise(cuts)]) == turn(whole, [pcm])


def _audio_message(pcm: bytes) -> types.LiveServerMessage:
    part = {
        "inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()}
    }
    return types.LiveServerMessage.model_validate(
        {"serverContent": {"modelTurn": {"parts": [part]}}}
    )
