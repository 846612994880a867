"""The sans-IO media-stream interface every carrier's ``stream.py`` implements (SPEC §5).

A carrier's stream protocol turns one websocket text frame into one event and builds the
outbound frames; it owns no socket and no clock. One protocol object serves one connection
(it remembers the stream id from ``start`` for the outbound frames).

Events (past-tense facts): :class:`StreamConnected`, :class:`StreamStarted`,
:class:`MediaReceived`, :class:`MarkReceived`, :class:`DtmfReceived`, :class:`StreamStopped`,
:class:`StreamErrorReported`. A frame that cannot be understood raises
:class:`StreamFrameError` whose ``kind`` names the problem (``json``, ``base64``, ``size``,
``event``, ``field``); the server counts it and carries on. The ``*_field`` helpers at the end
are the carrier-neutral checks the carriers' parsers share, so the same flaw reads the same.
"""

from __future__ import annotations

import binascii
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from voicecall.errors import VoicecallError

__all__ = [
    "FRAME_BYTES",
    "DtmfReceived",
    "FrameErrorKind",
    "MarkReceived",
    "MediaReceived",
    "StreamConnected",
    "StreamErrorReported",
    "StreamEvent",
    "StreamFrameError",
    "StreamProtocol",
    "StreamStarted",
    "StreamStopped",
    "StreamTokens",
    "decode_payload",
    "dtmf_received",
    "int_field",
    "json_str",
    "load_frame",
    "media_payload",
    "media_received",
    "object_field",
    "optional_id",
    "str_field",
    "string_parameters",
]

#: 20 ms of G.711 at 8 kHz: the size of every inbound carrier media frame.
FRAME_BYTES = 160

FrameErrorKind = Literal["json", "base64", "size", "event", "field"]


class StreamFrameError(VoicecallError, ValueError):
    """The peer sent a frame we cannot use (counted and logged once per stream, never fatal)."""

    remote = True

    def __init__(self, kind: FrameErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: FrameErrorKind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """The carrier's hello before ``start`` (Twilio ``connected``)."""


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream began: which call it belongs to and the token it presents."""

    stream_id: str
    provider_call_id: str | None
    token: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """One inbound audio frame: base64 G.711 µ-law 8 kHz and its 16-bit sequence/timestamp."""

    payload: str
    seq: int
    timestamp_ms: int
    inbound: bool = True


@dataclass(frozen=True, slots=True)
class MarkReceived:
    """The carrier played everything queued before the mark ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The caller pressed a key."""

    digit: str


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """The carrier ended the stream (call over or ``<Connect>`` left)."""


@dataclass(frozen=True, slots=True)
class StreamErrorReported:
    """The carrier reported a stream error (Telnyx ``error`` frames; logged)."""

    code: str
    title: str
    detail: str = ""


StreamEvent = (
    StreamConnected
    | StreamStarted
    | MediaReceived
    | MarkReceived
    | DtmfReceived
    | StreamStopped
    | StreamErrorReported
)


class StreamProtocol(Protocol):
    """One connection's frame codec; ``Carrier.stream_protocol()`` returns a fresh one.

    ``token_in_path``: the stream token is the last path segment (``{streamPath}/{token}``:
    Telnyx, Plivo, mock) instead of a ``start`` parameter (Twilio).
    """

    carrier: str
    token_in_path: bool

    def parse(self, text: str | bytes) -> StreamEvent:
        """One inbound frame as an event; raises :class:`StreamFrameError`."""
        ...

    def build_media(self, payload_b64: str) -> str:
        """An outbound audio frame (base64 µ-law 8 kHz)."""
        ...

    def build_mark(self, name: str) -> str:
        """An outbound mark the carrier echoes once the audio before it has played."""
        ...

    def build_clear(self) -> str:
        """Drop the carrier's buffered outbound audio (barge-in)."""
        ...


_URLSAFE = str.maketrans("-_", "+/")


def decode_payload(payload: str) -> bytes:
    """Base64 media payload -> raw bytes; URL-safe alphabet and missing padding accepted."""
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    canonical = payload.translate(_URLSAFE).rstrip("=")
    canonical += "=" * (-len(canonical) % 4)
    try:
        return binascii.a2b_base64(canonical, strict_mode=True)
    except (binascii.Error, ValueError):
        raise StreamFrameError("base64", "media payload is not valid base64") from None


class StreamTokens:
    """Per provider call, the stream token of the last stream document (SPEC §5.1).

    Tokens are 16 random bytes, base64url; minting a new one replaces the old. Checks are
    constant time.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._tokens: dict[str, str] = {}
        self._capacity = capacity

    def mint(self, provider_call_id: str) -> str:
        """A fresh token for the call (the previous one stops working)."""
        token = secrets.token_urlsafe(16)
        self._tokens.pop(provider_call_id, None)
        if len(self._tokens) >= self._capacity:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[provider_call_id] = token
        return token

    def check(self, provider_call_id: str, token: str | None) -> bool:
        """Whether ``token`` is the call's current token (constant-time comparison)."""
        expected = self._tokens.get(provider_call_id)
        if expected is None or not token:
            return False
        return hmac.compare_digest(expected.encode(), token.encode())

    def forget(self, provider_call_id: str) -> None:
        """Drop the call's token (the call has ended)."""
        self._tokens.pop(provider_call_id, None)


# -- frame fields, shared by the carriers' parsers ------------------------------------------------


def load_frame(text: str | bytes) -> dict[str, Any]:
    """A text frame's JSON object; raises :class:`StreamFrameError` ``json``."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise StreamFrameError("json", "frame is not JSON") from None
    if type(message) is not dict:
        raise StreamFrameError("json", "frame is not a JSON object")
    return message


def json_str(value: str) -> str:
    """``value`` as a JSON string literal (for the outbound frame templates)."""
    return orjson.dumps(value).decode()


def int_field(value: Any, name: str) -> int:
    """A number that may arrive as a JSON number or a string (booleans are not numbers)."""
    if type(value) is bool:
        raise StreamFrameError("field", f"{name} is not a number: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise StreamFrameError("field", f"{name} is not a number: {str(value)[:40]!r}") from None


def object_field(message: dict[str, Any], key: str, event: str) -> dict[str, Any]:
    """``message[key]``, which must be a JSON object."""
    value = message.get(key)
    if type(value) is not dict:
        raise StreamFrameError("field", f"{event} frame without a {key} object")
    return value


def str_field(value: Any, event: str, what: str, *, empty_ok: bool = False) -> str:
    """``value``, which must be a string (and, unless ``empty_ok``, not an empty one)."""
    if type(value) is not str or not (value or empty_ok):
        raise StreamFrameError("field", f"{event} frame without a {what}")
    return value


def optional_id(value: Any) -> str | None:
    """A non-empty string id, or None for anything else."""
    return value if type(value) is str and value else None


def string_parameters(raw: Any) -> dict[str, str]:
    """The string-valued entries of a custom-parameters object (anything else is dropped)."""
    if type(raw) is not dict:
        return {}
    return {str(k): v for k, v in raw.items() if type(v) is str}


def media_payload(media: dict[str, Any]) -> str:
    """A ``media`` object's base64 audio (checked before anything else in the frame)."""
    return str_field(media.get("payload"), "media", "payload", empty_ok=True)


def media_received(
    media: dict[str, Any], payload: str, seq: int, timestamp_ms: int
) -> MediaReceived:
    """The event for a ``media`` object, seq/timestamp wrapped to RTP's 16/32 bits."""
    inbound = media.get("track", "inbound") == "inbound"
    return MediaReceived(payload, seq & 0xFFFF, timestamp_ms & 0xFFFFFFFF, inbound)


def dtmf_received(dtmf: Any) -> DtmfReceived:
    """A ``dtmf`` object's key press (a missing or malformed object has no digit)."""
    digit = dtmf.get("digit") if type(dtmf) is dict else None
    return DtmfReceived(str_field(digit, "dtmf", "digit"))
