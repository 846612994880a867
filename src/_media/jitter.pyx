# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Jitter buffer for 16-bit-sequenced carrier frames: reorder, drop late/duplicate, conceal loss."""

include "common.pxi"

from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from collections import namedtuple

vc_g711_init()

JitterStats = namedtuple(
    "JitterStats", ["received", "lost", "late", "duplicate", "concealed", "overflow", "depth"])
JitterStats.__doc__ = "Counters of a jitter buffer since it was created (see the reference)."

cdef enum:
    ST_EMPTY = 0
    ST_FULL = 1
    ST_PLAYED = 2
    MAX_CAPACITY = 4096
    MAX_FRAME_BYTES = 65536


cdef inline int _signed16(int delta) noexcept nogil:
    return ((delta + 0x8000) & 0xFFFF) - 0x8000


cdef class JitterBuffer:
    """Reorders 16-bit-sequenced frames and plays one per tick, concealing the missing ones.

    Same behaviour as ``voicecall.media.ref.jitter.JitterBuffer`` (the documented reference).
    Storage is one ring of ``capacity`` frames allocated at construction.
    """

    cdef readonly int frame_bytes
    cdef readonly int target_depth
    cdef readonly int capacity
    cdef readonly str encoding
    cdef readonly int fade_frames
    cdef bint is_ulaw
    cdef int mask
    cdef uint8_t *data
    cdef uint16_t *slot_seq
    cdef uint32_t *slot_ts
    cdef uint8_t *slot_state
    cdef uint8_t *last
    cdef bytes silence
    cdef bint has_last
    cdef uint32_t last_ts
    cdef int conceal_run
    cdef bint started
    cdef bint primed_
    cdef int head
    cdef int newest
    cdef int depth_
    cdef uint64_t received, lost, late, duplicate, concealed, overflow

    def __cinit__(self):
        self.data = NULL
        self.slot_seq = NULL
        self.slot_ts = NULL
        self.slot_state = NULL
        self.last = NULL

    def __dealloc__(self):
        free(self.data)
        free(self.slot_seq)
        free(self.slot_ts)
        free(self.slot_state)
        free(self.last)

    def __init__(self, *, frame_bytes=160, target_depth=3, capacity=64, encoding="ulaw",
                 fade_frames=3):
        if encoding not in ("ulaw", "pcm16"):
            raise ValueError(f"encoding must be 'ulaw' or 'pcm16', got {encoding!r}")
        if (not isinstance(frame_bytes, int) or not 1 <= frame_bytes <= MAX_FRAME_BYTES
                or (encoding == "pcm16" and frame_bytes % 2)):
            raise ValueError(
                f"frame_bytes must be an integer in [1, {MAX_FRAME_BYTES}] (even for pcm16), "
                f"got {frame_bytes!r}")
        if (not isinstance(capacity, int) or not 2 <= capacity <= MAX_CAPACITY
                or capacity & (capacity - 1)):
            raise ValueError(
                f"capacity must be a power of two in [2, {MAX_CAPACITY}], got {capacity!r}")
        if not isinstance(target_depth, int) or not 1 <= target_depth <= capacity:
            raise ValueError(f"target_depth must be in [1, capacity], got {target_depth!r}")
        if not isinstance(fade_frames, int) or not 0 <= fade_frames <= 1000:
            raise ValueError(f"fade_frames must be an integer in [0, 1000], got {fade_frames!r}")
        if self.data != NULL:
            raise RuntimeError("JitterBuffer.__init__ called twice")
        self.frame_bytes = frame_bytes
        self.target_depth = target_depth
        self.capacity = capacity
        self.encoding = encoding
        self.fade_frames = fade_frames
        self.is_ulaw = encoding == "ulaw"
        self.mask = capacity - 1
        self.silence = (b"\xff" if self.is_ulaw else b"\x00") * frame_bytes
        self.data = <uint8_t *>malloc(<size_t>capacity * <size_t>frame_bytes)
        self.slot_seq = <uint16_t *>malloc(capacity * sizeof(uint16_t))
        self.slot_ts = <uint32_t *>malloc(capacity * sizeof(uint32_t))
        self.slot_state = <uint8_t *>malloc(capacity)
        self.last = <uint8_t *>malloc(frame_bytes)
        if (self.data == NULL or self.slot_seq == NULL or self.slot_ts == NULL
                or self.slot_state == NULL or self.last == NULL):
            raise MemoryError()
        memset(self.slot_state, ST_EMPTY, capacity)
        memset(self.slot_seq, 0, capacity * sizeof(uint16_t))
        memset(self.slot_ts, 0, capacity * sizeof(uint32_t))

    @property
    def stats(self):
        """The counters, as a snapshot (a JitterStats named tuple)."""
        return JitterStats(self.received, self.lost, self.late, self.duplicate, self.concealed,
                           self.overflow, self.depth_)

    @property
    def depth(self):
        """Frames buffered now."""
        return self.depth_

    @property
    def primed(self):
        """Whether target_depth frames have been buffered once (playout has begun)."""
        return self.primed_

    @property
    def playout_seq(self):
        """Sequence number the next pop plays once primed (None before any push)."""
        return self.head if self.started else None

    @property
    def last_timestamp(self):
        """Timestamp of the last real frame played (None before one was)."""
        return self.last_ts if self.has_last else None

    def push(self, long long seq, long long timestamp, payload):
        """Offer one frame; it is buffered, or counted as late or duplicate and dropped."""
        if not 0 <= seq <= 0xFFFF:
            raise ValueError(f"seq must be in [0, 65535], got {seq!r}")
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise ValueError(f"timestamp must be in [0, 2**32 - 1], got {timestamp!r}")
        cdef Py_buffer buf
        PyObject_GetBuffer(payload, &buf, PyBUF_SIMPLE)
        try:
            if buf.len != self.frame_bytes:
                raise ValueError(f"payload must be {self.frame_bytes} bytes, got {buf.len}")
            self._push(<int>seq, <uint32_t>timestamp, <const uint8_t *>buf.buf)
        finally:
            PyBuffer_Release(&buf)

    cdef void _push(self, int seq, uint32_t ts, const uint8_t *payload) noexcept nogil:
        cdef int delta, idx
        self.received += 1
        if not self.started:
            self.started = True
            self.head = seq
            self.newest = seq
        delta = _signed16(seq - self.head)
        idx = seq & self.mask
        if delta < 0:
            if not self.primed_ and _signed16(self.newest - seq) < self.capacity:
                self.head = seq
            else:
                if (self.slot_state[idx] == ST_PLAYED and self.slot_seq[idx] == seq
                        and self.slot_ts[idx] == ts):
                    self.duplicate += 1
                else:
                    self.late += 1
                return
        elif delta >= self.capacity:
            self._skip(delta - self.capacity + 1)
        if self.slot_state[idx] == ST_FULL:     # same seq: slots ahead of the head are unique
            self.duplicate += 1
            return
        self.slot_state[idx] = ST_FULL
        self.slot_seq[idx] = <uint16_t>seq
        self.slot_ts[idx] = ts
        memcpy(self.data + <size_t>idx * self.frame_bytes, payload, self.frame_bytes)
        self.depth_ += 1
        if _signed16(seq - self.newest) > 0:
            self.newest = seq
        if not self.primed_ and self.depth_ >= self.target_depth:
            self.primed_ = True

    cdef void _skip(self, int count) noexcept nogil:
        cdef int j, idx, discarded = 0
        cdef int n = count if count < self.capacity else self.capacity
        for j in range(n):
            idx = (self.head + j) & self.mask
            if self.slot_state[idx] == ST_FULL:
                self.slot_state[idx] = ST_EMPTY
                discarded += 1
        self.overflow += discarded
        self.depth_ -= discarded
        self.lost += count - discarded
        self.head = (self.head + count) & 0xFFFF

    def pop(self):
        """Play out one frame (bytes): the next real frame, a concealment frame, or silence."""
        cdef int idx
        cdef bytes out
        if not self.primed_:
            return self.silence
        idx = self.head & self.mask
        self.head = (self.head + 1) & 0xFFFF
        if self.slot_state[idx] == ST_FULL:
            self.slot_state[idx] = ST_PLAYED
            self.depth_ -= 1
            self.conceal_run = 0
            memcpy(self.last, self.data + <size_t>idx * self.frame_bytes, self.frame_bytes)
            self.has_last = True
            self.last_ts = self.slot_ts[idx]
            return PyBytes_FromStringAndSize(<char *>self.last, self.frame_bytes)
        self.slot_state[idx] = ST_EMPTY
        self.lost += 1
        self.concealed += 1
        self.conceal_run += 1
        if not self.has_last or self.conceal_run > self.fade_frames:
            return self.silence
        out = PyBytes_FromStringAndSize(NULL, self.frame_bytes)
        self._fade(<uint8_t *>PyBytes_AS_STRING(out))
        return out

    cdef void _fade(self, uint8_t *out) noexcept nogil:
        # Linear ramp from the last real frame's level to zero across fade_frames frames.
        cdef int n = self.frame_bytes if self.is_ulaw else self.frame_bytes // 2
        cdef int64_t total = <int64_t>self.fade_frames * n
        cdef int64_t base = <int64_t>(self.conceal_run - 1) * n
        cdef int64_t s, v
        cdef int i
        for i in range(n):
            if self.is_ulaw:
                s = vc_ulaw_dec[self.last[i]]
            else:
                s = <int16_t>(<uint16_t>self.last[2 * i] | (<uint16_t>self.last[2 * i + 1] << 8))
            v = s * (total - base - i) / total
            if self.is_ulaw:
                out[i] = vc_ulaw_enc1(<int16_t>v)
            else:
                out[2 * i] = <uint8_t>(<uint16_t>v & 0xFF)
                out[2 * i + 1] = <uint8_t>(<uint16_t>v >> 8)
