"""Typed face of the compiled G.711 and resampler modules (type checkers read the declarations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "SUPPORTED_RATES_HZ",
    "FrameDecoder",
    "FrameEncoder",
    "Resampler",
    "alaw_to_pcm16",
    "alaw_to_pcm16_into",
    "g711_simd_kernels",
    "pcm16_to_alaw",
    "pcm16_to_alaw_into",
    "pcm16_to_ulaw",
    "pcm16_to_ulaw_into",
    "set_filter_designer",
    "ulaw_to_pcm16",
    "ulaw_to_pcm16_into",
]

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Buffer

    SUPPORTED_RATES_HZ: tuple[int, ...]
    MIN_RATE_HZ: int
    MAX_RATE_HZ: int

    def ulaw_to_pcm16(data: Buffer) -> bytes: ...
    def alaw_to_pcm16(data: Buffer) -> bytes: ...
    def pcm16_to_ulaw(data: Buffer) -> bytes: ...
    def pcm16_to_alaw(data: Buffer) -> bytes: ...
    def ulaw_to_pcm16_into(data: Buffer, out: Buffer) -> int: ...
    def alaw_to_pcm16_into(data: Buffer, out: Buffer) -> int: ...
    def pcm16_to_ulaw_into(data: Buffer, out: Buffer) -> int: ...
    def pcm16_to_alaw_into(data: Buffer, out: Buffer) -> int: ...
    def g711_simd_kernels(enable: bool | None = None) -> bool: ...
    def set_filter_designer(
        designer: Callable[[int, int], tuple[int, int, int, int, object]],
        frame_error: type[Exception] | None = None,
    ) -> None: ...

    class _Stream:
        src_rate_hz: int
        dst_rate_hz: int

        @property
        def delay_ms(self) -> float: ...
        @property
        def samples_in(self) -> int: ...
        @property
        def samples_out(self) -> int: ...
        def reset(self) -> None: ...

    class Resampler(_Stream):
        """Streaming PCM16 resampler (see the compiled module's docstring)."""

        def __init__(self, src_rate_hz: int, dst_rate_hz: int) -> None: ...
        def process(self, pcm16: Buffer) -> bytes: ...
        def output_bytes(self, input_bytes: int) -> int: ...
        def process_into(self, pcm16: Buffer, out: Buffer) -> int: ...
        def flush(self) -> bytes: ...

    class FrameDecoder(_Stream):
        """Base64 G.711 8 kHz carrier payload -> PCM16 at ``dst_rate_hz``, in one call."""

        def __init__(self, dst_rate_hz: int = 16000, encoding: str = "ulaw") -> None: ...
        def decode(self, payload: str | Buffer) -> bytes: ...
        def decode_raw(self, data: Buffer) -> bytes: ...
        def flush(self) -> bytes: ...

    class FrameEncoder(_Stream):
        """PCM16 at ``src_rate_hz`` -> base64 G.711 8 kHz carrier payload, in one call."""

        def __init__(self, src_rate_hz: int = 24000, encoding: str = "ulaw") -> None: ...
        def encode(self, pcm16: Buffer) -> bytes: ...
        def encode_raw(self, pcm16: Buffer) -> bytes: ...
        def flush(self, b64: bool = True) -> bytes: ...

else:
    from voicecall._media.g711 import (
        alaw_to_pcm16,
        alaw_to_pcm16_into,
        pcm16_to_alaw,
        pcm16_to_alaw_into,
        pcm16_to_ulaw,
        pcm16_to_ulaw_into,
        ulaw_to_pcm16,
        ulaw_to_pcm16_into,
    )
    from voicecall._media.g711 import simd_kernels as g711_simd_kernels
    from voicecall._media.resample import (
        MAX_RATE_HZ,
        MIN_RATE_HZ,
        SUPPORTED_RATES_HZ,
        FrameDecoder,
        FrameEncoder,
        Resampler,
        set_filter_designer,
    )
