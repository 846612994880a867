"""Media-stream edges: upgrades during shutdown, stale transcripts, and outbound backpressure."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from tests.streaming.conftest import MakeHarness
from tests.streaming.media import FRAME_BYTES, frames, speech

from voicecall.calls.record import CallRecord
from voicecall.server.streams import BACKPRESSURE_LIMIT_BYTES

UTTERANCE = "Hello, thanks for calling."


def user_lines(record: CallRecord) -> list[str]:
    """The caller's final transcript lines of a record."""
    return [e.text for e in record.transcript if e.speaker == "user" and e.is_final]


async def test_upgrade_while_shutting_down_is_refused_with_503(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A media-stream upgrade arriving while the gateway drains is answered with HTTP 503."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    webhook = h.gateway._webhook
    assert webhook is not None
    draining, finish = asyncio.Event(), asyncio.Event()
    close_listener = webhook.stop

    async def held_stop() -> None:  # hold the drain after the streams, before the listener
        draining.set()
        await finish.wait()
        await close_listener()

    monkeypatch.setattr(webhook, "stop", held_stop)
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await h.until(lambda: bool(h.gateway.streams and h.gateway.streams.streams()))
        stopping = asyncio.ensure_future(h.gateway.stop())
        assert await media.closed() == (1001, "Server shutting down")
    await draining.wait()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await h.session.ws_connect(doc.url)
        assert refused.value.status == 503
    finally:
        finish.set()
        await stopping
    rejections = h.gateway.metrics.render().decode()
    assert 'voicecall_media_stream_rejections_total{reason="stopping"} 1.0' in rejections


async def test_transcripts_of_a_superseded_stream_never_reach_the_record(
    make_harness: MakeHarness,
) -> None:
    """The older stream's last transcript, finalized after a newer stream took over, is dropped."""
    h = await make_harness("deepgram", script=["From the old stream.", UTTERANCE])
    sid, doc = await h.inbound_call()
    clip = frames(speech("hello"))
    async with h.media(doc.url) as first, h.media(doc.url) as second:
        await first.start(sid, doc.token)
        await first.play(clip[:80])  # mid-utterance: only the provider's finalize can end it
        await h.until(lambda: bool(h.stt.connections) and h.stt.connections[0].script.in_speech)
        h.stt.release_ready.clear()  # the newer stream's transcription waits for the old one
        await second.start(sid, doc.token)
        assert await first.closed() == (1000, "Superseded by a newer stream")
        # The old session finalizes on close: the fake answered it with a final transcript.
        await h.until(lambda: h.stt.connections[0].script.finals == 1)
        h.stt.release_ready.set()
        await h.until(lambda: len(h.stt.connections) == 2)
        for frame in clip:  # a burst: the newer stream's speech
            await second.media(frame)
        await h.until(lambda: bool(user_lines(h.record(sid))))
    assert user_lines(h.record(sid)) == [UTTERANCE]
    assert all(e.text != "From the old stream." for e in h.record(sid).transcript)


def media_frame(stream_sid: str) -> str:
    """One outbound Twilio media frame of 20 ms of µ-law silence."""
    payload = base64.b64encode(b"\xff" * FRAME_BYTES).decode()
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


async def test_a_peer_that_never_reads_is_closed_for_backpressure(
    make_harness: MakeHarness,
) -> None:
    """Sending to a peer that never reads ends with close 1013, the send buffer bounded."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    call_id = h.record(sid).call_id
    streams = h.gateway.streams
    assert streams is not None
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await h.until(lambda: bool(streams.streams()))
        transport = next(iter(streams._connections)).transport
        assert isinstance(transport, asyncio.WriteTransport)
        frame = media_frame(media.stream_sid)
        most_buffered = 0
        sent = 0
        async with asyncio.timeout(30):  # guards only against a send that blocks forever
            while await streams.send(call_id, frame):
                sent += 1
                most_buffered = max(most_buffered, transport.get_write_buffer_size())
        assert sent > 0
        assert most_buffered <= BACKPRESSURE_LIMIT_BYTES
        assert not await streams.send(call_id, frame)  # nothing more is taken
        code, reason = await media.closed()  # the peer finally reads: its frames, then the close
    assert (code, reason) == (1013, "Backpressure: send buffer exceeded")
    assert media.received == [json.loads(frame)] * sent  # every accepted frame arrived
    text = await h.metrics()
    assert 'voicecall_media_stream_rejections_total{reason="backpressure"} 1.0' in text
