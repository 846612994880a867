"""T-REALTIME (SPEC §3.2): the realtime bridge stream document, exact and well-formed."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from voicecall.carriers.twilio import twiml


def test_the_document_is_exactly_the_spec_template() -> None:
    token = "0b8f5a52-4a5e-4c38-9a43-0b8de2f1b9a1"
    doc = twiml.realtime_stream(
        host="voice.example.com", prefix="", realtime_path="/voice/stream/realtime", token=token
    )
    assert doc == (
        "<Response><Connect><Stream "
        f'url="wss://voice.example.com/voice/stream/realtime/{token}" />'
        "</Connect></Response>"
    )


def test_the_prefix_goes_before_the_realtime_path_without_double_slashes() -> None:
    doc = twiml.realtime_stream(
        host="h.example", prefix="/gw/", realtime_path="/stream/realtime/", token="t"
    )
    assert 'url="wss://h.example/gw/stream/realtime/t"' in doc


def test_special_characters_are_xml_escaped_and_parse_back() -> None:
    host = "a&b.example"
    doc = twiml.realtime_stream(
        host=host, prefix="/p'x\"<>", realtime_path="/voice/stream/realtime", token="tok"
    )
    assert "&amp;" in doc and "&apos;" in doc and "&quot;" in doc and "&lt;" in doc
    assert "a&b" not in doc
    root = ET.fromstring(twiml.served(doc))
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    assert list(stream) == []  # the token rides in the path, no <Parameter>
    assert stream.attrib == {"url": "wss://a&b.example/p'x\"<>/voice/stream/realtime/tok"}


def test_a_uuid_token_is_the_last_path_segment() -> None:
    token = str(uuid.uuid4())
    doc = twiml.realtime_stream(
        host="h.example:8443", prefix="", realtime_path="/voice/stream/realtime", token=token
    )
    url = ET.fromstring(doc).find("./Connect/Stream")
    assert url is not None
    assert url.attrib["url"].rpartition("/")[2] == token


def test_a_slash_in_a_token_cannot_add_a_path_segment() -> None:
    doc = twiml.realtime_stream(host="h.example", prefix="", realtime_path="/rt", token="a/b?c&d")
    stream = ET.fromstring(doc).find("./Connect/Stream")
    assert stream is not None
    assert stream.attrib["url"] == "wss://h.example/rt/a%2Fb%3Fc%26d"


def test_it_matches_the_url_builder() -> None:
    url = "wss://h.example/rt/tok"
    assert twiml.realtime_stream(
        host="h.example", prefix="", realtime_path="/rt", token="tok"
    ) == twiml.realtime(url)
