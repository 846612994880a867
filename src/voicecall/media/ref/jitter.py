"""Pure-Python reference of the jitter buffer: the oracle the compiled kernel is tested against."""

from __future__ import annotations

from typing import NamedTuple

from typing_extensions import Buffer

from voicecall.media.ref.g711 import ulaw_decode_sample, ulaw_encode_sample

__all__ = ["JitterBuffer", "JitterStats"]

_EMPTY, _FULL, _PLAYED = 0, 1, 2
_MAX_CAPACITY = 4096
_MAX_FRAME_BYTES = 65536


class JitterStats(NamedTuple):
    """Counters of a jitter buffer since it was created.

    ``received``: frames pushed; ``lost``: sequence numbers played out or skipped without their
    frame; ``late``: frames dropped because their playout slot had passed; ``duplicate``: frames
    dropped because the same frame was already buffered or played; ``concealed``: pops that
    returned a faded repeat or silence in place of a missing frame; ``overflow``: buffered frames
    discarded unplayed because a frame arrived ``capacity`` or more ahead of the playout point;
    ``depth``: frames buffered now.
    """

    received: int
    lost: int
    late: int
    duplicate: int
    concealed: int
    overflow: int
    depth: int


def _signed16(delta: int) -> int:
    return ((delta + 0x8000) & 0xFFFF) - 0x8000


class JitterBuffer:
    """Reorders 16-bit-sequenced frames and plays one per tick, concealing the missing ones.

    Until ``target_depth`` frames are buffered, :meth:`pop` returns silence and the playout point
    follows the earliest sequence number seen (so reordering at the start costs nothing). Once
    primed, every :meth:`pop` plays the next sequence number: the real frame if it is there,
    otherwise the last real frame repeated with a linear fade to zero over ``fade_frames``
    frames, then silence (``0xFF`` for u-law, zeros for PCM16). Frames for sequence numbers
    already played out are dropped as late (or as duplicates when the same frame was played),
    and a frame ``capacity`` or more ahead moves the playout point forward, discarding what it
    skips. Sequence numbers wrap from 65535 to 0.
    """

    def __init__(
        self,
        *,
        frame_bytes: int = 160,
        target_depth: int = 3,
        capacity: int = 64,
        encoding: str = "ulaw",
        fade_frames: int = 3,
    ) -> None:
        if encoding not in ("ulaw", "pcm16"):
            raise ValueError(f"encoding must be 'ulaw' or 'pcm16', got {encoding!r}")
        if (
            not isinstance(frame_bytes, int)
            or not 1 <= frame_bytes <= _MAX_FRAME_BYTES
            or (encoding == "pcm16" and frame_bytes % 2)
        ):
            raise ValueError(
                f"frame_bytes must be an integer in [1, {_MAX_FRAME_BYTES}] (even for pcm16), "
                f"got {frame_bytes!r}"
            )
        if (
            not isinstance(capacity, int)
            or not 2 <= capacity <= _MAX_CAPACITY
            or capacity & (capacity - 1)
        ):
            raise ValueError(
                f"capacity must be a power of two in [2, {_MAX_CAPACITY}], got {capacity!r}"
            )
        if not isinstance(target_depth, int) or not 1 <= target_depth <= capacity:
            raise ValueError(f"target_depth must be in [1, capacity], got {target_depth!r}")
        if not isinstance(fade_frames, int) or not 0 <= fade_frames <= 1000:
            raise ValueError(f"fade_frames must be an integer in [0, 1000], got {fade_frames!r}")
        self.frame_bytes = frame_bytes
        self.target_depth = target_depth
        self.capacity = capacity
        self.encoding = encoding
        self.fade_frames = fade_frames
        self._mask = capacity - 1
        self._silence = (b"\xff" if encoding == "ulaw" else b"\x00") * frame_bytes
        self._seq = [0] * capacity
        self._ts = [0] * capacity
        self._state = [_EMPTY] * capacity
        self._data = [b""] * capacity
        self._last = b""
        self._last_ts: int | None = None
        self._conceal_run = 0
        self._started = False
        self._primed = False
        self._head = 0
        self._newest = 0
        self._depth = 0
        self._received = self._lost = self._late = self._duplicate = 0
        self._concealed = self._overflow = 0

    @property
    def stats(self) -> JitterStats:
        """The counters, as a snapshot."""
        return JitterStats(
            self._received,
            self._lost,
            self._late,
            self._duplicate,
            self._concealed,
            self._overflow,
            self._depth,
        )

    @property
    def depth(self) -> int:
        """Frames buffered now."""
        return self._depth

    @property
    def primed(self) -> bool:
        """Whether ``target_depth`` frames have been buffered once (playout has begun)."""
        return self._primed

    @property
    def playout_seq(self) -> int | None:
        """Sequence number the next :meth:`pop` plays once primed (None before any push)."""
        return self._head if self._started else None

    @property
    def last_timestamp(self) -> int | None:
        """Timestamp of the last real frame played (None before one was)."""
        return self._last_ts

    def push(self, seq: int, timestamp: int, payload: Buffer) -> None:
        """Offer one frame; it is buffered, or counted as late or duplicate and dropped."""
        if not 0 <= seq <= 0xFFFF:
            raise ValueError(f"seq must be in [0, 65535], got {seq!r}")
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise ValueError(f"timestamp must be in [0, 2**32 - 1], got {timestamp!r}")
        data = bytes(payload)
        if len(data) != self.frame_bytes:
            raise ValueError(f"payload must be {self.frame_bytes} bytes, got {len(data)}")
        self._received += 1
        if not self._started:
            self._started = True
            self._head = self._newest = seq
        delta = _signed16(seq - self._head)
        idx = seq & self._mask
        if delta < 0:
            if not self._primed and _signed16(self._newest - seq) < self.capacity:
                self._head = seq
            else:
                played = self._state[idx] == _PLAYED
                if played and self._seq[idx] == seq and self._ts[idx] == timestamp:
                    self._duplicate += 1
                else:
                    self._late += 1
                return
        elif delta >= self.capacity:
            self._skip(delta - self.capacity + 1)
        if self._state[idx] == _FULL:  # same seq: slots ahead of the head are unique
            self._duplicate += 1
            return
        self._state[idx] = _FULL
        self._seq[idx] = seq
        self._ts[idx] = timestamp
        self._data[idx] = data
        self._depth += 1
        if _signed16(seq - self._newest) > 0:
            self._newest = seq
        if not self._primed and self._depth >= self.target_depth:
            self._primed = True

    def _skip(self, count: int) -> None:
        discarded = 0
        for j in range(min(count, self.capacity)):
            idx = (self._head + j) & self._mask
            if self._state[idx] == _FULL:
                self._state[idx] = _EMPTY
                discarded += 1
        self._overflow += discarded
        self._depth -= discarded
        self._lost += count - discarded
        self._head = (self._head + count) & 0xFFFF

    def pop(self) -> bytes:
        """Play out one frame: the next real frame, a concealment frame, or silence."""
        if not self._primed:
            return self._silence
        idx = self._head & self._mask
        self._head = (self._head + 1) & 0xFFFF
        if self._state[idx] == _FULL:
            self._state[idx] = _PLAYED
            self._depth -= 1
            self._conceal_run = 0
            self._last = self._data[idx]
            self._last_ts = self._ts[idx]
            return self._last
        self._state[idx] = _EMPTY
        self._lost += 1
        self._concealed += 1
        self._conceal_run += 1
        if not self._last or self._conceal_run > self.fade_frames:
            return self._silence
        return self._fade(self._conceal_run)

    def _fade(self, run: int) -> bytes:
        if self.encoding == "ulaw":
            samples = [ulaw_decode_sample(b) for b in self._last]
        else:
            samples = [
                int.from_bytes(self._last[i : i + 2], "little", signed=True)
                for i in range(0, len(self._last), 2)
            ]
        n = len(samples)
        total = self.fade_frames * n
        base = (run - 1) * n
        out = bytearray()
        for i, s in enumerate(samples):
            v = s * (total - base - i)
            q = abs(v) // total  # C division truncates toward zero
            q = -q if v < 0 else q
            if self.encoding == "ulaw":
                out.append(ulaw_encode_sample(q))
            else:
                out += q.to_bytes(2, "little", signed=True)
        return bytes(out)
