"""Provider output formats become µ-law 8 kHz identically however the response is chunked."""

from __future__ import annotations

import struct

import pytest

from voicecall.media import Resampler, pcm16_to_ulaw
from voicecall.tts import UlawConverter, UnsupportedOutputFormat, parse_output_format


def convert(name: str, data: bytes, chunk: int) -> bytes:
    """Feeds `data` in `chunk`-byte pieces and flushes."""
    converter = UlawConverter(parse_output_format(name))
    out = [converter.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return b"".join(out) + converter.flush()


def tone(rate_hz: int, seconds: float, freq_hz: float = 440.0) -> bytes:
    """A PCM16 sine tone."""
    import math

    n = int(rate_hz * seconds)
    return struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq_hz * i / rate_hz)) for i in range(n))
    )


def wav(pcm16: bytes, rate_hz: int) -> bytes:
    """A streamed WAV as espeak-ng writes it (placeholder sizes)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate_hz, rate_hz * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 0x7FFFF024)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 0x7FFFF000)
        + pcm16
    )


@pytest.mark.parametrize("name", ["ulaw_8000", "raw-8khz-8bit-mono-mulaw"])
def test_ulaw_passes_through(name: str) -> None:
    """µ-law 8 kHz output is played as-is."""
    data = bytes(range(256)) * 4
    assert convert(name, data, 7) == data


@pytest.mark.parametrize("chunk", [1, 3, 160, 961, 100_000])
def test_pcm_24k_matches_one_shot_conversion_at_any_chunking(chunk: int) -> None:
    """PCM16 24 kHz split anywhere (odd bytes too) gives the media core's one-shot µ-law."""
    pcm = tone(24000, 0.25)
    down = Resampler(24000, 8000)
    expected = pcm16_to_ulaw(down.process(pcm) + down.flush())
    assert convert("pcm", pcm, chunk) == expected
    assert len(expected) == len(pcm) // 2 // 3


@pytest.mark.parametrize(
    ("name", "rate"), [("pcm_16000", 16000), ("pcm_22050", 22050), ("pcm_44100", 44100)]
)
def test_pcm_at_other_rates_keeps_the_duration(name: str, rate: int) -> None:
    """PCM at any rate comes out as 8 kHz µ-law of the same duration (within 5 ms)."""
    out = convert(name, tone(rate, 1.0), 999)
    assert abs(len(out) - 8000) <= 40


def test_wav_header_is_parsed_not_played() -> None:
    """A streamed WAV's header is skipped; its PCM is converted at the header's rate."""
    pcm = tone(16000, 0.5)
    down = Resampler(16000, 8000)
    expected = pcm16_to_ulaw(down.process(pcm) + down.flush())
    assert convert("wav", wav(pcm, 16000), 5) == expected
    assert convert("wav", wav(pcm, 16000), 4096) == expected


@pytest.mark.parametrize("name", ["mp3_44100_128", "opus_48000_32", "pcm_0", "flac"])
def test_unsupported_formats_are_named(name: str) -> None:
    """A format we cannot play is an error naming it (SPEC §8.3)."""
    with pytest.raises(UnsupportedOutputFormat, match=f"format {name}$"):
        parse_output_format(name)


def test_a_stereo_wav_is_refused() -> None:
    """A WAV that is not 16-bit mono PCM is refused rather than played as noise."""
    header = wav(b"", 8000)
    stereo = header[:22] + struct.pack("<H", 2) + header[24:]
    with pytest.raises(UnsupportedOutputFormat, match="2 channels"):
        convert("wav", stereo + b"\x00" * 64, 64)
