"""Sans-IO builders of every Plivo XML document the gateway serves (SPEC §3.4, §12).

Text and attribute values are XML-escaped (``& < > " '``), so ``&`` in URLs is ``&amp;``.
"""

from __future__ import annotations

from urllib.parse import urlencode

__all__ = [
    "LISTEN_EXECUTION_TIMEOUT_S",
    "WAIT_LENGTH_S",
    "callback_url",
    "escape",
    "xml_empty",
    "xml_listen",
    "xml_notify",
    "xml_reject",
    "xml_speak",
    "xml_speak_listen",
    "xml_stream",
    "xml_wait",
]

WAIT_LENGTH_S = 300
LISTEN_EXECUTION_TIMEOUT_S = 30

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})
_WAIT = f'<Wait length="{WAIT_LENGTH_S}" />'


def escape(value: str) -> str:
    """``value`` safe inside XML text and double-quoted attributes."""
    return value.translate(_ESCAPES)


def callback_url(
    webhook_url: str, *, flow: str, call_id: str | None = None, call_id_first: bool = False
) -> str:
    """``<webhook>?provider=plivo&flow=<flow>&callId=<id>`` (raw, not yet XML-escaped).

    ``webhook_url`` is the public webhook URL (``publicUrl`` origin+path), never a request Host.
    ``call_id_first`` gives the create request's order, ``…&callId=<id>&flow=<flow>``.
    """
    params = [("provider", "plivo"), ("flow", flow)]
    if call_id:
        params.insert(1 if call_id_first else 2, ("callId", call_id))
    joiner = "&" if "?" in webhook_url else "?"
    return f"{webhook_url}{joiner}{urlencode(params)}"


def _speak(text: str, locale: str) -> str:
    return f'<Speak language="{escape(locale)}">{escape(text)}</Speak>'


def _get_input(webhook_url: str, call_id: str, language: str) -> str:
    action = callback_url(webhook_url, flow="getinput", call_id=call_id)
    return (
        f'<GetInput inputType="speech" method="POST" action="{escape(action)}" '
        f'language="{escape(language)}" executionTimeout="{LISTEN_EXECUTION_TIMEOUT_S}" '
        'speechEndTimeout="1" redirect="false"></GetInput>'
    )


def xml_speak(text: str, *, locale: str) -> str:
    """xml-speak: say ``text``, then hold the line."""
    return f"<Response>{_speak(text, locale)}{_WAIT}</Response>"


def xml_speak_listen(text: str, *, locale: str, webhook_url: str, call_id: str) -> str:
    """xml-speak-listen: say ``text``, then collect the caller's answer in the same document."""
    get_input = _get_input(webhook_url, call_id, locale)
    return f"<Response>{_speak(text, locale)}{get_input}{_WAIT}</Response>"


def xml_notify(text: str, *, locale: str) -> str:
    """xml-notify: say ``text``, then end the call right after playback."""
    return f"<Response>{_speak(text, locale)}<Hangup /></Response>"


def xml_listen(*, webhook_url: str, call_id: str, language: str) -> str:
    """xml-listen: collect the caller's speech, then hold the line."""
    return f"<Response>{_get_input(webhook_url, call_id, language)}{_WAIT}</Response>"


def xml_stream(stream_url: str) -> str:
    """Streaming and realtime (improvement I4): a bidirectional µ-law 8 kHz audio stream.

    ``keepCallAlive`` holds the call for as long as the socket lives; the token is the URL's
    last path segment (``wss://{host}{prefix}{path}/{token}``).
    """
    return (
        '<Response><Stream bidirectional="true" keepCallAlive="true" '
        f'contentType="audio/x-mulaw;rate=8000">{escape(stream_url)}</Stream></Response>'
    )


def xml_wait() -> str:
    """The answer and getinput documents: hold the line until the next transfer."""
    return f"<Response>{_WAIT}</Response>"


def xml_reject() -> str:
    """Refuse an inbound caller in-band (SPEC §12, improvement I20)."""
    return '<Response><Hangup reason="rejected" /></Response>'


def xml_empty() -> str:
    """Every other flow (status and hangup callbacks)."""
    return "<Response></Response>"
