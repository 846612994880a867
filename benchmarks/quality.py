"""One harness for every resampler contender: 1 kHz SNR, passband, alias/image rejection, µs/frame.

``python -m benchmarks.quality`` (from the repository root) prints the markdown table that
``benchmarks/README.md`` shows: speed beside quality, each contender measured the same way.
"""

from __future__ import annotations

import argparse
import math
import statistics
import timeit
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import soxr

from voicecall.media import Resampler

__all__ = [
    "CONTENDERS",
    "TABLE_PAIRS",
    "Contender",
    "Quality",
    "frame_us",
    "load_audioop",
    "measure",
    "report",
]

TABLE_PAIRS = ((8000, 16000), (8000, 24000), (16000, 8000), (24000, 8000))
FRAME_MS = 20
AMP = 0.5 * 32767  # -6 dBFS test tones
TONE_S = 0.5
WINDOW_S = (0.15, 0.35)  # whole 5 Hz periods, clear of every contender's start-up and delay


def load_audioop() -> ModuleType:
    """The stdlib ``audioop`` (deprecated on 3.11/3.12) or ``audioop-lts`` (3.13+), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


Process = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Contender:
    """A streaming resampler as users call it.

    ``stream(src, dst)`` returns ``(process, flush)`` on PCM16 LE bytes (the quality harness);
    ``hot(src, dst)`` returns ``(fn, to_arg)``: the cheapest realistic per-frame call and how to
    turn a PCM16 frame into its native argument (numpy for soxr), for timing.
    """

    name: str
    stream: Callable[[int, int], tuple[Process, Callable[[], bytes]]]
    hot: Callable[[int, int], tuple[Callable[[Any], Any], Callable[[bytes], Any]]]


def _ours_stream(src: int, dst: int) -> tuple[Process, Callable[[], bytes]]:
    r = Resampler(src, dst)
    return r.process, r.flush


def _ours_hot(src: int, dst: int) -> tuple[Callable[[Any], Any], Callable[[bytes], Any]]:
    return Resampler(src, dst).process, bytes


def _soxr(quality: str) -> Contender:
    def stream(src: int, dst: int) -> tuple[Process, Callable[[], bytes]]:
        s = soxr.ResampleStream(src, dst, 1, dtype="int16", quality=quality)

        def process(pcm16: bytes) -> bytes:
            return bytes(s.resample_chunk(np.frombuffer(pcm16, dtype="<i2")).tobytes())

        def flush() -> bytes:
            return bytes(s.resample_chunk(np.zeros(0, dtype="<i2"), last=True).tobytes())

        return process, flush

    def hot(src: int, dst: int) -> tuple[Callable[[Any], Any], Callable[[bytes], Any]]:
        s = soxr.ResampleStream(src, dst, 1, dtype="int16", quality=quality)
        return s.resample_chunk, lambda pcm16: np.frombuffer(pcm16, dtype="<i2").copy()

    return Contender(f"soxr {quality}", stream, hot)


def _ratecv_stream(src: int, dst: int) -> tuple[Process, Callable[[], bytes]]:
    ratecv = load_audioop().ratecv
    state: Any = None

    def process(pcm16: bytes) -> bytes:
        nonlocal state
        out, state = ratecv(pcm16, 2, 1, src, dst, state)
        return bytes(out)

    return process, bytes


def _ratecv_hot(src: int, dst: int) -> tuple[Callable[[Any], Any], Callable[[bytes], Any]]:
    return _ratecv_stream(src, dst)[0], bytes


CONTENDERS: tuple[Contender, ...] = (
    Contender("voicecall", _ours_stream, _ours_hot),
    _soxr("HQ"),
    _soxr("VHQ"),
    _soxr("LQ"),
    Contender("audioop.ratecv", _ratecv_stream, _ratecv_hot),
)


# --- quality ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """What the harness measured for one contender and rate pair (all in dB)."""

    snr_1khz_db: float  # noise + distortion below a -6 dBFS 1 kHz tone
    passband_dev_db: float  # worst |gain| up to 0.425 x the lower rate
    alias_rejection_db: float  # worst: aliases (down) or images (up) above 0.575 x the lower rate


def _tone(rate_hz: int, freq_hz: float) -> bytes:
    t = np.arange(round(rate_hz * TONE_S)) / rate_hz
    return np.round(AMP * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def _run(contender: Contender, src: int, dst: int, pcm16: bytes) -> np.ndarray:
    """Stream ``pcm16`` in 20 ms frames, flush, and return the steady window of the output."""
    process, flush = contender.stream(src, dst)
    step = 2 * src * FRAME_MS // 1000
    out = b"".join(process(pcm16[i : i + step]) for i in range(0, len(pcm16), step)) + flush()
    y = np.frombuffer(out, dtype="<i2").astype(np.float64)
    return y[round(WINDOW_S[0] * dst) : round(WINDOW_S[1] * dst)]


def _fit(x: np.ndarray, rate_hz: int, freq_hz: float) -> tuple[float, float]:
    """Least-squares sinusoid at ``freq_hz``: (its amplitude, SNR of x against it in dB)."""
    t = np.arange(len(x)) / rate_hz
    basis = np.stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fitted = basis @ coef
    noise = float(np.sum((x - fitted) ** 2))
    snr_db = math.inf if noise == 0 else 10 * math.log10(float(np.sum(fitted**2)) / noise)
    return float(math.hypot(*coef)), snr_db


def _grid(lo_hz: float, hi_hz: float, count: int) -> list[int]:
    """About ``count`` frequencies on the 10 Hz grid within [lo, hi)."""
    return sorted({int(10 * math.ceil(f / 10)) for f in np.linspace(lo_hz, hi_hz - 10, count)})


def measure(contender: Contender, src: int, dst: int, points: int = 16) -> Quality:
    """Measure ``contender`` converting ``src`` Hz to ``dst`` Hz (``points`` tones per sweep)."""
    lower = min(src, dst)
    _, snr_db = _fit(_run(contender, src, dst, _tone(src, 1000)), dst, 1000)
    worst_gain_db = 0.0
    for freq in _grid(50, 0.425 * lower + 10, points):
        amp, _ = _fit(_run(contender, src, dst, _tone(src, freq)), dst, freq)
        worst_gain_db = max(worst_gain_db, abs(20 * math.log10(max(amp, 1e-9) / AMP)))
    worst_leak_db = -math.inf
    if src > dst:  # aliases: input tones the output cannot hold must vanish
        for freq in _grid(0.575 * dst, src / 2, points):
            y = _run(contender, src, dst, _tone(src, freq))
            rms = float(np.sqrt(np.mean(y**2)))
            worst_leak_db = max(
                worst_leak_db, 20 * math.log10(max(rms, 1e-9) / (AMP / math.sqrt(2)))
            )
    else:  # images: nothing above 0.575 x the input rate may appear beside a passband tone
        for freq in _grid(50, 0.425 * src + 10, points):
            y = _run(contender, src, dst, _tone(src, freq))
            power = np.abs(np.fft.rfft(y)) ** 2
            bin_hz = dst / len(y)
            wanted = float(power[round(freq / bin_hz)])
            images = float(np.sum(power[math.ceil(0.575 * src / bin_hz) :]))
            worst_leak_db = max(worst_leak_db, 10 * math.log10(max(images, 1e-9) / wanted))
    return Quality(snr_db, worst_gain_db, -worst_leak_db)


# --- speed -----------------------------------------------------------------------------------


def frame_us(
    contender: Contender, src: int, dst: int, number: int = 2000, repeat: int = 7
) -> float:
    """Median µs per 20 ms frame in a running stream (timeit: ``repeat`` x ``number`` calls)."""
    fn, to_arg = contender.hot(src, dst)
    t = np.arange(src * FRAME_MS // 1000) / src
    rng = np.random.default_rng(0)
    frame = np.round(AMP * np.sin(2 * np.pi * 1000 * t) + rng.normal(0, 300, len(t)))
    arg = to_arg(frame.astype("<i2").tobytes())
    for _ in range(100):
        fn(arg)
    runs = timeit.repeat(lambda: fn(arg), number=number, repeat=repeat)
    return 1e6 * statistics.median(runs) / number


def report(
    pairs: tuple[tuple[int, int], ...] = TABLE_PAIRS, number: int = 2000, points: int = 16
) -> str:
    """The markdown table: speed and quality of every contender for every rate pair."""
    lines = [
        "| contender | rate pair | µs/frame (20 ms) | time vs voicecall | SNR 1 kHz dB "
        "| alias/image rejection dB | passband ±dB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for src, dst in pairs:
        ours_us = None
        for contender in CONTENDERS:
            us = frame_us(contender, src, dst, number=number)
            ours_us = ours_us or us
            q = measure(contender, src, dst, points=points)
            lines.append(
                f"| {contender.name} | {src // 1000}k→{dst // 1000}k | {us:.2f} "
                f"| {us / ours_us:.2f}× | {q.snr_1khz_db:.1f} | {q.alias_rejection_db:.1f} "
                f"| {q.passband_dev_db:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the table (``--quick`` for fewer timing calls and test tones)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer timing calls and tones")
    args = parser.parse_args(argv)
    print(report(number=200 if args.quick else 2000, points=6 if args.quick else 16))


if __name__ == "__main__":
    main()
