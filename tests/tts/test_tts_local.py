"""The local espeak-ng provider: real offline speech, and a clear setup message without it."""

from __future__ import annotations

import array
import contextlib
import math
import os
import shutil
from pathlib import Path

import pytest
from tests.tts.conftest import collect

from voicecall.config import VoicecallConfig
from voicecall.media import ulaw_to_pcm16
from voicecall.tts import TtsRegistry, TtsUnavailable
from voicecall.tts.local.client import check_local_tts, create_provider

TEXT = "Hello, this is the local test voice speaking."


def rms(pcm16: bytes) -> float:
    """Root mean square of PCM16 samples."""
    samples = array.array("h", pcm16)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


async def test_local_provider_speaks_or_says_how_to_install() -> None:
    """With espeak-ng the provider yields seconds of non-silent µ-law; without it, the fix."""
    path = os.environ.get("PATH", os.defpath)
    if shutil.which("espeak-ng", path=path) is None:
        with pytest.raises(TtsUnavailable, match="apt-get install espeak-ng"):
            create_provider({}, timeout_s=10.0, path=path)
        return
    provider = create_provider({}, timeout_s=10.0, path=path)
    audio = await collect(provider.synthesize(TEXT))
    duration_s = len(audio) / 8000
    assert duration_s > 1.0
    assert duration_s < 10.0
    assert rms(ulaw_to_pcm16(audio)) > 300  # speech, not silence (digital silence is 0)


async def test_missing_espeak_is_a_setup_message_naming_the_package(tmp_path: Path) -> None:
    """With a PATH that has no espeak-ng, the provider and the setup check name the package."""
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(TtsUnavailable) as info:
        create_provider({}, timeout_s=5.0, path=str(empty))
    assert "espeak-ng" in str(info.value) and "apt-get install espeak-ng" in str(info.value)
    assert check_local_tts({"PATH": str(empty)}) == str(info.value)
    registry = TtsRegistry(
        VoicecallConfig.model_validate({"tts": {"provider": "local"}}), env={"PATH": str(empty)}
    )
    with pytest.raises(TtsUnavailable, match=r"usable: local TTS needs the espeak-ng program"):
        registry.chain()


async def test_closing_local_synthesis_stops_the_program(tmp_path: Path) -> None:
    """Closing the stream after the first chunk ends the espeak-ng process (or names the fix)."""
    path = os.environ.get("PATH", os.defpath)
    if shutil.which("espeak-ng", path=path) is None:
        assert check_local_tts({"PATH": path}) is not None
        return
    provider = create_provider({}, timeout_s=10.0, path=path)
    stream = provider.synthesize(TEXT * 20)
    async with contextlib.aclosing(stream):
        assert await anext(stream)
    children = [p for p in Path("/proc").glob("[0-9]*") if _is_child_espeak(p)]
    assert children == []


def _is_child_espeak(proc: Path) -> bool:
    """Whether /proc/<pid> is an espeak-ng child of this test process that is still running."""
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    state, ppid = fields[0], int(fields[1])
    return ppid == os.getpid() and b"espeak-ng" in cmdline and state != "Z"
