"""Per-number routes (SPEC §1.10): which route a number hits and the effective per-call settings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from voicecall.config.merge import deep_merge
from voicecall.config.models import VoicecallConfig
from voicecall.config.sections import NumberRoute, TtsConfig

__all__ = ["CallSettings", "digits_only", "find_route_key", "resolve_route"]

_NON_DIGIT = re.compile(r"\D")


def digits_only(number: str) -> str:
    """The number with every non-digit stripped (SPEC §12 normalisation)."""
    return _NON_DIGIT.sub("", number)


@dataclass(frozen=True)
class CallSettings:
    """Settings for one call after its number route is applied."""

    inbound_greeting: str
    agent_id: str
    response_model: str | None
    response_system_prompt: str | None
    response_timeout_ms: int
    tts: TtsConfig


def find_route_key(config: VoicecallConfig, number: str | None) -> str | None:
    """The `numbers` key for `number`: exact match first, else digits-only equality."""
    if not number:
        return None
    if number in config.numbers:
        return number
    digits = digits_only(number)
    if not digits:
        return None
    return next((key for key in config.numbers if digits_only(key) == digits), None)


def resolve_route(config: VoicecallConfig, number: str | None) -> tuple[str | None, CallSettings]:
    """The matched route key (for `metadata.numberRouteKey`) and the effective settings."""
    key = find_route_key(config, number)
    route = config.numbers[key] if key is not None else NumberRoute()
    tts = config.tts
    if route.tts is not None:
        patch = route.tts.model_dump(by_alias=True, exclude_none=True)
        tts = TtsConfig.model_validate(deep_merge(config.tts.model_dump(by_alias=True), patch))
    settings = CallSettings(
        inbound_greeting=route.inbound_greeting or config.greeting(),
        agent_id=route.agent_id or config.agent_id,
        response_model=route.response_model or config.response_model,
        response_system_prompt=route.response_system_prompt or config.response_system_prompt,
        response_timeout_ms=route.response_timeout_ms or config.response_timeout_ms,
        tts=tts,
    )
    return key, settings
