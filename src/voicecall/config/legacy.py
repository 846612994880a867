"""Rewrites legacy config keys to their canonical places (SPEC §1.12)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["LegacyChange", "legacy_warning", "rewrite_legacy", "rewrite_tts_legacy"]

_STREAMING_MOVES = (
    ("sttProvider", ("provider",)),
    ("openaiApiKey", ("providers", "openai", "apiKey")),
    ("sttModel", ("providers", "openai", "model")),
    ("silenceDurationMs", ("providers", "openai", "silenceDurationMs")),
    ("vadThreshold", ("providers", "openai", "vadThreshold")),
)
_TTS_PROVIDER_IDS = ("openai", "elevenlabs", "microsoft", "edge")


@dataclass(frozen=True)
class LegacyChange:
    """One rewrite: `old` moved to `new`, or removed when `new` is None."""

    old: str
    new: str | None

    def line(self) -> str:
        """The doctor output line: `- <old> -> <new>` or `- <old> removed`."""
        return f"- {self.old} -> {self.new}" if self.new else f"- {self.old} removed"


def _join(prefix: str, *parts: str) -> str:
    return ".".join(p for p in (prefix, *parts) if p)


def _move(
    root: dict[str, Any],
    parent: dict[str, Any],
    old_key: str,
    new_path: tuple[str, ...],
    old_label: str,
    new_label: str,
    changes: list[LegacyChange],
) -> None:
    if old_key not in parent:
        return
    value = parent.pop(old_key)
    node = root
    for part in new_path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            changes.append(LegacyChange(old_label, None))
            return
        node = child
    if new_path[-1] in node:
        # Both present: the canonical value wins and the legacy key is dropped.
        changes.append(LegacyChange(old_label, None))
    else:
        node[new_path[-1]] = value
        changes.append(LegacyChange(old_label, new_label))


def rewrite_tts_legacy(tts: dict[str, Any], prefix: str, changes: list[LegacyChange]) -> None:
    """Moves `tts.<id>` provider objects under `tts.providers.<id>` in place."""
    for provider_id in _TTS_PROVIDER_IDS:
        old = _join(prefix, provider_id)
        new = _join(prefix, "providers", provider_id)
        _move(tts, tts, provider_id, ("providers", provider_id), old, new, changes)


def rewrite_legacy(config: dict[str, Any]) -> tuple[dict[str, Any], list[LegacyChange]]:
    """A rewritten copy of a bare config object and the list of changes made."""
    out = copy.deepcopy(config)
    changes: list[LegacyChange] = []
    if out.get("provider") == "log":
        out["provider"] = "mock"
        changes.append(LegacyChange('provider "log"', 'provider "mock"'))
    twilio = out.get("twilio")
    if isinstance(twilio, dict):
        _move(out, twilio, "from", ("fromNumber",), "twilio.from", "fromNumber", changes)
    streaming = out.get("streaming")
    if isinstance(streaming, dict):
        for old_key, new_path in _STREAMING_MOVES:
            new_label = _join("streaming", *new_path)
            old_label = _join("streaming", old_key)
            _move(streaming, streaming, old_key, new_path, old_label, new_label, changes)
    tts = out.get("tts")
    if isinstance(tts, dict):
        rewrite_tts_legacy(tts, "tts", changes)
    realtime = out.get("realtime")
    context = realtime.get("agentContext") if isinstance(realtime, dict) else None
    if isinstance(context, dict) and "includeSystemPrompt" in context:
        del context["includeSystemPrompt"]
        changes.append(LegacyChange("realtime.agentContext.includeSystemPrompt", None))
    return out, changes


def legacy_warning(changes: list[LegacyChange]) -> str:
    """The runtime log line for legacy keys rewritten in memory."""
    paths = ", ".join(c.old for c in changes)
    return f'legacy config keys found ({paths}); run "voicecall doctor --fix"'
