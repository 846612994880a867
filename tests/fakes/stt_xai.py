"""A fake xAI STT server (`/v1/stt`): Bearer auth, binary µ-law, transcript.* messages."""

from __future__ import annotations

import json
from collections.abc import Mapping

from tests.fakes.stt_common import Connection, FakeSttServer
from websockets.asyncio.server import ServerConnection

__all__ = ["FakeXai"]


class FakeXai(FakeSttServer):
    """Checks the query and Bearer auth; ready with `transcript.created`, Deepgram-like results."""

    path = "/v1/stt"

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("Authorization") == f"Bearer {self.api_key}"

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        self.expect_query(
            conn, {"sample_rate": "8000", "encoding": "mulaw", "interim_results": "true"}
        )
        self.check("endpointing" in conn.query, "no endpointing in the query")
        await self.release_ready.wait()
        await ws.send(json.dumps({"type": "transcript.created"}))
        script = conn.script
        assert script is not None
        async for message in ws:
            if isinstance(message, bytes):
                self.took_audio(ws, conn, message)
                for kind, text in script.feed(message):
                    if kind == "partial":
                        await ws.send(self._partial(text, final=False))
                    elif kind == "final":
                        await ws.send(self._partial(text, final=True))
                continue
            data = json.loads(message)
            conn.messages.append(data)
            if data.get("type") != "audio.done":
                self.problems.append(f"unexpected message {message}")
                continue
            text = script.finish()[1] if script.in_speech else ""
            await ws.send(json.dumps({"type": "transcript.done", "text": text, "duration": 1.0}))
            await ws.close()
            return

    @staticmethod
    def _partial(text: str, *, final: bool) -> str:
        return json.dumps(
            {
                "type": "transcript.partial",
                "text": text,
                "words": [],
                "is_final": final,
                "speech_final": final,
                "start": 0.0,
                "duration": 1.0,
                "channel_index": 0,
            }
        )
