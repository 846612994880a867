"""Twilio REST requests of SPEC §3.1 as plain data (sans-IO); the carrier sends them."""

from __future__ import annotations

import math
from urllib.parse import quote

from voicecall.carriers.api import ApiRequest
from voicecall.carriers.twilio.twiml import with_query

__all__ = [
    "MAX_INLINE_TWIML_CHARS",
    "TERMINAL_STATUSES",
    "create_call",
    "fetch_call",
    "hang_up",
    "redirect_call",
    "start_recording",
    "update_twiml",
]

MAX_INLINE_TWIML_CHARS = 4000
TERMINAL_STATUSES = frozenset({"completed", "failed", "busy", "no-answer", "canceled"})
_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


def _account(account_sid: str) -> str:
    return f"/2010-04-01/Accounts/{quote(account_sid, safe='')}"


def _call(account_sid: str, call_sid: str) -> str:
    return f"{_account(account_sid)}/Calls/{quote(call_sid, safe='')}.json"


def _recording_params(webhook_url: str, call_id: str, channels: str) -> list[tuple[str, str]]:
    return [
        ("RecordingChannels", channels),
        (
            "RecordingStatusCallback",
            with_query(webhook_url, {"callId": call_id, "type": "recording"}),
        ),
        ("RecordingStatusCallbackEvent", "completed"),
        ("RecordingStatusCallbackMethod", "POST"),
    ]


def create_call(
    account_sid: str,
    *,
    to: str,
    from_: str,
    webhook_url: str,
    call_id: str,
    ring_timeout_ms: int,
    twiml: str | None = None,
    voicemail: object | None = None,
    recording_channels: str | None = None,
) -> ApiRequest:
    """``POST /Calls.json``: inline ``Twiml`` when given, else ``Url=<webhook>?callId=<id>``.

    ``voicemail`` is the ``voicemail`` config section when detection is on (asynchronous AMD);
    ``recording_channels`` turns recording on.
    """
    form: list[tuple[str, str]] = [
        ("To", to),
        ("From", from_),
        ("StatusCallback", with_query(webhook_url, {"callId": call_id, "type": "status"})),
        *(("StatusCallbackEvent", event) for event in _STATUS_EVENTS),
        ("StatusCallbackMethod", "POST"),
        ("Timeout", str(math.ceil(ring_timeout_ms / 1000))),
    ]
    if twiml is not None:
        form.append(("Twiml", twiml))
    else:
        form += [("Url", with_query(webhook_url, {"callId": call_id})), ("Method", "POST")]
    if voicemail is not None:
        on_machine = getattr(voicemail, "on_machine", "leave-message")
        form += [
            ("MachineDetection", "DetectMessageEnd" if on_machine == "leave-message" else "Enable"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", with_query(webhook_url, {"callId": call_id, "type": "amd"})),
            ("AsyncAmdStatusCallbackMethod", "POST"),
            (
                "MachineDetectionSpeechThreshold",
                str(getattr(voicemail, "machine_detection_speech_threshold_ms", 6000)),
            ),
            (
                "MachineDetectionSpeechEndThreshold",
                str(getattr(voicemail, "machine_detection_speech_end_threshold_ms", 1200)),
            ),
            (
                "MachineDetectionSilenceTimeout",
                str(getattr(voicemail, "machine_detection_silence_timeout_ms", 5000)),
            ),
            (
                "MachineDetectionTimeout",
                str(getattr(voicemail, "machine_detection_timeout_ms", 30000) // 1000),
            ),
        ]
    if recording_channels is not None:
        form.append(("Record", "true"))
        form += _recording_params(webhook_url, call_id, recording_channels)
    return ApiRequest("POST", f"{_account(account_sid)}/Calls.json", form=form, idempotent=False)


def hang_up(account_sid: str, call_sid: str, *, not_yet_answered: bool = False) -> ApiRequest:
    """``Status=completed`` (``canceled`` for a call still queued or ringing)."""
    status = "canceled" if not_yet_answered else "completed"
    # Ending a call twice is harmless, so a lost answer may be retried.
    return ApiRequest(
        "POST", _call(account_sid, call_sid), form=[("Status", status)], idempotent=True
    )


def update_twiml(account_sid: str, call_sid: str, twiml: str) -> ApiRequest:
    """Replace the call's live TwiML (not retried blindly: it would restart the document)."""
    return ApiRequest(
        "POST", _call(account_sid, call_sid), form=[("Twiml", twiml)], idempotent=False
    )


def redirect_call(account_sid: str, call_sid: str, url: str) -> ApiRequest:
    """Send the call to ``url`` (dequeue a held caller)."""
    form = [("Url", url), ("Method", "POST")]
    return ApiRequest("POST", _call(account_sid, call_sid), form=form, idempotent=False)


def fetch_call(account_sid: str, call_sid: str) -> ApiRequest:
    """``GET /Calls/{sid}.json``."""
    return ApiRequest("GET", _call(account_sid, call_sid))


def start_recording(
    account_sid: str, call_sid: str, *, webhook_url: str, call_id: str, channels: str
) -> ApiRequest:
    """``POST /Calls/{sid}/Recordings.json`` for an answered inbound call."""
    path = f"{_account(account_sid)}/Calls/{quote(call_sid, safe='')}/Recordings.json"
    form = _recording_params(webhook_url, call_id, channels)
    return ApiRequest("POST", path, form=form, idempotent=False)
