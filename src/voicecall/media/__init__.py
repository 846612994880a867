"""The Python face of the compiled media core: G.711, resampling, carrier-frame codecs, VAD, jitter.

This is the only module that imports the compiled core (``voicecall._media``). Importing it when
the core is not built raises :class:`voicecall.errors.MediaCoreUnavailable` saying how to build it.
"""

from __future__ import annotations

from ..errors import MediaCoreUnavailable, MediaError
from .filters import design_resampler_filter

try:
    from .._media import g711 as _g711
    from .._media import resample as _resample
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise MediaCoreUnavailable(
        "the compiled media core (voicecall._media) is not installed: "
        f"{exc}. Reinstall with `pip install .` so that it gets compiled."
    ) from exc

__all__ = [
    "BACKEND",
    "SUPPORTED_RATES_HZ",
    "FrameDecoder",
    "FrameEncoder",
    "MediaFrameError",
    "Resampler",
    "alaw_to_pcm16",
    "alaw_to_pcm16_into",
    "pcm16_to_alaw",
    "pcm16_to_alaw_into",
    "pcm16_to_ulaw",
    "pcm16_to_ulaw_into",
    "ulaw_to_pcm16",
    "ulaw_to_pcm16_into",
]

#: Which implementation backs this module; always the compiled core at runtime.
BACKEND = "compiled"


def _designer(src_rate_hz: int, dst_rate_hz: int) -> tuple[int, int, int, int, object]:
    f = design_resampler_filter(src_rate_hz, dst_rate_hz)
    return f.up, f.down, f.taps, f.delay, f.coefs


class MediaFrameError(MediaError):
    """A carrier media payload that cannot be decoded (bad base64, wrong size)."""


_resample.set_filter_designer(_designer, MediaFrameError)

ulaw_to_pcm16 = _g711.ulaw_to_pcm16
alaw_to_pcm16 = _g711.alaw_to_pcm16
pcm16_to_ulaw = _g711.pcm16_to_ulaw
pcm16_to_alaw = _g711.pcm16_to_alaw
ulaw_to_pcm16_into = _g711.ulaw_to_pcm16_into
alaw_to_pcm16_into = _g711.alaw_to_pcm16_into
pcm16_to_ulaw_into = _g711.pcm16_to_ulaw_into
pcm16_to_alaw_into = _g711.pcm16_to_alaw_into
Resampler = _resample.Resampler
FrameDecoder = _resample.FrameDecoder
FrameEncoder = _resample.FrameEncoder
SUPPORTED_RATES_HZ: tuple[int, ...] = _resample.SUPPORTED_RATES_HZ
