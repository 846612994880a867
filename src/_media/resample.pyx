# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Streaming polyphase resampler and the fused carrier-frame codecs built on it.

The filter comes from a designer function that voicecall.media installs with
``set_filter_designer`` (this module imports nothing from voicecall).
"""

include "common.pxi"

from libc.stdint cimport int8_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy
from cpython.unicode cimport PyUnicode_Check
from cpython.bytes cimport _PyBytes_Resize
from cpython.object cimport PyObject

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL

cdef extern from "resample.h" nogil:
    ctypedef struct vc_resampler:
        int up
        int down
        int taps
        int64_t delay
        int64_t n_in
        int64_t k_next
    int vc_rs_init(vc_resampler *r, int up, int down, int taps, int64_t delay, const float *coef)
    void vc_rs_free(vc_resampler *r)
    void vc_rs_reset(vc_resampler *r)
    int64_t vc_rs_ready(const vc_resampler *r, int64_t avail)
    int vc_rs_push_pcm16(vc_resampler *r, const uint8_t *src, int64_t n)
    int vc_rs_push_i16(vc_resampler *r, const int16_t *src, int64_t n)
    void vc_rs_emit(vc_resampler *r, int64_t count, int16_t *out)
    void vc_rs_compact(vc_resampler *r)
    int64_t vc_rs_tail_count(const vc_resampler *r)
    int vc_rs_pad_for_tail(vc_resampler *r, int64_t count)

cdef extern from "b64.h" nogil:
    void vc_b64_init()
    int64_t vc_b64_decoded_len(const uint8_t *s, int64_t n)
    int64_t vc_b64_decode(const uint8_t *s, int64_t n, uint8_t *dst)
    int64_t vc_b64_encoded_len(int64_t n)
    void vc_b64_encode(const uint8_t *src, int64_t n, uint8_t *dst)


cdef extern from *:
    """
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    static void vc_i16_to_le(int16_t *p, int64_t n) {
        for (int64_t i = 0; i < n; i++) p[i] = (int16_t)__builtin_bswap16((uint16_t)p[i]);
    }
    #else
    #define vc_i16_to_le(p, n) ((void)0)
    #endif
    """
    void vc_i16_to_le(int16_t *p, int64_t n) nogil

vc_g711_init()
vc_b64_init()

_designer = None

#: The telephony and AI-provider rates every pair of which is tested for quality; any integer
#: rate from MIN_RATE_HZ to MAX_RATE_HZ works (22050 and 44100 Hz TTS output included).
SUPPORTED_RATES_HZ = (8000, 16000, 24000, 48000)
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 48000


class MediaFrameError(ValueError):
    """A carrier media payload that cannot be decoded (bad base64, wrong size)."""


def set_filter_designer(designer, frame_error=None):
    """Install ``designer(src_rate_hz, dst_rate_hz) -> (up, down, taps, delay, coefs)``.

    ``frame_error`` replaces the exception class raised for undecodable payloads, so the
    Python face can raise an error from its own exception tree.
    """
    global _designer, MediaFrameError
    _designer = designer
    if frame_error is not None:
        MediaFrameError = frame_error


cdef class _ResamplerBase:
    cdef vc_resampler rs
    cdef bint ready
    cdef readonly int src_rate_hz
    cdef readonly int dst_rate_hz
    cdef uint8_t *scratch
    cdef Py_ssize_t scratch_cap

    def __cinit__(self, *args, **kwargs):
        self.ready = False
        self.scratch = NULL
        self.scratch_cap = 0

    cdef int _setup(self, int src_rate_hz, int dst_rate_hz) except -1:
        if self.ready:
            raise RuntimeError("already initialised")
        if not (MIN_RATE_HZ <= src_rate_hz <= MAX_RATE_HZ
                and MIN_RATE_HZ <= dst_rate_hz <= MAX_RATE_HZ):
            raise ValueError(
                f"unsupported resampling {src_rate_hz} Hz -> {dst_rate_hz} Hz "
                f"(rates must be {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)")
        if _designer is None:
            raise RuntimeError("import voicecall.media before creating a resampler")
        up, down, taps, delay, coefs = _designer(src_rate_hz, dst_rate_hz)
        cdef const float[::1] c = coefs
        if c.shape[0] != up * taps or taps % 8 != 0:
            raise ValueError("filter designer returned a malformed filter")
        if vc_rs_init(&self.rs, up, down, taps, delay, &c[0]) != 0:
            raise MemoryError()
        self.src_rate_hz = src_rate_hz
        self.dst_rate_hz = dst_rate_hz
        self.ready = True
        return 0

    cdef inline int _check(self) except -1:
        if not self.ready:
            raise RuntimeError(f"{type(self).__name__} was not initialised")
        return 0

    def __dealloc__(self):
        if self.ready:
            vc_rs_free(&self.rs)
        free(self.scratch)

    cdef uint8_t *_scratch(self, Py_ssize_t n) except NULL:
        cdef uint8_t *p
        if n < 64:
            n = 64
        if n > self.scratch_cap:
            p = <uint8_t *>realloc(self.scratch, n)
            if p == NULL:
                raise MemoryError()
            self.scratch = p
            self.scratch_cap = n
        return self.scratch

    @property
    def delay_ms(self):
        """Streaming latency of the filter, in milliseconds."""
        return 1000.0 * <double>self.rs.delay / (<double>self.rs.up * self.src_rate_hz)

    @property
    def samples_in(self):
        """Input samples consumed since creation (or the last flush/reset)."""
        return self.rs.n_in

    @property
    def samples_out(self):
        """Output samples produced since creation (or the last flush/reset)."""
        return self.rs.k_next

    def reset(self):
        """Forget all history, as if newly created."""
        vc_rs_reset(&self.rs)

    cdef object _emit_pcm16(self, Py_ssize_t extra_bytes_hint=0):
        cdef int64_t count = vc_rs_ready(&self.rs, self.rs.n_in)
        cdef object out = PyBytes_FromStringAndSize(NULL, 2 * count)
        cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
        with nogil:
            vc_rs_emit(&self.rs, count, dst)
            vc_i16_to_le(dst, count)
            vc_rs_compact(&self.rs)
        return out

    cdef int64_t _emit_i16(self, int16_t **out) except -1:
        """Emit ready outputs into the scratch buffer as native int16; returns the count."""
        cdef int64_t count = vc_rs_ready(&self.rs, self.rs.n_in)
        cdef int16_t *dst = <int16_t *>self._scratch(2 * count + 2)
        with nogil:
            vc_rs_emit(&self.rs, count, dst)
            vc_rs_compact(&self.rs)
        out[0] = dst
        return count

    cdef int _push_pcm16(self, object data) except -1:
        cdef Py_buffer src
        cdef int rc
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
        try:
            if src.len & 1:
                raise ValueError(f"PCM16 input must have an even number of bytes, got {src.len}")
            with nogil:
                rc = vc_rs_push_pcm16(&self.rs, <const uint8_t *>src.buf, src.len >> 1)
            if rc != 0:
                raise MemoryError()
        finally:
            PyBuffer_Release(&src)
        return 0

    cdef int _push_law(self, const uint8_t *codes, int64_t n, bint alaw) except -1:
        cdef uint8_t *tmp = self._scratch(2 * n + 2)
        cdef int rc
        with nogil:
            if alaw:
                vc_alaw_decode(codes, n, tmp)
            else:
                vc_ulaw_decode(codes, n, tmp)
            rc = vc_rs_push_pcm16(&self.rs, tmp, n)
        if rc != 0:
            raise MemoryError()
        return 0

    cdef object _flush_pcm16(self):
        cdef int64_t count = vc_rs_tail_count(&self.rs)
        if vc_rs_pad_for_tail(&self.rs, count) != 0:
            raise MemoryError()
        cdef object out = PyBytes_FromStringAndSize(NULL, 2 * count)
        cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
        with nogil:
            vc_rs_emit(&self.rs, count, dst)
            vc_i16_to_le(dst, count)
            vc_rs_reset(&self.rs)
        return out


cdef inline int64_t _b64_decode_into(_ResamplerBase self, object payload, uint8_t **codes) except -1:
    """Decode a base64 str/bytes payload into the scratch buffer; returns the byte count."""
    cdef const uint8_t *s
    cdef Py_ssize_t n
    cdef Py_buffer view
    cdef bint have_view = False
    cdef int64_t m, got
    cdef uint8_t *dst
    if PyUnicode_Check(payload):
        s = <const uint8_t *>PyUnicode_AsUTF8AndSize(payload, &n)
    else:
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        have_view = True
        s = <const uint8_t *>view.buf
        n = view.len
    try:
        m = vc_b64_decoded_len(s, n)
        if m < 0:
            raise MediaFrameError(
                f"media payload is not valid base64: length {n} is not a multiple of 4")
        # decoded bytes go after the room the law decoder needs (2 bytes per code)
        dst = self._scratch(3 * m + 8) + 2 * m + 4
        got = vc_b64_decode(s, n, dst)
        if got < 0:
            raise MediaFrameError(
                f"media payload is not valid base64: bad byte 0x{s[-got - 1]:02x} at offset {-got - 1}")
    finally:
        if have_view:
            PyBuffer_Release(&view)
    codes[0] = dst
    return got


cdef class Resampler(_ResamplerBase):
    """Streaming PCM16 resampler: ``process()`` any chunks, ``flush()`` the tail at the end.

    The output over any chunking of the input is bit-identical to the one-shot output; the state
    never resets on its own (silence, gaps and pauses are just samples).
    """

    def __init__(self, int src_rate_hz, int dst_rate_hz):
        self._setup(src_rate_hz, dst_rate_hz)

    def process(self, pcm16):
        """Feed PCM16 LE samples; returns the PCM16 output that is ready."""
        self._check()
        self._push_pcm16(pcm16)
        return self._emit_pcm16()

    def output_bytes(self, input_bytes):
        """Bytes ``process()`` would return for ``input_bytes`` more bytes of PCM16 input."""
        self._check()
        return 2 * vc_rs_ready(&self.rs, self.rs.n_in + (<int64_t>input_bytes >> 1))

    def process_into(self, pcm16, out):
        """Like ``process`` but writes into the writable buffer ``out``; returns bytes written.

        A too-small ``out`` raises ValueError before any input is consumed (size it with
        ``output_bytes``).
        """
        cdef Py_buffer src, dst
        cdef int64_t count
        cdef int rc
        self._check()
        PyObject_GetBuffer(pcm16, &src, PyBUF_SIMPLE)
        try:
            if src.len & 1:
                raise ValueError(f"PCM16 input must have an even number of bytes, got {src.len}")
            count = vc_rs_ready(&self.rs, self.rs.n_in + (src.len >> 1))
            PyObject_GetBuffer(out, &dst, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                if dst.len < 2 * count:
                    raise ValueError(f"output buffer holds {dst.len} bytes, {2 * count} needed")
                with nogil:
                    rc = vc_rs_push_pcm16(&self.rs, <const uint8_t *>src.buf, src.len >> 1)
                    if rc == 0:
                        vc_rs_emit(&self.rs, count, <int16_t *>dst.buf)
                        vc_i16_to_le(<int16_t *>dst.buf, count)
                        vc_rs_compact(&self.rs)
                if rc != 0:
                    raise MemoryError()
            finally:
                PyBuffer_Release(&dst)
        finally:
            PyBuffer_Release(&src)
        return 2 * count

    def flush(self):
        """Emit the tail (the output owed for the last input samples) and start a new stream."""
        self._check()
        return self._flush_pcm16()


cdef class FrameDecoder(_ResamplerBase):
    """One fused call per inbound carrier frame: base64 G.711 (8 kHz) -> PCM16 at ``dst_rate_hz``."""

    cdef bint alaw

    def __init__(self, int dst_rate_hz=16000, str encoding="ulaw"):
        if encoding not in ("ulaw", "alaw"):
            raise ValueError(f"encoding must be 'ulaw' or 'alaw', got {encoding!r}")
        self.alaw = encoding == "alaw"
        self._setup(8000, dst_rate_hz)

    def decode(self, payload):
        """Base64 payload (str or bytes) -> PCM16 LE at the decoder's rate."""
        cdef uint8_t *codes
        self._check()
        cdef int64_t n = _b64_decode_into(self, payload, &codes)
        self._push_law(codes, n, self.alaw)
        return self._emit_pcm16()

    def decode_raw(self, data):
        """Raw G.711 bytes -> PCM16 LE at the decoder's rate."""
        cdef Py_buffer src
        self._check()
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
        try:
            self._push_law(<const uint8_t *>src.buf, src.len, self.alaw)
        finally:
            PyBuffer_Release(&src)
        return self._emit_pcm16()

    def flush(self):
        """PCM16 tail of the stream."""
        self._check()
        return self._flush_pcm16()


cdef class FrameEncoder(_ResamplerBase):
    """One fused call per outbound carrier frame: PCM16 at ``src_rate_hz`` -> base64 G.711 8 kHz."""

    cdef bint alaw

    def __init__(self, int src_rate_hz=24000, str encoding="ulaw"):
        if encoding not in ("ulaw", "alaw"):
            raise ValueError(f"encoding must be 'ulaw' or 'alaw', got {encoding!r}")
        self.alaw = encoding == "alaw"
        self._setup(src_rate_hz, 8000)

    cdef object _finish(self, int16_t *pcm, int64_t count, bint b64):
        cdef object out
        cdef uint8_t *codes
        cdef int64_t i
        if not b64:
            out = PyBytes_FromStringAndSize(NULL, count)
            codes = <uint8_t *>PyBytes_AS_STRING(out)
        else:
            # the scratch buffer holds pcm; the codes go into its tail
            codes = <uint8_t *>(pcm + count)
        with nogil:
            vc_i16_to_le(pcm, count)
            if self.alaw:
                vc_alaw_encode(<const uint8_t *>pcm, count, codes)
            else:
                vc_ulaw_encode(<const uint8_t *>pcm, count, codes)
        if b64:
            out = PyBytes_FromStringAndSize(NULL, vc_b64_encoded_len(count))
            vc_b64_encode(codes, count, <uint8_t *>PyBytes_AS_STRING(out))
        return out

    cdef object _run(self, object pcm16, bint b64):
        cdef int16_t *pcm
        cdef int64_t count
        self._check()
        self._push_pcm16(pcm16)
        count = vc_rs_ready(&self.rs, self.rs.n_in)
        self._scratch(3 * count + 8)
        count = self._emit_i16(&pcm)
        return self._finish(pcm, count, b64)

    def encode(self, pcm16):
        """PCM16 LE at the encoder's rate -> base64 (ASCII bytes) of G.711 at 8 kHz."""
        return self._run(pcm16, True)

    def encode_raw(self, pcm16):
        """PCM16 LE at the encoder's rate -> raw G.711 bytes at 8 kHz."""
        return self._run(pcm16, False)

    def flush(self, bint b64=True):
        """The tail of the stream, base64 by default."""
        self._check()
        cdef int64_t count = vc_rs_tail_count(&self.rs)
        if vc_rs_pad_for_tail(&self.rs, count) != 0:
            raise MemoryError()
        cdef int16_t *pcm = <int16_t *>self._scratch(3 * count + 8)
        with nogil:
            vc_rs_emit(&self.rs, count, pcm)
        out = self._finish(pcm, count, b64)
        vc_rs_reset(&self.rs)
        return out
