"""Telnyx media-streaming frames, sans-IO: JSON text in -> events, bidirectional RTP frames out.

Inbound (telnyx.md §5): ``connected``, ``start`` (``start.call_control_id`` names the call; the
token is the last path segment of the stream URL), ``media`` (only the ``inbound`` track carries
the caller; PCMU 8 kHz), ``dtmf``, ``mark``, ``stop`` and ``error``. Numbers arrive as strings.
Outbound (``stream_bidirectional_mode=rtp``): ``media``, ``mark``, ``clear``, none of which
carries a stream id, so the shapes are constant string templates.
"""

from __future__ import annotations

from typing import Any

import orjson

from voicecall.carriers.media_stream import (
    DtmfReceived,
    MarkReceived,
    MediaReceived,
    StreamConnected,
    StreamErrorReported,
    StreamEvent,
    StreamFrameError,
    StreamStarted,
    StreamStopped,
)

__all__ = ["TelnyxStreamProtocol"]

_CONNECTED = StreamConnected()
_STOPPED = StreamStopped()
_MEDIA_PREFIX = '{"event":"media","media":{"payload":"'
_CLEAR = '{"event":"clear"}'


def _int_field(value: Any, name: str) -> int:
    if type(value) is bool:
        raise StreamFrameError("field", f"{name} is not a number: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise StreamFrameError("field", f"{name} is not a number: {str(value)[:40]!r}") from None


def _object(message: dict[str, Any], key: str, event: str) -> dict[str, Any]:
    value = message.get(key)
    if type(value) is not dict:
        raise StreamFrameError("field", f"{event} frame without a {key} object")
    return value


class TelnyxStreamProtocol:
    """One Telnyx media-stream connection's frame codec."""

    carrier = "telnyx"
    token_in_path = True

    __slots__ = ("stream_id",)

    def __init__(self) -> None:
        self.stream_id: str | None = None

    # -- inbound -------------------------------------------------------------------------------

    def parse(self, text: str | bytes) -> StreamEvent:
        """One Telnyx frame as an event (raises StreamFrameError for anything unusable)."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise StreamFrameError("json", "frame is not JSON") from None
        if type(message) is not dict:
            raise StreamFrameError("json", "frame is not a JSON object")
        event = message.get("event")
        if event == "media":
            return self._media(message)
        if event == "start":
            return self._start(message)
        if event == "connected":
            return _CONNECTED
        if event == "mark":
            name = _object(message, "mark", "mark").get("name")
            if type(name) is not str:
                raise StreamFrameError("field", "mark frame without a name")
            return MarkReceived(name)
        if event == "dtmf":
            digit = _object(message, "dtmf", "dtmf").get("digit")
            if type(digit) is not str or not digit:
                raise StreamFrameError("field", "dtmf frame without a digit")
            return DtmfReceived(digit)
        if event == "stop":
            return _STOPPED
        if event == "error":
            payload = _object(message, "payload", "error")
            return StreamErrorReported(
                code=str(payload.get("code", ""))[:40],
                title=str(payload.get("title", ""))[:200],
                detail=str(payload.get("detail", ""))[:500],
            )
        raise StreamFrameError("event", f"unknown event {str(event)[:40]!r}")

    def _media(self, message: dict[str, Any]) -> MediaReceived:
        media = _object(message, "media", "media")
        payload = media.get("payload")
        if type(payload) is not str:
            raise StreamFrameError("field", "media frame without a payload")
        # Frame order is not guaranteed: the chunk number orders audio; sequence_number (which
        # also counts non-media frames) stands in when a frame has no chunk.
        seq = media.get("chunk", message.get("sequence_number"))
        return MediaReceived(
            payload,
            _int_field(seq, "media.chunk") & 0xFFFF,
            _int_field(media.get("timestamp", 0), "media.timestamp") & 0xFFFFFFFF,
            media.get("track", "inbound") == "inbound",
        )

    def _start(self, message: dict[str, Any]) -> StreamStarted:
        start = _object(message, "start", "start")
        stream_id = message.get("stream_id") or start.get("stream_id")
        if type(stream_id) is not str or not stream_id:
            raise StreamFrameError("field", "start frame without a stream_id")
        ccid = start.get("call_control_id")
        raw = start.get("custom_parameters")
        parameters = (
            {str(k): v for k, v in raw.items() if type(v) is str} if type(raw) is dict else {}
        )
        self.stream_id = stream_id
        return StreamStarted(
            stream_id=stream_id,
            provider_call_id=ccid if type(ccid) is str and ccid else None,
            parameters=parameters,
        )

    # -- outbound ------------------------------------------------------------------------------

    def build_media(self, payload_b64: str) -> str:
        """``{"event":"media","media":{"payload":B64}}`` (PCMU, RTP mode)."""
        return _MEDIA_PREFIX + payload_b64 + '"}}'

    def build_mark(self, name: str) -> str:
        """``{"event":"mark","mark":{"name":N}}``."""
        return '{"event":"mark","mark":{"name":' + orjson.dumps(name).decode() + "}}"

    def build_clear(self) -> str:
        """``{"event":"clear"}``."""
        return _CLEAR
