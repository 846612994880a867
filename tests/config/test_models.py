"""Config models: defaults, camelCase keys, strictness and the SPEC §1.13 messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from voicecall.config import VoicecallConfig, derive_realtime_stream_path
from voicecall.config.problems import validation_problems


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        VoicecallConfig.model_validate(raw)
    return validation_problems(info.value)


def test_no_arguments_give_the_offline_mock_defaults() -> None:
    """An empty config is the mock carrier with every SPEC default."""
    config = VoicecallConfig()
    assert config.provider == "mock"
    assert config.from_number == "+15550000000"
    assert config.max_concurrent_calls == 1
    assert config.outbound.default_mode == "notify"
    assert config.outbound.notify_hangup_delay_sec == 3
    assert config.serve.port == 3334
    assert config.serve.path == "/voice/webhook"
    assert config.rpc.port == 3335
    assert config.rpc.token is None
    assert config.transcript_timeout_ms == 180000
    assert config.realtime.stream_path == "/voice/stream/realtime"
    assert config.realtime.fast_context.sources == ["memory", "sessions"]
    assert config.voicemail.machine_detection_timeout_ms == 30000
    assert config.agent.default_model == "openai/gpt-4o-mini"
    assert config.store_fsync is False
    assert config.greeting() == "Hello! How can I help you today?"


def test_mock_defaults_follow_the_spec() -> None:
    """The simulated far end has the §3.6 defaults."""
    mock = VoicecallConfig().mock
    assert (mock.simulate, mock.ring_ms, mock.answer_ms, mock.outcome) == (
        True,
        200,
        600,
        "answer",
    )
    assert (mock.speech_ms_per_char, mock.reply_ms, mock.hangup_after_ms) == (5, 300, None)
    assert mock.script[-1] == "Thanks, goodbye."
    assert mock.outcomes_by_number_suffix == {}


def test_camel_case_keys_map_to_snake_case_attributes() -> None:
    """Persisted keys are camelCase; attributes are their snake_case."""
    config = VoicecallConfig.model_validate(
        {
            "maxConcurrentCalls": 4,
            "outbound": {"defaultMode": "conversation"},
            "mock": {"replyMs": 10, "outcomesByNumberSuffix": {"0486": "busy"}},
            "webhookSecurity": {"trustedProxyIPs": ["10.0.0.1"]},
            "storeFsync": True,
        }
    )
    assert config.max_concurrent_calls == 4
    assert config.outbound.default_mode == "conversation"
    assert config.mock.reply_ms == 10
    assert config.mock.outcomes_by_number_suffix == {"0486": "busy"}
    assert config.webhook_security.trusted_proxy_ips == ["10.0.0.1"]
    assert config.store_fsync is True
    dumped = config.model_dump(by_alias=True)
    assert dumped["maxConcurrentCalls"] == 4
    assert dumped["webhookSecurity"]["trustedProxyIPs"] == ["10.0.0.1"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"portt": 1}, "unknown config key portt"),
        ({"serve": {"portt": 1}}, "unknown config key serve.portt"),
        ({"realtime": {"bargeIn": {"rms": 1}}}, "unknown config key realtime.bargeIn.rms"),
        (
            {"realtime": {"tools": [{"name": "x", "y": 1}]}},
            "unknown config key realtime.tools[0].y",
        ),
        (
            {"numbers": {"+15550001234": {"greeting": "hi"}}},
            "unknown config key numbers.+15550001234.greeting",
        ),
    ],
)
def test_unknown_keys_are_named_by_path(raw: dict[str, Any], message: str) -> None:
    """Every object is strict; the error names the unknown key's full path."""
    assert problems_of(raw) == [message]


def test_provider_owned_maps_pass_through_raw() -> None:
    """Provider maps keep their objects untouched; all but tts.providers accept any keys."""
    config = VoicecallConfig.model_validate(
        {
            "streaming": {"providers": {"deepgram": {"sttModel": "nova", "anything": [1]}}},
            "realtime": {"providers": {"google": {"sessionResumption": False}}},
            "tts": {"providers": {"elevenlabs": {"voiceId": "v"}}},
            "agent": {"providers": {"local": {"baseUrl": "http://127.0.0.1:9"}}},
        }
    )
    assert config.streaming.providers["deepgram"] == {"sttModel": "nova", "anything": [1]}
    assert config.realtime.providers["google"] == {"sessionResumption": False}
    assert config.tts.providers == {"elevenlabs": {"voiceId": "v"}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"maxDurationSeconds": 0}, "maxDurationSeconds must be an integer greater than 0"),
        ({"maxConcurrentCalls": True}, "maxConcurrentCalls must be an integer greater than 0"),
        ({"ringTimeoutMs": 1.5}, "ringTimeoutMs must be an integer greater than 0"),
        ({"staleCallReaperSeconds": -1}, "staleCallReaperSeconds must be an integer >= 0"),
        ({"fromNumber": "5550001234"}, "fromNumber must be an E.164 number (e.g. +15550001234)"),
        (
            {"allowFrom": ["+1", "+15550001234"]},
            "allowFrom[0] must be an E.164 number (e.g. +15550001234)",
        ),
        ({"numbers": {"555": {}}}, "numbers.555 must be an E.164 number (e.g. +15550001234)"),
        ({"provider": "sip"}, "provider must be one of twilio, telnyx, plivo, mock"),
        (
            {"mock": {"outcome": "maybe"}},
            "mock.outcome must be one of answer, busy, no-answer, voicemail, failed",
        ),
        ({"serve": {"port": 70000}}, "serve.port must be an integer between 0 and 65535"),
        (
            {"voicemail": {"machineDetectionTimeoutMs": 3500}},
            "voicemail.machineDetectionTimeoutMs must be an integer between 3000 and 59000"
            " and a multiple of 1000",
        ),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"serve": 3}, "serve must be an object"),
        (
            {"realtime": {"fastContext": {"sources": []}}},
            "realtime.fastContext.sources must list at least one source",
        ),
        (
            {"agent": {"runner": "mymodule"}},
            'agent.runner must be "builtin" or "python:<module>:<attr>"',
        ),
        ({"publicUrl": "example.com/voice"}, "publicUrl must be an absolute http(s) URL"),
        ({"agentId": ""}, "agentId must be a non-empty string"),
    ],
)
def test_bad_values_give_the_spec_message(raw: dict[str, Any], message: str) -> None:
    """A wrong value is reported with its path and the SPEC wording."""
    assert problems_of(raw) == [message]


def test_all_problems_are_reported_together() -> None:
    """Several mistakes are all listed, not just the first."""
    found = problems_of({"serve": {"portt": 1}, "maxConcurrentCalls": 0, "toNumber": "x"})
    assert len(found) == 3


def test_store_dir_prefers_store_then_home_then_default(tmp_path: Path) -> None:
    """The data dir is `store`, else `$VOICECALL_HOME`, else `~/.voicecall`."""
    assert VoicecallConfig(store=str(tmp_path)).store_dir({}) == tmp_path
    assert VoicecallConfig().store_dir({"VOICECALL_HOME": str(tmp_path)}) == tmp_path
    assert VoicecallConfig().store_dir({}) == Path.home() / ".voicecall"
    assert VoicecallConfig(store="~/calls").store_dir({}) == Path.home() / "calls"


@pytest.mark.parametrize(
    ("serve_path", "expected"),
    [
        ("/voice/webhook", "/voice/stream/realtime"),
        ("/", "/voice/stream/realtime"),
        ("/hooks/twilio", "/hooks/twilio/stream/realtime"),
        ("/a/webhook", "/a/stream/realtime"),
    ],
)
def test_realtime_stream_path_is_derived_from_serve_path(serve_path: str, expected: str) -> None:
    """An unset realtime.streamPath follows serve.path (SPEC §1.6)."""
    config = VoicecallConfig.model_validate({"serve": {"path": serve_path}})
    assert config.realtime.stream_path == expected
    assert derive_realtime_stream_path(serve_path) == expected


@given(st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z"))
def test_every_e164_number_is_accepted(number: str) -> None:
    """Any number matching the E.164 pattern is a valid fromNumber."""
    assert VoicecallConfig(from_number=number).from_number == number
