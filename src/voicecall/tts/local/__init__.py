"""The local TTS provider: offline espeak-ng, for the mock carrier and development."""
