"""A deterministic, network-free runner used when no model credentials are configured."""

from __future__ import annotations

import json
import re

from voicecall.agent.types import Payload, RunRequest, RunResult

__all__ = ["OfflineResponder", "offline_reply"]

_CALLER_MARKER = "Current caller message:\n"
_KEYS = re.compile(r"^\[caller pressed keys: ([^\]]*)\]$")
_WORDS = re.compile(r"[a-z']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_GOODBYE_WORDS = frozenset({"bye", "goodbye", "farewell"})
_GOODBYE_PHRASES = ("that's all", "that is all", "talk to you later", "hang up", "good night")
_THANKS_WORDS = frozenset({"thanks", "thank", "cheers"})
_GIST_MAX_WORDS = 12


def _caller_text(message: str) -> str:
    _, marker, after = message.rpartition(_CALLER_MARKER)
    return " ".join((after if marker else message).split())


def _gist(text: str) -> str:
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    words = first.split()
    gist = " ".join(words[:_GIST_MAX_WORDS])
    if len(words) > _GIST_MAX_WORDS:
        gist += "..."
    gist = gist.rstrip(".!?,;: ")
    return gist[:1].lower() + gist[1:] if gist[:2] != gist[:2].upper() else gist


def offline_reply(caller_message: str) -> str:
    """The offline reply to a caller message; the same message always gets the same reply."""
    text = _caller_text(caller_message)
    if not text:
        return "Sorry, I didn't catch that. Could you say it again?"
    keys = _KEYS.match(text)
    if keys:
        return f"You pressed {' '.join(keys.group(1))}. How can I help?"
    lowered = text.lower()
    words = set(_WORDS.findall(lowered))
    if words & _GOODBYE_WORDS or any(p in lowered for p in _GOODBYE_PHRASES):
        return "Thanks for calling. Goodbye!"
    if text.endswith("?"):
        return f"You asked: {_gist(text)}. I'm offline right now, but I've noted your question."
    if words & _THANKS_WORDS:
        return "You're welcome. Is there anything else?"
    return f"Got it: {_gist(text)}. What else can I help with?"


class OfflineResponder:
    """Answers ``{"spoken": ...}`` from the caller's words alone; no model, no network."""

    async def run(self, request: RunRequest) -> RunResult:
        """Reply to ``request.message`` deterministically."""
        spoken = offline_reply(request.message)
        if request.on_text_delta is not None:
            request.on_text_delta(spoken)
        return RunResult(payloads=[Payload(text=json.dumps({"spoken": spoken}))])
