"""Deep merge for TTS and number routes (SPEC §1.1): objects merge, None never erases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FORBIDDEN_KEYS", "deep_merge"]

# Prototype-pollution keys of the reference implementation; dropped at every level.
FORBIDDEN_KEYS = frozenset({"__proto__", "prototype", "constructor"})


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if k not in FORBIDDEN_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new dict: `override` merged over `base`; inputs are never mutated."""
    merged: dict[str, Any] = _clean(base)
    for key, value in (override or {}).items():
        if key in FORBIDDEN_KEYS or value is None:
            continue
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = _clean(value)
    return merged
