"""Legacy keys: in-memory rewrite with a warning, `doctor` reporting, `doctor --fix` rewriting."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from voicecall.config import doctor, doctor_fix, load_config

Write = Callable[..., Path]

LEGACY = """// old style
{
  provider: 'log',
  twilio: {from: '+15550001111'},
  streaming: {sttProvider: 'openai', openaiApiKey: 'sk-x', sttModel: 'm',
              silenceDurationMs: 500, vadThreshold: 0.4},
  tts: {openai: {voice: 'nova'}, edge: {}},
  realtime: {agentContext: {includeSystemPrompt: true}},
}"""

EXPECTED_LINES = [
    '- provider "log" -> provider "mock"',
    "- twilio.from -> fromNumber",
    "- streaming.sttProvider -> streaming.provider",
    "- streaming.openaiApiKey -> streaming.providers.openai.apiKey",
    "- streaming.sttModel -> streaming.providers.openai.model",
    "- streaming.silenceDurationMs -> streaming.providers.openai.silenceDurationMs",
    "- streaming.vadThreshold -> streaming.providers.openai.vadThreshold",
    "- tts.openai -> tts.providers.openai",
    "- tts.edge -> tts.providers.edge",
    "- realtime.agentContext.includeSystemPrompt removed",
]


def test_runtime_rewrites_legacy_keys_in_memory(write_config: Write) -> None:
    """Legacy keys load into their canonical places and the user is told to run doctor."""
    path = write_config(LEGACY)
    loaded = load_config(path, env={})
    config = loaded.config
    assert config.provider == "mock"
    assert config.from_number == "+15550001111"
    assert config.streaming.provider == "openai"
    assert config.streaming.providers["openai"] == {
        "apiKey": "sk-x",
        "model": "m",
        "silenceDurationMs": 500,
        "vadThreshold": 0.4,
    }
    assert config.tts.providers == {"openai": {"voice": "nova"}, "edge": {}}
    assert loaded.legacy_changes == EXPECTED_LINES
    assert loaded.warnings[0].startswith("legacy config keys found (")
    assert loaded.warnings[0].endswith('); run "voicecall doctor --fix"')
    assert "twilio.from" in loaded.warnings[0]
    assert path.read_text() == LEGACY


def test_doctor_reports_changes_without_writing(write_config: Write) -> None:
    """Plain doctor lists one line per change, exits 1 and leaves the file alone."""
    path = write_config(LEGACY)
    result = doctor(path, env={})
    assert result.changes == EXPECTED_LINES
    assert result.exit_code == 1
    assert not result.fixed
    assert path.read_text() == LEGACY
    assert not path.with_name(path.name + ".bak").exists()


def test_doctor_fix_backs_up_and_rewrites_as_json(write_config: Write) -> None:
    """--fix keeps the original as .bak and writes canonical 2-space JSON."""
    path = write_config(LEGACY)
    result = doctor_fix(path, env={})
    assert result.fixed
    assert result.changes == EXPECTED_LINES
    assert result.exit_code == 0
    assert result.backup_path is not None
    assert result.backup_path.read_text() == LEGACY
    text = path.read_text()
    assert text.startswith('{\n  "provider": "mock"')
    document = json.loads(text)
    assert document["fromNumber"] == "+15550001111"
    assert "includeSystemPrompt" not in document["realtime"]["agentContext"]
    assert doctor(path, env={}).changes == []


def test_new_key_wins_when_both_exist(write_config: Write) -> None:
    """With legacy and canonical keys both set, the canonical value stays and the old is dropped."""
    path = write_config("{fromNumber: '+15550002222', twilio: {from: '+15550001111'}}")
    result = doctor_fix(path, env={})
    assert result.changes == ["- twilio.from removed"]
    document = json.loads(path.read_text())
    assert document["fromNumber"] == "+15550002222"
    assert document["twilio"] == {}


def test_doctor_fix_keeps_the_wrapped_shape(write_config: Write) -> None:
    """A wrapped document is fixed inside its entry and messages.tts, other keys kept."""
    path = write_config(
        "{plugins: {entries: {'voice-call': {config: {provider: 'log'}}}},"
        " messages: {tts: {elevenlabs: {voiceId: 'v'}}}, gateway: {port: 1}}"
    )
    result = doctor_fix(path, env={})
    assert result.changes == [
        '- provider "log" -> provider "mock"',
        "- messages.tts.elevenlabs -> messages.tts.providers.elevenlabs",
    ]
    document = json.loads(path.read_text())
    assert document["plugins"]["entries"]["voice-call"]["config"] == {"provider": "mock"}
    assert document["messages"]["tts"] == {"providers": {"elevenlabs": {"voiceId": "v"}}}
    assert document["gateway"] == {"port": 1}


def test_doctor_reports_validation_problems(write_config: Write) -> None:
    """Doctor also lists what validation finds, and exits 1 for it."""
    path = write_config("{provider: 'twilio', serve: {portt: 1}}")
    result = doctor(path, env={})
    assert result.problems == ["unknown config key serve.portt"]
    assert result.exit_code == 1
    clean = write_config("{provider: 'mock'}", "clean.json5")
    assert doctor(clean, env={}).exit_code == 0
