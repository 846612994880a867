"""Provider output formats (SPEC §8.3) and their streaming conversion to µ-law 8 kHz (§5.5).

Sans-IO: bytes in, µ-law out, through the media core. The converter is stateful, so the output
over any chunking of a response is the output over the whole response.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

from voicecall.media import MAX_RATE_HZ, MIN_RATE_HZ, Resampler, pcm16_to_ulaw
from voicecall.tts.errors import UnsupportedOutputFormat

__all__ = [
    "OutputFormat",
    "UlawConverter",
    "parse_output_format",
]

Container = Literal["ulaw", "pcm16", "wav"]

_PCM_RATE = re.compile(r"pcm_(\d+)")
_ULAW_NAMES = frozenset({"ulaw_8000", "raw-8khz-8bit-mono-mulaw"})
_PCM_DEFAULT_RATE_HZ = 24000  # OpenAI's `pcm`
_WAV_HEADER_LIMIT = 4096  # a header longer than this is not one we can play


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What a provider sends back: µ-law 8 kHz, raw PCM16 LE mono at a rate, or a WAV stream."""

    name: str
    container: Container
    sample_rate_hz: int = 8000


def parse_output_format(name: str) -> OutputFormat:
    """The format a provider's `output_format` / `response_format` name stands for."""
    key = name.strip().lower()
    if key in _ULAW_NAMES:
        return OutputFormat(name, "ulaw", 8000)
    if key in ("pcm", "pcm16"):
        return OutputFormat(name, "pcm16", _PCM_DEFAULT_RATE_HZ)
    if key == "wav":
        return OutputFormat(name, "wav", 0)
    match = _PCM_RATE.fullmatch(key)
    if match and int(match.group(1)) > 0:
        return OutputFormat(name, "pcm16", int(match.group(1)))
    raise UnsupportedOutputFormat(f"unsupported telephony TTS output format {name}")


class _Pcm16ToUlaw:
    """PCM16 LE at any rate -> µ-law 8 kHz, one media-core resampler per stream."""

    def __init__(self, sample_rate_hz: int) -> None:
        self._carry = b""  # an odd trailing byte waits for its partner
        rate = sample_rate_hz
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise UnsupportedOutputFormat(
                f"unsupported telephony TTS output format pcm_{sample_rate_hz}"
            )
        self._resampler = Resampler(rate, 8000) if rate != 8000 else None

    def feed(self, data: bytes) -> bytes:
        if self._carry:
            data = self._carry + data
        cut = len(data) & ~1
        self._carry = data[cut:]
        pcm16 = data[:cut] if cut != len(data) else data
        if self._resampler is not None:
            pcm16 = self._resampler.process(pcm16)
        return pcm16_to_ulaw(pcm16) if pcm16 else b""

    def flush(self) -> bytes:
        self._carry = b""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        return pcm16_to_ulaw(tail) if tail else b""


def _parse_wav_header(data: bytes) -> tuple[int, int] | None:
    """(header length, sample rate) once the whole header is in `data`; None while incomplete.

    A streamed WAV carries a placeholder size (espeak-ng writes 0x7ffff000 when its output is a
    pipe), so the `data` chunk's size is ignored: everything after its header is audio.
    """
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UnsupportedOutputFormat("unsupported telephony TTS output format wav (no RIFF/WAVE)")
    offset = 12
    rate: int | None = None
    while len(data) >= offset + 8:
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        if chunk_id == b"data":
            if rate is None:
                raise UnsupportedOutputFormat(
                    "unsupported telephony TTS output format wav (no fmt)"
                )
            return offset + 8, rate
        end = offset + 8 + size + (size & 1)
        if len(data) < end:
            return None
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, offset + 8)
            if tag != 1 or channels != 1 or bits != 16:
                raise UnsupportedOutputFormat(
                    "unsupported telephony TTS output format "
                    f"wav (format {tag}, {channels} channels, {bits} bits)"
                )
        offset = end
    if len(data) > _WAV_HEADER_LIMIT:
        raise UnsupportedOutputFormat("unsupported telephony TTS output format wav (no data)")
    return None


class UlawConverter:
    """Any accepted provider output -> µ-law 8 kHz, chunk by chunk; ``flush()`` at the end."""

    def __init__(self, output_format: OutputFormat) -> None:
        self.output_format = output_format
        self._pending = b""  # WAV bytes until the header is complete
        self._pcm: _Pcm16ToUlaw | None = None
        if output_format.container == "pcm16":
            self._pcm = _Pcm16ToUlaw(output_format.sample_rate_hz)

    def feed(self, data: bytes) -> bytes:
        """The µ-law ready after this chunk (may be empty)."""
        container = self.output_format.container
        if container == "ulaw":
            return bytes(data)
        if self._pcm is None:  # a WAV stream still in its header
            self._pending += data
            parsed = _parse_wav_header(self._pending)
            if parsed is None:
                return b""
            header_len, rate = parsed
            self._pcm = _Pcm16ToUlaw(rate)
            data, self._pending = self._pending[header_len:], b""
        return self._pcm.feed(data)

    def flush(self) -> bytes:
        """The µ-law still owed at the end of the stream (the resampler's tail)."""
        return self._pcm.flush() if self._pcm is not None else b""
