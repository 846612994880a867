"""The builtin runner: an OpenAI-compatible streaming chat client with session memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from voicecall.agent.history import SessionHistory
from voicecall.agent.settings import AgentSettings, ProviderEndpoint
from voicecall.agent.spoken import extract_spoken
from voicecall.agent.types import Payload, RunRequest, RunResult
from voicecall.errors import CallError

__all__ = ["ChatCompletionsRunner", "split_model"]

_ERROR_BODY_CHARS = 300


def split_model(model: str, default_provider: str = "openai") -> tuple[str, str]:
    """``provider/model`` → (provider, model); a bare model uses ``default_provider``."""
    provider, slash, name = model.partition("/")
    return (provider, name) if slash and provider and name else (default_provider, model)


class ChatCompletionsRunner:
    """Streams ``POST {baseUrl}/chat/completions`` and remembers turns per session key."""

    def __init__(
        self, settings: AgentSettings, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.settings = settings
        self.history = SessionHistory(settings.store_dir)
        self._session = session
        self._owns_session = session is None

    async def aclose(self) -> None:
        """Close the HTTP session if this runner created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _endpoint(self, provider_id: str) -> ProviderEndpoint:
        endpoint = self.settings.providers.get(provider_id)
        if endpoint is None:
            raise CallError(
                f"agent provider {provider_id!r} is not configured "
                f"(set agent.providers.{provider_id}.baseUrl)"
            )
        return endpoint

    async def run(self, request: RunRequest) -> RunResult:
        """One streamed completion; the spoken reply is appended to the session history."""
        default_provider, _ = split_model(self.settings.default_model)
        provider_id, model = split_model(request.model, default_provider)
        endpoint = self._endpoint(provider_id)
        system_prompt = request.system_prompt
        if request.extra_system_prompt:
            system_prompt = f"{system_prompt}\n\n{request.extra_system_prompt}"
        async with self.history.lock_for(request.session_key):
            past = await self.history.recent_messages(
                request.session_key, self.settings.history_turns
            )
            messages = [
                {"role": "system", "content": system_prompt},
                *past,
                {"role": "user", "content": request.message},
            ]
            try:
                async with asyncio.timeout(request.timeout_ms / 1000):
                    text, aborted = await self._stream(endpoint, model, messages, request)
            except TimeoutError as exc:
                raise CallError(f"Response generation timed out ({request.timeout_ms} ms)") from exc
            result = RunResult(payloads=[Payload(text=text)] if text else [], aborted=aborted)
            if not aborted:
                spoken = extract_spoken(result.payloads)
                await self.history.append_turn(request.session_key, request.message, spoken)
        return result

    async def _stream(
        self,
        endpoint: ProviderEndpoint,
        model: str,
        messages: list[dict[str, str]],
        request: RunRequest,
    ) -> tuple[str, bool]:
        headers = {"Accept": "text/event-stream"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        body = {"model": model, "messages": messages, "stream": True}
        url = f"{endpoint.base_url}/chat/completions"
        parts: list[str] = []
        try:
            async with self._http().post(url, json=body, headers=headers) as response:
                if response.status >= 400:
                    detail = (await response.text())[:_ERROR_BODY_CHARS]
                    raise CallError(f"chat completions failed: HTTP {response.status}: {detail}")
                async for raw_line in response.content:
                    if request.cancel.is_set():
                        return "".join(parts), True
                    line = raw_line.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue  # SSE comments, event names and blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    delta = _delta_text(data)
                    if delta:
                        parts.append(delta)
                        if request.on_text_delta is not None:
                            request.on_text_delta(delta)
        except aiohttp.ClientError as exc:
            raise CallError(f"chat completions failed: {exc}") from exc
        return "".join(parts), request.cancel.is_set()


def _delta_text(data: str) -> str:
    try:
        chunk: Any = json.loads(data)
    except ValueError as exc:
        raise CallError(f"chat completions sent a malformed chunk: {data[:80]!r}") from exc
    if not isinstance(chunk, Mapping):
        return ""
    error = chunk.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, Mapping) else error
        raise CallError(f"chat completions failed: {message}")
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, Mapping) else None
    return content if isinstance(content, str) else ""
