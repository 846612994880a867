# Shared C declarations for the media modules (included, not cimported: see DESIGN.md's trap).
from libc.stdint cimport uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cdef extern from "g711.h" nogil:
    void vc_g711_init()
    int vc_g711_simd(int enable)
    void vc_ulaw_decode(const uint8_t *src, size_t n, uint8_t *dst)
    void vc_alaw_decode(const uint8_t *src, size_t n, uint8_t *dst)
    void vc_ulaw_encode(const uint8_t *src, size_t nsamples, uint8_t *dst)
    void vc_alaw_encode(const uint8_t *src, size_t nsamples, uint8_t *dst)
    uint8_t vc_ulaw_enc1(int16_t s)
    int16_t vc_ulaw_dec[256]
