"""Many concurrent media-stream calls held by one gateway process, and what each call costs.

``python -m benchmarks.load_calls --calls 50,100,200 --seconds 20`` (from the repository root).

For each N a fresh ``voicecall serve`` child (uvloop, its own config on free loopback ports)
takes N inbound Twilio calls from this process, which runs the fakes and the load: the fake
Twilio of ``tests/streaming/media.py`` dials in and executes ``<Connect><Stream>``; N media
clients each send 20 ms µ-law ``media`` frames in real time (one shared timer loop, staggered in
4 slots of 5 ms) and echo every ``mark`` at once; the gateway streams the audio to a fake
Deepgram and, per call, plays the greeting then one ``voicecall.speak`` after another (each a
fake ElevenLabs stream of ``--utterance-s`` seconds, paced out as frames + marks), so inbound
transcription and outbound paced playback run at the same time on every call.

During a window of ``--seconds`` (after every call is up and ``--warmup`` s) it reads the child's
CPU time (``/proc/<pid>/stat`` utime+stime) and RSS (``/proc/<pid>/status``), the inter-arrival
times of the outbound media frames at the clients (their deviation from 20 ms is the loop lag
the caller would hear), ``/metrics`` (malformed frames, jitter-buffer losses, open streams) and
the audio that reached the fake STT.

Baseline, same run, same load generator: a naive asyncio implementation of the per-call media
work in its own process (uvloop too, so the loop is not what differs): an aiohttp websocket
server that per message runs ``json.loads`` + ``base64.b64decode`` + a numpy µ-law table decode +
a ``soxr`` HQ resample to 16 kHz and sends each 20 ms of PCM to an STT websocket, and plays
outbound audio with one task per call doing ``await asyncio.sleep`` + ``base64`` +
``json.dumps`` per frame. It does no call control, webhooks, persistence, RPC, TTS fetching,
jitter buffer, VAD, marks or metrics; voicecall does all of those in the measured CPU time.

Bounded: every address is 127.0.0.1, each phase has a deadline, the whole run has a hard
``--timeout`` (a watchdog ends the process if the loop itself is stuck), children are killed on
the way out. ``--json PATH`` writes the report. Diagnostics: ``--profile DIR`` runs the gateway
under cProfile (one .prof per N), or with ``--py-spy PATH`` samples it with py-spy over the
window, and prints where its time goes; ``--what-if NAME`` patches the gateway child with a
suggested fix (``WHAT_IFS``; src/ is untouched) to measure it under the same load; ``--loop
asyncio`` runs both children on asyncio's loop; ``--keep DIR`` keeps each run's logs and
``calls.jsonl``; ``--nice -10`` keeps other work on a shared machine from starving the run.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import faulthandler
import json
import os
import random
import re
import shlex
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
import orjson
from aiohttp import web
from tests.fakes.stt_common import API_KEY as STT_KEY
from tests.fakes.stt_common import Connection, FakeSttServer
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.tts_common import API_KEY as TTS_KEY
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts
from tests.streaming.media import StreamingTwilio
from websockets.asyncio.server import ServerConnection

__all__ = ["LoadSettings", "Report", "main", "run"]

T = TypeVar("T")

HOST = "127.0.0.1"
FRAME_S = 0.020
FRAME_BYTES = 160
LEAD_FRAMES = 2  # the gateway's playback sends this many frames ahead when an item starts
SLOTS = 4  # inbound sends are staggered over 4 slots of 5 ms (carriers do not send in lockstep)
ACCOUNT = "AC" + "0" * 31 + "1"
TWILIO_TOKEN = "fake-auth-token"
FROM = "+15550001000"
CALLER = "+15550002222"
GREETING = "Hello, thanks for calling. How can I help you today?"
LINE = "Let me read that back to you, one moment please."
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STARTUP_S = 30.0
RPC_TIMEOUT = aiohttp.ClientTimeout(total=60)
SETUP_PARALLEL = 4  # webhook listener allows 8 in-flight requests per peer address
_ENV_DROP = ("VOICECALL_CONFIG", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True)
class LoadSettings:
    """One run: how many calls, for how long, and what each call does."""

    calls: tuple[int, ...] = (50, 100, 200)
    seconds: float = 20.0
    warmup_s: float = 3.0
    utterance_s: float = 3.0
    baseline: bool = True
    profile_dir: Path | None = None
    loop: str = "uvloop"  # the children's event loop: "uvloop" (as `voicecall serve`) or "asyncio"
    py_spy: str | None = None  # a py-spy binary: sample the gateway during the window
    home: Path | None = None  # keep configs, logs and calls.jsonl here (default: a temp dir)
    what_ifs: tuple[str, ...] = ()  # diagnostic patches of the gateway (keys of WHAT_IFS)


# -- audio ------------------------------------------------------------------------------------


def quiet_noise_frames(count: int = 50, seed: int = 7) -> list[str]:
    """Base64 µ-law frames of comfort noise around -66 dBFS (below every VAD's speech floor)."""
    rng = random.Random(seed)
    codes = bytes([0xFF, 0x7F, 0xFE, 0x7E, 0xFD, 0x7D])
    return [
        base64.b64encode(bytes(rng.choice(codes) for _ in range(FRAME_BYTES))).decode()
        for _ in range(count)
    ]


def utterance_audio(seconds: float) -> bytes:
    """A non-silent µ-law clip of ``seconds`` (what the fake TTS returns for every text)."""
    size = round(seconds / FRAME_S) * FRAME_BYTES
    return bytes((i * 37) % 256 for i in range(size))


# -- process readings -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle/iowait since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def free_port() -> int:
    """A currently free loopback port."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def percentiles_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50/p99/max of |samples| (seconds) in ms; zeros when there are none."""
    if not len(samples):
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    values = np.abs(np.asarray(samples, dtype=np.float64)) * 1000
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50": round(float(p50), 2),
        "p99": round(float(p99), 2),
        "max": round(float(values.max()), 2),
    }


# -- the load generator's side --------------------------------------------------------------


class Recorder:
    """Samples taken only while the measurement window is open."""

    def __init__(self) -> None:
        self.on = False
        self.jitter = array.array("d")  # outbound inter-arrival minus 20 ms, seconds
        self.lag = array.array("d")  # lateness of this process's own 10 ms probe timer, seconds
        self.speak_to_audio = array.array("d")  # speak RPC sent -> its first frame heard
        self.silence_gap = array.array("d")  # an item's final mark -> the next item's first frame


class MediaClient:
    """One carrier media socket: sends Twilio ``media`` frames, times and acknowledges output."""

    def __init__(self, index: int, recorder: Recorder, payloads: list[str]) -> None:
        self.index = index
        self.stream_sid = f"MZ{index:032x}"
        self.recorder = recorder
        self.payloads = payloads
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.call_sid = ""
        self.call_id = ""
        self.sent = 0  # media frames sent
        self.received = 0  # outbound media frames received
        self.marks = 0  # marks echoed
        self.clears = 0
        self.sent_in_window = 0
        self.received_in_window = 0
        self.last_frame_at = 0.0
        self.close_code: int | None = None
        self.failed: str | None = None
        self._prev = 0.0
        self._unsampled = LEAD_FRAMES + 1
        self.speak_sent_at = 0.0  # set by the speaker when it sends voicecall.speak
        self._final_mark_at = 0.0
        self._prefix = '{"event":"media","sequenceNumber":"'
        self._suffix = '"},"streamSid":"' + self.stream_sid + '"}'
        self._first_frame = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, session: aiohttp.ClientSession, url: str) -> None:
        self.ws = await session.ws_connect(url, autoclose=False, max_msg_size=0)

    async def start(self, call_sid: str | None, token: str | None) -> None:
        """``connected`` + ``start`` (Twilio's shapes), then read the gateway's frames."""
        assert self.ws is not None
        await self.ws.send_str('{"event":"connected","protocol":"Call","version":"1.0.0"}')
        start: dict[str, Any] = {
            "accountSid": ACCOUNT,
            "streamSid": self.stream_sid,
            "tracks": ["inbound"],
            "customParameters": {"token": token} if token else {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        if call_sid:
            start["callSid"] = call_sid
        message = {"event": "start", "sequenceNumber": "1", "start": start}
        await self.ws.send_str(json.dumps({**message, "streamSid": self.stream_sid}))
        self._reader = asyncio.ensure_future(self._read())

    @property
    def up(self) -> bool:
        return self.ws is not None and not self.ws.closed and self.failed is None

    async def first_frame(self) -> None:
        await self._first_frame.wait()

    async def send_media(self) -> None:
        """The next 20 ms frame (sequence numbers start after ``start``'s 1)."""
        ws = self.ws
        if ws is None or ws.closed or self.failed:
            return
        n = self.sent + 1
        text = (
            f'{self._prefix}{n + 1}","media":{{"track":"inbound","chunk":"{n}",'
            f'"timestamp":"{(n - 1) * 20}","payload":"{self.payloads[n % len(self.payloads)]}'
            + self._suffix
        )
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            self.failed = f"send: {exc!r}"
            return
        self.sent = n
        if self.recorder.on:
            self.sent_in_window += 1

    async def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
        recorder = self.recorder
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    self.close_code = msg.data
                self.close_code = self.close_code or ws.close_code
                return
            data: str = msg.data
            if "media" in data[:20]:  # '{"event":"media"' (or '{"event": "media"')
                now = clock()
                self.received += 1
                self.last_frame_at = now
                if self._unsampled:
                    self._unsampled -= 1
                    if self._unsampled == LEAD_FRAMES:  # an item's first frame
                        self._first_frame.set()
                        self._item_started(now)
                elif recorder.on:
                    recorder.jitter.append(now - self._prev - FRAME_S)
                    self.received_in_window += 1
                self._prev = now
                continue
            event = orjson.loads(data)
            kind = event.get("event")
            if kind == "mark":  # played at once: echo it as the carrier does
                name = event["mark"]["name"]
                echo = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
                with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                    await ws.send_str(json.dumps(echo))
                self.marks += 1
                if "#" not in name:  # an item's final mark: the next frame starts a new item
                    self._unsampled = LEAD_FRAMES + 1
                    self._final_mark_at = clock()
            elif kind == "clear":
                self.clears += 1
                self._unsampled = LEAD_FRAMES + 1

    def _item_started(self, now: float) -> None:
        recorder = self.recorder
        if self.speak_sent_at and recorder.on:
            recorder.speak_to_audio.append(now - self.speak_sent_at)
        if self._final_mark_at and recorder.on:
            recorder.silence_gap.append(now - self._final_mark_at)
        self.speak_sent_at = self._final_mark_at = 0.0

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.ws.close()


async def pace_inbound(clients: list[MediaClient], stop: asyncio.Event) -> int:
    """One timer loop for every client: each sends one frame per 20 ms; returns re-anchors."""
    loop = asyncio.get_running_loop()
    slot_s = FRAME_S / SLOTS
    due = loop.time()
    slot = 0
    reanchors = 0
    while not stop.is_set():
        for client in clients[slot::SLOTS]:
            await client.send_media()
        slot = (slot + 1) % SLOTS
        due += slot_s
        delay = due - loop.time()
        if delay < -0.2:  # this process stalled: resume on a fresh schedule, do not burst
            due = loop.time()
            reanchors += 1
            delay = 0.0
        await asyncio.sleep(max(0.0, delay))
    return reanchors


async def probe_lag(recorder: Recorder, stop: asyncio.Event) -> None:
    """This process's own loop lag: lateness of a 10 ms timer (to judge the jitter numbers)."""
    while not stop.is_set():
        due = time.perf_counter() + 0.01
        await asyncio.sleep(0.01)
        if recorder.on:
            recorder.lag.append(time.perf_counter() - due)


class CountingDeepgram(FakeDeepgram):
    """The Deepgram fake, counting the audio it gets instead of keeping all of it."""

    def __init__(self) -> None:
        super().__init__([], api_key=STT_KEY)
        self.audio_bytes = 0

    def took_audio(self, ws: ServerConnection, conn: Connection, audio: bytes) -> None:
        self.audio_bytes += len(audio)


class LoopTts(FakeElevenLabsTts):
    """The ElevenLabs fake, startable on uvloop (its base asserts asyncio's own Server type)."""

    async def __aenter__(self) -> LoopTts:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        sockets: Sequence[socket.socket] = getattr(site._server, "sockets", None) or []
        self.base_url = f"http://{HOST}:{sockets[0].getsockname()[1]}"
        return self


class CountingSink(FakeSttServer):
    """The baseline's STT: any websocket on /v1/listen; counts the audio, answers nothing."""

    path = "/v1/listen"

    def __init__(self) -> None:
        super().__init__([])
        self.audio_bytes = 0

    def authorized(self, headers: Any) -> bool:
        return True

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        async for message in ws:
            if isinstance(message, bytes):
                self.audio_bytes += len(message)


# -- children ---------------------------------------------------------------------------------


class Child:
    """A child process this run started; always ended on the way out."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        process = self.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return process.returncode


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the load generator dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def spawn(argv: list[str], log_path: Path, env: dict[str, str]) -> Child:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,
        )
    return Child(process, log_path)


#: Diagnostic what-ifs, applied inside the gateway child at start (src/ is untouched): each
#: tests one suggested change against the same load, so its effect is measured, not guessed.
WHAT_IFS = {
    # uvloop's timers have millisecond granularity and loop.time() is the cached millisecond
    # clock, so Playback's timer can fire up to ~1 ms before its deadline, find nothing due and
    # re-arm itself at once (a busy spin until the millisecond turns). Seeing the clock 2 ms
    # ahead is the same as sending what is due within 2 ms of now.
    "timer-slack": (
        "from voicecall.streaming import playback\n"
        "playback.LoopClock.time = lambda self: self._loop.time() + 0.002\n"
    ),
    # Write each call-record line from the loop (one O_APPEND write) instead of a worker-thread
    # hop per line under a global lock (each hop waits for the GIL while the loop is busy).
    "inline-store": (
        "import orjson\n"
        "from voicecall.store import callstore\n"
        "async def _append(self, record):\n"
        "    self._write_line(orjson.dumps(callstore.fit_record(record)) + b'\\n')\n"
        "callstore.CallStore.append = _append\n"
    ),
}


def serve_argv(settings: LoadSettings, run_home: Path, n: int) -> list[str]:
    """``python -m voicecall.cli serve``; via a launcher for the asyncio loop or what-ifs."""
    if settings.loop == "uvloop" and not settings.what_ifs:
        target = ["-m", "voicecall.cli", "serve"]
    else:
        lines = ["import sys"]
        if settings.loop == "asyncio":  # `serve` falls back to asyncio.run without uvloop
            lines.append("sys.modules['uvloop'] = None")
        lines += [WHAT_IFS[name] for name in settings.what_ifs]
        lines += ["from voicecall.cli import main", "sys.exit(main(['serve']))"]
        launcher = run_home / "serve_launcher.py"
        launcher.write_text("\n".join(lines) + "\n")
        target = [str(launcher)]
    if settings.profile_dir is None or settings.py_spy is not None:
        return [sys.executable, *target]
    prof = settings.profile_dir / f"gateway-{settings.loop}-{n}.prof"
    return [sys.executable, "-m", "cProfile", "-o", str(prof), *target]


def client_session() -> aiohttp.ClientSession:
    """No connection cap (N websockets + N pending speak RPCs) and no whole-session timeout."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )


async def wait_healthy(session: aiohttp.ClientSession, url: str, child: Child) -> None:
    async with asyncio.timeout(STARTUP_S):
        while True:
            if child.process.returncode is not None:
                raise RuntimeError(f"{url}: child exited\n{child.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)


# -- one measured phase -----------------------------------------------------------------------


@dataclass
class Row:
    """What one implementation cost at N calls."""

    impl: str
    calls: int
    window_s: float = 0.0
    cpu_pct: float = 0.0  # of one core
    cpu_us_per_call_s: float = 0.0
    rss_idle_mib: float = 0.0
    rss_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_per_call_kib: float = 0.0
    jitter_ms: dict[str, float] = field(default_factory=dict)  # |inter-arrival - 20 ms|
    jitter_samples: int = 0
    late_frames_pct: float = 0.0  # inter-arrival more than 10 ms off
    out_fps_per_call: float = 0.0
    in_fps_per_call: float = 0.0
    calls_up: int = 0
    all_up: bool = False
    close_codes: list[int] = field(default_factory=list)
    inbound_sent: int = 0
    inbound_to_stt: int = 0
    malformed_frames: int = 0
    jitter_lost: int = 0
    jitter_late: int = 0
    jitter_concealed: int = 0
    streams_open: int = 0
    speaks_ok: int = 0
    speaks_failed: int = 0
    clears: int = 0
    marks_echoed: int = 0
    setup_s: float = 0.0
    generator_cpu_pct: float = 0.0
    generator_lag_ms: dict[str, float] = field(default_factory=dict)
    generator_reanchors: int = 0
    others_cpu_pct: float = 0.0  # every other process on the machine, % of one core
    calls_silent: int = 0  # up, but no outbound frame in the window's last second
    speak_to_audio_ms: dict[str, float] = field(default_factory=dict)  # RPC -> first frame
    silence_gap_ms: dict[str, float] = field(default_factory=dict)  # between two utterances
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    command: str
    settings: dict[str, Any]
    cpus: int
    rows: list[Row]

    def ratios(self) -> list[dict[str, Any]]:
        """Baseline CPU per call-second / voicecall's, per N (> 1: voicecall is cheaper)."""
        out = []
        for row in self.rows:
            if row.impl != "voicecall":
                continue
            base = next(
                (r for r in self.rows if r.impl == "baseline" and r.calls == row.calls), None
            )
            if base is None or not row.cpu_us_per_call_s:
                continue
            out.append(
                {
                    "calls": row.calls,
                    "cpu_ratio": round(base.cpu_us_per_call_s / row.cpu_us_per_call_s, 2),
                    "rss_per_call_ratio": round(base.rss_per_call_kib / row.rss_per_call_kib, 2)
                    if row.rss_per_call_kib > 0
                    else None,
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "settings": self.settings,
            "cpus": self.cpus,
            "rows": [asdict(r) for r in self.rows],
            "ratios": self.ratios(),
        }


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")


def metric_sums(text: str) -> dict[str, float]:
    """Prometheus text summed per ``name`` and per ``name{label=value}`` of each label."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(3) or "", float(match.group(4))
        sums[name] = sums.get(name, 0.0) + value
        for pair in re.findall(r'(\w+)="([^"]*)"', labels):
            key = f"{name}{{{pair[0]}={pair[1]}}}"
            sums[key] = sums.get(key, 0.0) + value
    return sums


async def ramp(
    count: int, parallel: int, make: Callable[[int], Awaitable[MediaClient]]
) -> list[MediaClient]:
    """``count`` clients, at most ``parallel`` being set up at once."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> MediaClient:
        async with gate:
            return await make(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def start_py_spy(settings: LoadSettings, pid: int, row: Row) -> Child | None:
    """``py-spy record`` of the gateway over the window (raw collapsed stacks), if asked."""
    if settings.py_spy is None or settings.profile_dir is None:
        return None
    out = settings.profile_dir / f"gateway-{settings.loop}-{row.calls}.pyspy.txt"
    argv = [settings.py_spy, "record", "-p", str(pid), "-d", str(int(settings.seconds))]
    argv += ["-r", "200", "-f", "raw", "--nonblocking", "-o", str(out)]
    return await spawn(argv, settings.profile_dir / "py-spy.log", dict(os.environ))


def summarize_py_spy(path: Path, top: int = 30) -> str:
    """Own and inclusive share of samples per function, from py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = [f"{f.rpartition(':')[0]})" if ":" in f else f for f in stack.split(";")]
        own[names[-1]] = own.get(names[-1], 0) + count
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + count
    if not total:
        return f"{path.name}: no samples"
    lines = [f"== {path.name}: {total} samples; own time"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{count / total * 100:6.1f}%  {name}")
    lines.append("-- inclusive (voicecall functions)")
    mine = [(n, c) for n, c in inclusive.items() if "voicecall/" in n and "cli/" not in n]
    for name, count in sorted(mine, key=lambda kv: -kv[1])[:top]:
        lines.append(f"{count / total * 100:6.1f}%  {name}")
    return "\n".join(lines)


async def measure_window(
    row: Row,
    pid: int,
    clients: list[MediaClient],
    recorder: Recorder,
    settings: LoadSettings,
    at_end: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Warm up, then measure CPU, memory, pacing and delivery over ``settings.seconds``."""
    async with asyncio.timeout(30):
        await asyncio.gather(*(c.first_frame() for c in clients))
    await asyncio.sleep(settings.warmup_s)
    spy = await start_py_spy(settings, pid, row) if row.impl == "voicecall" else None
    busy0 = machine_busy_seconds()
    cpu0, gen0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    recorder.on = True
    await asyncio.sleep(settings.seconds)
    recorder.on = False
    cpu1, gen1, t1 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    busy1 = machine_busy_seconds()
    rss, hwm = rss_kib(pid)
    window = t1 - t0
    n = len(clients)
    row.window_s = round(window, 2)
    row.cpu_pct = round((cpu1 - cpu0) / window * 100, 1)
    row.cpu_us_per_call_s = round((cpu1 - cpu0) / (window * n) * 1e6, 1)
    row.generator_cpu_pct = round((gen1 - gen0) / window * 100, 1)
    others = (busy1 - busy0) - (cpu1 - cpu0) - (gen1 - gen0)
    row.others_cpu_pct = round(max(0.0, others) / window * 100, 1)
    row.rss_mib = round(rss / 1024, 1)
    row.rss_peak_mib = round(hwm / 1024, 1)
    row.rss_per_call_kib = round((rss - row.rss_idle_mib * 1024) / n, 1)
    row.jitter_ms = percentiles_ms(recorder.jitter)
    row.jitter_samples = len(recorder.jitter)
    if len(recorder.jitter):
        off = np.abs(np.asarray(recorder.jitter)) > 0.010
        row.late_frames_pct = round(float(off.mean()) * 100, 3)
    row.generator_lag_ms = percentiles_ms(recorder.lag)
    row.speak_to_audio_ms = percentiles_ms(recorder.speak_to_audio)
    row.silence_gap_ms = percentiles_ms(recorder.silence_gap)
    row.out_fps_per_call = round(sum(c.received_in_window for c in clients) / (window * n), 1)
    row.in_fps_per_call = round(sum(c.sent_in_window for c in clients) / (window * n), 1)
    # Up at the end of the window: socket open and nothing failed; silent: no output lately.
    now = time.perf_counter()
    up = [c for c in clients if c.up]
    row.calls_up = len(up)
    row.calls_silent = sum(1 for c in up if now - c.last_frame_at >= 1.0)
    row.close_codes = sorted({c.close_code for c in clients if c.close_code is not None})
    row.clears = sum(c.clears for c in clients)
    row.marks_echoed = sum(c.marks for c in clients)
    if at_end is not None:
        await at_end()
    if spy is not None:
        await spy.stop(10)
    row.all_up = row.calls_up == n and (row.impl != "voicecall" or row.streams_open == n)


async def run_voicecall(n: int, settings: LoadSettings, home: Path) -> Row:
    """N calls through one ``voicecall serve`` child."""
    row = Row("voicecall", n)
    recorder = Recorder()
    payloads = quiet_noise_frames()
    stop = asyncio.Event()
    stack = contextlib.AsyncExitStack()
    async with stack:
        twilio = StreamingTwilio(ACCOUNT, TWILIO_TOKEN)
        await twilio.start()
        stack.push_async_callback(twilio.close)
        deepgram = CountingDeepgram()
        await stack.enter_async_context(deepgram)
        tts = await stack.enter_async_context(
            LoopTts(audio=utterance_audio(settings.utterance_s), chunk_bytes=4000)
        )
        serve_port, rpc_port = free_port(), free_port()
        webhook_url = f"http://{HOST}:{serve_port}/voice/webhook"
        config = {
            "provider": "twilio",
            "fromNumber": FROM,
            "twilio": {
                "accountSid": ACCOUNT,
                "authToken": TWILIO_TOKEN,
                "apiBaseUrl": twilio.base_url,
            },
            "publicUrl": webhook_url,
            "webhookSecurity": {"allowPrivateWebhookUrl": True},
            "serve": {"bind": HOST, "port": serve_port},
            "rpc": {"bind": HOST, "port": rpc_port},
            "inboundPolicy": "allowlist",
            "allowFrom": [CALLER],
            "inboundGreeting": GREETING,
            "maxConcurrentCalls": n + 8,
            "maxDurationSeconds": 3600,
            "streaming": {
                "enabled": True,
                "provider": "deepgram",
                "providers": {"deepgram": {"apiKey": STT_KEY, "baseUrl": deepgram.base_url}},
                "maxConnections": n + 8,
                "maxPendingConnections": 64,
                "maxPendingConnectionsPerIp": 16,
            },
            "tts": {
                "provider": "elevenlabs",
                "providers": {
                    "elevenlabs": {
                        "apiKey": TTS_KEY,
                        "baseUrl": tts.base_url,
                        "voiceId": "VOICE123",
                        "modelId": "eleven_multilingual_v2",
                    }
                },
            },
        }
        run_home = home / f"voicecall-{n}"
        run_home.mkdir(parents=True, exist_ok=True)
        (run_home / "config.json5").write_text(json.dumps(config, indent=1))
        env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
        env["VOICECALL_HOME"] = str(run_home)
        argv = serve_argv(settings, run_home, n)
        session = await stack.enter_async_context(client_session())
        child = await spawn(argv, run_home / "serve.log", env)
        stack.push_async_callback(child.stop)
        control = f"http://{HOST}:{rpc_port}"
        await wait_healthy(session, f"{control}/healthz", child)
        await asyncio.sleep(0.5)
        row.rss_idle_mib = round(rss_kib(child.pid)[0] / 1024, 1)

        async def rpc(method: str, **params: Any) -> dict[str, Any]:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            async with session.post(f"{control}/rpc", json=body, timeout=RPC_TIMEOUT) as response:
                reply: dict[str, Any] = await response.json()
            if "result" not in reply:
                raise RuntimeError(f"{method}: {reply.get('error')}")
            result: dict[str, Any] = reply["result"]
            return result

        async def make(index: int) -> MediaClient:
            client = MediaClient(index, recorder, payloads)
            call = await twilio.dial_in(CALLER, FROM, webhook_url)
            doc = await twilio.stream_doc(call.sid)
            await client.connect(session, doc.url)
            await client.start(call.sid, doc.token)
            client.call_sid = call.sid
            status = await rpc("voicecall.status", sid=call.sid)
            client.call_id = str(status["call"]["callId"])
            return client

        loop = asyncio.get_running_loop()
        started = loop.time()
        clients: list[MediaClient] = []
        stack.push_async_callback(lambda: asyncio.gather(*(c.close() for c in clients)))
        pacer = asyncio.ensure_future(pace_inbound(clients, stop))
        prober = asyncio.ensure_future(probe_lag(recorder, stop))
        async with asyncio.timeout(60 + n * 0.5):
            for client in await ramp(n, SETUP_PARALLEL, make):
                clients.append(client)
        row.setup_s = round(loop.time() - started, 2)

        speaks_ok = 0
        speaks_failed: list[str] = []

        async def speak_forever(client: MediaClient) -> None:
            nonlocal speaks_ok
            await client.first_frame()  # the greeting is playing; queue speech behind it
            while not stop.is_set():
                try:
                    client.speak_sent_at = time.perf_counter()
                    await rpc("voicecall.speak", callId=client.call_id, message=LINE)
                    speaks_ok += 1
                except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                    speaks_failed.append(str(exc))
                    await asyncio.sleep(0.5)

        speakers = [asyncio.ensure_future(speak_forever(c)) for c in clients]

        async def at_end() -> None:
            async with session.get(f"{control}/metrics") as response:
                sums = metric_sums(await response.text())
            row.malformed_frames = int(sums.get("voicecall_media_stream_malformed_frames_total", 0))
            jitter = "voicecall_media_jitter_frames_total{counter="
            row.jitter_lost = int(sums.get(jitter + "lost}", 0))
            row.jitter_late = int(sums.get(jitter + "late}", 0))
            row.jitter_concealed = int(sums.get(jitter + "concealed}", 0))
            row.streams_open = int(sums.get("voicecall_media_streams_active{kind=classic}", 0))

        try:
            await measure_window(row, child.pid, clients, recorder, settings, at_end)
        finally:
            stop.set()
            for task in speakers:
                task.cancel()
            await asyncio.gather(*speakers, return_exceptions=True)
            row.generator_reanchors = await pacer
            await prober
        row.inbound_sent = sum(c.sent for c in clients)
        row.inbound_to_stt = deepgram.audio_bytes // FRAME_BYTES
        row.speaks_ok = speaks_ok
        row.speaks_failed = len(speaks_failed)
        if speaks_failed:
            row.notes.append(f"speak failures, first: {speaks_failed[0][:200]}")
        if deepgram.problems:
            row.notes.append(f"deepgram fake problems: {deepgram.problems[:3]}")
        if tts.problems:
            row.notes.append(f"tts fake problems: {tts.problems[:3]}")
        failed = [c.failed for c in clients if c.failed]
        if failed:
            row.notes.append(f"{len(failed)} client failures, first: {failed[0]}")
        code = await child.stop()
        if code not in (0, None):
            row.notes.append(f"gateway exit code {code}: {child.log_tail(5)}")
    return row


async def run_baseline(n: int, settings: LoadSettings, home: Path) -> Row:
    """N calls through the naive asyncio baseline child."""
    row = Row("baseline", n)
    recorder = Recorder()
    payloads = quiet_noise_frames()
    stop = asyncio.Event()
    stack = contextlib.AsyncExitStack()
    async with stack:
        sink = CountingSink()
        await stack.enter_async_context(sink)
        port = free_port()
        run_home = home / f"baseline-{n}"
        run_home.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "benchmarks.load_calls",
            "baseline-server",
            "--port",
            str(port),
            "--stt-url",
            sink.base_url,
            "--utterance-s",
            str(settings.utterance_s),
            "--loop",
            settings.loop,
        ]
        child = await spawn(argv, run_home / "baseline.log", dict(os.environ))
        stack.push_async_callback(child.stop)
        session = await stack.enter_async_context(client_session())
        await wait_healthy(session, f"http://{HOST}:{port}/healthz", child)
        await asyncio.sleep(0.5)
        row.rss_idle_mib = round(rss_kib(child.pid)[0] / 1024, 1)
        url = f"ws://{HOST}:{port}/stream"

        async def make(index: int) -> MediaClient:
            client = MediaClient(index, recorder, payloads)
            await client.connect(session, url)
            await client.start(f"CA{index:032x}", None)
            return client

        loop = asyncio.get_running_loop()
        started = loop.time()
        clients: list[MediaClient] = []
        stack.push_async_callback(lambda: asyncio.gather(*(c.close() for c in clients)))
        pacer = asyncio.ensure_future(pace_inbound(clients, stop))
        prober = asyncio.ensure_future(probe_lag(recorder, stop))
        async with asyncio.timeout(60 + n * 0.5):
            for client in await ramp(n, SETUP_PARALLEL * 2, make):
                clients.append(client)
        row.setup_s = round(loop.time() - started, 2)
        try:
            await measure_window(row, child.pid, clients, recorder, settings)
        finally:
            stop.set()
            row.generator_reanchors = await pacer
            await prober
        row.inbound_sent = sum(c.sent for c in clients)
        row.inbound_to_stt = sink.audio_bytes // (2 * FRAME_BYTES * 2)  # PCM16 at 16 kHz
        failed = [c.failed for c in clients if c.failed]
        if failed:
            row.notes.append(f"{len(failed)} client failures, first: {failed[0]}")
        await asyncio.gather(*(c.close() for c in clients))
        await child.stop(5)
    return row


# -- the baseline server (runs in its own process) --------------------------------------------


def ulaw_table() -> np.ndarray[Any, np.dtype[np.int16]]:
    """G.711 µ-law -> PCM16 for all 256 codes, computed with numpy (no audioop)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    return np.where(codes & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


async def serve_baseline(port: int, stt_url: str, utterance_s: float) -> None:
    """The naive per-call media work most Python voice-agent stacks do, until SIGTERM."""
    import soxr
    import websockets

    table = ulaw_table()
    audio = utterance_audio(utterance_s)
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]

    async def play(ws: web.WebSocketResponse, stream_sid: str) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        index = 0
        while not ws.closed:
            payload = base64.b64encode(frames[index % len(frames)]).decode()
            message = {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}
            await ws.send_str(json.dumps(message))
            index += 1
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def drain(stt: Any) -> None:
        async for _ in stt:
            pass

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        query = "encoding=linear16&sample_rate=16000&channels=1"
        stt = await websockets.connect(
            f"{stt_url}/v1/listen?{query}", additional_headers={"Authorization": "Token k"}
        )
        resampler = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="HQ")
        tasks = [asyncio.ensure_future(drain(stt))]
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                message = json.loads(msg.data)
                event = message.get("event")
                if event == "media":
                    ulaw = base64.b64decode(message["media"]["payload"])
                    pcm = table[np.frombuffer(ulaw, dtype=np.uint8)]
                    await stt.send(resampler.resample_chunk(pcm).tobytes())
                elif event == "start":
                    tasks.append(asyncio.ensure_future(play(ws, message["start"]["streamSid"])))
                elif event == "stop":
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await stt.close()
        return ws

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    await runner.cleanup()


# -- driver -----------------------------------------------------------------------------------


async def run(settings: LoadSettings, command: str = "") -> Report:
    """Every N, voicecall then the baseline, one after the other (never at the same time)."""
    rows: list[Row] = []
    with contextlib.ExitStack() as cleanup:
        if settings.home is None:
            home = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="vc-load-")))
        else:
            home = settings.home
        for n in settings.calls:
            print(f"[load] voicecall, {n} calls ...", file=sys.stderr, flush=True)
            rows.append(await run_voicecall(n, settings, home))
            print(f"[load]   {summary(rows[-1])}", file=sys.stderr, flush=True)
            if settings.baseline:
                print(f"[load] baseline, {n} calls ...", file=sys.stderr, flush=True)
                rows.append(await run_baseline(n, settings, home))
                print(f"[load]   {summary(rows[-1])}", file=sys.stderr, flush=True)
    settings_json = {
        "calls": list(settings.calls),
        "seconds": settings.seconds,
        "warmup_s": settings.warmup_s,
        "utterance_s": settings.utterance_s,
        "loop": settings.loop,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "what_ifs": list(settings.what_ifs),
    }
    return Report(command, settings_json, os.cpu_count() or 0, rows)


def summary(row: Row) -> str:
    return (
        f"{row.impl} N={row.calls}: cpu {row.cpu_pct}% ({row.cpu_us_per_call_s} us/call-s), "
        f"rss {row.rss_mib} MiB ({row.rss_per_call_kib} KiB/call), jitter {row.jitter_ms}, "
        f"up {row.calls_up}/{row.calls} ({row.calls_silent} silent), "
        f"generator cpu {row.generator_cpu_pct}% lag {row.generator_lag_ms}, "
        f"other processes {row.others_cpu_pct}%"
        + (
            f", speak->audio {row.speak_to_audio_ms}, gap {row.silence_gap_ms}"
            if row.impl == "voicecall"
            else ""
        )
    )


def table(report: Report) -> str:
    """The markdown table of a report (one row per implementation and N), then the ratios."""
    head = (
        "| impl | calls | CPU % of a core | CPU µs per call-second | RSS MiB idle→loaded "
        "| RSS KiB per call | outbound jitter p50 / p99 / max ms | out / in frames/s per call "
        "| inbound to STT % | jitter lost / malformed | calls up (silent) "
        "| generator CPU % / lag p99 ms | other processes CPU % |"
    )
    lines = [head, "|---|" + "---:|" * 12]
    for r in report.rows:
        j = r.jitter_ms
        is_ours = r.impl == "voicecall"
        losses = f"{r.jitter_lost} / {r.malformed_frames}" if is_ours else "n/a"
        to_stt = r.inbound_to_stt / r.inbound_sent * 100 if r.inbound_sent else 0.0
        lines.append(
            f"| {r.impl} | {r.calls} | {r.cpu_pct:.1f} | {r.cpu_us_per_call_s:.0f} "
            f"| {r.rss_idle_mib:.0f}→{r.rss_mib:.0f} | {r.rss_per_call_kib:.0f} "
            f"| {j.get('p50', 0):.2f} / {j.get('p99', 0):.2f} / {j.get('max', 0):.1f} "
            f"| {r.out_fps_per_call:.1f} / {r.in_fps_per_call:.1f} | {to_stt:.1f} | {losses} "
            f"| {r.calls_up}/{r.calls}{'' if r.all_up else ' ✗'} ({r.calls_silent}) "
            f"| {r.generator_cpu_pct:.0f} / {r.generator_lag_ms.get('p99', 0):.1f} "
            f"| {r.others_cpu_pct:.0f} |"
        )
    ours = [r for r in report.rows if r.impl == "voicecall"]
    if ours:
        lines += [
            "",
            "| voicecall calls | speaks done | speak RPC → first frame p50 / p99 ms "
            "| bot silence between utterances p50 / p99 ms | barge-in clears |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in ours:
            a, g = r.speak_to_audio_ms, r.silence_gap_ms
            lines.append(
                f"| {r.calls} | {r.speaks_ok} | {a.get('p50', 0):.0f} / {a.get('p99', 0):.0f} "
                f"| {g.get('p50', 0):.0f} / {g.get('p99', 0):.0f} | {r.clears} |"
            )
    ratios = report.ratios()
    if ratios:
        lines += ["", "| calls | baseline / voicecall CPU per call-second | RSS per call ratio |"]
        lines.append("|---:|---:|---:|")
        for q in ratios:
            lines.append(f"| {q['calls']} | {q['cpu_ratio']:.2f}× | {q['rss_per_call_ratio']} |")
    return "\n".join(lines)


def print_profile(profile_dir: Path, top: int = 25) -> None:
    import pstats

    for path in sorted(profile_dir.glob("gateway-*.prof")):
        print(f"\n== {path.name}: top {top} by own time")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(top)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_calls", description=__doc__)
    sub = parser.add_subparsers(dest="mode")
    base = sub.add_parser("baseline-server", help="(internal) the baseline child process")
    base.add_argument("--port", type=int, required=True)
    base.add_argument("--stt-url", required=True)
    base.add_argument("--utterance-s", type=float, default=3.0)
    base.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--calls", default="50,100,200", help="comma-separated N (default %(default)s)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per N")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--utterance-s", type=float, default=3.0, help="length of each speak")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the gateway and baseline children (default: uvloop, as serve)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="scheduling niceness of this run and its children (negative needs root): "
        "on a shared machine, keeps other work from starving the measurement",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep each run's home (logs, calls.jsonl) in DIR"
    )
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        choices=sorted(WHAT_IFS),
        help="diagnostic: patch the gateway child with a suggested change (repeatable)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline runs")
    parser.add_argument("--timeout", type=float, default=None, help="hard limit for the run (s)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile the gateway into DIR: cProfile (.prof), or py-spy with --py-spy",
    )
    parser.add_argument(
        "--py-spy", default=None, help="path of a py-spy binary: sample instead of cProfile"
    )
    return parser.parse_args(argv)


def _uvloop_run(work: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    result: T = uvloop.run(work)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.mode == "baseline-server":
        work = serve_baseline(args.port, args.stt_url, args.utterance_s)
        if args.loop == "asyncio":
            asyncio.run(work)
        else:
            _uvloop_run(work)
        return 0
    calls = tuple(int(x) for x in str(args.calls).split(",") if x.strip())
    if not calls or min(calls) < 1 or max(calls) > 1000:
        raise SystemExit("--calls: between 1 and 1000 calls per step")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the children inherit it
    settings = LoadSettings(
        calls=calls,
        seconds=args.seconds,
        warmup_s=args.warmup,
        utterance_s=args.utterance_s,
        baseline=not args.no_baseline,
        profile_dir=args.profile,
        loop=args.loop,
        py_spy=args.py_spy,
        home=args.keep,
        what_ifs=tuple(args.what_if),
    )
    per_step = settings.seconds + settings.warmup_s + 90 + max(calls) * 0.5
    timeout_s = args.timeout or 60 + per_step * len(calls) * (2 if settings.baseline else 1)
    # A last resort if the loop itself wedges: dump every stack and exit; the children die with
    # this process (PR_SET_PDEATHSIG), the normal path ends them itself.
    faulthandler.dump_traceback_later(timeout_s + 60, exit=True)
    command = "python -m benchmarks.load_calls " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )

    async def bounded() -> Report:
        async with asyncio.timeout(timeout_s):
            return await run(settings, command)

    report: Report = _uvloop_run(bounded())
    faulthandler.cancel_dump_traceback_later()
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    if args.profile is not None and args.py_spy is not None:
        for path in sorted(args.profile.glob("gateway-*.pyspy.txt")):
            print("\n" + summarize_py_spy(path))
    elif args.profile is not None:
        print_profile(args.profile)
    return 0 if all(r.all_up for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
