"""The sans-IO Telnyx media-stream codec: inbound frames to events, outbound RTP-mode frames."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from voicecall.carriers.telnyx import TelnyxCarrier
from voicecall.carriers.telnyx.stream import TelnyxStreamProtocol
from voicecall.config import VoicecallConfig

SID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CCID = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": SID,
    "start": {
        "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
        "call_control_id": CCID,
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094",
        "to": "+13122123456",
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"customer_id": "customer_123", "n": 5},
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
    },
}


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        ({"event": "connected", "version": "1.0.0"}, StreamConnected()),
        (START, StreamStarted(SID, CCID, None, {"customer_id": "customer_123"})),
        (
            {
                "event": "media",
                "sequence_number": "4",
                "media": {
                    "track": "inbound",
                    "chunk": "70002",
                    "timestamp": "5",
                    "payload": "/w==",
                },
                "stream_id": SID,
            },
            MediaReceived("/w==", 70002 & 0xFFFF, 5, True),
        ),
        (
            {"event": "media", "sequence_number": "9", "media": {"payload": "AA=="}},
            MediaReceived("AA==", 9, 0, True),
        ),
        (
            {"event": "media", "media": {"track": "outbound", "chunk": 3, "payload": ""}},
            MediaReceived("", 3, 0, False),
        ),
        ({"event": "dtmf", "stream_id": SID, "dtmf": {"digit": "1"}}, DtmfReceived("1")),
        ({"event": "mark", "stream_id": SID, "mark": {"name": "utt-1"}}, MarkReceived("utt-1")),
        ({"event": "stop", "stream_id": SID, "stop": {"call_control_id": CCID}}, StreamStopped()),
        (
            {
                "event": "error",
                "payload": {"code": 100002, "title": "Unknown Error", "detail": "An error."},
            },
            StreamErrorReported("100002", "Unknown Error", "An error."),
        ),
    ],
    ids=lambda v: v.get("event") if isinstance(v, dict) else "",
)
def test_inbound_frames_become_events(frame: dict[str, Any], event: StreamEvent) -> None:
    """Every Telnyx inbound frame of the documented shapes parses into its stream event."""
    assert TelnyxStreamProtocol().parse(json.dumps(frame)) == event


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("nope", "json"),
        ("[1]", "json"),
        ('{"event":"media"}', "field"),
        ('{"event":"media","media":{"chunk":"x","payload":""}}', "field"),
        ('{"event":"media","media":{"payload":""}}', "field"),
        ('{"event":"media","media":{"chunk":true,"payload":""}}', "field"),
        ('{"event":"start","start":{"call_control_id":"v2:x"}}', "field"),
        ('{"event":"start","stream_id":"s"}', "field"),
        ('{"event":"dtmf","dtmf":{"digit":""}}', "field"),
        ('{"event":"mark","mark":{}}', "field"),
        ('{"event":"error"}', "field"),
        ('{"event":"hello"}', "event"),
    ],
)
def test_unusable_frames_raise_a_typed_error(text: str, kind: str) -> None:
    """A frame that cannot be used names what is wrong with it."""
    with pytest.raises(StreamFrameError) as error:
        TelnyxStreamProtocol().parse(text)
    assert error.value.kind == kind


def test_outbound_frames_are_telnyx_bidirectional_shapes() -> None:
    """Outbound media, mark and clear frames are Telnyx's RTP-mode JSON, with no stream id."""
    p = TelnyxStreamProtocol()
    p.parse(json.dumps(START))
    assert json.loads(p.build_media("AAAA")) == {"event": "media", "media": {"payload": "AAAA"}}
    assert json.loads(p.build_mark('say "hi"')) == {"event": "mark", "mark": {"name": 'say "hi"'}}
    assert json.loads(p.build_clear()) == {"event": "clear"}


def test_the_carrier_hands_out_a_fresh_codec_that_reads_the_token_from_the_path() -> None:
    """Each Telnyx media connection gets its own codec, and its token is the URL's last segment."""
    config = VoicecallConfig.model_validate(
        {"provider": "telnyx", "telnyx": {"apiKey": "k", "connectionId": "c"}}
    )
    carrier = TelnyxCarrier(config)
    first, second = carrier.stream_protocol(), carrier.stream_protocol()
    assert first is not second
    assert first.token_in_path and first.carrier == "telnyx"
    assert carrier.stream_tokens is not None


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_frames = st.fixed_dictionaries(
    {"event": st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "error"])},
    optional={
        "stream_id": _json_values,
        "sequence_number": _json_values,
        "start": _json_values,
        "media": _json_values | st.fixed_dictionaries({}, optional={"chunk": _json_values}),
        "dtmf": _json_values,
        "mark": _json_values,
        "payload": _json_values,
    },
)


@given(st.binary(max_size=64) | st.text(max_size=64) | _frames.map(json.dumps))
def test_garbage_frames_raise_only_stream_frame_errors(frame: bytes | str) -> None:
    """Whatever a peer sends, parsing yields an event or a StreamFrameError, nothing else."""
    with contextlib.suppress(StreamFrameError):
        TelnyxStreamProtocol().parse(frame)
