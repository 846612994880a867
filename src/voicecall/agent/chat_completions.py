"""The builtin runner: OpenAI-compatible Chat Completions through the openai SDK, with memory."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from voicecall.agent.history import SessionHistory
from voicecall.agent.settings import AgentSettings, ProviderEndpoint
from voicecall.agent.spoken import extract_spoken
from voicecall.agent.types import Payload, RunRequest, RunResult
from voicecall.errors import CallError, ConfigError

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream
    from openai.types.chat import ChatCompletionChunk

__all__ = ["ChatCompletionsRunner", "split_model"]

_MISSING_SDK = "agent.runner 'builtin' needs the openai package: pip install 'voicecall[openai]'"


def split_model(model: str, default_provider: str = "openai") -> tuple[str, str]:
    """``provider/model`` → (provider, model); a bare model uses ``default_provider``."""
    provider, slash, name = model.partition("/")
    return (provider, name) if slash and provider and name else (default_provider, model)


def _import_openai() -> ModuleType:
    # Imported here, not at module level: the `openai` extra is optional (no import-time failure).
    try:
        return importlib.import_module("openai")
    except ImportError:
        raise ConfigError(_MISSING_SDK) from None


class ChatCompletionsRunner:
    """Streams Chat Completions per ``agent.providers.<id>`` and remembers turns per session key.

    One SDK client per provider, each with its own HTTP pool (closed by :meth:`aclose`). The SDK
    makes no retries: a reply that arrives after its retry is stale on a live call anyway.
    """

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.history = SessionHistory(settings.store_dir)
        self._openai = _import_openai()
        self._clients: dict[str, AsyncOpenAI] = {}
        # Built now, not on a caller's first turn: a cold SDK client costs ~200 ms to make.
        for provider_id in settings.providers:
            self._client(provider_id)

    async def aclose(self) -> None:
        """Close the SDK clients' HTTP pools."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def _client(self, provider_id: str) -> AsyncOpenAI:
        client = self._clients.get(provider_id)
        if client is None:
            endpoint = self._endpoint(provider_id)
            client = self._openai.AsyncOpenAI(
                base_url=endpoint.base_url,
                # The SDK refuses an empty key; a keyless endpoint's requests omit the header.
                api_key=endpoint.api_key or "no-key",
                max_retries=0,
            )
            self._clients[provider_id] = client
        return client

    def _auth_headers(self, provider_id: str) -> dict[str, Any]:
        if self._endpoint(provider_id).api_key:
            return {}
        return {"Authorization": self._openai.Omit()}  # a keyless local server gets none

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
        client = self._client(provider_id)
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
            text, aborted = await self._stream(client, provider_id, model, messages, request)
            result = RunResult(payloads=[Payload(text=text)] if text else [], aborted=aborted)
            if not aborted:
                spoken = extract_spoken(result.payloads)
                await self.history.append_turn(request.session_key, request.message, spoken)
        return result

    async def _stream(
        self,
        client: AsyncOpenAI,
        provider_id: str,
        model: str,
        messages: list[dict[str, str]],
        request: RunRequest,
    ) -> tuple[str, bool]:
        openai = self._openai
        timeout_s = request.timeout_ms / 1000
        parts: list[str] = []
        try:
            # The SDK's timeout bounds each connect and read; this one bounds the whole run.
            async with asyncio.timeout(timeout_s):
                # The SDK's own request (not completions.create): our messages are plain
                # strings already, and create() re-validates every message of the history on
                # the event loop (~6 ms per turn with 20 turns of memory, measured with
                # benchmarks/turn_latency.py). Same transport, errors and stream parsing.
                stream = cast(
                    "AsyncStream[ChatCompletionChunk]",
                    await client.post(
                        "/chat/completions",
                        cast_to=openai.types.chat.ChatCompletion,
                        body={"model": model, "messages": messages, "stream": True},
                        options={"timeout": timeout_s, "headers": self._auth_headers(provider_id)},
                        stream=True,
                        stream_cls=openai.AsyncStream[openai.types.chat.ChatCompletionChunk],
                    ),
                )
                async with stream:
                    async for chunk in stream:
                        if request.cancel.is_set():
                            return "".join(parts), True
                        delta = chunk.choices[0].delta.content if chunk.choices else None
                        if delta:
                            parts.append(delta)
                            if request.on_text_delta is not None:
                                request.on_text_delta(delta)
        except (TimeoutError, openai.APITimeoutError):
            raise CallError(
                f"Response generation timed out ({request.timeout_ms} ms) on {provider_id}"
            ) from None
        except openai.APIStatusError as exc:
            raise CallError(
                f"chat completions on {provider_id} failed: HTTP {exc.status_code}: {exc.message}"
            ) from None
        except openai.APIConnectionError as exc:
            raise CallError(
                f"chat completions on {provider_id} unreachable: {exc.__cause__ or exc}"
            ) from None
        except openai.APIError as exc:  # an error event inside the stream
            raise CallError(f"chat completions on {provider_id} failed: {exc.message}") from None
        return "".join(parts), request.cancel.is_set()
