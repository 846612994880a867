"""Realtime provider selection and defaults (SPEC §7.9, §1.11, §1.14, §1.1)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from voicecall.config import RealtimeConfig, VoicecallConfig
from voicecall.realtime import registry
from voicecall.realtime.google import GeminiLiveSession
from voicecall.realtime.openai import OpenAIRealtimeSession
from voicecall.realtime.registry import (
    RealtimeSelection,
    RealtimeUnavailable,
    create_realtime_session,
    resolve_realtime_provider,
    select_realtime_provider,
    validate_provider_options,
)
from voicecall.realtime.session import RealtimeError, RealtimeEvent, SessionConfig, ToolSpec

# SPEC §7.9 defaults, copied as the oracle.
OPENAI_MODEL = "gpt-realtime-2.1"
OPENAI_VOICE = "alloy"
GOOGLE_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
GOOGLE_VOICE = "Kore"
GOOGLE_ENV = ("GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY", "GOOGLE_API_KEY")


def realtime(**raw: Any) -> RealtimeConfig:
    return RealtimeConfig.model_validate(raw)


def select(
    config: RealtimeConfig | VoicecallConfig, env: dict[str, str] | None = None
) -> tuple[RealtimeSelection | None, list[str]]:
    warnings: list[str] = []
    chosen = select_realtime_provider(config, env or {}, warn=warnings.append)
    return chosen, warnings


def unavailable(provider_id: str, reason: str) -> str:
    # SPEC §1.14: `<feature> provider <id> unavailable: <reason>; <feature> disabled`
    return f"realtime provider {provider_id} unavailable: {reason}; realtime disabled"


# ---- selection order --------------------------------------------------------------------------


def test_openai_env_key_wins_auto_selection() -> None:
    chosen, warnings = select(realtime(), {"OPENAI_API_KEY": "sk-o", "GEMINI_API_KEY": "g"})
    assert chosen is not None and chosen.id == "openai"
    assert chosen.api_key == "sk-o"
    assert warnings == []


def test_google_when_only_google_has_a_key() -> None:
    chosen, _ = select(realtime(), {"GEMINI_API_KEY": "g"})
    assert chosen is not None and chosen.id == "google" and chosen.api_key == "g"


def test_config_key_counts_as_configured() -> None:
    chosen, _ = select(realtime(providers={"google": {"apiKey": "from-config"}}))
    assert chosen is not None and chosen.id == "google" and chosen.api_key == "from-config"


def test_provider_listed_without_key_is_not_configured() -> None:
    # openai is listed but has no key anywhere: auto-selection moves on to google.
    config = realtime(providers={"openai": {"voice": "verse"}, "google": {"apiKey": "g"}})
    chosen, _ = select(config)
    assert chosen is not None and chosen.id == "google"


def test_explicit_provider_beats_priority() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "GOOGLE_API_KEY": "g"}
    chosen, _ = select(realtime(provider="google"), env)
    assert chosen is not None and chosen.id == "google"


def test_takes_the_whole_voicecall_config() -> None:
    config = VoicecallConfig.model_validate({"realtime": {"enabled": True, "provider": "openai"}})
    chosen, _ = select(config, {"OPENAI_API_KEY": "k"})
    assert chosen is not None and chosen.id == "openai"


@pytest.mark.parametrize("index", range(3))
def test_google_env_fallback_order(index: int) -> None:
    # SPEC §1.11: GEMINI_API_KEY, then GOOGLE_GENERATIVE_AI_API_KEY, then GOOGLE_API_KEY.
    env = {name: f"key-{i}" for i, name in enumerate(GOOGLE_ENV) if i >= index}
    chosen, _ = select(realtime(provider="google"), env)
    assert chosen is not None and chosen.api_key == f"key-{index}"


def test_config_key_beats_env() -> None:
    config = realtime(providers={"openai": {"apiKey": "explicit"}})
    chosen, _ = select(config, {"OPENAI_API_KEY": "env"})
    assert chosen is not None and chosen.api_key == "explicit"


def test_empty_config_key_falls_back_to_env() -> None:
    config = realtime(providers={"openai": {"apiKey": ""}})
    chosen, _ = select(config, {"OPENAI_API_KEY": "env"})
    assert chosen is not None and chosen.api_key == "env"


# ---- unavailable ------------------------------------------------------------------------------


def test_unknown_provider_warns_and_returns_none() -> None:
    chosen, warnings = select(realtime(provider="azure"), {"OPENAI_API_KEY": "k"})
    assert chosen is None
    assert warnings == [unavailable("azure", "unknown provider (known: openai, google)")]


def test_explicit_provider_without_key() -> None:
    chosen, warnings = select(realtime(provider="openai"), {"GEMINI_API_KEY": "g"})
    assert chosen is None
    assert warnings == [
        unavailable("openai", "no API key (set realtime.providers.openai.apiKey or OPENAI_API_KEY)")
    ]


def test_google_without_key_names_every_env_var() -> None:
    _, warnings = select(realtime(provider="google"))
    reason = (
        "no API key (set realtime.providers.google.apiKey or GEMINI_API_KEY or "
        "GOOGLE_GENERATIVE_AI_API_KEY or GOOGLE_API_KEY)"
    )
    assert warnings == [unavailable("google", reason)]


def test_nothing_configured() -> None:
    chosen, warnings = select(realtime())
    assert chosen is None
    assert len(warnings) == 1
    assert warnings[0].startswith("realtime provider auto unavailable: no realtime provider has")
    assert warnings[0].endswith("; realtime disabled")
    assert "OPENAI_API_KEY" in warnings[0] and "GEMINI_API_KEY" in warnings[0]


def test_resolve_raises_with_the_same_text() -> None:
    with pytest.raises(RealtimeUnavailable) as caught:
        resolve_realtime_provider(realtime(provider="nope"), {})
    assert str(caught.value) == unavailable("nope", "unknown provider (known: openai, google)")


def test_default_warn_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="voicecall.realtime"):
        assert select_realtime_provider(realtime(provider="nope"), {}) is None
    assert unavailable("nope", "unknown provider (known: openai, google)") in caplog.messages


# ---- defaults and options ---------------------------------------------------------------------


def test_openai_defaults() -> None:
    chosen, _ = select(realtime(), {"OPENAI_API_KEY": "k"})
    assert chosen == RealtimeSelection(
        id="openai", model=OPENAI_MODEL, voice=OPENAI_VOICE, api_key="k", base_url=None
    )
    assert chosen.options == {}


def test_google_defaults() -> None:
    chosen, _ = select(realtime(), {"GEMINI_API_KEY": "g"})
    assert chosen is not None
    assert (chosen.model, chosen.voice, chosen.base_url) == (GOOGLE_MODEL, GOOGLE_VOICE, None)
    assert chosen.options == {"sessionResumption": True, "contextWindowCompression": True}


def test_configured_values_override_defaults() -> None:
    config = realtime(
        providers={
            "google": {
                "apiKey": "g",
                "baseUrl": "http://127.0.0.1:9000",
                "model": "gemini-live-x",
                "voice": "Puck",
                "apiVersion": "v1alpha",
                "silenceDurationMs": 500,
                "prefixPaddingMs": 20,
                "startSensitivity": "high",
                "endSensitivity": "LOW",
                "sessionResumption": False,
            }
        }
    )
    chosen, warnings = select(config)
    assert chosen is not None and warnings == []
    assert (chosen.model, chosen.voice) == ("gemini-live-x", "Puck")
    assert chosen.base_url == "http://127.0.0.1:9000"
    assert chosen.options == {
        "apiVersion": "v1alpha",
        "silenceDurationMs": 500,
        "prefixPaddingMs": 20,
        "startSensitivity": "high",
        "endSensitivity": "LOW",
        "sessionResumption": False,
        "contextWindowCompression": True,
    }


def test_openai_options_kept_as_configured() -> None:
    config = realtime(
        providers={
            "openai": {
                "apiKey": "k",
                "vadThreshold": 0.6,
                "prefixPaddingMs": 300,
                "silenceDurationMs": 700,
            }
        }
    )
    chosen, _ = select(config)
    assert chosen is not None
    assert chosen.options == {"vadThreshold": 0.6, "prefixPaddingMs": 300, "silenceDurationMs": 700}


def test_unknown_keys_pass_through_with_a_warning() -> None:
    config = realtime(providers={"openai": {"apiKey": "k", "temperature": 0.7, "vadTreshold": 1}})
    chosen, warnings = select(config)
    assert chosen is not None
    assert chosen.options == {"temperature": 0.7, "vadTreshold": 1}
    expected = (
        "realtime.providers.openai.temperature is not a key voicecall reads; it is passed to the "
        "provider as is; realtime.providers.openai.vadTreshold is not a key voicecall reads; it "
        "is passed to the provider as is"
    )
    assert chosen.warning == expected
    assert warnings == [expected]


def test_unselected_provider_map_is_not_validated() -> None:
    config = realtime(providers={"openai": {"apiKey": "k"}, "google": {"voice": 5}})
    chosen, warnings = select(config)
    assert chosen is not None and chosen.id == "openai" and warnings == []


@pytest.mark.parametrize(
    ("provider", "key", "value", "problem"),
    [
        ("openai", "vadThreshold", 1.5, "must be a number between 0 and 1"),
        ("openai", "vadThreshold", -0.1, "must be a number between 0 and 1"),
        ("openai", "vadThreshold", "0.5", "must be a number between 0 and 1"),
        ("openai", "vadThreshold", True, "must be a number between 0 and 1"),
        ("openai", "prefixPaddingMs", -1, "must be an integer >= 0"),
        ("openai", "silenceDurationMs", 2.5, "must be an integer >= 0"),
        ("openai", "silenceDurationMs", "500", "must be an integer >= 0"),
        ("openai", "model", 4, "must be a string"),
        ("openai", "voice", ["alloy"], "must be a string"),
        ("openai", "apiKey", 123, "must be a string"),
        ("openai", "baseUrl", "ftp://host", "must be an http(s) or ws(s) URL"),
        ("openai", "baseUrl", "not a url", "must be an http(s) or ws(s) URL"),
        ("google", "silenceDurationMs", -5, "must be an integer >= 0"),
        ("google", "prefixPaddingMs", False, "must be an integer >= 0"),
        ("google", "startSensitivity", "medium", "must be one of low, high"),
        ("google", "endSensitivity", 1, "must be one of low, high"),
        ("google", "sessionResumption", "yes", "must be true or false"),
        ("google", "contextWindowCompression", 1, "must be true or false"),
        ("google", "apiVersion", 1, "must be a string"),
    ],
)
def test_bad_option_values(provider: str, key: str, value: Any, problem: str) -> None:
    raw = {"apiKey": "k", key: value} if key != "apiKey" else {key: value}
    message = f"realtime.providers.{provider}.{key} {problem}"
    assert validate_provider_options(provider, raw) == [message]
    env = {"OPENAI_API_KEY": "k"} if key == "apiKey" else {}
    chosen, warnings = select(realtime(provider=provider, providers={provider: raw}), env)
    assert chosen is None
    assert warnings == [unavailable(provider, message)]


@pytest.mark.parametrize(
    ("provider", "raw"),
    [
        ("openai", {"vadThreshold": 0, "prefixPaddingMs": 0, "silenceDurationMs": 200.0}),
        ("openai", {"vadThreshold": 1, "baseUrl": "wss://example.test/v1"}),
        ("google", {"startSensitivity": "START_SENSITIVITY_LOW", "endSensitivity": "high"}),
        ("google", {"baseUrl": "https://example.test", "sessionResumption": True}),
        ("google", {"silenceDurationMs": None, "baseUrl": ""}),
    ],
)
def test_good_option_values(provider: str, raw: dict[str, Any]) -> None:
    assert validate_provider_options(provider, raw) == []


def test_several_problems_are_all_reported() -> None:
    raw = {"apiKey": "k", "vadThreshold": 2, "silenceDurationMs": -1}
    _, warnings = select(realtime(providers={"openai": raw}))
    assert warnings == [
        unavailable(
            "openai",
            "realtime.providers.openai.vadThreshold must be a number between 0 and 1; "
            "realtime.providers.openai.silenceDurationMs must be an integer >= 0",
        )
    ]


def test_unknown_provider_options_are_not_checked() -> None:
    assert validate_provider_options("azure", {"vadThreshold": "x"}) == []


# ---- secrets ----------------------------------------------------------------------------------


def test_api_key_not_in_repr_nor_options() -> None:
    config = realtime(providers={"openai": {"apiKey": "sk-secret-123"}})
    chosen, _ = select(config)
    assert chosen is not None
    assert "sk-secret-123" not in repr(chosen)
    assert "sk-secret-123" not in str(chosen)
    assert "apiKey" not in chosen.options


def test_session_config_from_selection() -> None:
    chosen, _ = select(realtime(), {"GEMINI_API_KEY": "g"})
    assert chosen is not None
    tools = [ToolSpec("end_call", "End.")]
    config = chosen.session_config("Be brief.", tools)
    assert config == SessionConfig(
        model=GOOGLE_MODEL,
        voice=GOOGLE_VOICE,
        instructions="Be brief.",
        tools=tuple(tools),
        options={"sessionResumption": True, "contextWindowCompression": True},
    )


# ---- create_realtime_session ------------------------------------------------------------------


def _on_event(event: RealtimeEvent) -> None:
    pass


def test_creates_openai_session() -> None:
    selection = RealtimeSelection(
        id="openai", model="m", voice="v", api_key="k", base_url="http://127.0.0.1:9/v1"
    )
    session = create_realtime_session(selection, selection.session_config("x"), _on_event)
    assert isinstance(session, OpenAIRealtimeSession)


def test_creates_google_session() -> None:
    chosen, _ = select(realtime(), {"GEMINI_API_KEY": "g"})
    assert chosen is not None
    session = create_realtime_session(chosen, chosen.session_config("x"), _on_event)
    assert isinstance(session, GeminiLiveSession)


class _Recorder:
    def __init__(self, config: SessionConfig, **kwargs: Any) -> None:
        self.config = config
        self.kwargs = kwargs


def test_openai_constructor_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import voicecall.realtime.openai as openai_module

    monkeypatch.setattr(openai_module, "OpenAIRealtimeSession", _Recorder)
    selection = RealtimeSelection(
        id="openai", model="m", voice="v", api_key="k", base_url="http://h/v1"
    )
    config = selection.session_config("i")
    made: Any = create_realtime_session(selection, config, _on_event)
    assert made.config is config
    assert made.kwargs == {"api_key": "k", "base_url": "http://h/v1", "on_event": _on_event}


@pytest.mark.parametrize(
    ("options", "api_version"), [({}, "v1beta"), ({"apiVersion": "v1alpha"}, "v1alpha")]
)
def test_google_constructor_arguments(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], api_version: str
) -> None:
    import voicecall.realtime.google as google_module

    monkeypatch.setattr(google_module, "GeminiLiveSession", _Recorder)
    selection = RealtimeSelection(
        id="google", model="m", voice="v", api_key="g", base_url=None, options=options
    )
    config = selection.session_config("i")
    made: Any = create_realtime_session(selection, config, _on_event)
    assert made.config is config
    assert made.kwargs == {
        "api_key": "g",
        "on_event": _on_event,
        "base_url": None,
        "api_version": api_version,
    }


def test_unknown_selection_id_refused() -> None:
    selection = RealtimeSelection(id="azure", model="m", voice="v", api_key="k")
    with pytest.raises(RealtimeError):
        create_realtime_session(selection, selection.session_config("i"), _on_event)


def test_provider_table_matches_spec_priorities() -> None:
    table = registry.REALTIME_PROVIDERS
    assert sorted(table, key=lambda p: table[p].priority) == ["openai", "google"]
    assert (table["openai"].priority, table["google"].priority) == (10, 20)
