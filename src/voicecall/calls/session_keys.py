"""Agent session keys for calls (SPEC §9.4): which conversation memory a call talks into."""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["SessionScope", "session_key_for_call"]

SessionScope = Literal["per-phone", "per-call", "main"]

_NON_DIGITS = re.compile(r"\D")


def session_key_for_call(
    *,
    agent_id: str,
    call_id: str,
    remote_number: str | None,
    scope: SessionScope = "per-phone",
    explicit_key: str | None = None,
) -> str:
    """The lower-cased session key of a call.

    ``remote_number`` is the callee for outbound calls and the caller for inbound calls.
    """
    agent = agent_id.lower()
    if explicit_key:
        key = explicit_key.lower()
        if key in ("global", "unknown") or key.startswith(f"agent:{agent}:"):
            return key
        if key == "main":
            return f"agent:{agent}:main"
        return f"agent:{agent}:{key}"
    if scope == "main":
        return f"agent:{agent}:main"
    per_call = f"agent:{agent}:voice:call:{call_id.lower()}"
    if scope == "per-call":
        return per_call
    digits = _NON_DIGITS.sub("", remote_number or "")
    return f"agent:{agent}:voice:{digits}" if digits else per_call
