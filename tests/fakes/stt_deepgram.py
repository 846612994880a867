"""A fake Deepgram live server (`/v1/listen`): Token auth, binary µ-law, Results/SpeechStarted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tests.fakes.stt_common import Connection, FakeSttServer
from websockets.asyncio.server import ServerConnection

__all__ = ["FakeDeepgram"]


def _results(text: str, *, is_final: bool, speech_final: bool, from_finalize: bool) -> str:
    return json.dumps(
        {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 1.0,
            "start": 0.0,
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.98, "words": []}]},
            "metadata": {"request_id": "req-1", "model_info": {"name": "general-nova-3"}},
        }
    )


class FakeDeepgram(FakeSttServer):
    """Checks the query and `Authorization: Token`; answers like Deepgram's live API."""

    path = "/v1/listen"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.control: list[str] = []

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("Authorization") == f"Token {self.api_key}"

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        self.expect_query(
            conn,
            {"encoding": "mulaw", "sample_rate": "8000", "channels": "1", "vad_events": "true"},
        )
        self.check("model" in conn.query, "no model in the query")
        script = conn.script
        assert script is not None
        async for message in ws:
            if isinstance(message, bytes):
                self.took_audio(ws, conn, message)
                for kind, text in script.feed(message):
                    if kind == "started":
                        await ws.send(
                            json.dumps({"type": "SpeechStarted", "channel": [0], "timestamp": 0.5})
                        )
                    elif kind == "partial":
                        await ws.send(
                            _results(text, is_final=False, speech_final=False, from_finalize=False)
                        )
                    else:
                        await ws.send(
                            _results(text, is_final=True, speech_final=True, from_finalize=False)
                        )
                continue
            data = json.loads(message)
            conn.messages.append(data)
            self.control.append(data.get("type"))
            if data.get("type") == "Finalize":
                text = script.finish()[1] if script.in_speech else ""
                await ws.send(_results(text, is_final=True, speech_final=False, from_finalize=True))
            elif data.get("type") == "CloseStream":
                await ws.send(
                    json.dumps(
                        {"type": "Metadata", "request_id": "req-1", "duration": 1.0, "channels": 1}
                    )
                )
                await ws.close()
                return
            elif data.get("type") != "KeepAlive":
                self.problems.append(f"unexpected control message {message}")
