"""`voicecall serve` with Twilio media streams: a caller's speech ends in the call record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Gateway, until
from tests.fakes.stt_common import API_KEY
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.streaming.media import StreamingTwilio, TwilioMediaClient, frames, speech

pytestmark = pytest.mark.e2e

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
CALLEE = "+15550003333"
OPENING = "Hello, this is your assistant. Does 3pm work for you?"
ANSWER = "That works for me."


def gateway_for(home: Path, twilio: StreamingTwilio, deepgram: FakeDeepgram) -> Gateway:
    """A `voicecall serve` child on provider twilio with streaming through Deepgram."""
    config: dict[str, Any] = {
        "provider": "twilio",
        "fromNumber": FROM,
        "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": twilio.base_url},
        "streaming": {
            "enabled": True,
            "provider": "deepgram",
            "providers": {"deepgram": {"apiKey": API_KEY, "baseUrl": deepgram.base_url}},
        },
    }
    return Gateway(home, config, unset_env=["DEEPGRAM_API_KEY"])


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Gateway, StreamingTwilio]]:
    twilio = StreamingTwilio(ACCOUNT, TOKEN)
    await twilio.start()
    async with FakeDeepgram([ANSWER]) as deepgram:
        try:
            async with gateway_for(tmp_path, twilio, deepgram) as serve:  # type: ignore[arg-type]
                yield serve, twilio
        finally:
            await twilio.close()


async def test_outbound_conversation_transcribes_the_callee_over_a_media_stream(
    parts: tuple[Gateway, StreamingTwilio],
) -> None:
    """The voice fetch gets T-STREAM; the callee's streamed answer is the record's user line."""
    serve, twilio = parts
    session = serve.session
    result = await serve.rpc("voicecall.initiate", to=CALLEE, message=OPENING, mode="conversation")
    call_id = result["callId"]
    sid = next(iter(twilio.calls))
    doc = await twilio.stream_doc(sid)
    assert doc.url.startswith("ws://127.0.0.1:") and doc.url.endswith("/voice/stream")
    async with TwilioMediaClient(session, doc.url) as media:
        await media.start(sid, doc.token)
        await media.play(frames(speech("appointment")))

        def answered() -> bool:
            record = serve.last_record(call_id)
            return any(t["speaker"] == "user" and t["text"] == ANSWER for t in record["transcript"])

        await until(answered)
        await twilio.hang_up(sid)
        assert await media.closed() == (1000, "Call ended")
    await until(lambda: serve.last_record(call_id).get("endedAt") is not None)
    record = serve.last_record(call_id)
    assert record["endReason"] == "completed"
    assert (
        record["transcript"][0]["speaker"] == "bot" and record["transcript"][0]["text"] == OPENING
    )
    assert [t["text"] for t in record["transcript"] if t["speaker"] == "user"] == [ANSWER]
