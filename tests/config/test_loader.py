"""Loading config files: lookup order, JSON5, document shapes, env references and fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from voicecall.config import PROVIDER_NOT_SET_WARNING, load_config
from voicecall.errors import ConfigError

Write = Callable[..., Path]


def test_missing_file_means_defaults_and_a_warning(tmp_path: Path) -> None:
    """With no file anywhere the mock carrier runs and the user is told."""
    loaded = load_config(env={"VOICECALL_HOME": str(tmp_path)})
    assert loaded.path is None
    assert loaded.enabled
    assert loaded.config.provider == "mock"
    assert loaded.warnings == [PROVIDER_NOT_SET_WARNING]


def test_lookup_order(tmp_path: Path) -> None:
    """--config beats $VOICECALL_CONFIG, which beats config.json5, which beats config.json."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text('{"agentId": "json"}')
    env = {"VOICECALL_HOME": str(home)}
    assert load_config(env=env).config.agent_id == "json"
    (home / "config.json5").write_text("{agentId: 'json5'}")
    assert load_config(env=env).config.agent_id == "json5"
    named = tmp_path / "named.json5"
    named.write_text("{agentId: 'env'}")
    env["VOICECALL_CONFIG"] = str(named)
    assert load_config(env=env).config.agent_id == "env"
    flag = tmp_path / "flag.json5"
    flag.write_text("{agentId: 'flag'}")
    assert load_config(flag, env=env).config.agent_id == "flag"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    """A file named with --config that does not exist is reported, not silently ignored."""
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json5", env={})


def test_json5_syntax_is_accepted(write_config: Write) -> None:
    """Comments, trailing commas, unquoted keys and single quotes all load."""
    path = write_config("// mine\n{provider: 'mock', allowFrom: ['+15550001234',],}\n")
    loaded = load_config(path, env={})
    assert loaded.config.allow_from == ["+15550001234"]
    assert loaded.warnings == []


def test_json5_syntax_error_names_file_line_and_column(write_config: Write) -> None:
    """A broken file's error says where it broke."""
    path = write_config("{\n  provider: 'mock'\n  agentId: 'x'\n}")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}:3:3: invalid JSON5")


def test_unknown_keys_fail_loading_with_all_problems(write_config: Write) -> None:
    """Loading lists every problem, one per line, each naming its path."""
    path = write_config("{serve: {portt: 1}, rpc: {port: 'x'}, tunnel: {provider: 'frp'}}")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert sorted(str(info.value).splitlines()) == [
        "rpc.port must be an integer between 0 and 65535",
        "tunnel.provider must be one of none, ngrok, tailscale-serve, tailscale-funnel",
        "unknown config key serve.portt",
    ]


def test_wrapped_document_is_unwrapped_and_merges_messages_tts(write_config: Write) -> None:
    """The plugin-document shape reads its entry's config and uses messages.tts as TTS base."""
    path = write_config(
        """{
          plugins: {entries: {"voice-call": {config: {provider: 'mock', tts: {timeoutMs: 5}}}}},
          messages: {tts: {provider: 'openai', timeoutMs: 9, openai: {voice: 'nova'}}},
          other: {ignored: true},
        }"""
    )
    loaded = load_config(path, env={})
    assert loaded.enabled
    assert loaded.config.tts.provider == "openai"
    assert loaded.config.tts.timeout_ms == 5
    assert loaded.config.tts.providers == {"openai": {"voice": "nova"}}


@pytest.mark.parametrize(
    ("text", "enabled"),
    [
        ("{plugins: {entries: {}}}", False),
        ("{plugins: {entries: {'voice-call': {enabled: false, config: {}}}}}", False),
        ("{plugins: {entries: {'voice-call': {config: {enabled: false}}}}}", False),
        ("{plugins: {entries: {'voice-call': {}}}}", True),
        ("{enabled: false}", False),
    ],
)
def test_effective_enable_is_entry_and_config(
    write_config: Write, text: str, enabled: bool
) -> None:
    """Calls are enabled only when the wrapped entry and the config both allow it."""
    assert load_config(write_config(text), env={}).enabled is enabled


def test_env_references_are_substituted_and_escaped(write_config: Write) -> None:
    """`${NAME}` reads the environment; `$${` keeps a literal `${`."""
    path = write_config("{rpc: {token: 'Bearer-${TOK}'}, inboundGreeting: 'cost $${PRICE}'}")
    loaded = load_config(path, env={"TOK": "abc"})
    assert loaded.config.rpc.token == "Bearer-abc"
    assert loaded.config.inbound_greeting == "cost ${PRICE}"
    assert loaded.raw["rpc"]["token"] == "Bearer-${TOK}"


def test_unset_env_reference_is_an_error_naming_the_path(write_config: Write) -> None:
    """An unset variable is reported with the exact SPEC text."""
    path = write_config("{twilio: {authToken: '${TW_TOKEN}'}}")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        "environment variable TW_TOKEN referenced at twilio.authToken is not set"
    )


def test_env_fallbacks_apply_only_to_the_selected_carrier(write_config: Write) -> None:
    """TWILIO_* fill the twilio keys for a twilio config but nothing for a telnyx one."""
    env = {
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "tok",
        "TWILIO_FROM_NUMBER": "+15550001111",
        "TELNYX_API_KEY": "key",
    }
    twilio = load_config(write_config("{provider: 'twilio'}", "t.json5"), env=env).config
    assert (twilio.twilio.account_sid, twilio.twilio.auth_token) == ("AC1", "tok")
    assert twilio.from_number == "+15550001111"
    assert twilio.telnyx.api_key is None
    telnyx = load_config(write_config("{provider: 'telnyx'}", "x.json5"), env=env).config
    assert telnyx.telnyx.api_key == "key"
    assert telnyx.twilio.account_sid is None


def test_explicit_values_beat_env_fallbacks(write_config: Write) -> None:
    """A credential written in the file wins over its environment fallback."""
    path = write_config("{provider: 'plivo', plivo: {authId: 'mine'}}")
    config = load_config(path, env={"PLIVO_AUTH_ID": "env", "PLIVO_AUTH_TOKEN": "t"}).config
    assert (config.plivo.auth_id, config.plivo.auth_token) == ("mine", "t")


def test_ngrok_fallbacks_only_when_ngrok_is_the_tunnel(write_config: Write) -> None:
    """NGROK_AUTHTOKEN fills tunnel.ngrokAuthToken only for the ngrok tunnel."""
    env = {"NGROK_AUTHTOKEN": "ng"}
    on = load_config(write_config("{tunnel: {provider: 'ngrok'}}", "a.json5"), env=env)
    off = load_config(write_config("{}", "b.json5"), env=env)
    assert on.config.tunnel.ngrok_auth_token == "ng"
    assert off.config.tunnel.ngrok_auth_token is None


@pytest.mark.parametrize(
    "text",
    [
        "{twilio: {authToken: 123456789}}",
        "{telnyx: {apiKey: ['SECRET-VALUE-123']}}",
        "{rpc: {token: {v: 'SECRET-VALUE-123'}}}",
        "{rpc: {port: 'SECRET-VALUE-123'}}",
        "{realtime: {tools: ['SECRET-VALUE-123']}}",
    ],
)
def test_secret_values_never_appear_in_errors(write_config: Write, text: str) -> None:
    """A bad credential value is reported by path only."""
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text), env={})
    message = str(info.value)
    assert "SECRET-VALUE-123" not in message
    assert "123456789" not in message


def test_loaded_config_repr_hides_the_environment(tmp_path: Path) -> None:
    """Printing a LoadedConfig does not dump environment secrets."""
    loaded = load_config(env={"VOICECALL_HOME": str(tmp_path), "OPENAI_API_KEY": "sk-hidden"})
    assert "sk-hidden" not in repr(loaded)
