"""A fake OpenAI speech API: `POST /v1/audio/speech`, Bearer auth, streams PCM16 24 kHz."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from tests.fakes.tts_common import FakeTtsServer, RecordedRequest

__all__ = ["FakeOpenAITts"]

_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


@dataclass
class FakeOpenAITts(FakeTtsServer):
    """Checks the path, the bearer key and the JSON body (model, voice, input, format)."""

    expected_model: str = "gpt-4o-mini-tts"
    expected_voice: str = "alloy"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_route("*", "/{tail:.*}", self._unknown)

    async def _unknown(self, request: web.Request) -> web.Response:
        self.problems.append(f"unexpected request {request.method} {request.path}")
        return web.json_response({"error": {"message": "not found"}}, status=404)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        self.expect("model", body.get("model"), self.expected_model)
        self.expect("voice", body.get("voice"), self.expected_voice)
        self.expect("response_format", body.get("response_format"), "pcm")
        if not isinstance(body.get("input"), str) or not body["input"]:
            self.problems.append(f"input: expected text, got {body.get('input')!r}")
        extra = set(body) - {"model", "voice", "input", "response_format", "instructions", "speed"}
        if extra:
            self.problems.append(f"unknown body fields {sorted(extra)}")
        if body.get("response_format") not in _FORMATS:
            return web.json_response({"error": {"message": "bad response_format"}}, status=400)
        if self.fail_status is not None:
            return web.json_response(
                {"error": {"message": "The server had an error", "type": "server_error"}},
                status=self.fail_status,
            )
        return await self.stream_audio(request)
