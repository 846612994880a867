"""The auto-response agent: runner contract, prompts, spoken-output extraction and runners."""

from __future__ import annotations

from voicecall.agent.chat_completions import ChatCompletionsRunner
from voicecall.agent.loader import load_runner
from voicecall.agent.offline import OfflineResponder
from voicecall.agent.prompts import build_system_prompt, build_user_message
from voicecall.agent.sentences import SentenceSegmenter, SpokenSentences, spoken_stream
from voicecall.agent.settings import AgentSettings, ProviderEndpoint
from voicecall.agent.spoken import extract_spoken, spoken_reply
from voicecall.agent.types import AgentRunner, Payload, RunRequest, RunResult

__all__ = [
    "AgentRunner",
    "AgentSettings",
    "ChatCompletionsRunner",
    "OfflineResponder",
    "Payload",
    "ProviderEndpoint",
    "RunRequest",
    "RunResult",
    "SentenceSegmenter",
    "SpokenSentences",
    "build_system_prompt",
    "build_user_message",
    "extract_spoken",
    "load_runner",
    "spoken_reply",
    "spoken_stream",
]
