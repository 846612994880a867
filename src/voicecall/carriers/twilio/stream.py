"""Twilio Media Streams frames, sans-IO: JSON text in -> events, outbound frames from templates.

Inbound: ``connected``, ``start`` (token in ``customParameters.token``), ``media`` (only the
inbound track carries the caller), ``mark``, ``dtmf``, ``stop``. Outbound: ``media``, ``mark``,
``clear`` with the ``streamSid`` of ``start``. Parsing uses orjson; the outbound shapes are
fixed, so they are string templates around a JSON-escaped stream id (no encoder per frame).
"""

from __future__ import annotations

from typing import Any

import orjson

from voicecall.carriers.media_stream import (
    DtmfReceived,
    MarkReceived,
    MediaReceived,
    StreamConnected,
    StreamEvent,
    StreamFrameError,
    StreamStarted,
    StreamStopped,
)

__all__ = ["TwilioStreamProtocol"]

_CONNECTED = StreamConnected()
_STOPPED = StreamStopped()


def _json_str(value: str) -> str:
    return orjson.dumps(value).decode()


def _int_field(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StreamFrameError("field", f"{name} is not a number: {value!r}") from None


class TwilioStreamProtocol:
    """One Twilio media-stream connection's frame codec."""

    carrier = "twilio"
    token_in_path = False

    __slots__ = ("_clear", "_mark_prefix", "_media_prefix", "stream_sid")

    def __init__(self) -> None:
        self.stream_sid: str | None = None
        self._set_sid("")

    def _set_sid(self, sid: str) -> None:
        quoted = _json_str(sid)
        self._media_prefix = '{"event":"media","streamSid":' + quoted + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","streamSid":' + quoted + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + quoted + "}"

    # -- inbound -------------------------------------------------------------------------------

    def parse(self, text: str | bytes) -> StreamEvent:
        """One Twilio frame as an event (raises StreamFrameError for anything unusable)."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise StreamFrameError("json", "frame is not JSON") from None
        if type(message) is not dict:
            raise StreamFrameError("json", "frame is not a JSON object")
        event = message.get("event")
        if event == "media":
            media = message.get("media")
            if type(media) is not dict:
                raise StreamFrameError("field", "media frame without a media object")
            payload = media.get("payload")
            if type(payload) is not str:
                raise StreamFrameError("field", "media frame without a payload")
            return MediaReceived(
                payload,
                _int_field(media.get("chunk"), "media.chunk") & 0xFFFF,
                _int_field(media.get("timestamp", 0), "media.timestamp") & 0xFFFFFFFF,
                media.get("track", "inbound") == "inbound",
            )
        if event == "start":
            return self._start(message)
        if event == "connected":
            return _CONNECTED
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if type(mark) is dict else None
            if type(name) is not str:
                raise StreamFrameError("field", "mark frame without a name")
            return MarkReceived(name)
        if event == "dtmf":
            dtmf = message.get("dtmf")
            digit = dtmf.get("digit") if type(dtmf) is dict else None
            if type(digit) is not str or not digit:
                raise StreamFrameError("field", "dtmf frame without a digit")
            return DtmfReceived(digit)
        if event == "stop":
            return _STOPPED
        raise StreamFrameError("event", f"unknown event {str(event)[:40]!r}")

    def _start(self, message: dict[str, Any]) -> StreamStarted:
        start = message.get("start")
        if type(start) is not dict:
            raise StreamFrameError("field", "start frame without a start object")
        sid = start.get("streamSid") or message.get("streamSid")
        if type(sid) is not str or not sid:
            raise StreamFrameError("field", "start frame without a streamSid")
        raw = start.get("customParameters")
        parameters = (
            {str(k): str(v) for k, v in raw.items() if isinstance(v, str)}
            if type(raw) is dict
            else {}
        )
        call_sid = start.get("callSid")
        self.stream_sid = sid
        self._set_sid(sid)
        return StreamStarted(
            stream_id=sid,
            provider_call_id=call_sid if type(call_sid) is str and call_sid else None,
            token=parameters.get("token"),
            parameters=parameters,
        )

    # -- outbound ------------------------------------------------------------------------------

    def build_media(self, payload_b64: str) -> str:
        """``{"event":"media","streamSid":S,"media":{"payload":B64}}``."""
        return self._media_prefix + payload_b64 + '"}}'

    def build_mark(self, name: str) -> str:
        """``{"event":"mark","streamSid":S,"mark":{"name":N}}``."""
        return self._mark_prefix + _json_str(name) + "}}"

    def build_clear(self) -> str:
        """``{"event":"clear","streamSid":S}``."""
        return self._clear
