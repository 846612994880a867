"""Fused carrier-frame codecs: equal to base64 + G.711 ref + Resampler; strict base64."""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.errors import MediaError
from voicecall.media import FrameDecoder, FrameEncoder, MediaFrameError, Resampler
from voicecall.media.ref import g711 as ref_g711

RATES = (8000, 16000, 24000, 48000)
ENCODINGS = ("ulaw", "alaw")
codes_st = st.binary(max_size=480)
pcm_st = st.lists(st.integers(-32768, 32767), max_size=480)
cuts_st = st.lists(st.integers(0, 480), max_size=6)


def _split(data: bytes, cuts: list[int], unit: int = 1) -> list[bytes]:
    bounds = [0, *sorted(unit * c for c in cuts if 0 < unit * c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _ref_decode(encoding: str, codes: bytes) -> bytes:
    return ref_g711.ulaw_to_pcm16(codes) if encoding == "ulaw" else ref_g711.alaw_to_pcm16(codes)


def _ref_encode(encoding: str, pcm16: bytes) -> bytes:
    return ref_g711.pcm16_to_ulaw(pcm16) if encoding == "ulaw" else ref_g711.pcm16_to_alaw(pcm16)


# --- equivalence with the composed path ------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("dst_rate_hz", RATES)
@settings(max_examples=15, deadline=None)
@given(codes=codes_st, cuts=cuts_st, as_str=st.booleans())
def test_decode_equals_base64_then_g711_then_resampler(
    encoding: str, dst_rate_hz: int, codes: bytes, cuts: list[int], as_str: bool
) -> None:
    """Each decode() returns what b64decode + G.711 ref + Resampler(8000, dst) give per frame."""
    decoder = FrameDecoder(dst_rate_hz, encoding)
    composed = Resampler(8000, dst_rate_hz)
    for chunk in _split(codes, cuts):
        payload: str | bytes = base64.b64encode(chunk)
        if as_str:
            payload = payload.decode("ascii")
        assert decoder.decode(payload) == composed.process(_ref_decode(encoding, chunk))
    assert decoder.flush() == composed.flush()


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("dst_rate_hz", [16000, 24000])
@settings(max_examples=15, deadline=None)
@given(codes=codes_st, cuts=cuts_st, raw=st.lists(st.booleans(), min_size=7, max_size=7))
def test_decode_raw_and_decode_share_one_stream(
    encoding: str, dst_rate_hz: int, codes: bytes, cuts: list[int], raw: list[bool]
) -> None:
    """decode_raw(bytes) and decode(base64) mix in one stream, equal to the composed path."""
    decoder = FrameDecoder(dst_rate_hz, encoding)
    composed = Resampler(8000, dst_rate_hz)
    for chunk, is_raw in zip(_split(codes, cuts), raw, strict=False):
        got = (
            decoder.decode_raw(bytearray(chunk))
            if is_raw
            else decoder.decode(base64.b64encode(chunk))
        )
        assert got == composed.process(_ref_decode(encoding, chunk))
    assert decoder.flush() == composed.flush()


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("src_rate_hz", RATES)
@settings(max_examples=15, deadline=None)
@given(samples=pcm_st, cuts=cuts_st)
def test_encode_equals_resampler_then_g711_then_base64(
    encoding: str, src_rate_hz: int, samples: list[int], cuts: list[int]
) -> None:
    """Each encode() returns b64encode(G.711 reference(Resampler(src, 8000).process(frame)))."""
    pcm = np.asarray(samples, dtype="<i2").tobytes()
    encoder = FrameEncoder(src_rate_hz, encoding)
    composed = Resampler(src_rate_hz, 8000)
    for chunk in _split(pcm, cuts, unit=2):
        assert encoder.encode(chunk) == base64.b64encode(
            _ref_encode(encoding, composed.process(chunk))
        )
    assert encoder.flush() == base64.b64encode(_ref_encode(encoding, composed.flush()))


@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=15, deadline=None)
@given(samples=pcm_st, cuts=cuts_st)
def test_encode_raw_and_raw_flush_skip_base64(
    encoding: str, samples: list[int], cuts: list[int]
) -> None:
    """encode_raw() and flush(b64=False) return the G.711 bytes themselves."""
    pcm = np.asarray(samples, dtype="<i2").tobytes()
    encoder = FrameEncoder(24000, encoding)
    composed = Resampler(24000, 8000)
    for chunk in _split(pcm, cuts, unit=2):
        assert encoder.encode_raw(memoryview(chunk)) == _ref_encode(
            encoding, composed.process(chunk)
        )
    assert encoder.flush(b64=False) == _ref_encode(encoding, composed.flush())


def test_defaults_are_16k_decode_and_24k_encode_in_ulaw() -> None:
    """FrameDecoder() makes 16 kHz PCM from u-law; FrameEncoder() takes 24 kHz PCM to u-law."""
    frame = bytes(range(0, 256, 2)) + bytes(32)  # 160 codes, 20 ms
    r = Resampler(8000, 16000)
    assert FrameDecoder().decode(base64.b64encode(frame)) == r.process(
        ref_g711.ulaw_to_pcm16(frame)
    )
    pcm = np.arange(480, dtype="<i2").tobytes()
    r = Resampler(24000, 8000)
    assert FrameEncoder().encode(pcm) == base64.b64encode(ref_g711.pcm16_to_ulaw(r.process(pcm)))


def test_alaw_decoder_differs_from_ulaw_decoder() -> None:
    """The encoding argument matters: the same payload decodes differently as A-law and u-law."""
    payload = base64.b64encode(bytes(range(160)))
    assert FrameDecoder(8000, "alaw").decode(payload) == ref_g711.alaw_to_pcm16(bytes(range(160)))
    assert FrameDecoder(8000, "alaw").decode(payload) != FrameDecoder(8000, "ulaw").decode(payload)


def test_a_20ms_frame_round_trips_through_encoder_and_decoder() -> None:
    """A 24 kHz tone encoded to a carrier frame and decoded back at 24 kHz keeps its shape."""
    t = np.arange(24000 * 0.2) / 24000
    pcm = np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes()
    encoder, decoder = FrameEncoder(24000), FrameDecoder(24000)
    frames = [encoder.encode(pcm[i : i + 960]) for i in range(0, len(pcm), 960)]
    assert all(len(base64.b64decode(f)) == 160 for f in frames[1:-1])
    out = (
        b"".join(decoder.decode(f) for f in frames)
        + decoder.decode(encoder.flush())
        + decoder.flush()
    )
    y = np.frombuffer(out, dtype="<i2").astype(float)
    x = np.frombuffer(pcm, dtype="<i2").astype(float)
    assert len(y) == len(x)
    mid = slice(1200, 3600)  # away from the start/end transients
    err = np.sqrt(np.mean((y[mid] - x[mid]) ** 2)) / np.sqrt(np.mean(x[mid] ** 2))
    assert err < 0.05  # G.711's ~38 dB SNR, with margin


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        ("AAAAA", r"length 5 .*multiple of 4"),
        (b"AAA", r"length 3 .*multiple of 4"),
        ("AA!A", r"0x21 at offset 2"),
        ("AAAAAAA\n", r"0x0a at offset 7"),
        ("AAA AAAA", r"0x20 at offset 3"),
        ("AA==AAAA", r"0x3d at offset 2"),  # padding before the end
        ("=AAA", r"0x3d at offset 0"),
        ("AA=A", r"0x3d at offset 2"),
        ("A===", r"0x3d at offset 1"),
        ("AAAA====", r"0x3d at offset 4"),
    ],
)
def test_bad_base64_raises_media_frame_error_saying_what_and_where(payload: Any, what: str) -> None:
    """Bad base64 raises MediaFrameError (MediaError, ValueError) naming the problem and offset."""
    decoder = FrameDecoder()
    with pytest.raises(MediaFrameError, match=what) as info:
        decoder.decode(payload)
    assert isinstance(info.value, MediaError)
    assert isinstance(info.value, ValueError)


def test_non_ascii_text_payload_is_a_media_frame_error() -> None:
    """A str payload with non-ASCII characters raises MediaFrameError, not a Unicode error."""
    with pytest.raises(MediaFrameError):
        FrameDecoder().decode("AAA\u00e9AAA")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_decoder_stays_usable_after_a_bad_frame(encoding: str) -> None:
    """After a bad frame, later frames decode as if the bad one had never arrived."""
    frames = [base64.b64encode(bytes([(i * 37 + k) & 0xFF for k in range(160)])) for i in range(4)]
    clean, hit = FrameDecoder(24000, encoding), FrameDecoder(24000, encoding)
    want = [clean.decode(f) for f in frames] + [clean.flush()]
    got = [hit.decode(frames[0]), hit.decode(frames[1])]
    for bad in ("AAAAA", "AA!A" * 40, frames[2][:-4] + b"A=AA"):
        with pytest.raises(MediaFrameError):
            hit.decode(bad)
    got += [hit.decode(frames[2]), hit.decode(frames[3]), hit.flush()]
    assert got == want


@settings(max_examples=200, deadline=None)
@given(payload=st.text(alphabet="AQgw+/9z=!\n ", max_size=16))
def test_accepts_only_what_strict_base64_accepts(payload: str) -> None:
    """Whatever decode() accepts, strict b64decode accepts too, with the same bytes."""
    try:
        got = FrameDecoder(8000).decode(payload)
    except MediaFrameError:
        return
    try:
        codes = base64.b64decode(payload, validate=True)
    except binascii.Error:
        pytest.fail(f"accepted {payload!r}, which strict base64 rejects")
    assert got == ref_g711.ulaw_to_pcm16(codes)


@settings(max_examples=100, deadline=None)
@given(codes=st.binary(max_size=40))
def test_every_canonical_payload_is_accepted(codes: bytes) -> None:
    """Any payload from a standard base64 encoder decodes: strictness rejects no real frame."""
    assert FrameDecoder(8000).decode(base64.b64encode(codes)) == ref_g711.ulaw_to_pcm16(codes)


def test_empty_payload_yields_no_audio() -> None:
    """An empty payload (str or bytes) decodes to no samples and does not disturb the stream."""
    decoder = FrameDecoder()
    assert decoder.decode("") == b""
    assert decoder.decode(b"") == b""
    assert decoder.flush() == b""


@pytest.mark.parametrize("make", [FrameDecoder, FrameEncoder])
def test_bad_constructor_arguments_raise_value_error(make: Any) -> None:
    """An unknown encoding name or an unsupported rate raises ValueError naming it."""
    with pytest.raises(ValueError, match="mulaw"):
        make(16000, "mulaw")
    with pytest.raises(ValueError, match="96000"):
        make(96000, "ulaw")


def test_encoder_odd_length_pcm_raises_naming_the_length() -> None:
    """FrameEncoder.encode() with an odd PCM16 byte count raises ValueError giving the count."""
    with pytest.raises(ValueError, match=r"\b961\b"):
        FrameEncoder().encode(bytes(961))


def test_payload_of_the_wrong_type_raises_type_error() -> None:
    """A payload that is neither text nor a buffer (e.g. an int) raises TypeError."""
    with pytest.raises(TypeError):
        FrameDecoder().decode(12345)
