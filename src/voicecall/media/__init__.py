"""The Python face of the compiled media core: G.711, resampling, carrier-frame codecs, VAD, jitter.

This is the only module that imports the compiled core (``voicecall._media``). Importing it when
the core is not built raises :class:`voicecall.errors.MediaCoreUnavailable` saying how to build it.
Pure-Python references of every kernel live in :mod:`voicecall.media.ref` (test oracles only).
"""

from __future__ import annotations

from ..errors import MediaCoreUnavailable, MediaError
from .filters import design_resampler_filter

try:
    from ._core import (
        MAX_RATE_HZ,
        MIN_RATE_HZ,
        SUPPORTED_RATES_HZ,
        FrameDecoder,
        FrameEncoder,
        Resampler,
        alaw_to_pcm16,
        alaw_to_pcm16_into,
        g711_simd_kernels,
        pcm16_to_alaw,
        pcm16_to_alaw_into,
        pcm16_to_ulaw,
        pcm16_to_ulaw_into,
        set_filter_designer,
        ulaw_to_pcm16,
        ulaw_to_pcm16_into,
    )
    from .jitter import JitterBuffer, JitterStats
    from .vad import ENERGY_FLOOR_DBFS, SPEECH_STARTED, SPEECH_STOPPED, VadEvent, VadFramer
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise MediaCoreUnavailable(
        "the compiled media core (voicecall._media) is not installed: "
        f"{exc}. Reinstall with `pip install .` so that it gets compiled."
    ) from exc

__all__ = [
    "BACKEND",
    "ENERGY_FLOOR_DBFS",
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "SPEECH_STARTED",
    "SPEECH_STOPPED",
    "SUPPORTED_RATES_HZ",
    "FrameDecoder",
    "FrameEncoder",
    "JitterBuffer",
    "JitterStats",
    "MediaFrameError",
    "Resampler",
    "VadEvent",
    "VadFramer",
    "alaw_to_pcm16",
    "alaw_to_pcm16_into",
    "g711_simd_kernels",
    "pcm16_to_alaw",
    "pcm16_to_alaw_into",
    "pcm16_to_ulaw",
    "pcm16_to_ulaw_into",
    "ulaw_to_pcm16",
    "ulaw_to_pcm16_into",
]

#: Which implementation backs this module; always the compiled core at runtime.
BACKEND = "compiled"


class MediaFrameError(MediaError):
    """A carrier media payload that cannot be decoded (bad base64, wrong size)."""


def _designer(src_rate_hz: int, dst_rate_hz: int) -> tuple[int, int, int, int, object]:
    f = design_resampler_filter(src_rate_hz, dst_rate_hz)
    return f.up, f.down, f.taps, f.delay, f.coefs


set_filter_designer(_designer, MediaFrameError)
