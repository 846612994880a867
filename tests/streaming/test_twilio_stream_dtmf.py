"""DTMF sent while a Twilio media stream is live goes in-band and never replaces the stream."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
from tests.streaming.conftest import MakeHarness

from voicecall.media.dtmf import dtmf_ulaw


async def _received_audio(ws: aiohttp.ClientWebSocketResponse, size: int) -> tuple[bytes, int]:
    """Read outbound media frames until ``size`` bytes of audio arrived; (audio, frame count)."""
    audio = bytearray()
    frames = 0
    async with asyncio.timeout(20):
        while len(audio) < size:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame: dict[str, Any] = json.loads(msg.data)
            if frame.get("event") == "media":
                audio += base64.b64decode(frame["media"]["payload"])
                frames += 1
    return bytes(audio), frames


async def test_dtmf_on_a_live_stream_is_sent_as_tones_on_the_stream(
    make_harness: MakeHarness,
) -> None:
    """`dtmf` on a streamed call plays the Q.23 tones in 20 ms frames and posts no TwiML update."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        call_id = h.record(sid).call_id
        runtime: Any = h.gateway.runtime
        await h.until(lambda: runtime.call_view(call_id).stream_connected)
        updates_before = len(h.twilio.rest_for(sid))
        assert await runtime.send_dtmf(call_id, "1#") == {"success": True}
        assert media.ws is not None
        expected = dtmf_ulaw("1#")
        audio, frames = await _received_audio(media.ws, len(expected))
        assert audio == expected
        assert frames == len(expected) // 160
        assert not media.ws.closed
        assert len(h.twilio.rest_for(sid)) == updates_before
