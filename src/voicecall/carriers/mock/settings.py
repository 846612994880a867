"""The mock carrier's simulated far end settings, read from the `mock` config object (SPEC §3.6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voicecall.errors import ConfigError

__all__ = ["DEFAULT_SCRIPT", "OUTCOMES", "MockSettings"]

OUTCOMES = frozenset({"answer", "busy", "no-answer", "voicemail", "failed"})

DEFAULT_SCRIPT: tuple[str, ...] = (
    "Yes, that works for me.",
    "Could you repeat the time?",
    "Thanks, goodbye.",
)

# snake_case attribute -> camelCase config key, for configs handed over as plain mappings.
_CAMEL_KEYS = {
    "ring_ms": "ringMs",
    "answer_ms": "answerMs",
    "outcome": "outcome",
    "outcomes_by_number_suffix": "outcomesByNumberSuffix",
    "speech_ms_per_char": "speechMsPerChar",
    "reply_ms": "replyMs",
    "script": "script",
    "hangup_after_ms": "hangupAfterMs",
    "simulate": "simulate",
}


@dataclass(frozen=True, slots=True)
class MockSettings:
    """How the simulated callee behaves; ``answer_ms`` counts from dialling, like ``ring_ms``."""

    ring_ms: int = 200
    answer_ms: int = 600
    outcome: str = "answer"
    outcomes_by_number_suffix: Mapping[str, str] = field(default_factory=dict)
    speech_ms_per_char: float = 5
    reply_ms: int = 300
    script: tuple[str, ...] = DEFAULT_SCRIPT
    hangup_after_ms: int | None = None
    simulate: bool = True

    def __post_init__(self) -> None:
        for key, outcome in (("outcome", self.outcome), *self._suffix_items()):
            if outcome not in OUTCOMES:
                allowed = ", ".join(sorted(OUTCOMES))
                raise ConfigError(f"mock.{key}: unknown outcome {outcome!r} (expected {allowed})")
        for key in ("ring_ms", "answer_ms", "speech_ms_per_char", "reply_ms"):
            if getattr(self, key) < 0:
                raise ConfigError(f"mock.{_CAMEL_KEYS[key]}: must be >= 0")
        if self.hangup_after_ms is not None and self.hangup_after_ms < 0:
            raise ConfigError("mock.hangupAfterMs: must be >= 0")

    def _suffix_items(self) -> list[tuple[str, str]]:
        return [
            (f"outcomesByNumberSuffix.{suffix}", outcome)
            for suffix, outcome in self.outcomes_by_number_suffix.items()
        ]

    @classmethod
    def from_config(cls, config: Any) -> MockSettings:
        """Read ``config.mock`` (a pydantic model, a mapping, or absent) into settings."""
        section = getattr(config, "mock", None)
        if section is None and isinstance(config, Mapping):
            section = config.get("mock")
        if section is None:
            return cls()
        values: dict[str, Any] = {}
        for attr, camel in _CAMEL_KEYS.items():
            if isinstance(section, Mapping):
                value = section.get(camel, section.get(attr))
            else:
                value = getattr(section, attr, None)
            if value is not None:
                values[attr] = value
        if "script" in values:
            values["script"] = tuple(values["script"])
        if "outcomes_by_number_suffix" in values:
            values["outcomes_by_number_suffix"] = dict(values["outcomes_by_number_suffix"])
        return cls(**values)

    def outcome_for(self, to_number: str) -> str:
        """The outcome for a callee: the longest matching digit suffix wins, else ``outcome``."""
        digits = "".join(ch for ch in to_number if ch.isdigit())
        best: tuple[int, str] | None = None
        for suffix, outcome in self.outcomes_by_number_suffix.items():
            key = "".join(ch for ch in suffix if ch.isdigit())
            if key and digits.endswith(key) and (best is None or len(key) > best[0]):
                best = (len(key), outcome)
        return best[1] if best else self.outcome
