"""The local TTS client: one espeak-ng subprocess per synthesis, its stdout streamed."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from voicecall.tts.base import TtsProvider
from voicecall.tts.errors import TtsError, TtsUnavailable
from voicecall.tts.local.protocol import (
    OUTPUT_FORMAT,
    LocalTtsSettings,
    command,
    missing_binary_message,
)
from voicecall.tts.protocol import parse_settings

__all__ = ["LocalTts", "check_local_tts", "create_provider", "find_binary"]

_READ_BYTES = 4096


def find_binary(settings: LocalTtsSettings, path: str | None) -> str:
    """The program's full path on `path` (PATH syntax); TtsUnavailable naming the package."""
    found = shutil.which(settings.binary, path=path)
    if found is None:
        raise TtsUnavailable(missing_binary_message(settings.binary))
    return found


def check_local_tts(env: Mapping[str, str] | None = None) -> str | None:
    """A setup check: None when espeak-ng can be run, else the message saying how to fix it."""
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    try:
        find_binary(LocalTtsSettings(), path)
    except TtsUnavailable as exc:
        return str(exc)
    return None


class LocalTts(TtsProvider):
    """espeak-ng speech; nothing to close between syntheses."""

    provider_id = "local"

    def __init__(self, settings: LocalTtsSettings, binary_path: str, *, timeout_s: float) -> None:
        super().__init__(OUTPUT_FORMAT, timeout_s=timeout_s)
        self.settings = settings
        self.binary_path = binary_path

    async def _stream(self, text: str) -> AsyncGenerator[bytes, None]:
        try:
            process = await asyncio.create_subprocess_exec(
                *command(self.settings, self.binary_path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise TtsUnavailable(missing_binary_message(self.settings.binary)) from None
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        try:
            process.stdin.write(text.encode())
            await process.stdin.drain()
            process.stdin.close()
            while chunk := await process.stdout.read(_READ_BYTES):
                yield chunk
            errors = await process.stderr.read()
            if await process.wait() != 0:
                reason = errors.decode(errors="replace").strip() or f"exit {process.returncode}"
                raise TtsError(f"local TTS ({self.settings.binary}) failed: {reason}")
        finally:
            if process.returncode is None:  # closed early: stop speaking
                process.kill()
                await process.wait()


def create_provider(
    raw: Mapping[str, Any],
    *,
    timeout_s: float,
    http_session: Any = None,
    path: str | None = None,
) -> LocalTts:
    """A provider for `tts.providers.local`; `path` is where to look for the program (PATH)."""
    settings = parse_settings(LocalTtsSettings, raw, "local")
    return LocalTts(settings, find_binary(settings, path), timeout_s=timeout_s)
