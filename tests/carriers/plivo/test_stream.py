"""The sans-IO Plivo audio-stream codec and the ``<Stream>`` answer document (SPEC §3.4)."""

from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.carriers.media_stream import (
    DtmfReceived,
    MarkReceived,
    MediaReceived,
    StreamEvent,
    StreamFrameError,
    StreamStarted,
    StreamStopped,
)
from voicecall.carriers.plivo import xml as plivo_xml
from voicecall.carriers.plivo.stream import AudioCleared, PlivoStreamProtocol

START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": 1,
    "start": {
        "callId": "call-uuid-1",
        "streamId": "stream-uuid-1",
        "accountId": "MAFAKE",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
    },
    "extra_headers": "{}",
}


def _media(**media: Any) -> dict[str, Any]:
    return {"event": "media", "sequenceNumber": 2, "streamId": "stream-uuid-1", "media": media}


INBOUND: list[tuple[dict[str, Any], StreamEvent]] = [
    (START, StreamStarted(stream_id="stream-uuid-1", provider_call_id="call-uuid-1")),
    (
        _media(track="inbound", timestamp="1700000000123", chunk=7, payload="AAAA"),
        MediaReceived("AAAA", 7, 1700000000123 & 0xFFFFFFFF, True),
    ),
    (
        _media(track="outbound", timestamp="20", chunk=70000, payload="AAAA"),
        MediaReceived("AAAA", 70000 & 0xFFFF, 20, False),
    ),
    (
        {"event": "dtmf", "streamId": "s", "dtmf": {"track": "inbound", "digit": "5"}},
        DtmfReceived("5"),
    ),
    ({"event": "playedStream", "streamId": "s", "name": "tts-1-1"}, MarkReceived("tts-1-1")),
    ({"event": "clearedAudio", "sequenceNumber": 11, "streamId": "s"}, AudioCleared()),
    ({"event": "stop", "streamId": "s"}, StreamStopped()),
]


@pytest.mark.parametrize(("frame", "event"), INBOUND, ids=lambda v: str(v)[:40])
def test_inbound_frames_become_events(frame: dict[str, Any], event: StreamEvent) -> None:
    """Every Plivo inbound frame of protocols/plivo.md §5 parses into its stream event."""
    parsed = PlivoStreamProtocol().parse(json.dumps(frame))
    assert parsed == event and type(parsed) is type(event)


def test_start_carries_no_token_because_plivo_puts_it_in_the_path() -> None:
    """The token is read from the URL path (``token_in_path``), never from ``start``."""
    protocol = PlivoStreamProtocol()
    assert protocol.token_in_path and protocol.carrier == "plivo"
    started = protocol.parse(json.dumps(START).encode())
    assert isinstance(started, StreamStarted) and started.token is None


def test_media_without_chunk_is_numbered_in_arrival_order() -> None:
    """Media frames that omit ``chunk`` still get increasing sequence numbers."""
    protocol = PlivoStreamProtocol()
    seqs = [protocol.parse(json.dumps(_media(payload="AAAA"))) for _ in range(3)]
    assert [e.seq for e in seqs if isinstance(e, MediaReceived)] == [1, 2, 3]


BAD: list[tuple[str, str]] = [
    ("{not json", "json"),
    ("[1, 2]", "json"),
    ('"start"', "json"),
    (json.dumps({"event": "wobble"}), "event"),
    (json.dumps({"sequenceNumber": 3}), "event"),
    (json.dumps({"event": "start"}), "field"),
    (json.dumps({"event": "start", "start": {"callId": "c"}}), "field"),
    (json.dumps({"event": "media"}), "field"),
    (json.dumps(_media(chunk=1)), "field"),
    (json.dumps(_media(chunk="x", payload="AAAA")), "field"),
    (json.dumps(_media(chunk=True, payload="AAAA")), "field"),
    (json.dumps(_media(timestamp=[1], payload="AAAA")), "field"),
    (json.dumps({"event": "dtmf", "dtmf": {"digit": ""}}), "field"),
    (json.dumps({"event": "playedStream"}), "field"),
]


@pytest.mark.parametrize(("text", "kind"), BAD, ids=lambda v: str(v)[:40])
def test_unusable_frames_raise_frame_errors_naming_the_problem(text: str, kind: str) -> None:
    """Bad JSON, unknown events and missing fields raise StreamFrameError of the right kind."""
    with pytest.raises(StreamFrameError) as caught:
        PlivoStreamProtocol().parse(text)
    assert caught.value.kind == kind


def test_outbound_frames_follow_plivo_shapes() -> None:
    """playAudio, checkpoint and clearAudio match protocols/plivo.md §5 with the start streamId."""
    protocol = PlivoStreamProtocol()
    protocol.parse(json.dumps({**START, "start": {**START["start"], "streamId": 'st"1'}}))
    assert json.loads(protocol.build_media("AAAA")) == {
        "event": "playAudio",
        "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": "AAAA"},
    }
    assert json.loads(protocol.build_mark('utt "1"')) == {
        "event": "checkpoint",
        "streamId": 'st"1',
        "name": 'utt "1"',
    }
    assert json.loads(protocol.build_clear()) == {"event": "clearAudio", "streamId": 'st"1'}


def test_stream_document_is_exact_and_well_formed() -> None:
    """The answer XML is the SPEC §3.4 ``<Stream>`` with the URL escaped as element text."""
    url = "wss://gw.example/p/voice/stream/tok-1?a=1&b=2"
    document = plivo_xml.xml_stream(url)
    assert document == (
        '<Response><Stream bidirectional="true" keepCallAlive="true" '
        'contentType="audio/x-mulaw;rate=8000">'
        "wss://gw.example/p/voice/stream/tok-1?a=1&amp;b=2</Stream></Response>"
    )
    stream = ET.fromstring(document).find("Stream")
    assert stream is not None and stream.text == url
    assert stream.attrib == {
        "bidirectional": "true",
        "keepCallAlive": "true",
        "contentType": "audio/x-mulaw;rate=8000",
    }


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_frames = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    _json_values.map(lambda v: json.dumps(v)),
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(
                ["start", "media", "dtmf", "playedStream", "clearedAudio", "stop", "x"]
            ),
            "start": _json_values,
            "media": _json_values,
            "dtmf": _json_values,
            "name": _json_values,
            "streamId": _json_values,
        }
    ).map(lambda v: json.dumps(v)),
    st.fixed_dictionaries(
        {
            "event": st.just("media"),
            "media": st.fixed_dictionaries(
                {"payload": _json_values, "chunk": _json_values, "timestamp": _json_values}
            ),
        }
    ).map(lambda v: json.dumps(v)),
)


@given(_frames)
def test_garbage_frames_raise_only_stream_frame_errors(frame: str | bytes) -> None:
    """Any frame either parses into an event or raises StreamFrameError, never anything else."""
    protocol = PlivoStreamProtocol()
    with contextlib.suppress(StreamFrameError):
        protocol.parse(frame)
    protocol.build_media("AAAA")
    protocol.build_clear()
