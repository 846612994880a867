"""Twilio webhooks, sans-IO: X-Twilio-Signature checks (SPEC §4.2) and parsing into events."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = [
    "SIGNATURE_HEADER",
    "SignatureCheck",
    "TwilioWebhook",
    "compute_signature",
    "form_params",
    "parse_webhook",
    "request_key",
    "signing_string",
    "url_variants",
    "verify_signature",
]

SIGNATURE_HEADER = "x-twilio-signature"

# CallStatus -> (event type, end reason) (SPEC §3.2).
_STATUS_EVENTS: dict[str, tuple[str, str | None]] = {
    "initiated": ("call.initiated", None),
    "ringing": ("call.ringing", None),
    "in-progress": ("call.answered", None),
    "completed": ("call.ended", "completed"),
    "failed": ("call.ended", "failed"),
    "busy": ("call.ended", "busy"),
    "no-answer": ("call.ended", "no-answer"),
    "canceled": ("call.ended", "hangup-bot"),
}
_DEFAULT_CONFIDENCE = 0.9
_DEFAULT_PORTS = {"https": 443, "http": 80}


def signing_string(url: str, params: Iterable[tuple[str, str]]) -> str:
    """The URL, then ``key+value`` for each distinct key and each of its distinct values, sorted."""
    values: dict[str, set[str]] = {}
    for key, value in params:
        values.setdefault(key, set()).add(value)
    parts = [url]
    for key in sorted(values):
        parts.extend(key + value for value in sorted(values[key]))
    return "".join(parts)


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """``base64(HMAC-SHA1(authToken, signing_string(url, params)))``."""
    digest = hmac.new(
        auth_token.encode(), signing_string(url, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def _with_netloc_port(url: str, port: int | None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _port_of(host_header: str | None) -> int | None:
    if not host_header:
        return None
    _, sep, port = host_header.rpartition(":")
    if not sep or "]" in port or not port.isdigit():
        return None
    return int(port)


def url_variants(
    url: str, public_url: str | None = None, host_header: str | None = None
) -> list[str]:
    """The URLs a Twilio signature may cover: as given; port removed; default port added;
    ``publicUrl``'s port; the ``Host`` header's port (SPEC §4.2), without repeats."""
    parts = urlsplit(url)
    candidates = [url, _with_netloc_port(url, None)]
    try:
        own_port = parts.port
    except ValueError:
        own_port = None
    if own_port is None and parts.scheme in _DEFAULT_PORTS:
        candidates.append(_with_netloc_port(url, _DEFAULT_PORTS[parts.scheme]))
    if public_url:
        try:
            public_port = urlsplit(public_url).port
        except ValueError:
            public_port = None
        if public_port:
            candidates.append(_with_netloc_port(url, public_port))
    header_port = _port_of(host_header)
    if header_port:
        candidates.append(_with_netloc_port(url, header_port))
    return list(dict.fromkeys(candidates))


def form_params(body: bytes) -> list[tuple[str, str]]:
    """The form-encoded POST parameters, in order (repeated keys kept)."""
    return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)


def request_key(url: str, params: Sequence[tuple[str, str]], signature: str) -> str:
    """``twilio:req:`` + sha256(url \\n sorted "k=v&..." \\n signature), hex (SPEC §4.3)."""
    canonical = "&".join(f"{k}={v}" for k, v in sorted(set(params)))
    digest = hashlib.sha256(f"{url}\n{canonical}\n{signature}".encode()).hexdigest()
    return f"twilio:req:{digest}"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The outcome of a signature check: the replay key when valid, else the reason."""

    ok: bool
    request_key: str | None = None
    reason: str | None = None


def verify_signature(
    auth_token: str,
    *,
    url: str,
    signature: str | None,
    body: bytes,
    query: Mapping[str, str],
    public_url: str | None = None,
    host_header: str | None = None,
) -> SignatureCheck:
    """Check ``X-Twilio-Signature`` over the URL variants; JSON bodies via ``bodySHA256``."""
    signature = (signature or "").strip()
    if not signature:
        return SignatureCheck(ok=False, reason="missing X-Twilio-Signature")
    if not auth_token:
        return SignatureCheck(ok=False, reason="no Twilio auth token configured")
    body_hash = query.get("bodySHA256")
    params: list[tuple[str, str]]
    if body_hash is not None:
        actual = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(actual.encode(), body_hash.lower().encode()):
            return SignatureCheck(ok=False, reason="bodySHA256 does not match the body")
        params = []
    else:
        try:
            params = form_params(body)
        except UnicodeDecodeError:
            return SignatureCheck(ok=False, reason="body is not UTF-8 form data")
    for candidate in url_variants(url, public_url, host_header):
        expected = compute_signature(auth_token, candidate, params)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return SignatureCheck(ok=True, request_key=request_key(candidate, params, signature))
    return SignatureCheck(ok=False, reason="X-Twilio-Signature mismatch")


@dataclass(frozen=True, slots=True)
class TwilioWebhook:
    """One parsed Twilio webhook: who it is about, what kind it is, and its events."""

    call_sid: str | None
    call_id: str | None
    kind: str | None  # ?type= status | amd | recording
    flow: str | None  # ?flow= keepalive | ...
    direction: str | None  # inbound | outbound
    call_status: str | None
    turn_token: str | None
    gather_result: bool  # SpeechResult or Digits present (a Gather action)
    from_number: str | None
    to_number: str | None
    events: list[dict[str, Any]] = field(default_factory=list)


def _direction(raw: str | None) -> str | None:
    if raw == "inbound":
        return "inbound"
    if raw and raw.startswith("outbound"):
        return "outbound"
    return None


def _float(raw: str | None, default: float | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        return default


def parse_webhook(
    params: Mapping[str, str],
    query: Mapping[str, str],
    *,
    dedupe_key: str,
    call_id: str | None,
    now_ms: int,
) -> TwilioWebhook:
    """Normalized events for one webhook (SPEC §3.2); ``call_id`` = ``?callId`` or the mapping."""
    call_sid = params.get("CallSid") or None
    kind = query.get("type") or None
    flow = query.get("flow") or None
    turn_token = query.get("turnToken") or None
    direction = _direction(params.get("Direction"))
    status = params.get("CallStatus") or None
    speech = (params.get("SpeechResult") or "").strip()
    digits = params.get("Digits") or ""
    common: dict[str, Any] = {"timestamp": now_ms}
    for name, value in (
        ("callId", call_id),
        ("providerCallId", call_sid),
        ("turnToken", turn_token),
        ("direction", direction),
        ("from", params.get("From") or None),
        ("to", params.get("To") or None),
    ):
        if value is not None:
            common[name] = value
    bodies: list[dict[str, Any]] = []
    if kind == "amd":
        if params.get("AnsweredBy"):
            bodies.append({"type": "call.amd", "answeredBy": params["AnsweredBy"]})
    elif kind == "recording":
        if params.get("RecordingSid") and params.get("RecordingUrl"):
            recording: dict[str, Any] = {
                "type": "call.recording",
                "sid": params["RecordingSid"],
                "url": params["RecordingUrl"],
            }
            duration = _float(params.get("RecordingDuration"), None)
            if duration is not None:
                recording["durationSec"] = duration
            if params.get("RecordingStatus"):
                recording["status"] = params["RecordingStatus"]
            bodies.append(recording)
    else:
        mapped = _STATUS_EVENTS.get(status or "")
        if mapped is not None:
            event: dict[str, Any] = {"type": mapped[0]}
            if mapped[1] is not None:
                event["reason"] = mapped[1]
            bodies.append(event)
        elif status is None and direction == "inbound":
            bodies.append({"type": "call.initiated"})
        if speech:
            confidence = _float(params.get("Confidence"), _DEFAULT_CONFIDENCE)
            bodies.append(
                {
                    "type": "call.speech",
                    "transcript": speech,
                    "isFinal": True,
                    "confidence": confidence,
                }
            )
        if digits:
            bodies.append({"type": "call.dtmf", "digits": digits})
    events = []
    for index, body in enumerate(bodies):
        key = dedupe_key if index == 0 else f"{dedupe_key}:{index}"
        events.append({**common, **body, "id": key, "dedupeKey": key})
    return TwilioWebhook(
        call_sid=call_sid,
        call_id=call_id,
        kind=kind,
        flow=flow,
        direction=direction,
        call_status=status,
        turn_token=turn_token,
        gather_result=bool(speech or digits or "SpeechResult" in params or "Digits" in params),
        from_number=params.get("From") or None,
        to_number=params.get("To") or None,
        events=events,
    )
