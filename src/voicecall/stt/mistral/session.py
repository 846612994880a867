"""The Mistral Voxtral realtime client: the shared session runtime over `websockets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession
from voicecall.stt.mistral.protocol import MistralProtocol, MistralSettings
from voicecall.stt.protocol import parse_settings

__all__ = ["MistralSession", "create_session"]


class MistralSession(SttSession):
    """One call's Mistral Voxtral realtime session."""


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> MistralSession:
    """A session for `streaming.providers.mistral` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(MistralSettings, raw, {})
    return MistralSession(MistralProtocol(settings), on_event, policy=policy)
