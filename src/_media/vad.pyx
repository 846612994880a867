# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""VAD framer: fixed frames from any chunking, energy in dBFS, adaptive noise floor, hysteresis."""

include "common.pxi"

from libc.math cimport exp, log10, isfinite
from libc.string cimport memcpy
from collections import namedtuple

vc_g711_init()

SPEECH_STARTED = "speech-started"
SPEECH_STOPPED = "speech-stopped"
ENERGY_FLOOR_DBFS = -100.0

VadEvent = namedtuple("VadEvent", ["kind", "frame_index", "timestamp_ms"])
VadEvent.__doc__ = "Speech started or stopped at frame_index (timestamp_ms after the first byte)."

cdef enum:
    MAX_FRAME_BYTES = 960       # 30 ms at 16 kHz, PCM16
    EV_NONE = 0
    EV_STARTED = 1
    EV_STOPPED = 2

cdef double FLOOR_DBFS = -100.0
cdef double FULL_SCALE_SQ = 1073741824.0   # 32768 ** 2: a full-scale square wave reads 0 dBFS


cdef double _positive(str name, object value) except? -1.0:
    if not (isinstance(value, (int, float)) and isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return <double>value


cdef class VadFramer:
    """Frames arbitrary chunks into fixed frames and reports speech start/stop with hysteresis.

    Same behaviour as ``voicecall.media.ref.vad.VadFramer`` (the documented reference).
    """

    cdef readonly int sample_rate_hz
    cdef readonly int frame_ms
    cdef readonly int frame_bytes
    cdef readonly str encoding
    cdef int samples
    cdef bint is_ulaw
    cdef int start_frames
    cdef int stop_frames
    cdef double threshold_db
    cdef double min_speech_dbfs
    cdef double rise
    cdef double fall
    cdef double floor_db
    cdef double energy_db
    cdef int64_t frames_
    cdef int64_t last_speech_
    cdef int run
    cdef bint in_speech_
    cdef int pending_len
    cdef uint8_t pending[MAX_FRAME_BYTES]

    def __init__(self, *, sample_rate_hz=8000, frame_ms=20, encoding="ulaw", start_frames=3,
                 stop_frames=15, threshold_db=9.0, min_speech_dbfs=-50.0,
                 noise_rise_ms=2000.0, noise_fall_ms=40.0):
        if sample_rate_hz not in (8000, 16000):
            raise ValueError(f"sample_rate_hz must be 8000 or 16000, got {sample_rate_hz!r}")
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms!r}")
        if encoding not in ("ulaw", "pcm16"):
            raise ValueError(f"encoding must be 'ulaw' or 'pcm16', got {encoding!r}")
        for name, frames in (("start_frames", start_frames), ("stop_frames", stop_frames)):
            if not isinstance(frames, int) or frames < 1 or frames > 1_000_000:
                raise ValueError(f"{name} must be an integer >= 1, got {frames!r}")
        cdef double threshold = _positive("threshold_db", threshold_db)
        if not (isinstance(min_speech_dbfs, (int, float)) and -100.0 <= min_speech_dbfs <= 0.0):
            raise ValueError(f"min_speech_dbfs must be within [-100, 0], got {min_speech_dbfs!r}")
        cdef double rise_ms = _positive("noise_rise_ms", noise_rise_ms)
        cdef double fall_ms = _positive("noise_fall_ms", noise_fall_ms)

        self.sample_rate_hz = sample_rate_hz
        self.frame_ms = frame_ms
        self.encoding = encoding
        self.is_ulaw = encoding == "ulaw"
        self.samples = self.sample_rate_hz * self.frame_ms // 1000
        self.frame_bytes = self.samples * (1 if self.is_ulaw else 2)
        self.start_frames = start_frames
        self.stop_frames = stop_frames
        self.threshold_db = threshold
        self.min_speech_dbfs = <double>min_speech_dbfs
        self.rise = 1.0 - exp(-(<double>self.frame_ms) / rise_ms)
        self.fall = 1.0 - exp(-(<double>self.frame_ms) / fall_ms)
        self.pending_len = 0
        self.frames_ = 0
        self.last_speech_ = -1
        self.run = 0
        self.in_speech_ = False
        self.floor_db = FLOOR_DBFS
        self.energy_db = FLOOR_DBFS

    @property
    def frames(self):
        """Number of whole frames processed so far."""
        return self.frames_

    @property
    def last_speech_frame(self):
        """Index of the newest frame that read as speech (-1 before any)."""
        return self.last_speech_

    @property
    def in_speech(self):
        """Whether the last speech-started has not been followed by a speech-stopped."""
        return self.in_speech_

    @property
    def noise_floor_db(self):
        """Current noise floor estimate in dBFS."""
        return self.floor_db

    @property
    def energy_dbfs(self):
        """Energy of the last whole frame in dBFS (-100 before any frame)."""
        return self.energy_db

    cdef inline double _energy(self, const uint8_t *f) noexcept nogil:
        cdef int64_t acc = 0
        cdef int32_t s
        cdef int i
        cdef double e
        if self.is_ulaw:
            for i in range(self.samples):
                s = vc_ulaw_dec[f[i]]
                acc += s * s
        else:
            for i in range(self.samples):
                s = <int16_t>(<uint16_t>f[2 * i] | (<uint16_t>f[2 * i + 1] << 8))
                acc += s * s
        if acc == 0:
            return FLOOR_DBFS
        e = 10.0 * log10(<double>acc / (<double>self.samples * FULL_SCALE_SQ))
        return e if e > FLOOR_DBFS else FLOOR_DBFS

    cdef inline int _frame(self, const uint8_t *f) noexcept nogil:
        cdef double e = self._energy(f)
        cdef int64_t index = self.frames_
        cdef double fl
        cdef bint speech
        self.frames_ += 1
        self.energy_db = e
        if index == 0:
            self.floor_db = e
        fl = self.floor_db
        speech = e > fl + self.threshold_db and e > self.min_speech_dbfs
        self.floor_db = fl + (e - fl) * (self.fall if e < fl else self.rise)
        if speech:
            self.last_speech_ = index
        if speech != self.in_speech_:
            self.run += 1
        else:
            self.run = 0
        if not self.in_speech_ and self.run >= self.start_frames:
            self.in_speech_ = True
            self.run = 0
            return EV_STARTED
        if self.in_speech_ and self.run >= self.stop_frames:
            self.in_speech_ = False
            self.run = 0
            return EV_STOPPED
        return EV_NONE

    cdef object _event(self, int kind):
        # Called only when an event fires: the frame just counted ended the run.
        cdef int64_t first
        if kind == EV_STARTED:
            first = self.frames_ - self.start_frames
            return VadEvent(SPEECH_STARTED, first, first * self.frame_ms)
        first = self.frames_ - self.stop_frames
        return VadEvent(SPEECH_STOPPED, first, first * self.frame_ms)

    def process(self, chunk):
        """Consume a chunk of audio (any buffer); return a tuple of the events it completed."""
        cdef Py_buffer buf
        cdef const uint8_t *p
        cdef Py_ssize_t n, take
        cdef int fb = self.frame_bytes
        cdef int kind
        cdef list events = None
        PyObject_GetBuffer(chunk, &buf, PyBUF_SIMPLE)
        try:
            p = <const uint8_t *>buf.buf
            n = buf.len
            if self.pending_len > 0:
                take = fb - self.pending_len
                if take > n:
                    take = n
                memcpy(self.pending + self.pending_len, p, take)
                self.pending_len += take
                p += take
                n -= take
                if self.pending_len == fb:
                    self.pending_len = 0
                    kind = self._frame(self.pending)
                    if kind != EV_NONE:
                        events = [self._event(kind)]
            while n >= fb:
                kind = self._frame(p)
                p += fb
                n -= fb
                if kind != EV_NONE:
                    if events is None:
                        events = []
                    events.append(self._event(kind))
            if n > 0:
                memcpy(self.pending + self.pending_len, p, n)
                self.pending_len += n
        finally:
            PyBuffer_Release(&buf)
        if events is None:
            return ()
        return tuple(events)
