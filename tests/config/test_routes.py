"""Number routes (SPEC §1.10) and the deep merge they rely on (§1.1)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from voicecall.config import VoicecallConfig, deep_merge, resolve_route
from voicecall.config.merge import FORBIDDEN_KEYS

CONFIG = VoicecallConfig.model_validate(
    {
        "agentId": "main",
        "responseTimeoutMs": 30000,
        "tts": {"provider": "openai", "providers": {"openai": {"voice": "alloy", "model": "m"}}},
        "numbers": {
            "+15550001234": {
                "agentId": "sales",
                "inboundGreeting": "Sales here",
                "tts": {"providers": {"openai": {"voice": "nova"}}},
            }
        },
    }
)


def test_exact_key_route_overrides_globals() -> None:
    """A call to a routed number gets that route's agent, greeting and merged TTS."""
    key, settings = resolve_route(CONFIG, "+15550001234")
    assert key == "+15550001234"
    assert settings.agent_id == "sales"
    assert settings.inbound_greeting == "Sales here"
    assert settings.response_timeout_ms == 30000
    assert settings.tts.provider == "openai"
    assert settings.tts.providers["openai"] == {"voice": "nova", "model": "m"}


def test_digits_only_match() -> None:
    """A differently formatted number still finds its route by digits."""
    key, _ = resolve_route(CONFIG, "1 (555) 000-1234")
    assert key == "+15550001234"


def test_unrouted_number_uses_globals() -> None:
    """An unknown number gets no key and the global settings."""
    key, settings = resolve_route(CONFIG, "+15559999999")
    assert key is None
    assert settings.agent_id == "main"
    assert settings.inbound_greeting == "Hello! How can I help you today?"
    assert settings.tts == CONFIG.tts


def test_deep_merge_drops_prototype_keys_and_keeps_base_on_none() -> None:
    """Pollution keys vanish at every level and None never erases a base value."""
    merged = deep_merge(
        {"a": {"b": 1, "constructor": 2}, "keep": 1},
        {"a": {"c": 3, "__proto__": {"x": 1}}, "keep": None, "prototype": 1, "list": [1]},
    )
    assert merged == {"a": {"b": 1, "c": 3}, "keep": 1, "list": [1]}


json_leaf = st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.lists(st.integers()))
keys = st.sampled_from(["a", "b", "c", "__proto__", "prototype", "constructor"])
json_obj = st.recursive(
    st.dictionaries(keys, json_leaf, max_size=3),
    lambda children: st.dictionaries(keys, st.one_of(json_leaf, children), max_size=3),
    max_leaves=10,
)


def _has_forbidden(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in FORBIDDEN_KEYS or _has_forbidden(v) for k, v in value.items())
    return False


@given(json_obj, json_obj)
def test_deep_merge_properties(base: dict[str, Any], override: dict[str, Any]) -> None:
    """Merged output has no pollution keys, every override leaf wins, and inputs are unchanged."""
    base_before, override_before = repr(base), repr(override)
    merged = deep_merge(base, override)
    assert not _has_forbidden(merged)
    for key, value in override.items():
        if key in FORBIDDEN_KEYS:
            continue
        if not isinstance(value, dict):
            assert merged[key] == value
    assert (repr(base), repr(override)) == (base_before, override_before)


@given(json_obj)
def test_merging_empty_override_is_identity_without_pollution(base: dict[str, Any]) -> None:
    """Merging nothing over a base returns the base minus pollution keys."""
    assert deep_merge(base, {}) == deep_merge(base, None)
    assert deep_merge(deep_merge(base, {}), {}) == deep_merge(base, {})
