"""Twilio Media Streams frames, sans-IO: JSON text in -> events, outbound frames from templates.

Inbound: ``connected``, ``start`` (token in ``customParameters.token``), ``media`` (only the
inbound track carries the caller), ``mark``, ``dtmf``, ``stop``. Outbound: ``media``, ``mark``,
``clear`` with the ``streamSid`` of ``start``. Parsing uses orjson; the outbound shapes are
fixed, so they are string templates around a JSON-escaped stream id (no encoder per frame).
"""

from __future__ import annotations

from typing import Any

from voicecall.carriers.media_stream import (
    MarkReceived,
    StreamConnected,
    StreamEvent,
    StreamFrameError,
    StreamStarted,
    StreamStopped,
    dtmf_received,
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

__all__ = ["TwilioStreamProtocol"]

_CONNECTED = StreamConnected()
_STOPPED = StreamStopped()


class TwilioStreamProtocol:
    """One Twilio media-stream connection's frame codec."""

    carrier = "twilio"
    token_in_path = False

    __slots__ = ("_clear", "_mark_prefix", "_media_prefix", "stream_sid")

    def __init__(self) -> None:
        self.stream_sid: str | None = None
        self._set_sid("")

    def _set_sid(self, sid: str) -> None:
        quoted = json_str(sid)
        self._media_prefix = '{"event":"media","streamSid":' + quoted + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","streamSid":' + quoted + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + quoted + "}"

    # -- inbound -------------------------------------------------------------------------------

    def parse(self, text: str | bytes) -> StreamEvent:
        """One Twilio frame as an event (raises StreamFrameError for anything unusable)."""
        message = load_frame(text)
        event = message.get("event")
        if event == "media":
            media = object_field(message, "media", "media")
            payload = media_payload(media)
            return media_received(
                media,
                payload,
                int_field(media.get("chunk"), "media.chunk"),
                int_field(media.get("timestamp", 0), "media.timestamp"),
            )
        if event == "start":
            return self._start(message)
        if event == "connected":
            return _CONNECTED
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if type(mark) is dict else None
            return MarkReceived(str_field(name, "mark", "name", empty_ok=True))
        if event == "dtmf":
            return dtmf_received(message.get("dtmf"))
        if event == "stop":
            return _STOPPED
        raise StreamFrameError("event", f"unknown event {str(event)[:40]!r}")

    def _start(self, message: dict[str, Any]) -> StreamStarted:
        start = object_field(message, "start", "start")
        sid = str_field(start.get("streamSid") or message.get("streamSid"), "start", "streamSid")
        parameters = string_parameters(start.get("customParameters"))
        self.stream_sid = sid
        self._set_sid(sid)
        return StreamStarted(
            stream_id=sid,
            provider_call_id=optional_id(start.get("callSid")),
            token=parameters.get("token"),
            parameters=parameters,
        )

    # -- outbound ------------------------------------------------------------------------------

    def build_media(self, payload_b64: str) -> str:
        """``{"event":"media","streamSid":S,"media":{"payload":B64}}``."""
        return self._media_prefix + payload_b64 + '"}}'

    def build_mark(self, name: str) -> str:
        """``{"event":"mark","streamSid":S,"mark":{"name":N}}``."""
        return self._mark_prefix + json_str(name) + "}}"

    def build_clear(self) -> str:
        """``{"event":"clear","streamSid":S}``."""
        return self._clear
