"""Plivo audio-stream frames, sans-IO: JSON text in -> events, outbound frames from templates.

Inbound (protocols/plivo.md §5): ``start`` (``start.callId``, ``start.streamId``), ``media``
(``media.payload`` base64 µ-law, ``media.chunk`` from 1, ``media.timestamp`` epoch ms as a
string), ``dtmf``, ``playedStream`` (our checkpoint played), ``clearedAudio`` (our clear done).
The token rides in the URL path, not in ``start``. Plivo sends no ``stop`` per its SDK (the
socket simply closes); one is accepted anyway. Outbound: ``playAudio`` (µ-law 8 kHz),
``checkpoint`` (our mark) and ``clearAudio`` with the ``streamId`` of ``start``.
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

__all__ = ["AudioCleared", "PlivoStreamProtocol"]

_STOPPED = StreamStopped()
_MEDIA_PREFIX = (
    '{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"'
)


class AudioCleared(StreamConnected):
    """Plivo dropped its queued audio after our ``clearAudio`` (informational, like a hello).

    The shared event set has no "clear acknowledged" fact yet; as a :class:`StreamConnected`
    the server treats it as a no-op, which is all it needs to be today.
    """


_CLEARED = AudioCleared()


def _json_str(value: str) -> str:
    return orjson.dumps(value).decode()


def _int_field(value: Any, name: str) -> int:
    if type(value) is bool:
        raise StreamFrameError("field", f"{name} is not a number: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise StreamFrameError("field", f"{name} is not a number: {str(value)[:40]!r}") from None


class PlivoStreamProtocol:
    """One Plivo audio-stream connection's frame codec."""

    carrier = "plivo"
    token_in_path = True

    __slots__ = ("_chunks", "_clear", "_mark_prefix", "stream_id")

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self._chunks = 0  # our own numbering for media frames that carry no ``chunk``
        self._set_stream_id("")

    def _set_stream_id(self, stream_id: str) -> None:
        quoted = _json_str(stream_id)
        self._mark_prefix = '{"event":"checkpoint","streamId":' + quoted + ',"name":'
        self._clear = '{"event":"clearAudio","streamId":' + quoted + "}"

    # -- inbound -------------------------------------------------------------------------------

    def parse(self, text: str | bytes) -> StreamEvent:
        """One Plivo frame as an event (raises StreamFrameError for anything unusable)."""
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
        if event == "playedStream":
            name = message.get("name")
            if type(name) is not str:
                raise StreamFrameError("field", "playedStream frame without a name")
            return MarkReceived(name)
        if event == "dtmf":
            dtmf = message.get("dtmf")
            digit = dtmf.get("digit") if type(dtmf) is dict else None
            if type(digit) is not str or not digit:
                raise StreamFrameError("field", "dtmf frame without a digit")
            return DtmfReceived(digit)
        if event == "clearedAudio":
            return _CLEARED
        if event == "stop":
            return _STOPPED
        raise StreamFrameError("event", f"unknown event {str(event)[:40]!r}")

    def _media(self, message: dict[str, Any]) -> MediaReceived:
        media = message.get("media")
        if type(media) is not dict:
            raise StreamFrameError("field", "media frame without a media object")
        payload = media.get("payload")
        if type(payload) is not str:
            raise StreamFrameError("field", "media frame without a payload")
        self._chunks += 1
        chunk = media.get("chunk")
        seq = self._chunks if chunk is None else _int_field(chunk, "media.chunk")
        timestamp = _int_field(media.get("timestamp", 0), "media.timestamp")
        track = media.get("track", "inbound")
        return MediaReceived(payload, seq & 0xFFFF, timestamp & 0xFFFFFFFF, track == "inbound")

    def _start(self, message: dict[str, Any]) -> StreamStarted:
        start = message.get("start")
        if type(start) is not dict:
            raise StreamFrameError("field", "start frame without a start object")
        stream_id = start.get("streamId") or message.get("streamId")
        if type(stream_id) is not str or not stream_id:
            raise StreamFrameError("field", "start frame without a streamId")
        call_id = start.get("callId")
        self.stream_id = stream_id
        self._set_stream_id(stream_id)
        return StreamStarted(
            stream_id=stream_id,
            provider_call_id=call_id if type(call_id) is str and call_id else None,
        )

    # -- outbound ------------------------------------------------------------------------------

    def build_media(self, payload_b64: str) -> str:
        """``{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,…}}``."""
        return _MEDIA_PREFIX + payload_b64 + '"}}'

    def build_mark(self, name: str) -> str:
        """``{"event":"checkpoint","streamId":S,"name":N}`` (Plivo answers ``playedStream``)."""
        return self._mark_prefix + _json_str(name) + "}"

    def build_clear(self) -> str:
        """``{"event":"clearAudio","streamId":S}`` (Plivo answers ``clearedAudio``)."""
        return self._clear
