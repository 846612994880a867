"""The Plivo carrier's settings, read once from the gateway config (SPEC §1.3, §3.4)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_API_BASE_URL", "DEFAULT_LOCALE", "PlivoSettings", "webhook_base"]

DEFAULT_API_BASE_URL = "https://api.plivo.com/v1"
DEFAULT_LOCALE = "en-US"
_LOCALE_KEYS = ("language", "languageCode", "language_code", "locale")


def webhook_base(url: str | None) -> str | None:
    """A public URL's origin and path only: what callback URLs are built on (no query)."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _tts_locale(tts: Any) -> str:
    provider = getattr(tts, "provider", None)
    providers = getattr(tts, "providers", None)
    entry = providers.get(provider) if provider and isinstance(providers, Mapping) else None
    if isinstance(entry, Mapping):
        for key in _LOCALE_KEYS:
            value = entry.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return DEFAULT_LOCALE


def _path_prefix(config: Any) -> str:
    from voicecall.config.models import VoicecallConfig
    from voicecall.exposure.webhook_url import public_path_prefix

    return public_path_prefix(config) if isinstance(config, VoicecallConfig) else ""


@dataclass(frozen=True, slots=True)
class PlivoSettings:
    """Credentials, API base, callback base and the speech locale of one Plivo account."""

    auth_id: str
    auth_token: str
    api_base_url: str = DEFAULT_API_BASE_URL
    public_url: str | None = None
    ring_timeout_s: int = 30
    locale: str = DEFAULT_LOCALE
    recording: bool = False
    #: ``streaming.streamPath`` when classic streaming is on (conversation calls stream), else None.
    stream_path: str | None = None
    #: The reverse-proxy prefix of ``publicUrl`` put in front of stream paths.
    stream_prefix: str = ""
    #: ``realtime.streamPath`` when realtime is on (SPEC §3.4, §7.1), else None. Realtime
    #: documents are served only once the gateway has bound the bridge's token mint.
    realtime_path: str | None = None

    @classmethod
    def from_config(cls, config: Any) -> PlivoSettings:
        """Read the ``plivo`` section, ``publicUrl``, ``ringTimeoutMs`` and the TTS locale."""
        plivo = getattr(config, "plivo", None)
        ring_ms = int(getattr(config, "ring_timeout_ms", 30000))
        recording = getattr(config, "recording", None)
        streaming = getattr(config, "streaming", None)
        stream_path = getattr(streaming, "stream_path", None) or None
        streams = bool(getattr(streaming, "enabled", False)) and stream_path is not None
        realtime = getattr(config, "realtime", None)
        realtime_path = getattr(realtime, "stream_path", None) or None
        realtime_on = bool(getattr(realtime, "enabled", False)) and realtime_path is not None
        return cls(
            auth_id=str(getattr(plivo, "auth_id", None) or ""),
            auth_token=str(getattr(plivo, "auth_token", None) or ""),
            api_base_url=str(getattr(plivo, "api_base_url", None) or DEFAULT_API_BASE_URL),
            public_url=webhook_base(getattr(config, "public_url", None)),
            ring_timeout_s=max(1, math.ceil(ring_ms / 1000)),
            locale=_tts_locale(getattr(config, "tts", None)),
            recording=bool(getattr(recording, "enabled", False)),
            stream_path=str(stream_path) if streams else None,
            stream_prefix=_path_prefix(config) if streams or realtime_on else "",
            realtime_path=str(realtime_path) if realtime_on else None,
        )
