"""Provider audio formats and the one-step conversion of carrier µ-law 8 kHz into them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voicecall.errors import ConfigError
from voicecall.media import FrameDecoder, pcm16_to_alaw, ulaw_to_pcm16

__all__ = ["AudioConverter", "AudioFormat", "Encoding", "normalize_encoding"]

Encoding = Literal["ulaw", "alaw", "pcm16"]

# Config spellings accepted for each encoding (SPEC §6.1 aliases plus the providers' own names).
_ENCODING_ALIASES: dict[str, Encoding] = {
    "ulaw": "ulaw",
    "mulaw": "ulaw",
    "g711_ulaw": "ulaw",
    "pcmu": "ulaw",
    "pcm_mulaw": "ulaw",
    "alaw": "alaw",
    "g711_alaw": "alaw",
    "pcma": "alaw",
    "pcm_alaw": "alaw",
    "pcm": "pcm16",
    "pcm16": "pcm16",
    "linear16": "pcm16",
    "pcm_s16le": "pcm16",
}


def normalize_encoding(value: str) -> Encoding:
    """The canonical encoding for a config spelling; an unknown one is a ConfigError."""
    try:
        return _ENCODING_ALIASES[value.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(_ENCODING_ALIASES))
        raise ConfigError(f"unknown audio encoding {value!r} (use one of {known})") from None


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What a provider is sent: an encoding at a sample rate, mono."""

    encoding: Encoding = "ulaw"
    sample_rate_hz: int = 8000

    @property
    def bytes_per_second(self) -> int:
        """Bytes of one second of audio in this format."""
        return self.sample_rate_hz * (2 if self.encoding == "pcm16" else 1)

    def bytes_for_ms(self, ms: int) -> int:
        """Bytes of ``ms`` milliseconds, rounded down to whole samples."""
        sample_bytes = 2 if self.encoding == "pcm16" else 1
        return self.bytes_per_second * ms // 1000 // sample_bytes * sample_bytes


class AudioConverter:
    """Carrier µ-law 8 kHz -> a provider format in one media-core call; stateful across frames."""

    def __init__(self, target: AudioFormat) -> None:
        self.target = target
        if target.encoding != "pcm16" and target.sample_rate_hz != 8000:
            raise ConfigError(f"{target.encoding} audio is 8000 Hz only")
        # µ-law -> PCM16 at another rate is one fused decode + resample, with the filter state
        # kept across frames (no chunk-boundary clicks).
        self._decoder = (
            FrameDecoder(target.sample_rate_hz, "ulaw")
            if target.encoding == "pcm16" and target.sample_rate_hz != 8000
            else None
        )

    def convert(self, ulaw_8k: bytes) -> bytes:
        """The provider-format bytes for one chunk of carrier audio."""
        encoding = self.target.encoding
        if encoding == "ulaw":
            return ulaw_8k
        if self._decoder is not None:
            return self._decoder.decode_raw(ulaw_8k)
        pcm16 = ulaw_to_pcm16(ulaw_8k)
        return pcm16 if encoding == "pcm16" else pcm16_to_alaw(pcm16)
