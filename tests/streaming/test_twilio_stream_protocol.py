"""The sans-IO Twilio Media Streams codec and the shared stream helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_layering import FORBIDDEN_MODULES, _imports

import voicecall
from voicecall.carriers.media_stream import (
    DtmfReceived,
    MarkReceived,
    MediaReceived,
    StreamConnected,
    StreamFrameError,
    StreamStarted,
    StreamStopped,
    StreamTokens,
    decode_payload,
)
from voicecall.carriers.twilio.stream import TwilioStreamProtocol

PACKAGE = Path(voicecall.__file__).parent


def test_inbound_frames_become_events() -> None:
    """Every Twilio inbound event type parses into its stream event."""
    p = TwilioStreamProtocol()
    assert p.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == StreamConnected()
    start = p.parse(
        json.dumps(
            {
                "event": "start",
                "start": {"streamSid": "MZ1", "callSid": "CA1", "customParameters": {"token": "t"}},
                "streamSid": "MZ1",
            }
        )
    )
    assert start == StreamStarted("MZ1", "CA1", "t", {"token": "t"})
    media = p.parse(
        b'{"event":"media","media":{"track":"inbound","chunk":"70000","timestamp":"5","payload":"/w=="}}'
    )
    assert media == MediaReceived("/w==", 70000 & 0xFFFF, 5, True)
    outbound = p.parse('{"event":"media","media":{"track":"outbound","chunk":"1","payload":""}}')
    assert isinstance(outbound, MediaReceived) and not outbound.inbound
    assert p.parse('{"event":"mark","mark":{"name":"m1"}}') == MarkReceived("m1")
    assert p.parse('{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}') == DtmfReceived(
        "5"
    )
    assert p.parse('{"event":"stop","stop":{}}') == StreamStopped()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("nope", "json"),
        ("[]", "json"),
        ('{"event":"media"}', "field"),
        ('{"event":"media","media":{"chunk":"a","payload":""}}', "field"),
        ('{"event":"start","start":{}}', "field"),
        ('{"event":"hello"}', "event"),
    ],
)
def test_unusable_frames_raise_a_typed_error(text: str, kind: str) -> None:
    """A frame that cannot be used names what is wrong with it."""
    with pytest.raises(StreamFrameError) as error:
        TwilioStreamProtocol().parse(text)
    assert error.value.kind == kind


def test_outbound_frames_carry_the_stream_sid() -> None:
    """Outbound media, mark and clear frames are Twilio's exact JSON shapes."""
    p = TwilioStreamProtocol()
    p.parse('{"event":"start","start":{"streamSid":"MZ\\"x","callSid":"CA1"}}')
    assert json.loads(p.build_media("AAAA")) == {
        "event": "media",
        "streamSid": 'MZ"x',
        "media": {"payload": "AAAA"},
    }
    assert json.loads(p.build_mark('say "hi"')) == {
        "event": "mark",
        "streamSid": 'MZ"x',
        "mark": {"name": 'say "hi"'},
    }
    assert json.loads(p.build_clear()) == {"event": "clear", "streamSid": 'MZ"x'}


def test_payload_decoding_is_canonicalised() -> None:
    """Standard, URL-safe and unpadded base64 decode alike; anything else is refused."""
    assert decode_payload("+/8=") == decode_payload("-_8") == b"\xfb\xff"
    with pytest.raises(StreamFrameError):
        decode_payload("a b$")


def test_tokens_are_per_call_and_replaced_by_a_new_one() -> None:
    """Only the call's latest token passes the check."""
    tokens = StreamTokens()
    first = tokens.mint("CA1")
    second = tokens.mint("CA1")
    assert len(second) >= 22 and first != second
    assert tokens.check("CA1", second)
    assert not tokens.check("CA1", first)
    assert not tokens.check("CA2", second)
    assert not tokens.check("CA1", None)


@pytest.mark.parametrize(
    "path",
    [PACKAGE / "carriers" / "media_stream.py", *sorted(PACKAGE.glob("carriers/*/stream.py"))],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_stream_codecs_are_sans_io(path: Path) -> None:
    """Stream protocol modules import no event loop, socket or HTTP library."""
    assert not [m for m, _ in _imports(path) if m.split(".")[0] in FORBIDDEN_MODULES]


@pytest.mark.parametrize("chunk", ["true", "1e400", "-1e400", "[1]"])
def test_non_numeric_chunk_is_a_frame_error(chunk: str) -> None:
    """A media frame whose chunk is a boolean or an overflowing number is garbage, not a crash."""
    protocol = TwilioStreamProtocol()
    frame = (
        '{"event":"media","streamSid":"MZ1","media":{"track":"inbound","chunk":'
        + chunk
        + ',"timestamp":"20","payload":"//8="}}'
    )
    with pytest.raises(StreamFrameError, match=r"media\.chunk|not JSON"):
        protocol.parse(frame)
