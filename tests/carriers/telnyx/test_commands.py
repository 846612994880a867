"""Telnyx Call Control command bodies (SPEC §3.3, §3.5): paths, fields and fresh command ids."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from voicecall.carriers.api import ApiRequest
from voicecall.carriers.telnyx import commands

CCID = "v3:abc-DEF_123"
CALL_ID = "2f1c0d4e-0000-4000-8000-000000000001"
STATE = base64.b64encode(CALL_ID.encode()).decode()


def _ids() -> Any:
    counter = iter(range(1000))
    return lambda: f"cmd-{next(counter)}"


def test_dial_body() -> None:
    """Dial carries connection, numbers, webhook, base64 callId and the ring timeout in seconds."""
    request = commands.dial(
        connection_id="conn-1",
        to_number="+15550002222",
        from_number="+15550001111",
        webhook_url="https://gw.example.com/voice/webhook",
        call_id=CALL_ID,
        ring_timeout_ms=25_500,
        new_id=_ids(),
    )
    assert (request.method, request.path) == ("POST", "/calls")
    assert request.json_body == {
        "connection_id": "conn-1",
        "to": "+15550002222",
        "from": "+15550001111",
        "webhook_url": "https://gw.example.com/voice/webhook",
        "webhook_url_method": "POST",
        "client_state": STATE,
        "timeout_secs": 26,
        "command_id": "cmd-0",
    }


@pytest.mark.parametrize(
    ("request_", "action", "body"),
    [
        (commands.answer(CCID, call_id=CALL_ID, new_id=_ids()), "answer", {"client_state": STATE}),
        (commands.hangup(CCID, new_id=_ids()), "hangup", {}),
        (
            commands.speak(CCID, "Hello there", new_id=_ids()),
            "speak",
            {"payload": "Hello there", "voice": "female", "language": "en-US"},
        ),
        (
            commands.speak(
                CCID, "Hola", voice="AWS.Polly.Lupe-Neural", language="es-US", new_id=_ids()
            ),
            "speak",
            {"payload": "Hola", "voice": "AWS.Polly.Lupe-Neural", "language": "es-US"},
        ),
        (
            commands.transcription_start(CCID, call_id=CALL_ID, turn_token=None, new_id=_ids()),
            "transcription_start",
            {"language": "en", "client_state": STATE},
        ),
        (
            commands.transcription_start(
                CCID, call_id=CALL_ID, turn_token="t-1", language="de", new_id=_ids()
            ),
            "transcription_start",
            {
                "language": "de",
                "client_state": base64.b64encode(f"{CALL_ID}|t-1".encode()).decode(),
            },
        ),
        (
            commands.transcription_stop(CCID, call_id=CALL_ID, new_id=_ids()),
            "transcription_stop",
            {"client_state": STATE},
        ),
        (
            commands.send_dtmf(CCID, "12p3,4P#*wW", new_id=_ids()),
            "send_dtmf",
            {"digits": "12w3w4W#*wW", "duration_millis": 250},
        ),
        (
            commands.record_start(CCID, dual_channel=True, new_id=_ids()),
            "record_start",
            {"format": "mp3", "channels": "dual"},
        ),
        (
            commands.record_start(CCID, dual_channel=False, new_id=_ids()),
            "record_start",
            {"format": "mp3", "channels": "single"},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_action_bodies(request_: ApiRequest, action: str, body: dict[str, Any]) -> None:
    """Each action posts to /calls/{id}/actions/<action> with its body and a command id."""
    assert request_.method == "POST"
    assert request_.path == f"/calls/{CCID}/actions/{action}"
    assert request_.json_body == {**body, "command_id": "cmd-0"}
    assert request_.retryable  # the command id makes a retry harmless


def test_stream_fields_on_answer_and_streaming_start() -> None:
    """Streaming adds bidirectional PCMU RTP fields with the stream token."""
    stream = commands.StreamParams(url="wss://gw.example.com/voice/stream/tok", token="tok")
    expected = {
        "stream_url": "wss://gw.example.com/voice/stream/tok",
        "stream_track": "inbound_track",
        "stream_codec": "PCMU",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
        "stream_auth_token": "tok",
    }
    answered = commands.answer(CCID, call_id=CALL_ID, stream=stream, new_id=_ids())
    assert answered.json_body == {"client_state": STATE, **expected, "command_id": "cmd-0"}
    started = commands.streaming_start(CCID, stream, new_id=_ids())
    assert started.path.endswith("/actions/streaming_start")
    assert started.json_body == {**expected, "command_id": "cmd-0"}


def test_every_command_gets_a_fresh_uuid() -> None:
    """Two identical commands carry different UUID command ids."""
    first = commands.hangup(CCID).json_body["command_id"]
    second = commands.hangup(CCID).json_body["command_id"]
    assert first != second and len(first) == 36


def test_get_call_is_a_retryable_get() -> None:
    """Status polling is GET /calls/{id}."""
    request = commands.get_call(CCID)
    assert (request.method, request.path, request.json_body) == ("GET", f"/calls/{CCID}", None)
    assert request.retryable


def test_call_control_ids_are_escaped_in_paths() -> None:
    """A call_control_id with reserved characters cannot change the request path."""
    assert commands.hangup("v3:a/../b?c").path == "/calls/v3:a%2F..%2Fb%3Fc/actions/hangup"


@pytest.mark.parametrize(
    ("digits", "duration_ms"), [("1", 350), ("123#", 1400), ("1w2", 1200), ("9W,P", 2850)]
)
def test_pre_connect_dtmf_duration(digits: str, duration_ms: int) -> None:
    """The wait after pre-connect DTMF is 350 ms per digit plus 0.5 s / 1 s per pause."""
    assert commands.dtmf_duration_ms(digits) == duration_ms


@pytest.mark.parametrize("digits", ["", "12a", "1" * 65, "１"])
def test_invalid_dtmf_is_refused(digits: str) -> None:
    """Digits outside 0-9 * # w W p P , (or over 64) are refused before sending."""
    with pytest.raises(ValueError, match="Invalid DTMF digits"):
        commands.send_dtmf(CCID, digits)


def test_ring_timeout_rounds_up_to_whole_seconds() -> None:
    """ringTimeoutMs becomes timeout_secs rounded up."""
    for ms, secs in ((1, 1), (1000, 1), (1001, 2), (30_000, 30)):
        request = commands.dial(
            connection_id="c",
            to_number="+1",
            from_number="+2",
            webhook_url="u",
            call_id="x",
            ring_timeout_ms=ms,
        )
        assert request.json_body["timeout_secs"] == secs
