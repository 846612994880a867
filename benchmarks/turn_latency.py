"""Per-turn latency added by voicecall's own code on a streamed (media-stream) call.

A whole in-process gateway runs against the loopback test fakes (``tests/``): a fake Twilio that
connects a media stream, the fake Deepgram (it runs a VAD over the audio and answers each
utterance with a scripted final transcript), the builtin agent runner against the fake OpenAI
Chat Completions server (the real ``openai`` SDK streaming path), and the fake ElevenLabs TTS.
A caller streams µ-law frames in real time (silence, and a short utterance per turn); a phone
reads the paced reply frames and echoes Twilio marks. After each turn the tool reads the stage
stamps the gateway wrote in the call record (``metadata.turns``, ``kind == "auto"``), and the
stamps the timed fakes took of their own work (``time.time_ns()`` when a request arrived and when
its first chunk was written), and reports percentiles per stage.

Our code's share of a turn is ``responseMs`` (final transcript → first reply frame written to the
carrier) minus the model fake's time to its first chunk and minus the TTS fake's time to its
first byte. Everything runs on one event loop in one process, so the fakes' times include any
wait for the loop while they were suspended, and our times include the fakes' CPU work done
outside their request handlers (socket I/O, HTTP parsing): on a real deployment the providers'
own latency replaces the fakes' and the client-side work stays.

Run from the repository root (only loopback sockets; stops by itself)::

    python -m benchmarks.turn_latency --turns 100 [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import faulthandler
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the test fakes live in the repository's tests/ package
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from tests.fakes.openai_chat import API_KEY as CHAT_KEY  # noqa: E402
from tests.fakes.openai_chat import FakeOpenAIChat  # noqa: E402
from tests.fakes.stt_deepgram import FakeDeepgram  # noqa: E402
from tests.fakes.tts_common import API_KEY as TTS_KEY  # noqa: E402
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts  # noqa: E402
from tests.streaming.conftest import Harness, gateway_config  # noqa: E402
from tests.streaming.media import StreamingTwilio, TwilioMediaClient  # noqa: E402
from tests.streaming.test_speaking import Phone  # noqa: E402

from voicecall.calls.record import MAX_TURNS  # noqa: E402
from voicecall.config import VoicecallConfig  # noqa: E402
from voicecall.gateway import Gateway  # noqa: E402
from voicecall.media import pcm16_to_ulaw  # noqa: E402
from voicecall.store.latency import summarize  # noqa: E402

__all__ = [
    "REQUIRED_STAGES",
    "STAGES",
    "TurnSample",
    "build_report",
    "format_table",
    "main",
    "measure",
    "stage_values",
]

FRAME_BYTES = 160  # 20 ms of µ-law 8 kHz
FRAME_S = 0.020
SILENCE_FRAME = b"\xff" * FRAME_BYTES
_SILENCE_B64 = base64.b64encode(SILENCE_FRAME).decode()
STT_KEY = "stt-key"
SPOKEN = "Sure, it is booked."  # one short sentence: one TTS request per turn
REPLY = json.dumps({"spoken": SPOKEN})  # the spoken-output contract the builtin runner expects
REPLY_FRAMES = 8  # the reply's synthesized audio: 160 ms
REPLY_AUDIO = bytes((0x20 + (i * 7) % 0x5F) for i in range(REPLY_FRAMES * FRAME_BYTES))
UTTERANCE_FRAMES = 15  # 300 ms of caller "speech" per turn
GAP_FRAMES = 3  # silence after the reply has played before the next utterance
CALLER = "I would like a table for two tonight."


def _utterance() -> bytes:
    """300 ms of a voiced-sounding signal (140 Hz and harmonics, peaks near -15 dBFS, 20 ms fades).

    Synthetic so every turn is identical: loud enough for the gateway's and the fake STT's VAD
    (energy above the noise floor) and short so a turn stays around a second.
    """
    count = UTTERANCE_FRAMES * FRAME_BYTES
    ramp = 160
    samples = bytearray()
    for i in range(count):
        t = i / 8000
        value = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in (1, 2, 3, 4, 5))  # peak ~2.3
        envelope = min(1.0, i / ramp, (count - 1 - i) / ramp)
        samples += int(2600 * value * envelope).to_bytes(2, "little", signed=True)
    return pcm16_to_ulaw(bytes(samples))


# -- stages --------------------------------------------------------------------------------------


@dataclass
class TurnSample:
    """One automatic turn: the record's stamps (epoch ms) and the fakes' stamps (epoch ns)."""

    call: int
    n: int
    stamps: dict[str, int]
    model_received_ns: int
    model_first_ns: int
    model_done_ns: int
    tts_received_ns: int
    tts_first_ns: int
    frame_arrived_ns: int  # the reply's first audio frame at the phone
    frame_heard_ns: int  # ... and when a carrier's playout buffer would start playing it

    @property
    def model_ms(self) -> float:
        """The model fake's time from request to its first content chunk."""
        return (self.model_first_ns - self.model_received_ns) / 1e6

    @property
    def tts_ms(self) -> float:
        """The TTS fake's time from request to its first audio byte."""
        return (self.tts_first_ns - self.tts_received_ns) / 1e6

    def as_json(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "n": self.n,
            "stamps": self.stamps,
            "modelReceivedNs": self.model_received_ns,
            "modelFirstChunkNs": self.model_first_ns,
            "modelDoneNs": self.model_done_ns,
            "ttsReceivedNs": self.tts_received_ns,
            "ttsFirstByteNs": self.tts_first_ns,
            "frameArrivedNs": self.frame_arrived_ns,
            "frameHeardNs": self.frame_heard_ns,
        }


def _ms(ns: int) -> int:
    """An ns stamp on the gateway's ms clock (floored, as ``time.time_ns() // 1_000_000``)."""
    return ns // 1_000_000


def _stamp_gap(start: str, end: str) -> Callable[[TurnSample], float | None]:
    def gap(sample: TurnSample) -> float | None:
        a, b = sample.stamps.get(start), sample.stamps.get(end)
        return None if a is None or b is None else b - a

    return gap


def _ours(sample: TurnSample) -> float | None:
    response = sample.stamps.get("responseMs")
    if response is None:
        return None
    return round(response - sample.model_ms - sample.tts_ms, 3)


@dataclass(frozen=True)
class Stage:
    """One table row: a name (JSON key), a label, and how a turn gives its value."""

    name: str
    label: str
    value: Callable[[TurnSample], float | None]
    optional: bool = False  # needs a stamp only newer gateways write


_CALLER_STOPPED = "callerStoppedAt"  # VAD end of caller speech (newer gateways)
_FIRST_TOKEN = "firstTokenAt"  # first model text delta (newer gateways)

# Record stamps are epoch ms (the gateway floors its wall clock); the "ours:" rows compare them
# with the fakes' ns stamps floored the same way, so those rows resolve 1 ms at best.
STAGES: tuple[Stage, ...] = (
    Stage("ourCodeMs", "OUR CODE: response - model fake - TTS fake", _ours),
    Stage(
        "responseMs", "response: transcript -> first frame", _stamp_gap("startedAt", "firstFrameAt")
    ),
    Stage("modelFakeMs", "  model fake: request -> first chunk", lambda s: round(s.model_ms, 3)),
    Stage("ttsFakeMs", "  TTS fake: request -> first byte", lambda s: round(s.tts_ms, 3)),
    Stage(
        "transcriptToModelRequestMs",
        "  ours: transcript -> model request in",
        lambda s: _ms(s.model_received_ns) - s.stamps["startedAt"],
    ),
    Stage(
        "modelChunkToTtsRequestMs",
        "  ours: model 1st chunk -> TTS request in",
        lambda s: _ms(s.tts_received_ns) - _ms(s.model_first_ns),
    ),
    Stage(
        "ttsByteToFirstAudioMs",
        "  ours: TTS 1st byte -> firstAudioAt",
        lambda s: s.stamps["firstAudioAt"] - _ms(s.tts_first_ns),
    ),
    Stage(
        "firstAudioToFirstFrameMs",
        "  pacing: firstAudioAt -> firstFrameAt",
        _stamp_gap("firstAudioAt", "firstFrameAt"),
    ),
    Stage(
        "frameQueuedBehindMs",
        "  carrier: 1st audio frame arrives -> heard",
        lambda s: round((s.frame_heard_ns - s.frame_arrived_ns) / 1e6, 3),
    ),
    Stage(
        "transcriptToHeardMs",
        "transcript -> reply heard (sim. carrier)",
        lambda s: _ms(s.frame_heard_ns) - s.stamps["startedAt"],
    ),
    Stage(
        "transcriptToFirstAudioMs",
        "transcript -> first TTS audio",
        _stamp_gap("startedAt", "firstAudioAt"),
    ),
    Stage(
        "transcriptToReplyMs", "transcript -> full reply ready", _stamp_gap("startedAt", "replyAt")
    ),
    Stage(
        "transcriptToFirstTokenMs",
        "transcript -> first model token",
        _stamp_gap("startedAt", _FIRST_TOKEN),
        optional=True,
    ),
    Stage(
        "firstTokenToFirstAudioMs",
        "first model token -> first TTS audio",
        _stamp_gap(_FIRST_TOKEN, "firstAudioAt"),
        optional=True,
    ),
    Stage(
        "callerStoppedToTranscriptMs",
        "caller stopped -> final transcript",
        _stamp_gap(_CALLER_STOPPED, "startedAt"),
        optional=True,
    ),
    Stage(
        "callerStoppedToFirstFrameMs",
        "caller stopped -> first frame",
        _stamp_gap(_CALLER_STOPPED, "firstFrameAt"),
        optional=True,
    ),
)
#: Rows every gateway produces; the others need stamps that newer gateways add.
REQUIRED_STAGES = tuple(s.name for s in STAGES if not s.optional)
#: Stamps that must be in every measured turn.
_REQUIRED_STAMPS = ("startedAt", "replyAt", "firstAudioAt", "firstFrameAt", "responseMs")


def stage_values(samples: Sequence[TurnSample]) -> dict[str, list[float | int]]:
    """Per stage, the value of every turn that has it (stages no turn has are left out)."""
    out: dict[str, list[float | int]] = {}
    for stage in STAGES:
        values = [v for v in (stage.value(s) for s in samples) if v is not None]
        if values:
            out[stage.name] = values
    return out


def build_report(
    samples: Sequence[TurnSample], meta: Mapping[str, Any], *, warmup: int = 0
) -> dict[str, Any]:
    """The JSON document: run facts, per-stage summaries (nearest rank), and raw turns.

    The first ``warmup`` turns are left out of the summaries (their stage values are listed
    under ``warmup``): the gateway's first reply pays one-time costs such as the model client's
    first connection.
    """
    warm, samples = list(samples[:warmup]), samples[warmup:]
    labels = {s.name: s.label.strip() for s in STAGES}
    stages = {
        name: {"label": labels[name], **summarize(values)}
        for name, values in stage_values(samples).items()
    }
    ours = [v for v in (_ours(s) for s in samples) if v is not None]
    tenth = max(1, len(ours) // 10)
    trend = {
        "firstTenthP50Ms": summarize(ours[:tenth])["p50Ms"] if ours else 0,
        "lastTenthP50Ms": summarize(ours[-tenth:])["p50Ms"] if ours else 0,
    }
    return {
        **meta,
        "turnsMeasured": len(samples),
        "warmup": [
            {stage.name: stage.value(sample) for stage in STAGES if stage.value(sample) is not None}
            for sample in warm
        ],
        "stages": stages,
        "ourCodeTrend": trend,
        "turns": [s.as_json() for s in [*warm, *samples]],
    }


def _cell(value: float | int) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return str(int(value))


def format_table(report: Mapping[str, Any]) -> str:
    """The stage table (times in ms), one row per stage that any turn has."""
    keys = ("count", "minMs", "p50Ms", "p90Ms", "p95Ms", "p99Ms", "maxMs")
    header = ("stage (ms)", "count", "min", "p50", "p90", "p95", "p99", "max")
    rows: list[tuple[str, ...]] = [header]
    for stage in STAGES:
        stats = report["stages"].get(stage.name)
        if stats is not None:
            rows.append((stage.label, *(_cell(stats[k]) for k in keys)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


# -- timed fakes ---------------------------------------------------------------------------------


@dataclass
class Span:
    """One request as a fake handled it (epoch ns)."""

    received_ns: int
    first_ns: int | None = None
    done_ns: int | None = None


class _SpanLog:
    """The spans of one fake; ``first()`` stamps the newest span that has no first chunk yet."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def received(self) -> Span:
        span = Span(time.time_ns())
        self.spans.append(span)
        return span

    def first(self) -> None:
        now = time.time_ns()
        for span in reversed(self.spans):
            if span.first_ns is None:
                span.first_ns = now
                return


class _StampedEvent(asyncio.Event):
    """The fakes' ``first_chunk_sent`` event: each ``set()`` right after a write is stamped."""

    def __init__(self, on_set: Callable[[], None]) -> None:
        super().__init__()
        self._on_set = on_set

    def set(self) -> None:
        self._on_set()
        super().set()


class TimedChat(FakeOpenAIChat):
    """The fake Chat Completions server answering every request at once with ``REPLY``.

    The whole reply is one content chunk, so its first chunk is the complete answer.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.log = _SpanLog()
        self.first_chunk_sent = _StampedEvent(self.log.first)
        self.chunk_chars = len(REPLY)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        span = self.log.received()
        if not self.replies:
            self.replies.append(REPLY)
        try:
            return await super()._completions(request)
        finally:
            span.done_ns = time.time_ns()


class TimedTts(FakeElevenLabsTts):
    """The fake ElevenLabs TTS streaming ``REPLY_AUDIO`` as a single chunk."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.log = _SpanLog()
        self.first_chunk_sent = _StampedEvent(self.log.first)
        self.audio = REPLY_AUDIO
        self.chunk_bytes = len(REPLY_AUDIO)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        span = self.log.received()
        try:
            return await super()._stream(request)
        finally:
            span.done_ns = time.time_ns()


# -- the caller ----------------------------------------------------------------------------------


class Caller:
    """The caller's microphone: one inbound frame every 20 ms (silence unless saying something),
    on an absolute schedule, as a carrier streams the call."""

    def __init__(self, media: TwilioMediaClient) -> None:
        self.media = media
        self._pending: deque[str] = deque()
        self._chunk = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def saying(self) -> bool:
        """Whether queued speech is still being sent."""
        return bool(self._pending)

    def say(self, audio: bytes) -> None:
        """Queue ``audio`` (whole 20 ms frames) to be sent in place of silence."""
        for offset in range(0, len(audio), FRAME_BYTES):
            frame = audio[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")
            self._pending.append(base64.b64encode(frame).decode())

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            self._chunk += 1
            payload = self._pending.popleft() if self._pending else _SILENCE_B64
            media = {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(20 * (self._chunk - 1)),
                "payload": payload,
            }
            await self.media.send(
                {"event": "media", "media": media, "streamSid": self.media.stream_sid}
            )
            due += FRAME_S
            now = loop.time()
            if due < now - 0.2:
                due = now  # a long stall: resume the clock instead of bursting
            await asyncio.sleep(max(0.0, due - now))


class TimedPhone(Phone):
    """The carrier's side (reads frames, echoes marks at once) with arrival stamps, and a model
    of the carrier's playout buffer: a frame plays at ``max(arrival, end of the previous)``."""

    def __init__(self, media: TwilioMediaClient) -> None:
        super().__init__(media)
        self.arrived_ns: list[int] = []  # per event
        self.plays_ns: list[int | None] = []  # per event: when a media frame starts playing
        self._play_end_ns = 0

    async def _read(self) -> None:
        ws = self.media.ws
        assert ws is not None
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time_ns()
            event = json.loads(msg.data)
            kind = event.get("event")
            play: int | None = None
            if kind == "media":
                play = max(now, self._play_end_ns)
                self._play_end_ns = play + 20_000_000
            elif kind == "clear":
                self._play_end_ns = now
            self.events.append(event)
            self.arrived_ns.append(now)
            self.plays_ns.append(play)
            if kind == "mark":  # echoed at once, as the existing Phone does
                mark = {"event": "mark", "streamSid": self.media.stream_sid, "mark": event["mark"]}
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.media.send(mark)

    def first_audio(self, since: int) -> tuple[int, int] | None:
        """(arrival, play start) of the first non-silent media frame at event index ``since``+."""
        for index in range(since, len(self.events)):
            event = self.events[index]
            if event.get("event") == "media" and event["media"]["payload"] != _SILENCE_B64:
                play = self.plays_ns[index]
                assert play is not None
                return self.arrived_ns[index], play
        return None


# -- the rig ---------------------------------------------------------------------------------------


@dataclass
class Rig:
    """A running gateway with its fakes."""

    harness: Harness
    chat: TimedChat
    tts: TimedTts
    problems: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_rig(home: Path, script: list[str]) -> AsyncIterator[Rig]:
    """A twilio gateway with media streams, the builtin runner and the timed fakes (loopback)."""
    async with contextlib.AsyncExitStack() as stack:
        stt = FakeDeepgram(script, api_key=STT_KEY)
        await stack.enter_async_context(stt)
        chat = await stack.enter_async_context(TimedChat())
        tts = await stack.enter_async_context(TimedTts())
        twilio = StreamingTwilio("AC" + "0" * 31 + "1", "fake-auth-token")
        await twilio.start()
        stack.push_async_callback(twilio.close)
        raw = gateway_config(twilio, stt.base_url, "deepgram")
        raw["streaming"]["providers"]["deepgram"]["apiKey"] = STT_KEY
        raw["tts"] = {
            "provider": "elevenlabs",
            "providers": {
                "elevenlabs": {"apiKey": TTS_KEY, "baseUrl": tts.base_url, "voiceId": "VOICE123"}
            },
        }
        raw["agent"] = {
            "runner": "builtin",
            "providers": {"openai": {"baseUrl": chat.base_url, "apiKey": CHAT_KEY}},
        }
        raw["responseModel"] = "openai/gpt-fake"
        raw["maxDurationSeconds"] = 3600
        gateway = Gateway(VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(home)})
        await gateway.start()
        stack.push_async_callback(gateway.stop)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        rig = Rig(Harness(gateway, twilio, stt, session), chat, tts)
        yield rig
        rig.problems += [f"stt: {p}" for p in stt.problems]
        rig.problems += [f"chat: {p}" for p in chat.problems]
        rig.problems += [f"tts: {p}" for p in tts.problems]


def _auto_turns(h: Harness, sid: str) -> list[dict[str, Any]]:
    turns = h.record(sid).metadata.get("turns")
    if not isinstance(turns, list):
        return []
    return [t for t in turns if isinstance(t, dict) and t.get("kind") == "auto"]


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise TimeoutError(f"gave up after {timeout_s:g} s waiting for {what}") from None


async def _one_call(
    rig: Rig, call: int, turns: int, turn_timeout_s: float, utterance: bytes
) -> list[TurnSample]:
    h = rig.harness
    sid, doc = await h.inbound_call()
    samples: list[TurnSample] = []
    async with h.media(doc.url) as media:
        phone = TimedPhone(media)
        phone.start()
        caller = Caller(media)
        try:
            await media.start(sid, doc.token)
            caller.start()

            def idle() -> bool:
                record = h.record(sid)
                return "initialMessage" not in record.metadata and record.state == "listening"

            await _until(idle, turn_timeout_s, "the greeting to play")
            for _ in range(turns):
                before = _auto_turns(h, sid)
                last_n = before[-1]["n"] if before else 0
                chat_spans = len(rig.chat.log.spans)
                tts_spans = len(rig.tts.log.spans)
                phone_from = len(phone.events)
                caller.say(utterance)

                def answered(last_n: int = last_n, phone_from: int = phone_from) -> bool:
                    autos = _auto_turns(h, sid)
                    return (
                        bool(autos)
                        and autos[-1]["n"] > last_n
                        and "firstFrameAt" in autos[-1]
                        and h.record(sid).state == "listening"
                        and not caller.saying
                        and phone.first_audio(phone_from) is not None
                    )

                await _until(answered, turn_timeout_s, f"turn {len(samples) + 1} of call {call}")
                turn = dict(_auto_turns(h, sid)[-1])
                heard = phone.first_audio(phone_from)
                assert heard is not None
                chats = rig.chat.log.spans[chat_spans:]
                samples.append(_sample(rig, call, turn, chats, tts_spans, heard))
                caller.say(SILENCE_FRAME * GAP_FRAMES)
        finally:
            await caller.stop()
            await phone.stop()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await media.stop()
    await h.twilio.hang_up(sid)
    await _until(lambda: h.record(sid).ended_at_ms is not None, 20, "the call to end")
    return samples


def _sample(
    rig: Rig,
    call: int,
    turn: dict[str, Any],
    chat_spans: list[Span],
    tts_from: int,
    heard: tuple[int, int],
) -> TurnSample:
    tts_spans = rig.tts.log.spans[tts_from:]
    if len(chat_spans) != 1 or len(tts_spans) != 1:
        raise RuntimeError(
            f"turn {turn.get('n')}: expected one model and one TTS request, got "
            f"{len(chat_spans)} and {len(tts_spans)}"
        )
    model, tts = chat_spans[0], tts_spans[0]
    missing = [k for k in _REQUIRED_STAMPS if not isinstance(turn.get(k), int)]
    if missing or model.first_ns is None or tts.first_ns is None:
        raise RuntimeError(f"turn {turn.get('n')}: incomplete stamps {missing or turn}")
    stamps = {k: v for k, v in turn.items() if isinstance(v, int) and k != "n"}
    return TurnSample(
        call=call,
        n=int(turn["n"]),
        stamps=stamps,
        model_received_ns=model.received_ns,
        model_first_ns=model.first_ns,
        model_done_ns=model.done_ns or model.first_ns,
        tts_received_ns=tts.received_ns,
        tts_first_ns=tts.first_ns,
        frame_arrived_ns=heard[0],
        frame_heard_ns=heard[1],
    )


async def measure(
    turns: int,
    *,
    home: Path,
    turns_per_call: int = 100,
    turn_timeout_s: float = 15.0,
    problems: list[str] | None = None,
) -> list[TurnSample]:
    """Run ``turns`` caller turns over calls of at most ``turns_per_call`` turns, in sequence."""
    if turns < 1:
        raise ValueError("turns must be >= 1")
    per_call = max(1, min(turns_per_call, MAX_TURNS))
    sizes = [per_call] * (turns // per_call) + ([turns % per_call] if turns % per_call else [])
    utterance = _utterance()
    samples: list[TurnSample] = []
    async with running_rig(home, [CALLER] * turns) as rig:
        for call, size in enumerate(sizes, start=1):
            samples += await _one_call(rig, call, size, turn_timeout_s, utterance)
    if problems is not None:
        problems += rig.problems
    return samples


# -- command line ----------------------------------------------------------------------------------


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    problems: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voicecall-turn-latency-") as home:
        async with asyncio.timeout(args.timeout):
            samples = await measure(
                args.warmup + args.turns,
                home=Path(home),
                turns_per_call=args.turns_per_call,
                problems=problems,
            )
    meta = {
        "command": "python -m benchmarks.turn_latency " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "carrier": args.carrier,
        "elapsedS": round(time.monotonic() - started, 1),
        "fakeProblems": problems,
    }
    return build_report(samples, meta, warmup=args.warmup)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.turn_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--turns", type=int, default=100, help="caller turns (default 100)")
    parser.add_argument("--carrier", choices=["twilio"], default="twilio")
    parser.add_argument(
        "--turns-per-call", type=int, default=100, help="turns per call (default 100)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="first turns left out of the table (default 1)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--timeout", type=float, help="hard limit for the whole run in s (default 60 + 3 a turn)"
    )
    args = parser.parse_args(argv)
    if args.turns < 1 or args.warmup < 0:
        parser.error("--turns must be >= 1 and --warmup >= 0")
    if args.timeout is None:
        args.timeout = 60.0 + 3.0 * (args.turns + args.warmup)
    # A watchdog outside the event loop: even a wedged loop cannot outlive the limit.
    if sys.__stderr__ is not None:
        with contextlib.suppress(ValueError, OSError):  # no usable stderr: no watchdog
            faulthandler.dump_traceback_later(args.timeout + 30, exit=True, file=sys.__stderr__)
    try:
        # The stdlib loop: the test fakes need asyncio's own Server (uvloop's is refused).
        report = asyncio.run(_run(args))
    finally:
        faulthandler.cancel_dump_traceback_later()
    print(
        f"{report['turnsMeasured']} turns, {report['machine']}, {report['loop']} loop, "
        f"{report['elapsedS']} s, {report['date']}"
    )
    print(format_table(report))
    for index, warm in enumerate(report["warmup"], start=1):
        print(
            f"warm-up turn {index} (not in the table): our code {_cell(warm['ourCodeMs'])} ms, "
            f"transcript -> model request {_cell(warm['transcriptToModelRequestMs'])} ms"
        )
    trend = report["ourCodeTrend"]
    print(
        f"our code p50, first tenth of turns: {_cell(trend['firstTenthP50Ms'])} ms; "
        f"last tenth: {_cell(trend['lastTenthP50Ms'])} ms"
    )
    for problem in report["fakeProblems"]:
        print(f"fake reported: {problem}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
