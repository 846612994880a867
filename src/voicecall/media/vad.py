"""Voice activity detection over carrier audio: the compiled VadFramer and its event type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecall.media.ref.vad import ENERGY_FLOOR_DBFS, SPEECH_STARTED, SPEECH_STOPPED

__all__ = ["ENERGY_FLOOR_DBFS", "SPEECH_STARTED", "SPEECH_STOPPED", "VadEvent", "VadFramer"]

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from voicecall.media.ref.vad import VadEvent

    class VadFramer:
        """Frames arbitrary chunks into fixed frames and reports speech start/stop.

        Behaviour (documented on :class:`voicecall.media.ref.vad.VadFramer`): per-frame energy
        in dBFS, a noise floor that falls fast and rises slowly, ``start_frames`` speech frames
        to start and ``stop_frames`` non-speech frames to stop. :meth:`process` returns a tuple
        of :class:`VadEvent` (the shared empty tuple when nothing happened).
        """

        sample_rate_hz: int
        frame_ms: int
        frame_bytes: int
        encoding: str

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
        ) -> None: ...
        @property
        def frames(self) -> int: ...
        @property
        def last_speech_frame(self) -> int: ...
        @property
        def in_speech(self) -> bool: ...
        @property
        def noise_floor_db(self) -> float: ...
        @property
        def energy_dbfs(self) -> float: ...
        def process(self, chunk: Buffer) -> tuple[VadEvent, ...]: ...

else:
    from voicecall._media.vad import VadEvent, VadFramer
