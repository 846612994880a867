"""Inbound caller-ID screening (SPEC §12): who may call in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

__all__ = ["InboundPolicy", "digits_only", "inbound_allowed"]

InboundPolicy = Literal["disabled", "allowlist", "pairing", "open"]

_NON_DIGITS = re.compile(r"\D")


def digits_only(number: str | None) -> str:
    """The number with every non-digit removed (``anonymous`` becomes ``""``)."""
    return _NON_DIGITS.sub("", number or "")


def inbound_allowed(policy: str, caller: str | None, allow_from: Iterable[str]) -> bool:
    """Whether an inbound call from ``caller`` passes ``policy``.

    ``pairing`` behaves exactly as ``allowlist``: the caller's digits must equal some entry's
    digits exactly (no prefix or suffix matching); a caller without digits is rejected.
    """
    if policy == "open":
        return True
    if policy not in ("allowlist", "pairing"):
        return False
    caller_digits = digits_only(caller)
    if not caller_digits:
        return False
    return any(digits_only(entry) == caller_digits for entry in allow_from)
