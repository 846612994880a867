"""The spoken-output contract: pull the words to say out of runner payloads (SPEC §9.3)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from voicecall.agent.types import Payload, RunResult
from voicecall.errors import CallError

__all__ = ["extract_spoken", "extract_spoken_from_text", "spoken_reply"]

_WHOLE_FENCE = re.compile(r"^```(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL | re.IGNORECASE)
_ANY_FENCE = re.compile(r"```.*?```", re.DOTALL)
_SPOKEN_FIELD = re.compile(r'"spoken"\s*:\s*"((?:[^"\\]|\\.)*)"')
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_WHITESPACE = re.compile(r"\s+")

_META_PREFIXES = ("thinking process", "reasoning:", "analysis:")
_USER_PLAN_MARKERS = ("i should", "i need to", "i will")
_FILLER_MARKERS = (
    "this is a natural continuation of the conversation",
    "keep the conversation flowing",
)


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _json_candidates(text: str) -> list[str]:
    trimmed = text.strip()
    candidates = [trimmed]
    fence = _WHOLE_FENCE.match(trimmed)
    if fence:
        candidates.append(fence.group(1).strip())
    first, last = trimmed.find("{"), trimmed.rfind("}")
    if first != -1 and last > first:
        candidates.append(trimmed[first : last + 1])
    return candidates


def _spoken_from_json(text: str) -> str | None:
    for candidate in _json_candidates(text):
        try:
            document = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(document, dict) and isinstance(document.get("spoken"), str):
            return _collapse(document["spoken"])
    return None


def _spoken_from_regex(text: str) -> str | None:
    match = _SPOKEN_FIELD.search(text)
    if match is None:
        return None
    raw = match.group(1)
    try:
        decoded = json.loads(f'"{raw}"')
    except ValueError:
        decoded = raw
    return _collapse(decoded if isinstance(decoded, str) else raw)


def _is_meta(paragraph: str) -> bool:
    lowered = paragraph.lower()
    if lowered.startswith(_META_PREFIXES):
        return True
    if lowered.startswith("the user ") and any(m in lowered for m in _USER_PLAN_MARKERS):
        return True
    return any(marker in lowered for marker in _FILLER_MARKERS)


def _spoken_from_plain(text: str) -> str:
    unfenced = _ANY_FENCE.sub("", text)
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(unfenced)]
    paragraphs = [p for p in paragraphs if p]
    while len(paragraphs) > 1 and _is_meta(paragraphs[0]):
        paragraphs.pop(0)
    return _collapse(" ".join(paragraphs))


def extract_spoken_from_text(text: str) -> str:
    """The words to say for one payload's text (JSON, then the field regex, then plain text)."""
    for extract in (_spoken_from_json, _spoken_from_regex):
        spoken = extract(text)
        if spoken is not None:
            return spoken
    return _spoken_from_plain(text)


def extract_spoken(payloads: Iterable[Payload]) -> str:
    """Join the spoken words of all speakable payloads; ``""`` means say nothing."""
    parts = (
        extract_spoken_from_text(p.text) for p in payloads if not (p.is_error or p.is_reasoning)
    )
    return " ".join(part for part in parts if part)


def spoken_reply(result: RunResult) -> str:
    """The words to say for a run; an aborted run that produced nothing is an error."""
    spoken = extract_spoken(result.payloads)
    if result.aborted and not spoken:
        raise CallError("Response generation was aborted")
    return spoken
