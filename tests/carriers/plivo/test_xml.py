"""Every Plivo XML document the gateway serves, byte for byte and well-formed (SPEC §3.4)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.carriers.plivo import xml as px

HOOK = "https://gw.example.com/voice/webhook"
ACTION = "https://gw.example.com/voice/webhook?provider=plivo&amp;flow=getinput&amp;callId=c-1"
GET_INPUT = (
    f'<GetInput inputType="speech" method="POST" action="{ACTION}" language="en-US" '
    'executionTimeout="30" speechEndTimeout="1" redirect="false"></GetInput>'
)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            px.xml_speak("Hi there", locale="en-US"),
            '<Response><Speak language="en-US">Hi there</Speak><Wait length="300" /></Response>',
        ),
        (
            px.xml_speak_listen("Hi there", locale="en-US", webhook_url=HOOK, call_id="c-1"),
            f'<Response><Speak language="en-US">Hi there</Speak>{GET_INPUT}'
            '<Wait length="300" /></Response>',
        ),
        (
            px.xml_notify("Your table is ready", locale="en-GB"),
            '<Response><Speak language="en-GB">Your table is ready</Speak><Hangup /></Response>',
        ),
        (
            px.xml_listen(webhook_url=HOOK, call_id="c-1", language="en-US"),
            f'<Response>{GET_INPUT}<Wait length="300" /></Response>',
        ),
        (px.xml_wait(), '<Response><Wait length="300" /></Response>'),
        (px.xml_reject(), '<Response><Hangup reason="rejected" /></Response>'),
        (px.xml_empty(), "<Response></Response>"),
    ],
    ids=["speak", "speak-listen", "notify", "listen", "wait", "reject", "empty"],
)
def test_documents_match_the_spec(document: str, expected: str) -> None:
    """Each document is exactly the SPEC template and parses as XML rooted at <Response>."""
    assert document == expected
    assert ET.fromstring(document).tag == "Response"


def test_text_and_urls_are_escaped() -> None:
    """Markup in the text and `&` in URLs are escaped; the parsed values are the originals."""
    text = 'Tom & Jerry\'s <b>"deal"</b>'
    hook = "https://gw.example.com/hook?x=1&y=<2>"
    root = ET.fromstring(px.xml_speak_listen(text, locale="en-US", webhook_url=hook, call_id="c&1"))
    speak, get_input, _wait = list(root)
    assert speak.text == text
    assert get_input.attrib["action"] == (
        "https://gw.example.com/hook?x=1&y=<2>&provider=plivo&flow=getinput&callId=c%261"
    )


def test_callback_url_orders() -> None:
    """Transfer URLs carry provider, flow, callId; create URLs carry provider, callId, flow."""
    assert px.callback_url(HOOK, flow="xml-speak", call_id="c-1") == (
        f"{HOOK}?provider=plivo&flow=xml-speak&callId=c-1"
    )
    assert px.callback_url(HOOK, flow="answer", call_id="c-1", call_id_first=True) == (
        f"{HOOK}?provider=plivo&callId=c-1&flow=answer"
    )


@given(st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=200))
def test_any_text_round_trips(text: str) -> None:
    """Whatever the bot says, every speaking document stays well-formed and speaks it verbatim."""
    for document in (
        px.xml_speak(text, locale="en-US"),
        px.xml_notify(text, locale="en-US"),
        px.xml_speak_listen(text, locale="en-US", webhook_url=HOOK, call_id="c-1"),
    ):
        assert (ET.fromstring(document)[0].text or "") == text
