"""Telephony text-to-speech: providers streaming µ-law 8 kHz, chained with fallback (SPEC §8)."""

from __future__ import annotations

from voicecall.tts.audio import OutputFormat, UlawConverter, parse_output_format
from voicecall.tts.base import TtsProvider
from voicecall.tts.chain import FallbackCallback, TtsChain, TtsChainFailed
from voicecall.tts.errors import (
    TtsAuthError,
    TtsError,
    TtsTimeout,
    TtsUnavailable,
    UnsupportedOutputFormat,
)
from voicecall.tts.registry import (
    TTS_PROVIDERS,
    TtsRegistry,
    chain_order,
    effective_tts_config,
)

__all__ = [
    "TTS_PROVIDERS",
    "FallbackCallback",
    "OutputFormat",
    "TtsAuthError",
    "TtsChain",
    "TtsChainFailed",
    "TtsError",
    "TtsProvider",
    "TtsRegistry",
    "TtsTimeout",
    "TtsUnavailable",
    "UlawConverter",
    "UnsupportedOutputFormat",
    "chain_order",
    "effective_tts_config",
    "parse_output_format",
]
