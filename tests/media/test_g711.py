"""G.711 u-law / A-law: bit-exact with the classic reference (audioop), buffers, errors, _into."""

from __future__ import annotations

import struct
import sys
from array import array
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voicecall.media as media

LAWS = ("ulaw", "alaw")
ALL_CODES = bytes(range(256))
ALL_PCM16 = struct.pack("<65536h", *range(-32768, 32768))
int16_lists = st.lists(st.integers(-32768, 32767), max_size=400)


def _le(native_pcm16: bytes) -> bytes:
    """audioop speaks native byte order; our PCM16 is little-endian."""
    if sys.byteorder == "little":
        return native_pcm16
    swapped = array("h", native_pcm16)  # pragma: no cover - big-endian hosts
    swapped.byteswap()  # pragma: no cover
    return swapped.tobytes()  # pragma: no cover


def _decode(codec: Any, law: str) -> Any:
    return getattr(codec, f"{law}_to_pcm16")


def _encode(codec: Any, law: str) -> Any:
    return getattr(codec, f"pcm16_to_{law}")


@pytest.mark.parametrize("law", LAWS)
def test_decode_matches_audioop_for_all_256_codes(
    g711: SimpleNamespace, audioop: ModuleType, law: str
) -> None:
    """Every G.711 code decodes to exactly the sample the classic reference decoder gives."""
    oracle = audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin
    assert _decode(g711, law)(ALL_CODES) == _le(oracle(ALL_CODES, 2))


@pytest.mark.parametrize("law", LAWS)
def test_encode_matches_audioop_for_all_65536_samples(
    g711: SimpleNamespace, audioop: ModuleType, law: str
) -> None:
    """Every 16-bit sample encodes to exactly the code the classic reference encoder gives."""
    oracle = audioop.lin2ulaw if law == "ulaw" else audioop.lin2alaw
    native = ALL_PCM16 if sys.byteorder == "little" else _le(ALL_PCM16)
    assert _encode(g711, law)(ALL_PCM16) == oracle(native, 2)


@pytest.mark.parametrize("law", LAWS)
def test_codes_survive_decode_then_encode(g711: SimpleNamespace, law: str) -> None:
    """Re-encoding a decoded code gives the code back (u-law's negative zero 0x7F becomes 0xFF)."""
    again = _encode(g711, law)(_decode(g711, law)(ALL_CODES))
    expected = bytearray(ALL_CODES)
    if law == "ulaw":
        expected[0x7F] = 0xFF
    assert again == bytes(expected)


@pytest.mark.parametrize("law", LAWS)
@settings(max_examples=60, deadline=None)
@given(samples=int16_lists)
def test_pcm_round_trip_stays_close_and_is_stable(
    g711: SimpleNamespace, law: str, samples: list[int]
) -> None:
    """Encoding then decoding PCM loses at most G.711's quantization step, and only once."""
    pcm = struct.pack(f"<{len(samples)}h", *samples)
    codes = _encode(g711, law)(pcm)
    assert len(codes) == len(samples)
    back = struct.unpack(f"<{len(samples)}h", _decode(g711, law)(codes))
    for x, y in zip(samples, back, strict=True):
        assert abs(y - x) <= abs(x) / 16 + 16
    assert _encode(g711, law)(_decode(g711, law)(codes)) == codes


def _pcm_buffers(pcm: bytes) -> list[Any]:
    big = b"\x01\x02" + pcm + b"\x03\x04"
    return [
        bytearray(pcm),
        memoryview(pcm),
        memoryview(big)[2:-2],
        array("h", pcm) if sys.byteorder == "little" else bytearray(pcm),
        np.frombuffer(pcm, dtype="<i2").copy(),
    ]


def _code_buffers(codes: bytes) -> list[Any]:
    big = b"\xaa" + codes + b"\xbb"
    return [
        bytearray(codes),
        memoryview(codes),
        memoryview(big)[1:-1],
        array("B", codes),
        np.frombuffer(codes, dtype=np.uint8).copy(),
    ]


@pytest.mark.parametrize("law", LAWS)
def test_any_contiguous_buffer_is_accepted(g711: SimpleNamespace, law: str) -> None:
    """bytearray, memoryview (also a slice), array and numpy input give the same result as bytes."""
    pcm = ALL_PCM16[::97][: 2 * 300]
    codes = ALL_CODES[::3]
    want_codes = _encode(g711, law)(pcm)
    want_pcm = _decode(g711, law)(codes)
    for buf in _pcm_buffers(pcm):
        assert _encode(g711, law)(buf) == want_codes, type(buf)
    for buf in _code_buffers(codes):
        assert _decode(g711, law)(buf) == want_pcm, type(buf)


@pytest.mark.parametrize("law", LAWS)
def test_empty_input_gives_empty_output(g711: SimpleNamespace, law: str) -> None:
    """Empty PCM and empty G.711 input convert to empty bytes rather than failing."""
    assert _encode(g711, law)(b"") == b""
    assert _decode(g711, law)(b"") == b""


@pytest.mark.parametrize("law", LAWS)
def test_non_contiguous_buffer_is_refused(g711: SimpleNamespace, law: str) -> None:
    """A strided view is refused with an error instead of being read as if it were contiguous."""
    strided = memoryview(bytes(range(200)))[::2]
    with pytest.raises((BufferError, TypeError, ValueError)):
        _decode(g711, law)(strided)
    with pytest.raises((BufferError, TypeError, ValueError)):
        _encode(g711, law)(strided)


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("length", [1, 3, 321])
def test_odd_length_pcm_raises_naming_the_length(
    g711: SimpleNamespace, law: str, length: int
) -> None:
    """Encoding PCM16 with an odd byte count raises ValueError whose message gives that count."""
    with pytest.raises(ValueError, match=rf"\b{length}\b"):
        _encode(g711, law)(bytes(length))


# --- the allocation-free *_into forms (compiled only: the reference has no buffers to fill)


@pytest.mark.parametrize("law", LAWS)
def test_decode_into_fills_the_callers_buffer(law: str) -> None:
    """*_to_pcm16_into writes decoded samples into the given buffer and returns bytes written."""
    decode_into = getattr(media, f"{law}_to_pcm16_into")
    codes = ALL_CODES
    out = bytearray(b"\x55" * (2 * len(codes) + 10))
    written = decode_into(codes, out)
    assert written == 2 * len(codes)
    assert bytes(out[:written]) == getattr(media, f"{law}_to_pcm16")(codes)
    assert out[written:] == b"\x55" * 10  # nothing past what it reported


@pytest.mark.parametrize("law", LAWS)
def test_encode_into_fills_the_callers_buffer(law: str) -> None:
    """pcm16_to_*_into writes codes into the given buffer (numpy here), returns bytes written."""
    encode_into = getattr(media, f"pcm16_to_{law}_into")
    out = np.full(len(ALL_PCM16) // 2 + 3, 0x55, dtype=np.uint8)
    written = encode_into(memoryview(ALL_PCM16), out)
    assert written == len(ALL_PCM16) // 2
    assert out[:written].tobytes() == getattr(media, f"pcm16_to_{law}")(ALL_PCM16)
    assert out[written:].tolist() == [0x55] * 3


@pytest.mark.parametrize("law", LAWS)
def test_into_writes_at_an_offset_through_a_memoryview_slice(law: str) -> None:
    """Writing into a slice of a larger buffer fills exactly that slice."""
    frame = ALL_CODES[:160]
    out = bytearray(1000)
    written = getattr(media, f"{law}_to_pcm16_into")(frame, memoryview(out)[100:420])
    assert written == 320
    assert out[100:420] == getattr(media, f"{law}_to_pcm16")(frame)
    assert out[:100] == bytes(100)
    assert out[420:] == bytes(580)


@pytest.mark.parametrize("law", LAWS)
def test_into_with_too_small_buffer_raises_and_writes_nothing(law: str) -> None:
    """A too-small output buffer raises ValueError giving both sizes and is left untouched."""
    out = bytearray(b"\x55" * 319)
    with pytest.raises(ValueError, match=r"319.*320"):
        getattr(media, f"{law}_to_pcm16_into")(ALL_CODES[:160], out)
    assert out == b"\x55" * 319
    small = bytearray(b"\x55" * 159)
    with pytest.raises(ValueError, match=r"159.*160"):
        getattr(media, f"pcm16_to_{law}_into")(ALL_PCM16[:320], small)
    assert small == b"\x55" * 159


@pytest.mark.parametrize("law", LAWS)
def test_encode_into_odd_length_raises_naming_the_length(law: str) -> None:
    """pcm16_to_*_into with an odd PCM byte count raises ValueError giving the count."""
    with pytest.raises(ValueError, match=r"\b5\b"):
        getattr(media, f"pcm16_to_{law}_into")(bytes(5), bytearray(10))


@pytest.mark.parametrize("law", LAWS)
def test_into_refuses_a_read_only_output(law: str) -> None:
    """Passing bytes (immutable) as the output buffer raises instead of writing into it."""
    with pytest.raises((BufferError, TypeError)):
        getattr(media, f"{law}_to_pcm16_into")(ALL_CODES[:4], bytes(8))
