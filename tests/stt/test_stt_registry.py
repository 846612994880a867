"""Provider selection (SPEC §6.1), the unavailable-provider warnings, and shared limits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.stt.conftest import Events, audio, stream

from voicecall.config import StreamingConfig
from voicecall.stt import (
    ReconnectPolicy,
    SttSession,
    SttUnavailable,
    create_stt_session,
    create_stt_session_or_warn,
    select_stt_provider,
)

KNOWN = "openai, xai, deepgram, elevenlabs, mistral"


def _streaming(**fields: Any) -> StreamingConfig:
    return StreamingConfig.model_validate({"enabled": True, **fields})


def _ignore(event: object) -> None:
    pass


def test_explicit_provider_wins() -> None:
    """`streaming.provider` is used even when others are configured."""
    config = _streaming(provider="mistral", providers={"openai": {"apiKey": "k"}})
    assert select_stt_provider(config, {"XAI_API_KEY": "x"}) == "mistral"


@pytest.mark.parametrize(
    ("providers", "env", "expected"),
    [
        ({"mistral": {}, "deepgram": {}}, {}, "deepgram"),
        ({"elevenlabs": {}}, {"XAI_API_KEY": "x"}, "xai"),
        ({"mistral": {}}, {"OPENAI_API_KEY": "o"}, "openai"),
        ({}, {"ELEVENLABS_API_KEY": "e", "MISTRAL_API_KEY": "m"}, "elevenlabs"),
        ({}, {}, None),
    ],
)
def test_auto_selection_follows_the_spec_order(
    providers: dict[str, Any], env: dict[str, str], expected: str | None
) -> None:
    """Without `provider`, the first configured of openai, xai, deepgram, elevenlabs, mistral."""
    assert select_stt_provider(_streaming(providers=providers), env) == expected


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        (
            _streaming(provider="whisperx"),
            {},
            "streaming provider whisperx unavailable: unknown provider "
            f"(known: {KNOWN}); streaming disabled",
        ),
        (
            _streaming(provider="deepgram"),
            {},
            "streaming provider deepgram unavailable: no API key (set "
            "streaming.providers.deepgram.apiKey or DEEPGRAM_API_KEY); streaming disabled",
        ),
        (
            _streaming(),
            {},
            "streaming provider auto unavailable: no STT provider is configured; "
            "streaming disabled",
        ),
        (
            _streaming(providers={"elevenlabs": {"apiKey": "k", "encoding": "alaw"}}),
            {},
            "streaming provider elevenlabs unavailable: streaming.providers.elevenlabs: "
            "elevenlabs takes ulaw or pcm audio, not alaw; streaming disabled",
        ),
        (
            _streaming(providers={"openai": {"apiKey": "k", "vadThreshold": 2}}),
            {},
            "streaming provider openai unavailable: streaming.providers.openai: "
            "vadThreshold: Input should be less than or equal to 1; streaming disabled",
        ),
    ],
    ids=["unknown", "no-key", "none-configured", "bad-encoding", "bad-value"],
)
def test_unusable_provider_is_a_warning_not_a_crash(
    config: StreamingConfig, env: dict[str, str], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown, unkeyed or misconfigured provider gives the exact warning and no session."""
    with pytest.raises(SttUnavailable) as raised:
        create_stt_session(config, None, on_event=_ignore, env=env)
    assert str(raised.value) == message
    with caplog.at_level(logging.WARNING, logger="voicecall.stt"):
        assert create_stt_session_or_warn(config, None, on_event=_ignore, env=env) is None
    assert [r.getMessage() for r in caplog.records] == [message]


def test_provider_argument_overrides_the_config() -> None:
    """A provider id passed by the caller is used instead of the config's choice."""
    config = _streaming(provider="deepgram", providers={"xai": {"apiKey": "k"}})
    session = create_stt_session(config, "xai", on_event=_ignore, env={})
    assert isinstance(session, SttSession) and session.provider_id == "xai"


def test_default_policy_is_the_spec_runtime() -> None:
    """Connect timeout 10 s, 5 reconnects 1 s apart, 2 MiB of queued audio."""
    assert ReconnectPolicy() == ReconnectPolicy(
        connect_timeout_s=10.0,
        max_reconnects=5,
        reconnect_delay_s=1.0,
        max_queued_bytes=2 * 1024 * 1024,
    )


async def test_env_key_and_base_url_reach_the_provider() -> None:
    """DEEPGRAM_API_KEY and DEEPGRAM_BASE_URL are used when the config leaves them out."""
    async with FakeDeepgram(["Goodbye."], api_key="env-key") as fake:
        env = {"DEEPGRAM_API_KEY": "env-key", "DEEPGRAM_BASE_URL": fake.base_url}
        events = Events()
        session = create_stt_session(_streaming(), None, on_event=events, env=env)
        await session.start()
        await stream(session.send_audio, audio("goodbye"))
        await events.wait_for(lambda e: bool(e.finals))
        await session.aclose()
    assert events.finals == ["Goodbye."]
    assert fake.connections[0].headers["Authorization"] == "Token env-key"


async def test_queue_while_connecting_keeps_the_newest_audio() -> None:
    """Past the queue limit the oldest audio is dropped; the newest arrives whole and in order."""
    clip = audio("hello")
    async with FakeDeepgram(["Hello, thanks for calling."], api_key="k") as fake:
        fake.release_ready.clear()
        config = _streaming(providers={"deepgram": {"apiKey": "k", "baseUrl": fake.base_url}})
        policy = ReconnectPolicy(max_queued_bytes=8000)
        events = Events()
        session = create_stt_session(config, None, on_event=events, env={}, policy=policy)
        await session.start()
        await stream(session.send_audio, clip)
        fake.release_ready.set()
        await events.wait_for(lambda e: bool(e.readies))
        await session.aclose()
    kept = len(clip) - session.dropped_bytes
    assert kept <= 8000
    assert fake.audio == clip[-kept:]
