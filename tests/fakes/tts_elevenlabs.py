"""A fake ElevenLabs streaming TTS: `/v1/text-to-speech/{voice}/stream`, streams raw µ-law."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from tests.fakes.tts_common import FakeTtsServer, RecordedRequest

__all__ = ["FakeElevenLabsTts"]


@dataclass
class FakeElevenLabsTts(FakeTtsServer):
    """Checks the voice in the path, `output_format`, `xi-api-key` and `{text, model_id}`."""

    content_type: str = "audio/basic"
    expected_voice_id: str = "VOICE123"
    expected_model_id: str = "eleven_multilingual_v2"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._stream)
        app.router.add_route("*", "/{tail:.*}", self._unknown)

    async def _unknown(self, request: web.Request) -> web.Response:
        self.problems.append(f"unexpected request {request.method} {request.path}")
        return web.json_response({"detail": "Not Found"}, status=404)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        if request.headers.get("xi-api-key") != self.api_key:
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
                status=401,
            )
        self.expect("voice_id", request.match_info["voice_id"], self.expected_voice_id)
        self.expect("output_format", request.query.get("output_format"), "ulaw_8000")
        self.expect("content-type", request.content_type, "application/json")
        self.expect("model_id", body.get("model_id"), self.expected_model_id)
        if not isinstance(body.get("text"), str) or not body["text"]:
            self.problems.append(f"text: expected text, got {body.get('text')!r}")
        if self.fail_status is not None:
            return web.json_response(
                {"detail": {"status": "server_error", "message": "synthesis failed"}},
                status=self.fail_status,
            )
        return await self.stream_audio(request)
