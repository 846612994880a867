"""Sans-IO Telnyx webhooks: Ed25519 verification (SPEC §4.2-4.3) and event parsing (§3.3)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from voicecall.errors import ConfigError, InvalidParamsError

__all__ = [
    "HANGUP_CAUSES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TIMESTAMP_TOLERANCE_S",
    "SignatureCheck",
    "TelnyxEvent",
    "decode_client_state",
    "encode_client_state",
    "end_reason_for",
    "load_public_key",
    "parse_webhook",
    "request_key",
    "verify_signature",
]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
TIMESTAMP_TOLERANCE_S = 300

_ED25519_KEY_BYTES = 32
_ED25519_SIGNATURE_BYTES = 64
_TIMESTAMP = re.compile(r"[0-9]{1,15}", re.ASCII)
_PRINTABLE_ID = re.compile(r"[\x21-\x7e]{1,200}", re.ASCII)
# client_state is ours: base64("<callId>") or, while a listen turn runs, base64("<callId>|<turn>").
_TURN_SEPARATOR = "|"

# SPEC §3.3: Telnyx hangup_cause -> end reason; anything else is `completed` with a warning.
HANGUP_CAUSES: Mapping[str, str] = {
    "normal_clearing": "completed",
    "normal_unspecified": "completed",
    "originator_cancel": "hangup-bot",
    "call_rejected": "busy",
    "user_busy": "busy",
    "no_answer": "no-answer",
    "no_user_response": "no-answer",
    "timeout": "no-answer",
    "destination_out_of_order": "failed",
    "network_out_of_order": "failed",
    "service_unavailable": "failed",
    "recovery_on_timer_expire": "failed",
    "machine_detected": "voicemail",
    "fax_detected": "voicemail",
    "user_hangup": "hangup-user",
    "subscriber_absent": "hangup-user",
    "time_limit": "timeout",
}

# Telnyx event types that become one normalized event of the given type (SPEC §3.3).
_SIMPLE_EVENTS: Mapping[str, str] = {
    "call.initiated": "call.initiated",
    "call.ringing": "call.ringing",
    "call.answered": "call.answered",
    "call.bridged": "call.active",
    "call.speak.started": "call.speaking",
}


# ---- keys and signatures ----------------------------------------------------------------------


def _b64decode_any(text: str) -> bytes:
    """Standard or URL-safe Base64, padding optional; anything else raises ValueError."""
    cleaned = "".join(text.split())
    if not cleaned or len(cleaned) % 4 == 1:
        raise ValueError("not Base64")
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as exc:
        raise ValueError("not Base64") from exc


def load_public_key(text: str) -> Ed25519PublicKey:
    """Read ``telnyx.publicKey``: PEM, raw 32 bytes in Base64/Base64URL, or DER SPKI in Base64."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key: object = load_pem_public_key(stripped.encode())
        else:
            raw = _b64decode_any(stripped)
            if len(raw) == _ED25519_KEY_BYTES:
                key = Ed25519PublicKey.from_public_bytes(raw)
            else:
                key = load_der_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            "telnyx.publicKey: not an Ed25519 public key (expected PEM, Base64 of the raw "
            "32-byte key, or Base64 DER SPKI)"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("telnyx.publicKey: the key is not an Ed25519 key")
    return key


def request_key(timestamp: str, signature: bytes, body: bytes) -> str:
    """SPEC §4.3: ``telnyx:`` + sha256(timestamp \\n canonical Base64 signature \\n body)."""
    canonical = base64.b64encode(signature)
    digest = hashlib.sha256(timestamp.encode() + b"\n" + canonical + b"\n" + body).hexdigest()
    return f"telnyx:{digest}"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The outcome of a Telnyx signature check; ``reason`` is for the log only."""

    ok: bool
    request_key: str | None = None
    reason: str | None = None


def verify_signature(
    *,
    public_key: Ed25519PublicKey | None,
    headers: Mapping[str, str],
    body: bytes,
    now_s: int,
) -> SignatureCheck:
    """Verify Ed25519 over ``"{timestamp}|{body}"``; the ±300 s window is checked afterwards."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature_text = headers.get(SIGNATURE_HEADER)
    if timestamp is None or signature_text is None:
        return SignatureCheck(False, reason="missing Telnyx signature headers")
    if public_key is None:
        return SignatureCheck(False, reason="telnyx.publicKey is not configured")
    timestamp = timestamp.strip()
    if not _TIMESTAMP.fullmatch(timestamp):
        return SignatureCheck(False, reason="Invalid timestamp")
    try:
        signature = _b64decode_any(signature_text)
    except ValueError:
        return SignatureCheck(False, reason="Invalid signature encoding")
    if len(signature) != _ED25519_SIGNATURE_BYTES:
        return SignatureCheck(False, reason="Invalid signature length")
    try:
        public_key.verify(signature, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        return SignatureCheck(False, reason="Invalid signature")
    if abs(now_s - int(timestamp)) > TIMESTAMP_TOLERANCE_S:
        return SignatureCheck(False, reason="Timestamp too old")
    return SignatureCheck(True, request_key=request_key(timestamp, signature, body))


# ---- client_state -----------------------------------------------------------------------------


def encode_client_state(call_id: str, turn_token: str | None = None) -> str:
    """Our ``client_state``: Base64 of the callId (plus ``|turnToken`` during a listen turn)."""
    text = call_id if turn_token is None else f"{call_id}{_TURN_SEPARATOR}{turn_token}"
    return base64.b64encode(text.encode()).decode()


def decode_client_state(value: object) -> tuple[str | None, str | None]:
    """``(callId, turnToken)`` from a ``client_state`` we set; foreign or broken ones give Nones."""
    if not isinstance(value, str) or not value:
        return None, None
    try:
        text = _b64decode_any(value).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    call_id, _, turn = text.partition(_TURN_SEPARATOR)
    if not _PRINTABLE_ID.fullmatch(call_id):
        return None, None
    return call_id, (turn if _PRINTABLE_ID.fullmatch(turn) else None)


# ---- events -----------------------------------------------------------------------------------


def end_reason_for(hangup_cause: object) -> tuple[str, bool]:
    """The end reason for a ``hangup_cause`` and whether the cause was one we know."""
    if isinstance(hangup_cause, str) and hangup_cause in HANGUP_CAUSES:
        return HANGUP_CAUSES[hangup_cause], True
    return "completed", False


@dataclass(frozen=True, slots=True)
class TelnyxEvent:
    """One Telnyx webhook, parsed: what the carrier needs plus the normalized events (§2.4)."""

    event_type: str
    event_id: str | None
    call_control_id: str | None
    call_id: str | None  # from our client_state
    turn_token: str | None
    direction: str | None  # "inbound" | "outbound"
    from_number: str | None
    to_number: str | None
    payload: Mapping[str, Any]
    events: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = field(default=())


def _bad(message: str) -> InvalidParamsError:
    error = InvalidParamsError(message)
    error.remote = True
    return error


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def _direction(value: object) -> str | None:
    if value == "incoming":
        return "inbound"
    if value == "outgoing":
        return "outbound"
    return None


def _transcription(payload: Mapping[str, Any]) -> tuple[str, bool, float | None]:
    data = payload.get("transcription_data")
    source: Mapping[str, Any] = data if isinstance(data, Mapping) else payload
    text = source.get("transcript")
    if not isinstance(text, str):
        text = payload.get("transcription")
    is_final = source.get("is_final", payload.get("is_final", True))
    confidence = source.get("confidence", payload.get("confidence"))
    return (
        text if isinstance(text, str) else "",
        is_final if isinstance(is_final, bool) else True,
        float(confidence)
        if isinstance(confidence, int | float) and not isinstance(confidence, bool)
        else None,
    )


def _recording(payload: Mapping[str, Any], fallback_sid: str) -> dict[str, Any]:
    urls = payload.get("recording_urls") or payload.get("public_recording_urls")
    url = ""
    if isinstance(urls, Mapping):
        url = _str(urls.get("mp3")) or _str(urls.get("wav")) or ""
    fields: dict[str, Any] = {
        "sid": _str(payload.get("recording_id")) or fallback_sid,
        "url": url,
        "status": "completed",
    }
    started = _epoch_ms(payload.get("recording_started_at"))
    ended = _epoch_ms(payload.get("recording_ended_at"))
    if started is not None and ended is not None and ended >= started:
        fields["durationSec"] = (ended - started) / 1000
    return fields


def _specific_fields(
    event_type: str, payload: Mapping[str, Any], event_id: str
) -> tuple[str | None, dict[str, Any], list[str]]:
    """The normalized type and its type-specific fields for one Telnyx event type."""
    warnings: list[str] = []
    if event_type in _SIMPLE_EVENTS:
        return _SIMPLE_EVENTS[event_type], {}, warnings
    if event_type == "call.transcription":
        text, is_final, confidence = _transcription(payload)
        fields: dict[str, Any] = {"transcript": text, "isFinal": is_final}
        if confidence is not None:
            fields["confidence"] = confidence
        return "call.speech", fields, warnings
    if event_type == "call.dtmf.received":
        digit = _str(payload.get("digit"))
        return ("call.dtmf", {"digits": digit}, warnings) if digit else (None, {}, warnings)
    if event_type == "call.hangup":
        cause = payload.get("hangup_cause")
        reason, known = end_reason_for(cause)
        if not known:
            warnings.append(f"unknown Telnyx hangup_cause {cause!r}; treating it as completed")
        return "call.ended", {"reason": reason}, warnings
    if event_type == "call.recording.saved":
        return "call.recording", _recording(payload, event_id), warnings
    return None, {}, warnings


def parse_webhook(
    body: bytes | str,
    *,
    request_key: str,
    now_ms: int,
    new_id: Callable[[], str] | None = None,
) -> TelnyxEvent:
    """Parse a verified Telnyx webhook body into a :class:`TelnyxEvent`.

    The dedupe key is the Telnyx event id (``data.id``), which stays the same when Telnyx
    redelivers an event (a retry carries a new ``meta.attempt``, hence new bytes and a new
    signature); without an id it is the verified request key.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"body: invalid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _bad("body: expected a JSON object")
    data = document.get("data")
    if not isinstance(data, dict):
        raise _bad("data: expected an object")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise _bad("data.event_type: required")
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise _bad("data.payload: expected an object")
    event_id = _str(data.get("id"))
    ccid = _str(payload.get("call_control_id"))
    call_id, turn_token = decode_client_state(payload.get("client_state"))
    direction = _direction(payload.get("direction"))
    from_number = _str(payload.get("from"))
    to_number = _str(payload.get("to"))
    normalized_id = event_id or (new_id() if new_id is not None else request_key)
    kind, fields, warnings = _specific_fields(event_type, payload, normalized_id)
    events: tuple[dict[str, Any], ...] = ()
    if kind is not None and ccid is not None:
        event: dict[str, Any] = {
            "type": kind,
            "id": normalized_id,
            "dedupeKey": f"telnyx:event:{event_id}" if event_id else request_key,
            "callId": call_id or ccid,
            "providerCallId": ccid,
            "timestamp": _epoch_ms(data.get("occurred_at")) or now_ms,
        }
        for key, value in (
            ("direction", direction),
            ("from", from_number),
            ("to", to_number),
            ("turnToken", turn_token if kind == "call.speech" else None),
        ):
            if value is not None:
                event[key] = value
        event.update(fields)
        events = (event,)
    return TelnyxEvent(
        event_type=event_type,
        event_id=event_id,
        call_control_id=ccid,
        call_id=call_id,
        turn_token=turn_token,
        direction=direction,
        from_number=from_number,
        to_number=to_number,
        payload=payload,
        events=events,
        warnings=tuple(warnings),
    )
