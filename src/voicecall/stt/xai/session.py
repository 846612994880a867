"""The xAI streaming STT client: the shared session runtime over `websockets`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession
from voicecall.stt.protocol import parse_settings
from voicecall.stt.xai.protocol import XaiProtocol, XaiSettings

__all__ = ["XaiSession", "create_session"]


class XaiSession(SttSession):
    """One call's xAI streaming STT session."""


def create_session(
    raw: Mapping[str, Any], on_event: EventCallback, *, policy: ReconnectPolicy | None = None
) -> XaiSession:
    """A session for `streaming.providers.xai` (defaults of SPEC §6.2 where left out)."""
    settings = parse_settings(XaiSettings, raw, {})
    return XaiSession(XaiProtocol(settings), on_event, policy=policy)
