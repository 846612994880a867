"""Effective TTS config, the provider chain and fallback, as a call would see them (SPEC §8)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from tests.fakes.tts_common import API_KEY
from tests.tts.conftest import collect, expected_ulaw_from_pcm24k

from voicecall.config import VoicecallConfig
from voicecall.errors import ConfigError
from voicecall.tts import (
    TtsChainFailed,
    TtsRegistry,
    TtsUnavailable,
    chain_order,
    effective_tts_config,
)

TEXT = "Hello there."


def config(tts: dict[str, Any], **extra: Any) -> VoicecallConfig:
    """A config with this `tts` block."""
    return VoicecallConfig.model_validate({"tts": tts, **extra})


def test_route_and_call_override_are_deep_merged_over_the_config() -> None:
    """A number route's tts and a per-call override merge key by key over the global tts."""
    cfg = config(
        {
            "provider": "openai",
            "timeoutMs": 5000,
            "providers": {"openai": {"apiKey": "k", "voice": "alloy", "model": "m1"}},
        },
        numbers={"+15550001111": {"tts": {"providers": {"openai": {"voice": "nova"}}}}},
    )
    routed = effective_tts_config(cfg, number="1-555-000-1111")
    assert routed.providers["openai"] == {"apiKey": "k", "voice": "nova", "model": "m1"}
    per_call = effective_tts_config(
        cfg,
        number="+15550001111",
        override={"timeoutMs": 900, "providers": {"openai": {"model": "m2"}}},
    )
    assert per_call.timeout_ms == 900
    assert per_call.providers["openai"] == {"apiKey": "k", "voice": "nova", "model": "m2"}
    assert effective_tts_config(cfg, number="+19999999999").providers["openai"]["voice"] == "alloy"


def test_messages_tts_is_the_base_of_the_merge(tmp_path: Any) -> None:
    """The wrapped `messages.tts` block is deep-merged under the config's own `tts`."""
    from voicecall.config import load_config

    path = tmp_path / "config.json5"
    path.write_text(
        '{messages: {tts: {provider: "elevenlabs",'
        ' providers: {elevenlabs: {voiceId: "A", modelId: "m"}}}},'
        ' plugins: {entries: {"voice-call": {config:'
        ' {tts: {providers: {elevenlabs: {voiceId: "B"}}}}}}}}'
    )
    loaded = load_config(path, env={})
    tts = effective_tts_config(loaded.config)
    assert tts.provider == "elevenlabs"
    assert tts.providers["elevenlabs"] == {"voiceId": "B", "modelId": "m"}


def test_a_bad_per_call_override_names_the_key() -> None:
    """An unknown key in a per-call override is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="tts override voiceId"):
        effective_tts_config(config({}), override={"voiceId": "x"})


def test_chain_order_is_primary_then_providers_in_key_order() -> None:
    """The chain is tts.provider, then the other providers in config order (with fallback)."""
    tts = effective_tts_config(
        config(
            {
                "provider": "elevenlabs",
                "providers": {"microsoft": {}, "openai": {}, "elevenlabs": {}},
            }
        )
    )
    assert chain_order(tts, {}) == ["elevenlabs", "microsoft", "openai"]
    no_fallback = effective_tts_config(config({"provider": "elevenlabs", "fallback": False}))
    assert chain_order(no_fallback, {}) == ["elevenlabs"]
    assert chain_order(effective_tts_config(config({})), {"OPENAI_API_KEY": "k"}) == ["openai"]
    assert chain_order(effective_tts_config(config({})), {}) == []


async def test_unusable_providers_are_skipped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """microsoft and key-less providers are skipped with one warning each, however many calls."""
    cfg = config({"provider": "openai", "providers": {"microsoft": {}, "openai": {}, "local": {}}})
    registry = TtsRegistry(cfg, env={"PATH": "/usr/bin:/bin"})
    try:
        with caplog.at_level(logging.WARNING, logger="voicecall.tts"):
            for _ in range(3):
                chain = registry.chain()
    finally:
        await registry.aclose()
    assert chain.provider_ids == ("local",) or "espeak-ng" in caplog.text
    skipped = [r.getMessage() for r in caplog.records]
    assert sum("openai skipped: no API key" in m for m in skipped) == 1
    assert sum("microsoft skipped" in m for m in skipped) == 1


async def test_no_usable_provider_is_a_clear_error() -> None:
    """With no provider configured, asking for a chain says what to set."""
    registry = TtsRegistry(config({}), env={})
    with pytest.raises(
        TtsUnavailable, match=r"no telephony TTS provider is usable: set tts\.provider"
    ):
        registry.chain()


async def test_fallback_logs_one_warning_and_counts(
    openai_fake: Any, elevenlabs_fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing primary hands over to the next: one warning naming the chain, one count."""
    cfg = config(
        {
            "provider": "openai",
            "providers": {
                "openai": {"apiKey": "wrong", "baseUrl": openai_fake.base_url + "/v1"},
                "elevenlabs": {
                    "apiKey": API_KEY,
                    "baseUrl": elevenlabs_fake.base_url,
                    "voiceId": "VOICE123",
                },
            },
        }
    )
    counted: list[tuple[str, str]] = []
    registry = TtsRegistry(cfg, env={}, on_fallback=lambda a, b: counted.append((a, b)))
    try:
        with caplog.at_level(logging.INFO, logger="voicecall.tts"):
            audio = await collect(registry.chain().synthesize(TEXT))
    finally:
        await registry.aclose()
    assert audio == elevenlabs_fake.audio
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "telephony TTS fallback used from=openai to=elevenlabs attempts=openai -> elevenlabs"
    ]
    assert counted == [("openai", "elevenlabs")]
    assert len(openai_fake.requests) == 1 and len(elevenlabs_fake.requests) == 1


async def test_primary_success_uses_no_fallback(
    openai_fake: Any, elevenlabs_fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """When the primary works, its audio plays, nothing is logged and the fallback is untouched."""
    cfg = config(
        {
            "providers": {
                "openai": {"apiKey": API_KEY, "baseUrl": openai_fake.base_url + "/v1"},
                "elevenlabs": {
                    "apiKey": API_KEY,
                    "baseUrl": elevenlabs_fake.base_url,
                    "voiceId": "V",
                },
            }
        }
    )
    counted: list[tuple[str, str]] = []
    registry = TtsRegistry(cfg, env={}, on_fallback=lambda a, b: counted.append((a, b)))
    try:
        with caplog.at_level(logging.WARNING, logger="voicecall.tts"):
            audio = await collect(registry.chain().synthesize(TEXT))
    finally:
        await registry.aclose()
    assert audio == expected_ulaw_from_pcm24k(openai_fake.audio)
    assert counted == [] and caplog.records == [] and elevenlabs_fake.requests == []


async def test_every_provider_failing_lists_each_reason(
    openai_fake: Any, elevenlabs_fake: Any
) -> None:
    """When the whole chain fails, the error names each provider and why it failed."""
    openai_fake.fail_status = 500
    cfg = config(
        {
            "provider": "openai",
            "providers": {
                "openai": {"apiKey": API_KEY, "baseUrl": openai_fake.base_url + "/v1"},
                "elevenlabs": {
                    "apiKey": "bad",
                    "baseUrl": elevenlabs_fake.base_url,
                    "voiceId": "V",
                },
            },
        }
    )
    registry = TtsRegistry(cfg, env={})
    try:
        with pytest.raises(TtsChainFailed) as info:
            await collect(registry.chain().synthesize(TEXT))
    finally:
        await registry.aclose()
    message = str(info.value)
    assert message.startswith(
        "every telephony TTS provider failed: openai: openai TTS failed: HTTP 500"
    )
    assert "elevenlabs: elevenlabs TTS rejected the API key (HTTP 401)" in message


async def test_missing_openai_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the openai package, the openai provider is skipped with the pip extra to install."""
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.delitem(sys.modules, "voicecall.tts.openai.client", raising=False)
    registry = TtsRegistry(config({"provider": "openai"}), env={"OPENAI_API_KEY": "k"})
    with pytest.raises(
        TtsUnavailable,
        match=r"openai TTS needs the openai package; pip install 'voicecall\[openai\]'",
    ):
        registry.chain()


async def test_api_key_comes_from_the_environment(openai_fake: Any) -> None:
    """OPENAI_API_KEY is used when tts.providers.openai has no apiKey."""
    cfg = config({"providers": {"openai": {"baseUrl": openai_fake.base_url + "/v1"}}})
    registry = TtsRegistry(cfg, env={"OPENAI_API_KEY": API_KEY})
    try:
        audio = await collect(registry.chain().synthesize(TEXT))
    finally:
        await registry.aclose()
    assert audio and openai_fake.problems == []
