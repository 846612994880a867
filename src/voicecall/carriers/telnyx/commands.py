"""Sans-IO Telnyx Call Control v2 requests (SPEC §3.3): every body the carrier sends, built here."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from voicecall.carriers.api import ApiRequest
from voicecall.carriers.telnyx.webhook import encode_client_state

__all__ = [
    "DTMF_DIGIT_MS",
    "DTMF_DURATION_MILLIS",
    "StreamParams",
    "answer",
    "carrier_dtmf",
    "dial",
    "dtmf_duration_ms",
    "get_call",
    "hangup",
    "record_start",
    "send_dtmf",
    "speak",
    "streaming_start",
    "transcription_start",
    "transcription_stop",
]

NewId = Callable[[], str]

DTMF_DURATION_MILLIS = 250
#: SPEC §3.5: the estimated time one pre-connect digit takes (tone plus gap).
DTMF_DIGIT_MS = 350
_PAUSE_MS = {"w": 500, "p": 500, ",": 500, "W": 1000, "P": 1000}
# Telnyx knows `w` (0.5 s) and `W` (1 s) as pauses; our `p`/`,` and `P` are the same pauses.
_TO_TELNYX = str.maketrans({"p": "w", ",": "w", "P": "W"})
_DTMF = re.compile(r"[0-9*#wWpP,]{1,64}", re.ASCII)


def _new_id() -> str:
    return str(uuid.uuid4())


def _command(path: str, body: dict[str, Any]) -> ApiRequest:
    # Telnyx ignores a repeated command_id within 60 s, so a retry after a 5xx or a lost answer
    # cannot run the command twice: every command is idempotent for the shared REST client.
    return ApiRequest("POST", path, json_body=body, idempotent=True)


@dataclass(frozen=True, slots=True)
class StreamParams:
    """Bidirectional RTP media streaming to our websocket (SPEC §3.3, improvement I4)."""

    url: str  # wss://{host}{prefix}{path}/{token}
    token: str

    def fields(self) -> dict[str, Any]:
        """The ``stream_*`` fields shared by ``answer`` and ``streaming_start``."""
        return {
            "stream_url": self.url,
            "stream_track": "inbound_track",
            "stream_codec": "PCMU",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
            "stream_auth_token": self.token,
        }


def _path(call_control_id: str) -> str:
    return f"/calls/{quote(call_control_id, safe=':')}"


def _action(call_control_id: str, action: str, body: dict[str, Any], new_id: NewId) -> ApiRequest:
    body["command_id"] = new_id()
    return _command(f"{_path(call_control_id)}/actions/{action}", body)


def dial(
    *,
    connection_id: str,
    to_number: str,
    from_number: str,
    webhook_url: str,
    call_id: str,
    ring_timeout_ms: int,
    new_id: NewId = _new_id,
) -> ApiRequest:
    """``POST /calls``: ring ``ceil(ringTimeoutMs / 1000)`` s; our callId rides in client_state."""
    body = {
        "connection_id": connection_id,
        "to": to_number,
        "from": from_number,
        "webhook_url": webhook_url,
        "webhook_url_method": "POST",
        "client_state": encode_client_state(call_id),
        "timeout_secs": max(1, math.ceil(ring_timeout_ms / 1000)),
        "command_id": new_id(),
    }
    return _command("/calls", body)


def answer(
    call_control_id: str,
    *,
    call_id: str,
    stream: StreamParams | None = None,
    new_id: NewId = _new_id,
) -> ApiRequest:
    """Answer an accepted inbound call, tagging it with our callId (and streaming if asked)."""
    body: dict[str, Any] = {"client_state": encode_client_state(call_id)}
    if stream is not None:
        body.update(stream.fields())
    return _action(call_control_id, "answer", body, new_id)


def hangup(call_control_id: str, *, new_id: NewId = _new_id) -> ApiRequest:
    """Hang the call up (a 404 means it is already gone)."""
    return _action(call_control_id, "hangup", {}, new_id)


def speak(
    call_control_id: str,
    text: str,
    *,
    voice: str | None = None,
    language: str | None = None,
    new_id: NewId = _new_id,
) -> ApiRequest:
    """Carrier text-to-speech; ``call.speak.ended`` reports the end of playback."""
    body = {"payload": text, "voice": voice or "female", "language": language or "en-US"}
    return _action(call_control_id, "speak", body, new_id)


def transcription_start(
    call_control_id: str,
    *,
    call_id: str,
    turn_token: str | None,
    language: str | None = None,
    new_id: NewId = _new_id,
) -> ApiRequest:
    """Start a listen turn; its transcripts echo a client_state carrying the turn token."""
    body = {
        "language": language or "en",
        "client_state": encode_client_state(call_id, turn_token),
    }
    return _action(call_control_id, "transcription_start", body, new_id)


def transcription_stop(
    call_control_id: str, *, call_id: str, new_id: NewId = _new_id
) -> ApiRequest:
    """End the listen turn; later webhooks carry the plain callId again."""
    body = {"client_state": encode_client_state(call_id)}
    return _action(call_control_id, "transcription_stop", body, new_id)


def carrier_dtmf(digits: str) -> str:
    """Our digits (SPEC §3.5) as Telnyx spells them; invalid input raises ValueError."""
    if not _DTMF.fullmatch(digits):
        raise ValueError(f"Invalid DTMF digits: {digits} (allowed: 0-9 * # w W p P ,)")
    return digits.translate(_TO_TELNYX)


def dtmf_duration_ms(digits: str) -> int:
    """How long a sequence takes to play: 350 ms per digit plus 0.5 s / 1 s per pause."""
    return sum(_PAUSE_MS.get(ch, DTMF_DIGIT_MS) for ch in digits)


def send_dtmf(call_control_id: str, digits: str, *, new_id: NewId = _new_id) -> ApiRequest:
    """Send DTMF on a connected call, 250 ms per tone."""
    body = {"digits": carrier_dtmf(digits), "duration_millis": DTMF_DURATION_MILLIS}
    return _action(call_control_id, "send_dtmf", body, new_id)


def streaming_start(
    call_control_id: str, stream: StreamParams, *, new_id: NewId = _new_id
) -> ApiRequest:
    """Start bidirectional media streaming on an outbound call after it was answered."""
    return _action(call_control_id, "streaming_start", stream.fields(), new_id)


def record_start(
    call_control_id: str, *, dual_channel: bool, new_id: NewId = _new_id
) -> ApiRequest:
    """Start an MP3 recording of the call (improvement I9)."""
    body = {"format": "mp3", "channels": "dual" if dual_channel else "single"}
    return _action(call_control_id, "record_start", body, new_id)


def get_call(call_control_id: str) -> ApiRequest:
    """``GET /calls/{id}``: ``data.is_alive`` says whether the call is still up."""
    return ApiRequest("GET", _path(call_control_id))
