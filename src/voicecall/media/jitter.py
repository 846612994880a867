"""Jitter buffer for 20 ms carrier frames: the compiled JitterBuffer and its counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["JitterBuffer", "JitterStats"]

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from voicecall.media.ref.jitter import JitterStats

    class JitterBuffer:
        """Reorders 16-bit-sequenced frames and plays one per tick, concealing missing ones.

        Behaviour (documented on :class:`voicecall.media.ref.jitter.JitterBuffer`): silence
        until ``target_depth`` frames are buffered, then one frame per :meth:`pop`: the real
        one, a faded repeat of the last real one for ``fade_frames`` frames, then silence.
        Late and duplicate frames are dropped and counted in :attr:`stats`.
        """

        frame_bytes: int
        target_depth: int
        capacity: int
        encoding: str
        fade_frames: int

        def __init__(
            self,
            *,
            frame_bytes: int = 160,
            target_depth: int = 3,
            capacity: int = 64,
            encoding: str = "ulaw",
            fade_frames: int = 3,
        ) -> None: ...
        @property
        def stats(self) -> JitterStats: ...
        @property
        def depth(self) -> int: ...
        @property
        def primed(self) -> bool: ...
        @property
        def playout_seq(self) -> int | None: ...
        @property
        def last_timestamp(self) -> int | None: ...
        def push(self, seq: int, timestamp: int, payload: Buffer) -> None: ...
        def pop(self) -> bytes: ...

else:
    from voicecall._media.jitter import JitterBuffer, JitterStats
