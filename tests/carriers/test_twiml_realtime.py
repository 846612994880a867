"""T-REALTIME (SPEC §3.2): the realtime bridge stream document, exact and well-formed."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from voicecall.carriers.twilio import twiml


def test_the_document_is_exactly_the_spec_template() -> None:
    token = "0b8f5a52-4a5e-4c38-9a43-0b8de2f1b9a1"
    doc = twiml.realtime(f"wss://voice.example.com/voice/stream/realtime/{token}")
    assert doc == (
        "<Response><Connect><Stream "
        f'url="wss://voice.example.com/voice/stream/realtime/{token}" />'
        "</Connect></Response>"
    )


def test_special_characters_are_xml_escaped_and_parse_back() -> None:
    url = "wss://a&b.example/p'x\"<>/voice/stream/realtime/tok"
    doc = twiml.realtime(url)
    assert "&amp;" in doc and "&apos;" in doc and "&quot;" in doc and "&lt;" in doc
    assert "a&b" not in doc
    root = ET.fromstring(twiml.served(doc))
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    assert list(stream) == []  # the token rides in the path, no <Parameter>
    assert stream.attrib == {"url": url}


def test_a_uuid_token_is_the_last_path_segment() -> None:
    token = str(uuid.uuid4())
    doc = twiml.realtime(f"wss://h.example:8443/voice/stream/realtime/{token}")
    stream = ET.fromstring(doc).find("./Connect/Stream")
    assert stream is not None
    assert stream.attrib["url"].rpartition("/")[2] == token
