"""espeak-ng invocation (text on stdin, WAV on stdout) and the setup-check message; no I/O."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from voicecall.tts.audio import OutputFormat, parse_output_format
from voicecall.tts.protocol import ProviderSettings

__all__ = [
    "DEBIAN_PACKAGE",
    "OUTPUT_FORMAT",
    "LocalTtsSettings",
    "command",
    "missing_binary_message",
]

DEBIAN_PACKAGE = "espeak-ng"
# espeak-ng writes a WAV header with placeholder sizes, then PCM16 mono (22050 Hz) as it speaks.
OUTPUT_FORMAT: OutputFormat = parse_output_format("wav")


class LocalTtsSettings(ProviderSettings):
    """`tts.providers.local`: espeak-ng's program name, voice and speed."""

    binary: str = Field(default="espeak-ng", min_length=1, validation_alias=AliasChoices("binary"))
    voice: str | None = Field(default=None, min_length=1)
    speed_wpm: int | None = Field(
        default=None, ge=80, le=500, validation_alias=AliasChoices("speedWpm", "speed_wpm")
    )


def command(settings: LocalTtsSettings, binary_path: str) -> list[str]:
    """argv for one synthesis; the text goes on stdin so that no text can pass as an option."""
    argv = [binary_path, "--stdout", "--stdin"]
    if settings.voice:
        argv += ["-v", settings.voice]
    if settings.speed_wpm:
        argv += ["-s", str(settings.speed_wpm)]
    return argv


def missing_binary_message(binary: str) -> str:
    """The setup-check failure when the program is not on PATH."""
    return (
        f"local TTS needs the {binary} program, which is not on PATH; install it "
        f"(Debian/Ubuntu: `apt-get install {DEBIAN_PACKAGE}`, package {DEBIAN_PACKAGE}) "
        "or configure another tts.provider"
    )
