"""Runner selection from `agent.runner` and credentials (SPEC §9.5)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from voicecall.agent import ChatCompletionsRunner, OfflineResponder, load_runner
from voicecall.errors import ConfigError


def _config(**agent: Any) -> SimpleNamespace:
    return SimpleNamespace(agent=SimpleNamespace(**agent), store=None)


def test_no_config_and_no_key_is_offline() -> None:
    """Without model credentials the builtin runner answers offline."""
    assert isinstance(load_runner(None, {}), OfflineResponder)
    assert isinstance(load_runner(_config(runner="builtin"), {}), OfflineResponder)


def test_env_key_selects_the_chat_runner() -> None:
    """OPENAI_API_KEY in the environment enables the builtin chat runner."""
    runner = load_runner(_config(), {"OPENAI_API_KEY": "sk-env"})
    assert isinstance(runner, ChatCompletionsRunner)
    assert runner.settings.providers["openai"].api_key == "sk-env"


def test_configured_key_and_base_url_win() -> None:
    """agent.providers.openai apiKey and baseUrl are used as configured."""
    config = {
        "agent": {
            "providers": {"openai": {"apiKey": "sk-cfg", "baseUrl": "http://127.0.0.1:1/v1/"}},
            "historyTurns": 3,
        },
        "store": "/tmp/vc-store",
    }
    runner = load_runner(config, {"OPENAI_API_KEY": "sk-env"})
    assert isinstance(runner, ChatCompletionsRunner)
    endpoint = runner.settings.providers["openai"]
    assert (endpoint.api_key, endpoint.base_url) == ("sk-cfg", "http://127.0.0.1:1/v1")
    assert runner.settings.history_turns == 3
    assert runner.settings.store_dir == Path("/tmp/vc-store")


def test_keyless_local_provider_uses_the_chat_runner() -> None:
    """A default model on a configured non-OpenAI endpoint needs no key."""
    config = _config(
        default_model="local/llama3",
        providers={"local": SimpleNamespace(base_url="http://127.0.0.1:1/v1", api_key=None)},
    )
    assert isinstance(load_runner(config, {}), ChatCompletionsRunner)


def test_python_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """python:<module>:<attr> calls the factory with the config and returns its runner."""
    (tmp_path / "vc_custom_runner.py").write_text(
        "class R:\n"
        "    def __init__(self, config):\n"
        "        self.config = config\n"
        "    async def run(self, request):\n"
        "        return None\n"
        "def make(config):\n"
        "    return R(config)\n"
        "not_callable = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = _config(runner="python:vc_custom_runner:make")
    runner = load_runner(config, {})
    assert vars(runner)["config"] is config
    with pytest.raises(ConfigError, match="not a callable factory"):
        load_runner(_config(runner="python:vc_custom_runner:not_callable"), {})
    sys.modules.pop("vc_custom_runner", None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("python:no_such_module_xyz:make", "cannot import 'no_such_module_xyz'"),
        ("python:justmodule", "expected 'python:<module>:<attr>'"),
        ("magic", "expected 'builtin'"),
    ],
)
def test_bad_runner_specs_are_config_errors(spec: str, message: str) -> None:
    """Unloadable runner settings fail as configuration errors naming agent.runner."""
    with pytest.raises(ConfigError, match=message):
        load_runner(_config(runner=spec), {})


def test_real_config_model_selects_the_chat_runner() -> None:
    """A validated config with an OpenAI key and base URL builds the chat runner from them."""
    from voicecall.config.models import VoicecallConfig

    config = VoicecallConfig.model_validate(
        {"agent": {"providers": {"openai": {"apiKey": "k", "baseUrl": "http://127.0.0.1:1/v1"}}}}
    )
    runner = load_runner(config, {})
    assert isinstance(runner, ChatCompletionsRunner)
    assert runner.settings.providers["openai"].base_url == "http://127.0.0.1:1/v1"
