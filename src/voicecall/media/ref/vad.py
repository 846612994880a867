"""Pure-Python reference of the VAD framer: the oracle the compiled kernel is tested against."""

from __future__ import annotations

import math
import struct
from typing import Literal, NamedTuple

from typing_extensions import Buffer

from voicecall.media.ref.g711 import ulaw_decode_sample

__all__ = [
    "ENERGY_FLOOR_DBFS",
    "SPEECH_STARTED",
    "SPEECH_STOPPED",
    "VadEvent",
    "VadFramer",
]

SPEECH_STARTED: Literal["speech-started"] = "speech-started"
SPEECH_STOPPED: Literal["speech-stopped"] = "speech-stopped"
ENERGY_FLOOR_DBFS = -100.0
"""Energy reported for digital silence; quieter frames are clamped to it."""

_FULL_SCALE_SQ = 1073741824.0  # 32768 ** 2: a full-scale square wave reads 0 dBFS


_ULAW_TO_PCM16 = tuple(ulaw_decode_sample(i) for i in range(256))


class VadEvent(NamedTuple):
    """Speech started or stopped at ``frame_index`` (``timestamp_ms`` after the first byte)."""

    kind: Literal["speech-started", "speech-stopped"]
    frame_index: int
    timestamp_ms: int


def _check_positive(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class VadFramer:
    """Frames arbitrary chunks into fixed frames and reports speech start/stop with hysteresis.

    Per frame: energy in dBFS; a frame is speech when its energy is more than ``threshold_db``
    above the noise floor (as it stood before the frame) and above ``min_speech_dbfs``. The floor
    starts at the first frame's energy and then moves toward each frame's energy, fast when the
    frame is quieter (time constant ``noise_fall_ms``) and slowly when louder (``noise_rise_ms``),
    so steady noise and steady tones stop reading as speech. ``start_frames`` speech frames in a
    row start speech; ``stop_frames`` non-speech frames in a row stop it. Events carry the index
    of the first frame of the run that caused them and its start time in ms.
    """

    def __init__(
        self,
        *,
        sample_rate_hz: int = 8000,
        frame_ms: int = 20,
        encoding: str = "ulaw",
        start_frames: int = 3,
        stop_frames: int = 15,
        threshold_db: float = 9.0,
        min_speech_dbfs: float = -50.0,
        noise_rise_ms: float = 2000.0,
        noise_fall_ms: float = 40.0,
    ) -> None:
        if sample_rate_hz not in (8000, 16000):
            raise ValueError(f"sample_rate_hz must be 8000 or 16000, got {sample_rate_hz!r}")
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms!r}")
        if encoding not in ("ulaw", "pcm16"):
            raise ValueError(f"encoding must be 'ulaw' or 'pcm16', got {encoding!r}")
        for name, frames in (("start_frames", start_frames), ("stop_frames", stop_frames)):
            if not isinstance(frames, int) or frames < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {frames!r}")
        threshold_db = _check_positive("threshold_db", threshold_db)
        if not (
            isinstance(min_speech_dbfs, int | float) and ENERGY_FLOOR_DBFS <= min_speech_dbfs <= 0.0
        ):
            raise ValueError(f"min_speech_dbfs must be within [-100, 0], got {min_speech_dbfs!r}")
        noise_rise_ms = _check_positive("noise_rise_ms", noise_rise_ms)
        noise_fall_ms = _check_positive("noise_fall_ms", noise_fall_ms)

        self.sample_rate_hz = int(sample_rate_hz)
        self.frame_ms = int(frame_ms)
        self.encoding = encoding
        self._samples = self.sample_rate_hz * self.frame_ms // 1000
        self.frame_bytes = self._samples * (1 if encoding == "ulaw" else 2)
        self._start_frames = start_frames
        self._stop_frames = stop_frames
        self._threshold_db = threshold_db
        self._min_speech_dbfs = float(min_speech_dbfs)
        self._rise = 1.0 - math.exp(-self.frame_ms / noise_rise_ms)
        self._fall = 1.0 - math.exp(-self.frame_ms / noise_fall_ms)
        self._pending = bytearray()
        self._frames = 0
        self._last_speech = -1
        self._run = 0
        self._in_speech = False
        self._floor_db = ENERGY_FLOOR_DBFS
        self._energy_db = ENERGY_FLOOR_DBFS

    @property
    def frames(self) -> int:
        """Number of whole frames processed so far."""
        return self._frames

    @property
    def last_speech_frame(self) -> int:
        """Index of the newest frame that read as speech (-1 before any).

        The caller stopped talking ``frames - last_speech_frame - 1`` frames ago, whether or not
        the ``stop_frames`` hangover has ended speech yet.
        """
        return self._last_speech

    @property
    def in_speech(self) -> bool:
        """Whether the last speech-started has not been followed by a speech-stopped."""
        return self._in_speech

    @property
    def noise_floor_db(self) -> float:
        """Current noise floor estimate in dBFS."""
        return self._floor_db

    @property
    def energy_dbfs(self) -> float:
        """Energy of the last whole frame in dBFS (``ENERGY_FLOOR_DBFS`` before any frame)."""
        return self._energy_db

    def process(self, chunk: Buffer) -> tuple[VadEvent, ...]:
        """Consume a chunk of audio; return the events of every frame it completed."""
        self._pending += memoryview(chunk).cast("B")
        events: list[VadEvent] = []
        fb = self.frame_bytes
        while len(self._pending) >= fb:
            frame = bytes(self._pending[:fb])
            del self._pending[:fb]
            event = self._frame(frame)
            if event is not None:
                events.append(event)
        return tuple(events)

    def _energy(self, frame: bytes) -> float:
        if self.encoding == "ulaw":
            acc = sum(_ULAW_TO_PCM16[b] ** 2 for b in frame)
        else:
            acc = sum(s * s for s in struct.unpack(f"<{self._samples}h", frame))
        if acc == 0:
            return ENERGY_FLOOR_DBFS
        energy = 10.0 * math.log10(acc / (self._samples * _FULL_SCALE_SQ))
        return max(energy, ENERGY_FLOOR_DBFS)

    def _frame(self, frame: bytes) -> VadEvent | None:
        energy = self._energy(frame)
        index = self._frames
        self._frames += 1
        self._energy_db = energy
        if index == 0:
            self._floor_db = energy
        floor = self._floor_db
        speech = energy > floor + self._threshold_db and energy > self._min_speech_dbfs
        coef = self._fall if energy < floor else self._rise
        self._floor_db = floor + (energy - floor) * coef
        if speech:
            self._last_speech = index
        if speech != self._in_speech:
            self._run += 1
        else:
            self._run = 0
        if not self._in_speech and self._run >= self._start_frames:
            first = index - self._start_frames + 1
            self._in_speech = True
            self._run = 0
            return VadEvent(SPEECH_STARTED, first, first * self.frame_ms)
        if self._in_speech and self._run >= self._stop_frames:
            first = index - self._stop_frames + 1
            self._in_speech = False
            self._run = 0
            return VadEvent(SPEECH_STOPPED, first, first * self.frame_ms)
        return None
