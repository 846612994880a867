"""Plivo Voice API requests and answers as plain data (SPEC §3.4, §3.5)."""

from __future__ import annotations

import pytest

from voicecall.carriers.api import ApiRequest
from voicecall.carriers.plivo import rest

HOOK = "https://gw.example.com/voice/webhook"


def test_create_call_body() -> None:
    """Create posts JSON with the answer/hangup callbacks, ring timeout and send_digits."""
    request = rest.create_call(
        call_id="c-1",
        from_number="+1 (415) 555-0100",
        to_number="+14155550123",
        webhook_url=HOOK,
        ring_timeout_s=25,
        send_digits="1234w#P,p",
    )
    assert (request.method, request.path, request.retryable) == ("POST", "/Call/", False)
    assert request.json_body == {
        "from": "+14155550100",
        "to": "+14155550123",
        "answer_url": f"{HOOK}?provider=plivo&callId=c-1&flow=answer",
        "answer_method": "POST",
        "hangup_url": f"{HOOK}?provider=plivo&callId=c-1&flow=hangup",
        "hangup_method": "POST",
        "ring_timeout": 25,
        "send_digits": "1234w#Www",
    }


def test_create_call_without_digits_and_sip_target() -> None:
    """Without a DTMF sequence there is no send_digits; SIP URIs are passed unchanged."""
    request = rest.create_call(
        call_id="c-2",
        from_number="+14155550100",
        to_number="sip:agent@sip.example",
        webhook_url=HOOK,
        ring_timeout_s=30,
    )
    assert request.json_body is not None
    assert "send_digits" not in request.json_body
    assert request.json_body["to"] == "sip:agent@sip.example"


@pytest.mark.parametrize(
    ("request_", "method", "path", "body"),
    [
        (rest.hangup_call("cu-1"), "DELETE", "/Call/cu-1/", None),
        (rest.cancel_request("rq-1"), "DELETE", "/Request/rq-1/", None),
        (rest.get_call("cu-1"), "GET", "/Call/cu-1/", None),
        (
            rest.transfer_call("cu-1", f"{HOOK}?provider=plivo&flow=xml-speak&callId=c-1"),
            "POST",
            "/Call/cu-1/",
            {
                "legs": "aleg",
                "aleg_url": f"{HOOK}?provider=plivo&flow=xml-speak&callId=c-1",
                "aleg_method": "POST",
            },
        ),
        (
            rest.send_dtmf("cu-1", "12p#"),
            "POST",
            "/Call/cu-1/DTMF/",
            {"digits": "12w#", "leg": "aleg"},
        ),
        (
            rest.start_recording("cu-1", webhook_url=HOOK, call_id="c-1"),
            "POST",
            "/Call/cu-1/Record/",
            {
                "file_format": "mp3",
                "callback_url": f"{HOOK}?provider=plivo&flow=recording&callId=c-1",
                "callback_method": "POST",
            },
        ),
    ],
    ids=["hangup", "cancel", "status", "transfer", "dtmf", "record"],
)
def test_call_requests(request_: ApiRequest, method: str, path: str, body: object) -> None:
    """Each call request uses Plivo's path (with its trailing slash), method and JSON body."""
    assert (request_.method, request_.path, request_.json_body) == (method, path, body)


def test_ids_are_path_escaped_and_base_url() -> None:
    """A provider id cannot escape its path segment; the account base ends in /Account/{id}."""
    assert rest.hangup_call("../x").path == "/Call/..%2Fx/"
    assert (
        rest.account_base_url("http://127.0.0.1:9/v1/", "MA1")
        == "http://127.0.0.1:9/v1/Account/MA1"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"message": "call fired", "request_uuid": "rq-1", "api_id": "a"}', "rq-1"),
        (b'{"request_uuid": ["rq-2", "rq-3"]}', "rq-2"),
        (b'{"request_uuid": []}', None),
        (b"not json", None),
    ],
)
def test_request_uuid_from(body: bytes, expected: str | None) -> None:
    """The create answer's request_uuid is read whether it is a string or an array."""
    assert rest.request_uuid_from(body) == expected


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        ("in-progress", False),
        ("ringing", False),
        *[(s, True) for s in sorted(rest.TERMINAL_CALL_STATUSES)],
    ],
)
def test_call_status_terminal_set(status: str, terminal: bool) -> None:
    """A call is over exactly when Plivo's call_status is in the terminal set of SPEC §3.4."""
    body = f'{{"call_status": "{status}"}}'.encode()
    assert rest.call_status_from(body) == (status, terminal)
    assert rest.call_status_from(b"{}") == ("unknown", False)
