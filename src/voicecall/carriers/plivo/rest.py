"""Sans-IO Plivo Voice API requests and answers (SPEC §3.4); paths are relative to
``{plivo.apiBaseUrl}/Account/{authId}`` and, as Plivo requires, end with ``/``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from voicecall.carriers.api import ApiRequest
from voicecall.carriers.plivo.xml import callback_url

__all__ = [
    "TERMINAL_CALL_STATUSES",
    "account_base_url",
    "call_status_from",
    "cancel_request",
    "create_call",
    "get_call",
    "hangup_call",
    "plivo_digits",
    "plivo_number",
    "request_uuid_from",
    "send_dtmf",
    "start_recording",
    "transfer_call",
]

TERMINAL_CALL_STATUSES = frozenset(
    {"completed", "busy", "failed", "timeout", "no-answer", "cancel", "machine", "hangup"}
)

# Plivo's send_digits and DTMF know `w` (0.5 s) and `W` (1 s) pauses only (SPEC §3.5).
_PAUSES = str.maketrans({"p": "w", ",": "w", "P": "W"})


def account_base_url(api_base_url: str, auth_id: str) -> str:
    """``{apiBaseUrl}/Account/{authId}``: the base every request path is appended to."""
    return f"{api_base_url.rstrip('/')}/Account/{quote(auth_id, safe='')}"


def _segment(value: str) -> str:
    return quote(value, safe="")


def plivo_number(value: str) -> str:
    """A number as Plivo takes it: digits and a leading ``+`` kept; ``sip:`` URIs unchanged."""
    text = value.strip()
    if text.lower().startswith("sip:"):
        return text
    digits = "".join(ch for ch in text if ch.isdigit())
    return f"+{digits}" if text.startswith("+") else digits


def plivo_digits(digits: str) -> str:
    """DTMF digits with our pauses mapped onto Plivo's ``w``/``W``."""
    return digits.translate(_PAUSES)


def create_call(
    *,
    call_id: str,
    from_number: str,
    to_number: str,
    webhook_url: str,
    ring_timeout_s: int,
    send_digits: str | None = None,
) -> ApiRequest:
    """``POST /Call/``: dial out; Plivo fetches the answer URL and posts the hangup URL."""
    body: dict[str, Any] = {
        "from": plivo_number(from_number),
        "to": plivo_number(to_number),
        "answer_url": callback_url(webhook_url, flow="answer", call_id=call_id, call_id_first=True),
        "answer_method": "POST",
        "hangup_url": callback_url(webhook_url, flow="hangup", call_id=call_id, call_id_first=True),
        "hangup_method": "POST",
        "ring_timeout": ring_timeout_s,
    }
    if send_digits:
        body["send_digits"] = plivo_digits(send_digits)
    return ApiRequest("POST", "/Call/", json_body=body)


def hangup_call(call_uuid: str) -> ApiRequest:
    """``DELETE /Call/{uuid}/``: hang up a connected call (404: already gone)."""
    return ApiRequest("DELETE", f"/Call/{_segment(call_uuid)}/")


def cancel_request(request_uuid: str) -> ApiRequest:
    """``DELETE /Request/{uuid}/``: cancel a call that is still being placed (404: gone)."""
    return ApiRequest("DELETE", f"/Request/{_segment(request_uuid)}/")


def transfer_call(call_uuid: str, aleg_url: str) -> ApiRequest:
    """``POST /Call/{uuid}/``: make the live call fetch and run the XML at ``aleg_url``."""
    body = {"legs": "aleg", "aleg_url": aleg_url, "aleg_method": "POST"}
    return ApiRequest("POST", f"/Call/{_segment(call_uuid)}/", json_body=body)


def send_dtmf(call_uuid: str, digits: str) -> ApiRequest:
    """``POST /Call/{uuid}/DTMF/``: play DTMF tones on the A leg."""
    body = {"digits": plivo_digits(digits), "leg": "aleg"}
    return ApiRequest("POST", f"/Call/{_segment(call_uuid)}/DTMF/", json_body=body)


def get_call(call_uuid: str) -> ApiRequest:
    """``GET /Call/{uuid}/``: the call's details, including ``call_status``."""
    return ApiRequest("GET", f"/Call/{_segment(call_uuid)}/")


def start_recording(call_uuid: str, *, webhook_url: str, call_id: str) -> ApiRequest:
    """``POST /Call/{uuid}/Record/``: record the call; its callback is ``flow=recording``."""
    body = {
        "file_format": "mp3",
        "callback_url": callback_url(webhook_url, flow="recording", call_id=call_id),
        "callback_method": "POST",
    }
    return ApiRequest("POST", f"/Call/{_segment(call_uuid)}/Record/", json_body=body)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def request_uuid_from(body: bytes) -> str | None:
    """The create answer's ``request_uuid`` (the first one when Plivo sends an array)."""
    value = _json_object(body).get("request_uuid")
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def call_status_from(body: bytes) -> tuple[str, bool]:
    """``(call_status, terminal)`` from a ``GET /Call/{uuid}/`` answer (``unknown`` if absent)."""
    value = _json_object(body).get("call_status")
    if not isinstance(value, str) or not value:
        return "unknown", False
    status = value.strip().lower()
    return status, status in TERMINAL_CALL_STATUSES
