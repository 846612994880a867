"""TTS provider objects (SPEC §1.7, §8.3): strict keys, typed values, raw pass-through, local."""

from __future__ import annotations

import copy
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from voicecall.config import (
    LoadedConfig,
    TtsConfig,
    VoicecallConfig,
    doctor,
    load_config,
    resolve_route,
    setup_checks,
)
from voicecall.config.problems import validation_problems
from voicecall.config.sections import TtsOverride
from voicecall.config.tts_providers import (
    ELEVENLABS_OUTPUT_FORMATS,
    KNOWN_TTS_PROVIDERS,
    PCM_RATE_RANGE_HZ,
    ElevenLabsTtsProviderConfig,
    LocalTtsProviderConfig,
    OpenAITtsProviderConfig,
    is_elevenlabs_output_format,
    missing_local_binary_message,
)
from voicecall.errors import ConfigError
from voicecall.media import MAX_RATE_HZ, MIN_RATE_HZ
from voicecall.tts import UlawConverter, UnsupportedOutputFormat, parse_output_format
from voicecall.tts.elevenlabs import protocol as eleven
from voicecall.tts.local import protocol as espeak
from voicecall.tts.local.client import check_local_tts
from voicecall.tts.openai import protocol as oai
from voicecall.tts.protocol import parse_settings

Write = Callable[..., Path]
KNOWN = "known: openai, elevenlabs, local, microsoft, edge"

# Every key of every provider, in an order that is not the models' field order.
FULL_TTS: dict[str, Any] = {
    "provider": "local",
    "fallback": True,
    "timeoutMs": 6000,
    "providers": {
        "local": {"binary": "espeak-ng", "voice": "en-us", "speedWpm": 170},
        "elevenlabs": {
            "outputFormat": "pcm_16000",
            "modelId": "eleven_flash_v2_5",
            "voiceId": "VOICE123",
            "baseUrl": "http://127.0.0.1:9002",
            "apiKey": "el-key",
        },
        "openai": {
            "apiKey": "sk-key",
            "baseUrl": "https://api.openai.com/v1",
            "model": "gpt-4o-mini-tts",
            "voice": "nova",
            "instructions": "Speak calmly.",
            "responseFormat": "wav",
        },
        "microsoft": {"voice": "en-US-AvaNeural", "anything": [1, {"x": None}]},
        "edge": {},
    },
}


def problems_of(raw: dict[str, Any]) -> list[str]:
    """The validation messages of ``raw`` ([] when it is valid)."""
    try:
        VoicecallConfig.model_validate(raw)
    except ValidationError as exc:
        return validation_problems(exc)
    return []


def tts_problems(tts: dict[str, Any]) -> list[str]:
    return problems_of({"tts": tts})


def providers(**objects: Any) -> dict[str, Any]:
    return {"providers": objects}


# --- keys voicecall does not read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_id", "key"),
    [
        ("elevenlabs", "outpuFormat"),
        ("elevenlabs", "output_format"),  # the API's spelling; the config key is camelCase
        ("elevenlabs", "voice_id"),
        ("elevenlabs", "voice"),  # openai's key, not elevenlabs'
        ("elevenlabs", "voiceSettings"),
        ("openai", "response_format"),
        ("openai", "base_url"),  # the openai client would silently ignore it
        ("openai", "speed"),
        ("local", "speed"),
        ("local", "apiKey"),  # local needs no key
        ("local", "speed_wpm"),
    ],
)
def test_unread_key_passes_through_with_a_warning_naming_its_path(
    provider_id: str, key: str, write_config: Write
) -> None:
    """Provider objects are passed to the provider raw (SPEC §1.1): a key voicecall does not read
    loads, stays in the object, and the load warns with its full path (a typo is not silent)."""
    assert tts_problems(providers(**{provider_id: {key: "x"}})) == []
    path = write_config(json.dumps({"tts": {"providers": {provider_id: {key: "x"}}}}))
    loaded = load_config(path, env={})
    assert loaded.config.tts.providers[provider_id] == {key: "x"}
    assert (
        f"tts.providers.{provider_id}.{key} is not a key voicecall reads;"
        " it is passed to the provider as is"
    ) in loaded.warnings


def test_unknown_provider_id_passes_through() -> None:
    """An id under tts.providers that no provider answers to is kept (the chain skips it)."""
    tts = providers(google={"anything": 1}, openai={"voice": "nova"})
    assert tts_problems(tts) == []
    assert VoicecallConfig.model_validate({"tts": tts}).tts.providers == tts["providers"]


@pytest.mark.parametrize("name", ["sapi", "Local", "", 3, True])
def test_unknown_tts_provider_name_lists_the_known_ones(name: object) -> None:
    """tts.provider must name a known provider."""
    expected = "tts.provider must be one of openai, elevenlabs, local, microsoft, edge"
    assert tts_problems({"provider": name}) == [expected]


@pytest.mark.parametrize("name", [*KNOWN_TTS_PROVIDERS, None])
def test_every_known_provider_name_is_accepted(name: str | None) -> None:
    """local is a provider name; microsoft/edge are accepted (and skipped for calls)."""
    assert VoicecallConfig.model_validate({"tts": {"provider": name}}).tts.provider == name


# --- values -----------------------------------------------------------------------------------

OUTPUT_FORMAT_EXPECTED = (
    "must be one of ulaw_8000, raw-8khz-8bit-mono-mulaw, pcm, pcm16, wav,"
    " pcm_<rate> (rate 8000..48000)"
)


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        (
            {"openai": {"responseFormat": "mp3"}},
            "tts.providers.openai.responseFormat must be one of pcm, wav",
        ),
        (
            {"openai": {"responseFormat": None}},
            "tts.providers.openai.responseFormat must be one of pcm, wav",
        ),
        (
            {"openai": {"baseUrl": "api.openai.com/v1"}},
            "tts.providers.openai.baseUrl must be an absolute http(s) URL",
        ),
        ({"openai": {"model": ""}}, "tts.providers.openai.model must be a non-empty string"),
        ({"openai": {"voice": None}}, "tts.providers.openai.voice must be a non-empty string"),
        ({"openai": {"apiKey": 12}}, "tts.providers.openai.apiKey must be a string"),
        ({"openai": {"instructions": ["x"]}}, "tts.providers.openai.instructions must be a string"),
        (
            {"elevenlabs": {"outputFormat": "mp3_44100_128"}},
            f"tts.providers.elevenlabs.outputFormat {OUTPUT_FORMAT_EXPECTED}",
        ),
        (
            {"elevenlabs": {"outputFormat": "pcm_96000"}},
            f"tts.providers.elevenlabs.outputFormat {OUTPUT_FORMAT_EXPECTED}",
        ),
        (
            {"elevenlabs": {"outputFormat": "ULAW_8000"}},
            f"tts.providers.elevenlabs.outputFormat {OUTPUT_FORMAT_EXPECTED}",
        ),
        (
            {"elevenlabs": {"voiceId": ""}},
            "tts.providers.elevenlabs.voiceId must be a non-empty string",
        ),
        (
            {"elevenlabs": {"modelId": 2}},
            "tts.providers.elevenlabs.modelId must be a non-empty string",
        ),
        (
            {"local": {"speedWpm": 79}},
            "tts.providers.local.speedWpm must be an integer between 80 and 450",
        ),
        (
            {"local": {"speedWpm": 451}},
            "tts.providers.local.speedWpm must be an integer between 80 and 450",
        ),
        (
            {"local": {"speedWpm": "175"}},
            "tts.providers.local.speedWpm must be an integer between 80 and 450",
        ),
        (
            {"local": {"speedWpm": True}},
            "tts.providers.local.speedWpm must be an integer between 80 and 450",
        ),
        ({"local": {"binary": ""}}, "tts.providers.local.binary must be a non-empty string"),
        ({"local": {"voice": ""}}, "tts.providers.local.voice must be a non-empty string"),
        ({"local": "espeak-ng"}, "tts.providers.local must be an object"),
        ({"openai": None}, "tts.providers.openai must be an object"),
        ({"edge": []}, "tts.providers.edge must be an object"),
    ],
)
def test_bad_value_names_its_path_and_what_is_expected(
    objects: dict[str, Any], message: str
) -> None:
    """A wrong type or value is reported at its path with the accepted values."""
    assert tts_problems({"providers": objects}) == [message]


def test_every_bad_provider_value_is_reported_together() -> None:
    """Several mistakes across providers are all listed."""
    found = tts_problems(
        providers(
            openai={"responseFormat": "mp3", "voice": ""},
            local={"speedWpm": 1000},
        )
    )
    assert len(found) == 3
    assert sorted(found)[:2] == [
        "tts.providers.local.speedWpm must be an integer between 80 and 450",
        "tts.providers.openai.responseFormat must be one of pcm, wav",
    ]
    assert sorted(found)[2].startswith("tts.providers.openai.voice ")


def test_providers_must_be_an_object() -> None:
    """tts.providers itself is a map."""
    assert tts_problems({"providers": ["openai"]}) == ["tts.providers must be an object"]


def test_nullable_keys_mean_the_client_default() -> None:
    """Keys the clients take as "not set" may be null: instructions, local voice and speed."""
    tts = {
        "providers": {"openai": {"instructions": None}, "local": {"voice": None, "speedWpm": None}}
    }
    assert VoicecallConfig.model_validate({"tts": tts}).tts.providers == tts["providers"]


# --- the local provider -----------------------------------------------------------------------


def test_local_is_accepted_with_its_keys() -> None:
    """`tts.provider: "local"` with binary, voice and speedWpm loads as written."""
    tts = {
        "provider": "local",
        "providers": {"local": {"binary": "/usr/bin/espeak-ng", "voice": "en", "speedWpm": 450}},
    }
    config = VoicecallConfig.model_validate({"tts": tts})
    assert config.tts.provider == "local"
    assert config.tts.providers == tts["providers"]
    assert VoicecallConfig.model_validate({"tts": {"provider": "local"}}).tts.providers == {}


@settings(deadline=None)  # the machine is shared; timing is not what is tested
@given(st.integers(min_value=-1000, max_value=2000))
def test_speed_wpm_is_accepted_exactly_in_espeak_range(speed: int) -> None:
    """speedWpm is espeak-ng's documented 80..450 words per minute."""
    raw = {"tts": {"providers": {"local": {"speedWpm": speed}}}}
    if 80 <= speed <= 450:
        assert VoicecallConfig.model_validate(raw).tts.providers["local"]["speedWpm"] == speed
    else:
        assert problems_of(raw) == [
            "tts.providers.local.speedWpm must be an integer between 80 and 450"
        ]


# --- formats ----------------------------------------------------------------------------------


def _client_plays(name: str) -> bool:
    """The elevenlabs client's own rule: a parsed format, PCM at a rate the resampler takes.

    (The same range check as the client's µ-law converter, without designing a filter per rate.)
    """
    try:
        parsed = parse_output_format(name)
    except UnsupportedOutputFormat:
        return False
    return parsed.container != "pcm16" or MIN_RATE_HZ <= parsed.sample_rate_hz <= MAX_RATE_HZ


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=200_000))
def test_pcm_rates_are_the_ones_the_client_can_convert(rate: int) -> None:
    """pcm_<rate> is accepted exactly when the elevenlabs client can turn it into µ-law."""
    name = f"pcm_{rate}"
    assert is_elevenlabs_output_format(name) == _client_plays(name)
    raw = {"tts": {"providers": {"elevenlabs": {"outputFormat": name}}}}
    if _client_plays(name):
        assert VoicecallConfig.model_validate(raw).tts.providers["elevenlabs"]["outputFormat"]
    else:
        assert problems_of(raw) == [
            f"tts.providers.elevenlabs.outputFormat {OUTPUT_FORMAT_EXPECTED}"
        ]


@pytest.mark.parametrize("name", ELEVENLABS_OUTPUT_FORMATS)
def test_named_output_formats_are_playable(name: str) -> None:
    """Every named outputFormat the config accepts is one the client converts."""
    UlawConverter(parse_output_format(name))  # raises for a format the client cannot play


def test_pcm_rate_range_is_the_media_core_range() -> None:
    """The config's pcm_<rate> bounds are the resampler's (kept in sync by this test)."""
    assert (MIN_RATE_HZ, MAX_RATE_HZ) == PCM_RATE_RANGE_HZ


# --- what the clients receive -----------------------------------------------------------------

_TEXT = st.text(min_size=1, max_size=20)
_URL = st.sampled_from(["http://127.0.0.1:9/v1", "https://api.example.com", "http://h/"])


def _objects(required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries(required, optional=optional)


OPENAI_OBJECTS = _objects(
    {},
    {
        "apiKey": _TEXT,
        "baseUrl": _URL,
        "model": _TEXT,
        "voice": _TEXT,
        "instructions": st.none() | st.text(max_size=20),
        "responseFormat": st.sampled_from(["pcm", "wav"]),
    },
)
ELEVENLABS_OBJECTS = _objects(
    {"voiceId": _TEXT},  # the client needs it; the config lets a route supply it
    {
        "apiKey": _TEXT,
        "baseUrl": _URL,
        "modelId": _TEXT,
        "outputFormat": st.sampled_from(ELEVENLABS_OUTPUT_FORMATS)
        | st.integers(*PCM_RATE_RANGE_HZ).map(lambda rate: f"pcm_{rate}"),
    },
)
LOCAL_OBJECTS = _objects(
    {},
    {
        "binary": _TEXT,
        "voice": st.none() | _TEXT,
        "speedWpm": st.none() | st.integers(80, 450),
    },
)


@settings(deadline=None)
@given(OPENAI_OBJECTS, ELEVENLABS_OBJECTS, LOCAL_OBJECTS)
def test_clients_accept_every_object_the_config_accepts(
    openai: dict[str, Any], elevenlabs: dict[str, Any], local: dict[str, Any]
) -> None:
    """Whatever passes the config reaches each client unchanged, and the client takes it."""
    written = {"openai": openai, "elevenlabs": elevenlabs, "local": local}
    config = VoicecallConfig.model_validate({"tts": {"providers": copy.deepcopy(written)}})
    assert config.tts.providers == written  # the raw objects, untouched
    settings = parse_settings(oai.OpenAITtsSettings, config.tts.providers["openai"], "openai")
    oai.output_format(settings)
    eleven_settings = parse_settings(
        eleven.ElevenLabsTtsSettings, config.tts.providers["elevenlabs"], "elevenlabs"
    )
    assert _client_plays(eleven.output_format(eleven_settings).name)
    local_settings = parse_settings(espeak.LocalTtsSettings, config.tts.providers["local"], "local")
    argv = espeak.command(local_settings, "/bin/espeak-ng")
    if local.get("speedWpm"):
        assert argv[argv.index("-s") + 1] == str(local["speedWpm"])


def _client_keys(settings: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) if alias is not None else None
        camel = [c for c in choices or [] if isinstance(c, str) and "_" not in c]
        keys.add(camel[0] if camel else name)
    return keys


def _config_keys(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_config_models_the_keys_each_client_reads() -> None:
    """Each provider object has exactly the (camelCase) keys its client reads."""
    assert _config_keys(OpenAITtsProviderConfig) == _client_keys(oai.OpenAITtsSettings)
    assert _config_keys(ElevenLabsTtsProviderConfig) == _client_keys(eleven.ElevenLabsTtsSettings)
    # local inherits the shared apiKey field but needs no key (the registry never sets one).
    assert _config_keys(LocalTtsProviderConfig) == _client_keys(espeak.LocalTtsSettings) - {
        "apiKey"
    }


# --- round trip, merge, routes, overrides -----------------------------------------------------


def test_full_config_with_every_provider_round_trips() -> None:
    """All providers and keys load, dump as written (key order kept) and load again equal."""
    config = VoicecallConfig.model_validate({"tts": copy.deepcopy(FULL_TTS)})
    dumped = config.tts.model_dump(by_alias=True)
    assert dumped == FULL_TTS
    assert list(dumped["providers"]) == ["local", "elevenlabs", "openai", "microsoft", "edge"]
    assert json.dumps(dumped["providers"]) == json.dumps(FULL_TTS["providers"])
    again = VoicecallConfig.model_validate(config.model_dump(by_alias=True))
    assert again.tts == config.tts
    assert TtsConfig.model_validate(dumped) == config.tts


def test_full_config_loads_from_a_file_with_env_references(write_config: Write) -> None:
    """${NAME} references inside provider objects are substituted before validation."""
    path = write_config(
        "{tts: {provider: 'elevenlabs', providers: {"
        " elevenlabs: {apiKey: '${ELEVENLABS_API_KEY}', voiceId: '${VOICE}',"
        "  outputFormat: 'ulaw_8000'},"
        " openai: {apiKey: '${OPENAI_API_KEY}', responseFormat: 'pcm'},"
        " local: {speedWpm: 200}}}}"
    )
    env = {"ELEVENLABS_API_KEY": "el", "VOICE": "V1", "OPENAI_API_KEY": "sk"}
    loaded = load_config(path, env=env)
    assert loaded.config.tts.providers == {
        "elevenlabs": {"apiKey": "el", "voiceId": "V1", "outputFormat": "ulaw_8000"},
        "openai": {"apiKey": "sk", "responseFormat": "pcm"},
        "local": {"speedWpm": 200},
    }
    assert loaded.raw["tts"]["providers"]["elevenlabs"]["apiKey"] == "${ELEVENLABS_API_KEY}"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"VOICE": "V1", "OPENAI_API_KEY": "sk"})
    assert str(info.value) == (
        "environment variable ELEVENLABS_API_KEY referenced at"
        " tts.providers.elevenlabs.apiKey is not set"
    )


def test_key_less_providers_still_load_for_env_fallbacks() -> None:
    """No apiKey (or an empty one) is valid: OPENAI_API_KEY / ELEVENLABS_API_KEY fill it later."""
    tts = {"providers": {"openai": {"apiKey": ""}, "elevenlabs": {"voiceId": "V"}}}
    assert VoicecallConfig.model_validate({"tts": tts}).tts.providers == tts["providers"]


@pytest.mark.parametrize(
    ("route_tts", "message"),
    [
        (
            {"providers": {"elevenlabs": {"outputFormat": "ulaw_9000"}}},
            "numbers.+15550001234.tts.providers.elevenlabs.outputFormat",
        ),
        (
            {"providers": {"local": {"speedWpm": 20}}},
            "numbers.+15550001234.tts.providers.local.speedWpm"
            " must be an integer between 80 and 450",
        ),
        (
            {"provider": "polly"},
            "numbers.+15550001234.tts.provider"
            " must be one of openai, elevenlabs, local, microsoft, edge",
        ),
    ],
)
def test_number_route_tts_is_validated_the_same_way(
    route_tts: dict[str, Any], message: str
) -> None:
    """A number route's tts block gets the provider checks, with the route's path."""
    found = problems_of({"numbers": {"+15550001234": {"tts": route_tts}}})
    assert len(found) == 1 and found[0].startswith(message)


def test_number_route_unread_keys_are_warned_with_the_route_path(write_config: Write) -> None:
    """A key no client reads in a route's provider object is named with the route's path."""
    route = {"tts": {"providers": {"elevenlabs": {"outpuFormat": "ulaw_8000"}}}}
    path = write_config(json.dumps({"numbers": {"+15550001234": route}}))
    warnings = load_config(path, env={}).warnings
    assert any(
        w.startswith("numbers.+15550001234.tts.providers.elevenlabs.outpuFormat is not a key")
        for w in warnings
    )


def test_route_tts_merges_over_the_global_provider_objects() -> None:
    """A valid partial route object deep-merges key by key over the global one."""
    config = VoicecallConfig.model_validate(
        {
            "tts": {"providers": {"elevenlabs": {"apiKey": "k", "outputFormat": "ulaw_8000"}}},
            "numbers": {
                "+15550001234": {
                    "tts": {
                        "provider": "local",
                        "providers": {"elevenlabs": {"voiceId": "V"}, "local": {"speedWpm": 90}},
                    }
                }
            },
        }
    )
    _, settings = resolve_route(config, "+15550001234")
    assert settings.tts.provider == "local"
    assert settings.tts.providers == {
        "elevenlabs": {"apiKey": "k", "outputFormat": "ulaw_8000", "voiceId": "V"},
        "local": {"speedWpm": 90},
    }


def test_per_call_override_is_validated_the_same_way() -> None:
    """The per-call override object (TtsOverride) refuses what the config refuses."""
    with pytest.raises(ValidationError) as info:
        TtsOverride.model_validate(
            {"provider": "local", "providers": {"local": {"speedWpm": 500, "rate": 1}}}
        )
    assert sorted(validation_problems(info.value, "tts")) == [
        "tts.providers.local.speedWpm must be an integer between 80 and 450",
    ]
    ok = TtsOverride.model_validate({"providers": {"openai": {"voice": "nova"}}})
    assert ok.model_dump(by_alias=True, exclude_none=True) == {
        "providers": {"openai": {"voice": "nova"}}
    }


def test_messages_tts_problems_carry_the_messages_tts_path(write_config: Write) -> None:
    """In the wrapped form, a bad base TTS object is reported where the user wrote it."""
    path = write_config(
        "{plugins: {entries: {'voice-call': {config: {}}}},"
        " messages: {tts: {providers: {elevenlabs: {outputFormat: 'x'}}, provider: 'say'}}}"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    found = sorted(str(info.value).splitlines())
    assert len(found) == 2
    assert found[0].startswith("messages.tts.provider must be one of openai, elevenlabs, local")
    assert found[1].startswith("messages.tts.providers.elevenlabs.outputFormat")


def test_host_messages_tts_keys_for_other_uses_still_load(write_config: Write) -> None:
    """A host document's base TTS may carry keys of its own (voiceSettings, seed...): it loads."""
    path = write_config(
        "{plugins: {entries: {'voice-call': {config: {}}}},"
        " messages: {tts: {providers: {elevenlabs: {voiceId: 'v', voiceSettings: {speed: 1},"
        " seed: 7}, polly: {region: 'x'}}}}}"
    )
    loaded = load_config(path, env={})
    assert loaded.config.tts.providers["elevenlabs"]["voiceSettings"] == {"speed": 1}
    assert loaded.config.tts.providers["polly"] == {"region": "x"}


def test_legacy_messages_tts_provider_objects_are_checked_at_their_new_path(
    write_config: Write,
) -> None:
    """A legacy `messages.tts.openai` object is checked after it moves under providers."""
    path = write_config(
        "{plugins: {entries: {'voice-call': {config: {}}}},"
        " messages: {tts: {openai: {responseFormat: 'mp3'}}}}"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        "messages.tts.providers.openai.responseFormat must be one of pcm, wav"
    )


# --- setup and doctor: the espeak-ng program --------------------------------------------------


def _bin_dir(tmp_path: Path, *programs: str) -> str:
    folder = tmp_path / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for name in programs:
        program = folder / name
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def _loaded(env: dict[str, str], **raw: Any) -> LoadedConfig:
    config = VoicecallConfig.model_validate(raw)
    return LoadedConfig(config=config, path=None, enabled=config.enabled, env=env)


def _tts_check(loaded: LoadedConfig) -> tuple[bool, str] | None:
    found = [(c.ok, c.message) for c in setup_checks(loaded) if c.id == "tts"]
    return found[0] if found else None


def test_setup_fails_clearly_when_local_is_chosen_without_espeak(tmp_path: Path) -> None:
    """`local` chosen and no espeak-ng on PATH: a failing `tts` check says what to install."""
    env = {"PATH": _bin_dir(tmp_path)}
    check = _tts_check(_loaded(env, tts={"provider": "local"}))
    assert check == (False, missing_local_binary_message("espeak-ng"))
    assert "apt-get install espeak-ng" in check[1]


def test_setup_message_is_the_local_clients_own(tmp_path: Path) -> None:
    """The setup text is exactly what the local client's own check says."""
    env = {"PATH": _bin_dir(tmp_path)}
    assert missing_local_binary_message("espeak-ng") == check_local_tts(env)


def test_setup_passes_when_espeak_is_on_path(tmp_path: Path) -> None:
    """With the program on PATH the `tts` check passes and says which program runs."""
    folder = _bin_dir(tmp_path, "espeak-ng")
    check = _tts_check(_loaded({"PATH": folder}, tts={"provider": "local"}))
    assert check == (True, f"local TTS: espeak-ng ({folder}/espeak-ng)")


def test_setup_checks_the_configured_binary_and_route_choices(tmp_path: Path) -> None:
    """A custom `binary`, and `local` chosen only by a number route, are checked too."""
    env = {"PATH": _bin_dir(tmp_path, "espeak-ng")}
    custom = _loaded(env, tts={"provider": "local", "providers": {"local": {"binary": "espeak"}}})
    assert _tts_check(custom) == (False, missing_local_binary_message("espeak"))
    routed = _loaded(
        {"PATH": _bin_dir(tmp_path / "empty")},
        numbers={"+15550001234": {"tts": {"provider": "local"}}},
    )
    assert _tts_check(routed) == (False, missing_local_binary_message("espeak-ng"))


def test_setup_checks_local_as_a_fallback_only_when_fallback_is_on(tmp_path: Path) -> None:
    """`local` listed under providers is in the chain with fallback, not without it."""
    env = {"PATH": _bin_dir(tmp_path)}
    tts = {"provider": "openai", "providers": {"openai": {}, "local": {}}}
    assert _tts_check(_loaded(env, tts=tts)) is not None
    assert _tts_check(_loaded(env, tts={**tts, "fallback": False})) is None


def test_no_tts_check_unless_local_is_chosen(tmp_path: Path) -> None:
    """The six SPEC checks are unchanged when `local` is not used."""
    loaded = _loaded({"PATH": _bin_dir(tmp_path)}, tts={"provider": "openai"})
    assert [c.id for c in setup_checks(loaded)] == [
        "enabled",
        "provider",
        "provider-config",
        "webhook-exposure",
        "mode",
        "agent",
    ]


def test_doctor_reports_missing_espeak(write_config: Write, tmp_path: Path) -> None:
    """doctor lists the missing program among its problems and exits 1."""
    path = write_config("{tts: {provider: 'local'}}")
    result = doctor(path, env={"PATH": _bin_dir(tmp_path)})
    assert result.problems == [missing_local_binary_message("espeak-ng")]
    assert result.exit_code == 1
    found = doctor(path, env={"PATH": _bin_dir(tmp_path, "espeak-ng")})
    assert found.problems == [] and found.exit_code == 0
