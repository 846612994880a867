"""Carrier registry: selection by name and clear errors for unavailable carriers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from voicecall.carriers import CARRIERS, CarrierEntry, create_carrier, load_carrier_class
from voicecall.carriers.mock import MockCarrier
from voicecall.errors import ConfigError


def test_no_provider_means_the_mock_carrier() -> None:
    """With no config at all the offline mock carrier is chosen."""
    assert isinstance(create_carrier(None), MockCarrier)
    assert isinstance(create_carrier(SimpleNamespace(provider=None)), MockCarrier)


def test_mock_carrier_reads_settings_from_config() -> None:
    """The mock's simulated far end follows the config's `mock` section."""
    config = SimpleNamespace(provider="mock", mock=SimpleNamespace(ring_ms=7, outcome="busy"))
    carrier = create_carrier(config)
    assert isinstance(carrier, MockCarrier)
    assert carrier.settings.ring_ms == 7
    assert carrier.settings.outcome == "busy"


def test_unknown_carrier_is_a_config_error() -> None:
    """An unknown provider name is rejected with the list of known carriers."""
    with pytest.raises(ConfigError, match=r"unknown carrier 'sip'.*mock"):
        load_carrier_class("sip")


def test_missing_optional_dependency_names_the_pip_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A carrier whose third-party dependency is missing says which extra to install."""
    (tmp_path / "vc_fake_carrier_mod.py").write_text("import definitely_not_installed_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(CARRIERS, "fake", CarrierEntry("vc_fake_carrier_mod", "X", "fakex"))
    with pytest.raises(ConfigError, match=r"pip install 'voicecall\[fakex\]'"):
        load_carrier_class("fake")


def test_carrier_module_absent_from_build_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registered carrier whose own module is absent fails as configuration, not ImportError."""
    monkeypatch.setitem(
        CARRIERS, "ghost", CarrierEntry("voicecall.carriers.ghost.carrier", "GhostCarrier")
    )
    with pytest.raises(ConfigError, match="not available"):
        load_carrier_class("ghost")


def test_registered_class_must_be_a_carrier(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry entry pointing at something that is not a Carrier is refused."""
    monkeypatch.setitem(CARRIERS, "odd", CarrierEntry("voicecall.errors", "ConfigError"))
    with pytest.raises(ConfigError, match="not a Carrier"):
        load_carrier_class("odd")


def test_real_config_model_feeds_mock_settings() -> None:
    """The validated config's `mock` section reaches the mock carrier unchanged."""
    from voicecall.config.models import VoicecallConfig

    config = VoicecallConfig.model_validate(
        {"mock": {"ringMs": 7, "outcomesByNumberSuffix": {"0486": "busy"}, "script": ["a"]}}
    )
    carrier = create_carrier(config)
    assert isinstance(carrier, MockCarrier)
    assert carrier.settings.ring_ms == 7
    assert carrier.settings.outcome_for("+15550000486") == "busy"
    assert carrier.settings.script == ("a",)
