"""Telnyx media-streaming frames, sans-IO: JSON text in -> events, bidirectional RTP frames out.

Inbound (telnyx.md §5): ``connected``, ``start`` (``start.call_control_id`` names the call; the
token is the last path segment of the stream URL), ``media`` (only the ``inbound`` track carries
the caller; PCMU 8 kHz), ``dtmf``, ``mark``, ``stop`` and ``error``. Numbers arrive as strings.
Outbound (``stream_bidirectional_mode=rtp``): ``media``, ``mark``, ``clear``, none of which
carries a stream id, so the shapes are constant string templates.
"""

from __future__ import annotations

from typing import Any

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
    int_field,
    json_str,
    load_frame,
    media_payload,
    media_received,
    object_field,
    optional_id,
    str_field,
    string_parameters,
)

__all__ = ["TelnyxStreamProtocol"]

_CONNECTED = StreamConnected()
_STOPPED = StreamStopped()
_MEDIA_PREFIX = '{"event":"media","media":{"payload":"'
_CLEAR = '{"event":"clear"}'


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
        message = load_frame(text)
        event = message.get("event")
        if event == "media":
            return self._media(message)
        if event == "start":
            return self._start(message)
        if event == "connected":
            return _CONNECTED
        if event == "mark":
            name = object_field(message, "mark", "mark").get("name")
            return MarkReceived(str_field(name, "mark", "name", empty_ok=True))
        if event == "dtmf":
            digit = object_field(message, "dtmf", "dtmf").get("digit")
            return DtmfReceived(str_field(digit, "dtmf", "digit"))
        if event == "stop":
            return _STOPPED
        if event == "error":
            payload = object_field(message, "payload", "error")
            return StreamErrorReported(
                code=str(payload.get("code", ""))[:40],
                title=str(payload.get("title", ""))[:200],
                detail=str(payload.get("detail", ""))[:500],
            )
        raise StreamFrameError("event", f"unknown event {str(event)[:40]!r}")

    def _media(self, message: dict[str, Any]) -> MediaReceived:
        media = object_field(message, "media", "media")
        payload = media_payload(media)
        # Frame order is not guaranteed: the chunk number orders audio; sequence_number (which
        # also counts non-media frames) stands in when a frame has no chunk.
        seq = media.get("chunk", message.get("sequence_number"))
        return media_received(
            media,
            payload,
            int_field(seq, "media.chunk"),
            int_field(media.get("timestamp", 0), "media.timestamp"),
        )

    def _start(self, message: dict[str, Any]) -> StreamStarted:
        start = object_field(message, "start", "start")
        stream_id = message.get("stream_id") or start.get("stream_id")
        stream_id = str_field(stream_id, "start", "stream_id")
        self.stream_id = stream_id
        return StreamStarted(
            stream_id=stream_id,
            provider_call_id=optional_id(start.get("call_control_id")),
            parameters=string_parameters(start.get("custom_parameters")),
        )

    # -- outbound ------------------------------------------------------------------------------

    def build_media(self, payload_b64: str) -> str:
        """``{"event":"media","media":{"payload":B64}}`` (PCMU, RTP mode)."""
        return _MEDIA_PREFIX + payload_b64 + '"}}'

    def build_mark(self, name: str) -> str:
        """``{"event":"mark","mark":{"name":N}}``."""
        return '{"event":"mark","mark":{"name":' + json_str(name) + "}}"

    def build_clear(self) -> str:
        """``{"event":"clear"}``."""
        return _CLEAR
