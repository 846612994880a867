"""TwiML documents of SPEC §3.2, built from templates (sans-IO); every value is XML-escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "PROLOG",
    "dtmf_digits",
    "empty",
    "hold",
    "keepalive",
    "listen",
    "locale_for",
    "notify",
    "play_dtmf",
    "queue",
    "realtime",
    "reject",
    "served",
    "speak",
    "stream",
    "voice_for",
    "with_query",
    "xml_escape",
]

PROLOG = '<?xml version="1.0" encoding="UTF-8"?>'
DEFAULT_VOICE = "Polly.Joanna"
DEFAULT_LOCALE = "en-US"
_OPENAI_TO_POLLY = {
    "alloy": "Polly.Joanna",
    "echo": "Polly.Matthew",
    "fable": "Polly.Amy",
    "onyx": "Polly.Brian",
    "nova": "Polly.Salli",
    "shimmer": "Polly.Kimberly",
}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
# Twilio's <Play digits> and SendDigits know `w` (0.5 s) and `W` (1 s) only (SPEC §3.5).
_PAUSES = str.maketrans({"p": "w", ",": "w", "P": "W"})


def xml_escape(text: str) -> str:
    """``& < > " '`` escaped, for text and attribute values alike."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query string."""
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(dict(params))


def dtmf_digits(digits: str) -> str:
    """DTMF digits with every pause mapped to the ``w``/``W`` Twilio understands."""
    return digits.translate(_PAUSES)


def served(document: str) -> str:
    """A document as served in a webhook answer (with the XML prolog)."""
    return PROLOG + document


def _tts_settings(tts: Any) -> Mapping[str, Any]:
    provider = getattr(tts, "provider", None)
    providers = getattr(tts, "providers", None) or {}
    if provider and isinstance(providers.get(provider), Mapping):
        settings: Mapping[str, Any] = providers[provider]
        return settings
    return {}


def voice_for(tts: Any) -> str:
    """The ``<Say>`` voice: OpenAI names mapped to Polly, ``Polly.``/``Google.`` passed through."""
    settings = _tts_settings(tts)
    for key in ("speakerVoice", "speakerVoiceId", "voice", "voiceId"):
        value = settings.get(key)
        if isinstance(value, str) and value:
            if value.startswith(("Polly.", "Google.")):
                return value
            if value in _OPENAI_TO_POLLY:
                return _OPENAI_TO_POLLY[value]
    return DEFAULT_VOICE


def locale_for(tts: Any) -> str:
    """The TTS provider's ``language``, else ``en-US``."""
    value = _tts_settings(tts).get("language")
    return value if isinstance(value, str) and value else DEFAULT_LOCALE


def empty() -> str:
    """T-EMPTY."""
    return "<Response></Response>"


def notify(text: str, voice: str) -> str:
    """T-NOTIFY: speak, then hang up."""
    return (
        f'<Response><Say voice="{xml_escape(voice)}">{xml_escape(text)}</Say><Hangup/></Response>'
    )


def _gather(action_url: str, locale: str) -> str:
    return (
        f'<Gather input="speech" speechTimeout="auto" language="{xml_escape(locale)}" '
        f'action="{xml_escape(action_url)}" method="POST"></Gather>'
    )


def _redirect(url: str) -> str:
    return f'<Redirect method="POST">{xml_escape(url)}</Redirect>'


def speak(text: str, *, voice: str, locale: str, action_url: str, keepalive_url: str) -> str:
    """T-SPEAK: say ``text``, listen, and keep the call alive when nobody speaks (I13)."""
    say = (
        f'<Say voice="{xml_escape(voice)}" language="{xml_escape(locale)}">{xml_escape(text)}</Say>'
    )
    return f"<Response>{say}{_gather(action_url, locale)}{_redirect(keepalive_url)}</Response>"


def listen(*, locale: str, action_url: str, keepalive_url: str) -> str:
    """T-LISTEN."""
    return f"<Response>{_gather(action_url, locale)}{_redirect(keepalive_url)}</Response>"


def keepalive(keepalive_url: str) -> str:
    """T-KEEPALIVE: wait 30 s, then ask again."""
    return f'<Response><Pause length="30"/>{_redirect(keepalive_url)}</Response>'


def play_dtmf(digits: str, redirect_url: str) -> str:
    """T-DTMF: play the digits, then continue at ``redirect_url``."""
    return (
        f'<Response><Play digits="{xml_escape(dtmf_digits(digits))}" />'
        f"{_redirect(redirect_url)}</Response>"
    )


def reject() -> str:
    """T-REJECT: refuse the caller in band (no REST hangup)."""
    return '<Response><Reject reason="rejected" /></Response>'


def queue(hold_url: str) -> str:
    """T-QUEUE: hold the caller while every slot is busy."""
    return (
        '<Response><Say voice="alice">Please hold while we connect you.</Say>'
        f'<Enqueue waitUrl="{xml_escape(hold_url)}">hold-queue</Enqueue></Response>'
    )


def hold(music_url: str) -> str:
    """T-HOLD: the queue's wait music."""
    return (
        '<Response><Say voice="alice">All agents are currently busy. Please hold.</Say>'
        f'<Play loop="0">{xml_escape(music_url)}</Play></Response>'
    )


def stream(stream_url: str, token: str) -> str:
    """T-STREAM: a bidirectional media stream; the token rides as a custom parameter."""
    return (
        f'<Response><Connect><Stream url="{xml_escape(stream_url)}">'
        f'<Parameter name="token" value="{xml_escape(token)}" /></Stream></Connect></Response>'
    )


def realtime(stream_url: str) -> str:
    """T-REALTIME: the realtime bridge stream (token in the path)."""
    return f'<Response><Connect><Stream url="{xml_escape(stream_url)}" /></Connect></Response>'
