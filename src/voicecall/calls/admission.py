"""Outbound admission (SPEC §2.2): the guards, in order, with their exact messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from voicecall.calls.policy import digits_only
from voicecall.errors import CallError, InvalidParamsError

__all__ = [
    "DTMF_PATTERN",
    "E164_PATTERN",
    "Admitted",
    "OutboundRequest",
    "admit_outbound",
    "match_route",
    "validate_dtmf",
]

E164_PATTERN = re.compile(r"^\+[1-9]\d{1,14}$")
DTMF_PATTERN = re.compile(r"^[0-9*#wWpP,]{1,64}$")
MODES = ("notify", "conversation")

_Route = TypeVar("_Route")


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """What a caller asked for; every field optional, defaults come from the config."""

    to: str | None = None
    message: str | None = None
    mode: str | None = None
    dtmf_sequence: str | None = None
    from_number: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    requester_session_key: str | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that passed every guard, with defaults applied."""

    to: str
    from_number: str
    mode: str
    message: str | None
    dtmf_sequence: str | None
    route_key: str | None


def match_route(routes: Mapping[str, _Route], number: str | None) -> tuple[str, _Route] | None:
    """The ``numbers`` route for ``number``: exact key, else digits-only equality (§1.10)."""
    if not number:
        return None
    if number in routes:
        return number, routes[number]
    wanted = digits_only(number)
    if not wanted:
        return None
    for key, route in routes.items():
        if digits_only(key) == wanted:
            return key, route
    return None


def validate_dtmf(digits: str) -> str:
    """``digits`` if every character is a DTMF key or pause (at most 64), else an error."""
    if not DTMF_PATTERN.match(digits):
        raise InvalidParamsError(f"Invalid DTMF digits: {digits} (allowed: 0-9 * # w W p P ,)")
    return digits


def admit_outbound(
    request: OutboundRequest,
    *,
    config: Any,
    active_calls: int,
    webhook_url_configured: bool,
    supports_pre_connect_dtmf: bool,
) -> Admitted:
    """Apply the §2.2 guards in order; raise the first that fails with its exact message."""
    provider = getattr(config, "provider", None)
    if not provider:
        raise CallError("No provider configured")
    if not webhook_url_configured:
        raise CallError("Webhook URL not configured")
    limit = int(config.max_concurrent_calls)
    if active_calls >= limit:
        raise CallError(f"Maximum concurrent calls reached ({limit})")
    default_from = config.from_number or ("+15550000000" if provider == "mock" else None)
    if not default_from:
        raise CallError("fromNumber not configured")
    to = request.to or config.to_number
    if not to:
        raise InvalidParamsError("to number is required (pass to or set toNumber)")
    if not E164_PATTERN.match(to):
        raise InvalidParamsError(f"Invalid phone number: {to} (expected E.164)")
    from_number = request.from_number or default_from
    route = match_route(config.numbers, from_number)
    if request.from_number and request.from_number != default_from and route is None:
        raise InvalidParamsError(
            f"from number {request.from_number} is not configured "
            "(set fromNumber or add it under numbers)"
        )
    mode = request.mode or config.outbound.default_mode
    if mode not in MODES:
        raise InvalidParamsError(f'mode must be "notify" or "conversation" (got {mode})')
    dtmf = request.dtmf_sequence or None
    if dtmf is not None:
        if mode != "conversation":
            raise InvalidParamsError('dtmfSequence is only supported with mode "conversation"')
        validate_dtmf(dtmf)
        if not supports_pre_connect_dtmf:
            raise CallError(f"dtmfSequence is not supported by provider {provider}")
    return Admitted(
        to=to,
        from_number=from_number,
        mode=mode,
        message=request.message or None,
        dtmf_sequence=dtmf,
        route_key=route[0] if route else None,
    )
