"""Plivo webhook verification (V3 + V2) and form-event parsing (SPEC §3.4, §4.2-4.3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import plivo.utils
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.carriers.plivo.webhook import (
    event_from_params,
    parse_form,
    sign_v2,
    sign_v3,
    v3_base,
    verify_signature,
)

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "plivo_v3_signature.json").read_text())
TOKEN = VECTORS["auth_token"]
NONCE = VECTORS["nonce"]
PARAMS = list(VECTORS["params"].items())
URL = "https://gw.example.com/voice/webhook?provider=plivo&flow=answer&callId=c-1"


def v3_headers(signature: str, nonce: str = NONCE) -> dict[str, str]:
    return {"x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": nonce}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_official_v3_vectors(case: dict[str, Any]) -> None:
    """Every V3 vector of the official Go SDK is reproduced and accepted."""
    assert sign_v3(TOKEN, case["method"], case["url"], PARAMS, NONCE) == case["signature"]
    result = verify_signature(
        auth_token=TOKEN,
        method=case["method"],
        url=case["url"],
        headers=v3_headers(case["signature"]),
        params=PARAMS,
    )
    assert result.ok and result.version == "v3"
    assert result.request_key is not None and result.request_key.startswith("plivo:v3:")


def test_multi_signature_header_accepts_any_entry() -> None:
    """A V3 header holding several comma-separated signatures passes when one of them matches."""
    case = VECTORS["multi_signature_case"]
    headers = v3_headers(case["header_value"])
    result = verify_signature(
        auth_token=TOKEN, method="POST", url=case["url"], headers=headers, params=PARAMS
    )
    assert result.ok


def test_v3_base_joining_rules() -> None:
    """POST params always add `?`; a non-empty query is joined to them with `.`."""
    with_query = v3_base("POST", "https://h.example/p?b=2&a=1", [("Z", "z"), ("A", "a")])
    assert with_query == "https://h.example/p?a=1&b=2.AaZz"
    assert v3_base("POST", "https://h.example/p", [("A", "a")]) == "https://h.example/p?Aa"
    assert v3_base("POST", "https://h.example/p?b=2", []) == "https://h.example/p?b=2"
    assert v3_base("POST", "https://h.example:8443/p", []) == "https://h.example:8443/p"


def test_v2_legacy_vector_and_negative() -> None:
    """The SDKs' V2 vector verifies; the same signature with another token is refused."""
    legacy = VECTORS["v2_legacy"]
    assert sign_v2(legacy["auth_token"], legacy["url"], legacy["nonce"]) == legacy["signature"]
    headers = {"x-plivo-signature-v2": legacy["signature"], "x-plivo-signature-v2-nonce": "12345"}
    good = verify_signature(
        auth_token=legacy["auth_token"],
        method="POST",
        url=legacy["url"],
        headers=headers,
        params=[],
    )
    bad = verify_signature(
        auth_token=legacy["negative"]["auth_token"],
        method="POST",
        url=legacy["url"],
        headers=headers,
        params=[],
    )
    assert good.ok and good.request_key and good.request_key.startswith("plivo:v2:")
    assert not bad.ok and bad.request_key is None


def test_v3_preferred_over_v2_when_both_present() -> None:
    """With both header pairs present, a bad V3 signature is refused even if V2 would pass."""
    headers = {
        **v3_headers("bogus"),
        "x-plivo-signature-v2": sign_v2(TOKEN, URL, "n2"),
        "x-plivo-signature-v2-nonce": "n2",
    }
    result = verify_signature(auth_token=TOKEN, method="POST", url=URL, headers=headers, params=[])
    assert not result.ok


def test_missing_headers_and_missing_token_are_refused() -> None:
    """No signature headers, or no configured auth token, never verifies."""
    signature = sign_v3(TOKEN, "POST", URL, PARAMS, NONCE)
    assert not verify_signature(
        auth_token=TOKEN, method="POST", url=URL, headers={}, params=PARAMS
    ).ok
    assert not verify_signature(
        auth_token="", method="POST", url=URL, headers=v3_headers(signature), params=PARAMS
    ).ok


def test_request_key_ignores_query_order_and_tracks_nonce() -> None:
    """The V3 key is the same for a reordered query and differs for another nonce (SPEC §4.3)."""
    other = "https://gw.example.com/voice/webhook?callId=c-1&flow=answer&provider=plivo"

    def key(url: str, nonce: str) -> str | None:
        headers = v3_headers(sign_v3(TOKEN, "POST", url, PARAMS, nonce), nonce)
        return verify_signature(
            auth_token=TOKEN, method="POST", url=url, headers=headers, params=PARAMS
        ).request_key

    assert key(URL, "1") == key(other, "1")
    assert key(URL, "1") != key(URL, "2")


def test_tampered_body_is_refused() -> None:
    """Changing one posted value after signing breaks the V3 signature."""
    signature = sign_v3(TOKEN, "POST", URL, PARAMS, NONCE)
    tampered = [(k, "completed" if k == "CallStatus" else v) for k, v in PARAMS]
    result = verify_signature(
        auth_token=TOKEN, method="POST", url=URL, headers=v3_headers(signature), params=tampered
    )
    assert not result.ok


_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
_ascii = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_keys = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="&=+%#"),
    min_size=1,
    max_size=12,
)


@given(
    params=st.dictionaries(_keys, _text, max_size=6),
    query=st.dictionaries(_keys, _ascii, max_size=3),  # the SDK parses the URL as bytes
    nonce=st.text(alphabet="0123456789", min_size=1, max_size=20),
)
def test_v3_matches_the_official_sdk(
    params: dict[str, str], query: dict[str, str], nonce: str
) -> None:
    """For random form bodies and queries our V3 signature is the one the plivo SDK accepts."""
    url = "https://gw.example.com/voice/webhook" + (f"?{urlencode(query)}" if query else "")
    body = urlencode(params).encode()
    signature = sign_v3(TOKEN, "POST", url, parse_form(body), nonce)
    assert plivo.utils.validate_v3_signature("POST", url, nonce, TOKEN, signature, dict(params))


@given(
    body=st.binary(max_size=300),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-plivo-signature-v3",
                "x-plivo-signature-v3-nonce",
                "x-plivo-signature-v2",
                "x-plivo-signature-v2-nonce",
            ]
        ),
        _text,
    ),
)
def test_random_requests_never_raise_and_never_verify(body: bytes, headers: dict[str, str]) -> None:
    """Arbitrary bodies and forged headers are refused without raising."""
    result = verify_signature(
        auth_token=TOKEN, method="POST", url=URL, headers=headers, params=parse_form(body)
    )
    assert not result.ok


def _event(fields: dict[str, str], flow: str | None = "answer", **kw: Any) -> dict[str, Any] | None:
    return event_from_params(
        list(fields.items()),
        flow=flow,
        call_id=kw.get("call_id", "c-1"),
        dedupe_key="plivo:v3:k",
        received_at_ms=1000,
        resolve_call_id=kw.get("resolve"),
    )


BASE = {"CallUUID": "cu-1", "Direction": "outbound", "From": "14155550100", "To": "14155550123"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"CallStatus": "ringing"}, ("call.ringing", None)),
        ({"CallStatus": "in-progress"}, ("call.answered", None)),
        ({"CallStatus": "completed", "Event": "Hangup"}, ("call.ended", "completed")),
        ({"CallStatus": "busy"}, ("call.ended", "busy")),
        ({"CallStatus": "no-answer"}, ("call.ended", "no-answer")),
        ({"CallStatus": "timeout"}, ("call.ended", "no-answer")),
        ({"CallStatus": "failed"}, ("call.ended", "failed")),
        ({"CallStatus": "cancel"}, ("call.ended", "hangup-bot")),
        ({"CallStatus": "machine"}, ("call.ended", "voicemail")),
        ({"Event": "StartApp", "CallStatus": "ringing"}, ("call.answered", None)),
    ],
)
def test_status_table(fields: dict[str, str], expected: tuple[str, str | None]) -> None:
    """Each CallStatus (and Event=StartApp) becomes the normalized event of SPEC §3.4."""
    event = _event({**BASE, **fields})
    assert event is not None
    assert (event["type"], event.get("reason")) == expected


@pytest.mark.parametrize(
    "field",
    ["Speech", "Transcription", "TranscriptionText", "SpeechResult", "RecognizedSpeech", "Text"],
)
def test_transcript_fields(field: str) -> None:
    """Any of the transcript fields yields a final call.speech with that text."""
    event = _event({**BASE, "CallStatus": "in-progress", field: " Yes please "}, flow="getinput")
    assert event is not None
    assert (event["type"], event["transcript"], event["isFinal"]) == (
        "call.speech",
        "Yes please",
        True,
    )


def test_speech_confidence_and_first_nonempty_transcript() -> None:
    """The first non-empty transcript field wins and SpeechConfidenceScore is the confidence."""
    fields = {**BASE, "Speech": "", "Transcription": "second", "SpeechConfidenceScore": "0.82"}
    event = _event(fields, flow="getinput")
    assert event is not None and event["transcript"] == "second" and event["confidence"] == 0.82


def test_digits_win_and_recording_flow() -> None:
    """Digits become call.dtmf; flow=recording becomes call.recording with its fields."""
    dtmf = _event({**BASE, "Digits": "42#", "CallStatus": "in-progress"}, flow="getinput")
    assert dtmf is not None and (dtmf["type"], dtmf["digits"]) == ("call.dtmf", "42#")
    fields = {
        **BASE,
        "RecordUrl": "https://r.example/a.mp3",
        "RecordingID": "r-1",
        "RecordingDuration": "12",
    }
    rec = _event(fields, flow="recording")
    assert rec is not None
    assert (rec["type"], rec["sid"], rec["url"], rec["durationSec"]) == (
        "call.recording",
        "r-1",
        "https://r.example/a.mp3",
        12.0,
    )


def test_common_fields_numbers_and_dedupe() -> None:
    """Events carry callId, CallUUID, direction, E.164 numbers and the request key as dedupe key."""
    event = _event({**BASE, "CallStatus": "in-progress"})
    assert event == {
        "type": "call.answered",
        "id": "plivo:v3:k",
        "dedupeKey": "plivo:v3:k",
        "timestamp": 1000,
        "callId": "c-1",
        "providerCallId": "cu-1",
        "direction": "outbound",
        "from": "+14155550100",
        "to": "+14155550123",
    }


def test_request_uuid_links_to_our_call() -> None:
    """Without ?callId the call is found through RequestUUID; the event carries the CallUUID."""
    fields = {**BASE, "RequestUUID": "req-1", "ALegRequestUUID": "req-1", "CallStatus": "ringing"}
    seen: list[list[str]] = []

    def resolve(ids: list[str]) -> str | None:
        seen.append(list(ids))
        return "c-9" if "req-1" in ids else None

    event = _event(fields, call_id=None, resolve=resolve)
    assert event is not None and event["callId"] == "c-9" and event["providerCallId"] == "cu-1"
    assert seen == [["cu-1", "req-1"]]


def test_sip_numbers_and_unknown_status() -> None:
    """SIP URIs stay as they are; a request with nothing to report yields no event."""
    event = _event({**BASE, "To": "sip:bot@sip.example", "CallStatus": "ringing"})
    assert event is not None and event["to"] == "sip:bot@sip.example"
    assert _event({**BASE, "CallStatus": "weird"}) is None


@given(st.binary(max_size=400))
def test_parser_never_raises(body: bytes) -> None:
    """Any body parses to at most one well-formed event dict."""
    event = event_from_params(
        parse_form(body), flow=None, call_id=None, dedupe_key="k", received_at_ms=0
    )
    assert event is None or (event["id"] == "k" and event["type"].startswith("call."))
