# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""G.711 u-law / A-law codecs over any contiguous buffer (PCM16 is signed little-endian)."""

include "common.pxi"

vc_g711_init()

ctypedef void (*codec_fn)(const uint8_t *, size_t, uint8_t *) noexcept nogil


cdef inline object _decode(object data, codec_fn fn):
    cdef Py_buffer src
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    cdef Py_ssize_t n = src.len
    cdef object out
    cdef uint8_t *dst
    try:
        out = PyBytes_FromStringAndSize(NULL, 2 * n)
        dst = <uint8_t *>PyBytes_AS_STRING(out)
        if n >= 4096:
            with nogil:
                fn(<const uint8_t *>src.buf, <size_t>n, dst)
        else:
            fn(<const uint8_t *>src.buf, <size_t>n, dst)
    finally:
        PyBuffer_Release(&src)
    return out


cdef inline object _encode(object data, codec_fn fn):
    cdef Py_buffer src
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    cdef Py_ssize_t n = src.len
    cdef object out
    cdef uint8_t *dst
    try:
        if n & 1:
            raise ValueError(f"PCM16 input must have an even number of bytes, got {n}")
        out = PyBytes_FromStringAndSize(NULL, n >> 1)
        dst = <uint8_t *>PyBytes_AS_STRING(out)
        if n >= 8192:
            with nogil:
                fn(<const uint8_t *>src.buf, <size_t>(n >> 1), dst)
        else:
            fn(<const uint8_t *>src.buf, <size_t>(n >> 1), dst)
    finally:
        PyBuffer_Release(&src)
    return out


cdef inline Py_ssize_t _into(object data, object dst, codec_fn fn, bint encode) except -1:
    cdef Py_buffer src, out
    cdef Py_ssize_t n, need
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    try:
        n = src.len
        if encode and (n & 1):
            raise ValueError(f"PCM16 input must have an even number of bytes, got {n}")
        need = (n >> 1) if encode else 2 * n
        PyObject_GetBuffer(dst, &out, PyBUF_SIMPLE | PyBUF_WRITABLE)
        try:
            if out.len < need:
                raise ValueError(f"output buffer holds {out.len} bytes, {need} needed")
            with nogil:
                fn(<const uint8_t *>src.buf, <size_t>((n >> 1) if encode else n),
                   <uint8_t *>out.buf)
        finally:
            PyBuffer_Release(&out)
    finally:
        PyBuffer_Release(&src)
    return need


def ulaw_to_pcm16(data):
    """Decode u-law bytes to PCM16 little-endian."""
    return _decode(data, vc_ulaw_decode)


def alaw_to_pcm16(data):
    """Decode A-law bytes to PCM16 little-endian."""
    return _decode(data, vc_alaw_decode)


def pcm16_to_ulaw(data):
    """Encode PCM16 little-endian to u-law; odd-length input raises ValueError."""
    return _encode(data, vc_ulaw_encode)


def pcm16_to_alaw(data):
    """Encode PCM16 little-endian to A-law; odd-length input raises ValueError."""
    return _encode(data, vc_alaw_encode)


def ulaw_to_pcm16_into(data, out):
    """Decode into a writable buffer of at least 2*len(data) bytes; returns bytes written."""
    return _into(data, out, vc_ulaw_decode, False)


def alaw_to_pcm16_into(data, out):
    """Decode into a writable buffer of at least 2*len(data) bytes; returns bytes written."""
    return _into(data, out, vc_alaw_decode, False)


def pcm16_to_ulaw_into(data, out):
    """Encode into a writable buffer of at least len(data)//2 bytes; returns bytes written."""
    return _into(data, out, vc_ulaw_encode, True)


def pcm16_to_alaw_into(data, out):
    """Encode into a writable buffer of at least len(data)//2 bytes; returns bytes written."""
    return _into(data, out, vc_alaw_encode, True)


def simd_kernels(enable=None):
    """Whether the AVX2 kernels are in use; ``enable=False`` forces the table loops (for tests)."""
    return bool(vc_g711_simd(-1 if enable is None else int(bool(enable))))
