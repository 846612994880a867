"""Sans-IO Plivo webhooks: Signature V3 (V2 fallback), request keys, form events (SPEC §3.4, §4.2).

Signature V3 (plivo-python ``signature_v3.py`` ≡ plivo-go ``GenerateUrl``): the base string is
``scheme://netloc/path``; with POST params it always gets ``?``, then the sorted URL query as
``k=v&…``, then ``.`` if that query was non-empty, then the sorted POST params as ``k+v`` (list
values one pair per sorted value). Without POST params only ``?`` + the sorted query is added, and
only when the query is non-empty. The digest is ``base64(HMAC-SHA256(token, base + "." + nonce))``
and the header may carry several comma-separated signatures (one per active token). V2 is
``base64(HMAC-SHA256(token, scheme://netloc/path + nonce))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = [
    "STATUS_EVENTS",
    "TRANSCRIPT_FIELDS",
    "V2_HEADERS",
    "V3_HEADERS",
    "PlivoVerification",
    "event_from_params",
    "group_params",
    "normalize_number",
    "parse_form",
    "provider_ids",
    "sign_v2",
    "sign_v3",
    "v2_base",
    "v3_base",
    "verify_signature",
]

V3_HEADERS = ("x-plivo-signature-v3", "x-plivo-signature-v3-nonce")
V2_HEADERS = ("x-plivo-signature-v2", "x-plivo-signature-v2-nonce")

#: The first non-empty of these form fields is the caller's transcript.
TRANSCRIPT_FIELDS = (
    "Speech",
    "Transcription",
    "TranscriptionText",
    "SpeechResult",
    "RecognizedSpeech",
    "Text",
)

#: ``CallStatus`` → (normalized event type, end reason for ``call.ended``).
STATUS_EVENTS: Mapping[str, tuple[str, str | None]] = {
    "ringing": ("call.ringing", None),
    "in-progress": ("call.answered", None),
    "completed": ("call.ended", "completed"),
    "busy": ("call.ended", "busy"),
    "no-answer": ("call.ended", "no-answer"),
    "timeout": ("call.ended", "no-answer"),
    "failed": ("call.ended", "failed"),
    "cancel": ("call.ended", "hangup-bot"),
    "machine": ("call.ended", "voicemail"),
}

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PlivoVerification:
    """The outcome of a Plivo signature check: ``request_key`` names the request for replays."""

    ok: bool
    request_key: str | None = None
    version: str | None = None  # "v3" or "v2"
    reason: str | None = None


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The form-encoded body as (key, value) pairs in order; blank values are kept."""
    text = body.decode("utf-8", "replace")
    return parse_qsl(text, keep_blank_values=True, errors="replace")


def group_params(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Pairs grouped by key, values in arrival order (repeated keys keep every value)."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _origin_path(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), parts.query


def _sorted_query(grouped: Mapping[str, list[str]]) -> str:
    return "&".join(f"{key}={value}" for key in sorted(grouped) for value in sorted(grouped[key]))


def v3_base(method: str, url: str, params: Params) -> str:
    """The V3 base string (without ``.nonce``) for a request to ``url`` carrying ``params``."""
    base, raw_query = _origin_path(url)
    query = group_params(parse_qsl(raw_query, keep_blank_values=True, errors="replace"))
    body = group_params(params)
    if method.upper() == "GET":
        merged = {**body, **query}  # as the SDK's dict.update: a URL query key wins
        query_text = _sorted_query(merged)
        return f"{base}?{query_text}" if query_text else base
    query_text = _sorted_query(query)
    if not body:
        return f"{base}?{query_text}" if query_text else base
    posted = "".join(f"{key}{value}" for key in sorted(body) for value in sorted(body[key]))
    return f"{base}?{query_text}{'.' if query_text else ''}{posted}"


def v2_base(url: str) -> str:
    """The V2 signed URL: scheme, host, port and path, no query."""
    return _origin_path(url)[0]


def _digest(auth_token: str, message: str) -> str:
    mac = hmac.new(auth_token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def sign_v3(auth_token: str, method: str, url: str, params: Params, nonce: str) -> str:
    """The ``X-Plivo-Signature-V3`` value Plivo sends for this request."""
    return _digest(auth_token, f"{v3_base(method, url, params)}.{nonce}")


def sign_v2(auth_token: str, url: str, nonce: str) -> str:
    """The ``X-Plivo-Signature-V2`` value Plivo sends for this request."""
    return _digest(auth_token, v2_base(url) + nonce)


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _matches(expected: str, header: str) -> bool:
    found = False
    for candidate in header.split(","):
        # Compare every entry in constant time; no early exit on the first match.
        found |= hmac.compare_digest(expected.encode(), candidate.strip().encode())
    return found


def verify_signature(
    *,
    auth_token: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    params: Params,
) -> PlivoVerification:
    """Check V3 when its headers are present, else V2 (SPEC §4.2); keys per SPEC §4.3.

    ``headers`` are lower-cased names; ``url`` is the URL Plivo signed (publicUrl + raw query).
    """
    if not auth_token:
        return PlivoVerification(False, reason="plivo.authToken is not configured")
    v3_signature, v3_nonce = (headers.get(name) for name in V3_HEADERS)
    if v3_signature and v3_nonce:
        base = v3_base(method, url, params)
        if _matches(_digest(auth_token, f"{base}.{v3_nonce}"), v3_signature):
            key = "plivo:v3:" + _sha256_hex(f"{base}\n{v3_nonce}")
            return PlivoVerification(True, request_key=key, version="v3")
        return PlivoVerification(False, reason="X-Plivo-Signature-V3 mismatch")
    v2_signature, v2_nonce = (headers.get(name) for name in V2_HEADERS)
    if v2_signature and v2_nonce:
        base = v2_base(url)
        if _matches(_digest(auth_token, base + v2_nonce), v2_signature):
            key = "plivo:v2:" + _sha256_hex(f"{base}\n{v2_nonce}")
            return PlivoVerification(True, request_key=key, version="v2")
        return PlivoVerification(False, reason="X-Plivo-Signature-V2 mismatch")
    return PlivoVerification(False, reason="missing Plivo signature headers")


def normalize_number(value: str | None) -> str | None:
    """Plivo's ``14155550100`` as E.164 ``+14155550100``; SIP URIs and other values unchanged."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return f"+{text}"
    return text or None


def provider_ids(fields: Mapping[str, str]) -> tuple[str | None, tuple[str, ...]]:
    """The call's ``CallUUID`` and the request UUIDs that link it to our create request."""
    call_uuid = fields.get("CallUUID") or None
    requests = tuple(
        dict.fromkeys(v for v in (fields.get("RequestUUID"), fields.get("ALegRequestUUID")) if v)
    )
    return call_uuid, requests


def _first(fields: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = fields.get(name, "").strip()
        if value:
            return value
    return None


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and number == number else None  # drop NaN


def event_from_params(
    params: Params,
    *,
    flow: str | None,
    call_id: str | None,
    dedupe_key: str,
    received_at_ms: int,
    resolve_call_id: Callable[[Sequence[str]], str | None] | None = None,
) -> dict[str, Any] | None:
    """The one normalized event (SPEC §2.4 dict) a Plivo form request carries, if any.

    Precedence: ``flow=recording`` → recording; ``Digits`` → dtmf; a transcript → speech;
    ``Event=StartApp`` (with ``CallUUID``) → answered; else the ``CallStatus`` mapping of §3.4.
    One request yields one event, so the request key can be its dedupe key. ``callId`` comes from
    the query, else from ``resolve_call_id`` over the request's CallUUID and request UUIDs.
    """
    fields = {key: values[-1] for key, values in group_params(params).items()}
    call_uuid, request_uuids = provider_ids(fields)
    provider_call_id = call_uuid or (request_uuids[0] if request_uuids else None)
    event: dict[str, Any] | None = None
    if flow == "recording":
        url = fields.get("RecordUrl", "").strip()
        sid = fields.get("RecordingID", "").strip()
        if url or sid:
            event = {"type": "call.recording", "sid": sid or url, "url": url}
            duration = _float(fields.get("RecordingDuration"))
            if duration is not None:
                event["durationSec"] = duration
    elif fields.get("Digits", "").strip():
        event = {"type": "call.dtmf", "digits": fields["Digits"].strip()}
    elif (transcript := _first(fields, TRANSCRIPT_FIELDS)) is not None:
        event = {"type": "call.speech", "transcript": transcript, "isFinal": True}
        confidence = _float(fields.get("SpeechConfidenceScore"))
        if confidence is not None:
            event["confidence"] = confidence
    elif fields.get("Event") == "StartApp" and call_uuid:
        event = {"type": "call.answered"}
    elif (mapped := STATUS_EVENTS.get(fields.get("CallStatus", "").strip().lower())) is not None:
        event = {"type": mapped[0]}
        if mapped[1] is not None:
            event["reason"] = mapped[1]
    if event is None:
        return None
    if not call_id and resolve_call_id is not None:
        call_id = resolve_call_id([i for i in (call_uuid, *request_uuids) if i])
    event.update(id=dedupe_key, dedupeKey=dedupe_key, timestamp=received_at_ms)
    if call_id:
        event["callId"] = call_id
    if provider_call_id:
        event["providerCallId"] = provider_call_id
    direction = fields.get("Direction", "").strip().lower()
    if direction in ("inbound", "outbound"):
        event["direction"] = direction
    for name, key in (("From", "from"), ("To", "to")):
        number = normalize_number(fields.get(name))
        if number:
            event[key] = number
    return event
