"""Plivo audio-stream frames, sans-IO: JSON text in -> events, outbound frames from templates.

Inbound (protocols/plivo.md §5): ``start`` (``start.callId``, ``start.streamId``), ``media``
(``media.payload`` base64 µ-law, ``media.chunk`` from 1, ``media.timestamp`` epoch ms as a
string), ``dtmf``, ``playedStream`` (our checkpoint played), ``clearedAudio`` (our clear done).
The token rides in the URL path, not in ``start``. Plivo sends no ``stop`` per its SDK (the
socket simply closes); one is accepted anyway. Outbound: ``playAudio`` (µ-law 8 kHz),
``checkpoint`` (our mark) and ``clearAudio`` with the ``streamId`` of ``start``.

Inbound audio follows the ``<Stream contentType>`` (§3), which ``start.mediaFormat`` announces:
``audio/x-mulaw`` 8 kHz (what our answer XML asks for) or ``audio/x-l16`` (PCM16 LE) at 8 or
16 kHz. The protocol keeps it as :attr:`~PlivoStreamProtocol.inbound_encoding` /
:attr:`~PlivoStreamProtocol.inbound_rate_hz` in the pipeline's vocabulary (``ulaw``, ``pcm16``;
anything else verbatim) for the inbound pump, which converts or refuses it. A ``start`` whose
``mediaFormat`` is odd is still a valid start: the pump names the format and drops its audio.
"""

from __future__ import annotations

from typing import Any

from voicecall.carriers.media_stream import (
    MarkReceived,
    MediaReceived,
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
)

__all__ = ["AudioCleared", "PlivoStreamProtocol"]

# ``start.mediaFormat.encoding`` spellings -> the pipeline's encoding names.
_ENCODINGS = {
    "audio/x-mulaw": "ulaw",
    "audio/mulaw": "ulaw",
    "audio/pcmu": "ulaw",
    "audio/x-l16": "pcm16",
    "audio/l16": "pcm16",
}
_DEFAULT_FORMAT = ("ulaw", 8000)  # no mediaFormat: what our <Stream contentType> asks for

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


class PlivoStreamProtocol:
    """One Plivo audio-stream connection's frame codec."""

    carrier = "plivo"
    token_in_path = True

    __slots__ = (
        "_chunks",
        "_clear",
        "_mark_prefix",
        "inbound_encoding",
        "inbound_rate_hz",
        "stream_id",
    )

    def __init__(self) -> None:
        self.stream_id: str | None = None
        #: Inbound audio as ``start.mediaFormat`` announced it: ``ulaw`` or ``pcm16`` (PCM16 LE),
        #: or the announced encoding verbatim when it is neither; and its sample rate (0: none
        #: readable). µ-law 8 kHz until a ``start`` says otherwise.
        self.inbound_encoding, self.inbound_rate_hz = _DEFAULT_FORMAT
        self._chunks = 0  # our own numbering for media frames that carry no ``chunk``
        self._set_stream_id("")

    def _set_stream_id(self, stream_id: str) -> None:
        quoted = json_str(stream_id)
        self._mark_prefix = '{"event":"checkpoint","streamId":' + quoted + ',"name":'
        self._clear = '{"event":"clearAudio","streamId":' + quoted + "}"

    # -- inbound -------------------------------------------------------------------------------

    def parse(self, text: str | bytes) -> StreamEvent:
        """One Plivo frame as an event (raises StreamFrameError for anything unusable)."""
        message = load_frame(text)
        event = message.get("event")
        if event == "media":
            return self._media(message)
        if event == "start":
            return self._start(message)
        if event == "playedStream":
            name = message.get("name")
            return MarkReceived(str_field(name, "playedStream", "name", empty_ok=True))
        if event == "dtmf":
            return dtmf_received(message.get("dtmf"))
        if event == "clearedAudio":
            return _CLEARED
        if event == "stop":
            return _STOPPED
        raise StreamFrameError("event", f"unknown event {str(event)[:40]!r}")

    def _media(self, message: dict[str, Any]) -> MediaReceived:
        media = object_field(message, "media", "media")
        payload = media_payload(media)
        self._chunks += 1
        chunk = media.get("chunk")
        seq = self._chunks if chunk is None else int_field(chunk, "media.chunk")
        timestamp = int_field(media.get("timestamp", 0), "media.timestamp")
        return media_received(media, payload, seq, timestamp)

    def _start(self, message: dict[str, Any]) -> StreamStarted:
        start = object_field(message, "start", "start")
        stream_id = str_field(start.get("streamId") or message.get("streamId"), "start", "streamId")
        self.stream_id = stream_id
        self._set_stream_id(stream_id)
        self.inbound_encoding, self.inbound_rate_hz = _media_format(start.get("mediaFormat"))
        return StreamStarted(stream_id=stream_id, provider_call_id=optional_id(start.get("callId")))

    # -- outbound ------------------------------------------------------------------------------

    def build_media(self, payload_b64: str) -> str:
        """``{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,…}}``."""
        return _MEDIA_PREFIX + payload_b64 + '"}}'

    def build_mark(self, name: str) -> str:
        """``{"event":"checkpoint","streamId":S,"name":N}`` (Plivo answers ``playedStream``)."""
        return self._mark_prefix + json_str(name) + "}"

    def build_clear(self) -> str:
        """``{"event":"clearAudio","streamId":S}`` (Plivo answers ``clearedAudio``)."""
        return self._clear


def _media_format(raw: Any) -> tuple[str, int]:
    """``start.mediaFormat`` as (encoding, sample rate Hz); never raises.

    ``{"encoding": "audio/x-l16", "sampleRate": 16000}`` -> ``("pcm16", 16000)``. A rate given
    only as a ``;rate=`` parameter of the encoding (the ``contentType`` spelling) is read from
    there; an unreadable rate is 0, an unknown encoding is kept as announced (trimmed), and a
    ``mediaFormat`` that is not an object is named as such.
    """
    if raw is None:
        return _DEFAULT_FORMAT
    if type(raw) is not dict:
        return f"mediaFormat {str(raw)[:40]!r}", 0
    encoding = raw.get("encoding")
    if type(encoding) is not str:
        return ("(no encoding)" if encoding is None else f"encoding {str(encoding)[:40]!r}"), 0
    mime, _, params = encoding.strip().lower().partition(";")
    mime = mime.strip()
    rate_text: Any = raw.get("sampleRate")
    if rate_text is None:
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip() == "rate":
                rate_text = value.strip()
    try:
        rate = 0 if type(rate_text) is bool else int(rate_text or 0)
    except (TypeError, ValueError, OverflowError):
        rate = 0
    return _ENCODINGS.get(mime, mime[:40] or "(empty encoding)"), max(rate, 0)
