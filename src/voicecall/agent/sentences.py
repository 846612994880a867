"""Sentence streaming (SPEC §8.4): cut a streamed reply into speakable sentences as they end.

Sans-IO: both classes take text deltas and hand back finished sentences; neither owns a stream.

Rules of :class:`SentenceSegmenter` (each decision needs at most the next character, so the
sentences never depend on how the text was split into deltas):

- A sentence ends after a run of ``.``, ``!``, ``?`` or ``…`` (ellipses included) and any closing
  quotes or brackets, when whitespace follows; at the end of the text it ends anyway.
- No end inside a number (``3.5``), an initialism (``U.S.A``) or after a known abbreviation
  (``Dr.``, ``e.g.``, ``a.m.``).
- A newline ends a sentence.
- A clause of ``clause_chars`` or more without an end is cut after a comma followed by whitespace.
- A piece shorter than ``min_chars`` is joined to the next one.
- Sentences are whitespace-collapsed, so joining them with single spaces gives the collapsed text.

:class:`SpokenSentences` applies the spoken-output contract (SPEC §9.3) to a streamed reply: when
the reply starts as ``{"spoken":"``, the JSON string is decoded as it arrives and its sentences
are yielded before the JSON closes; otherwise nothing streams and :meth:`SpokenSentences.finish`
yields the sentences of the full §9.3 extraction.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from enum import Enum

from voicecall.agent.spoken import extract_spoken_from_text

__all__ = [
    "SentenceSegmenter",
    "SpokenSentences",
    "aspoken_stream",
    "spoken_stream",
]

_TERMINATORS = frozenset(".!?…")
_CLOSERS = frozenset("\"')]}”’»")
_OPENERS = "\"'([{“‘«"
_ABBREVIATIONS = frozenset(
    {
        "dr", "mr", "mrs", "ms", "prof", "sr", "jr", "st", "mt", "vs", "approx", "dept",
        "e.g", "i.e", "a.m", "p.m", "u.s", "u.k", "inc", "ltd", "ft",
    }
)  # fmt: skip
_WHITESPACE = re.compile(r"\s+")
_JSON_WHITESPACE = " \t\n\r"
_CONTRACT_TOKENS = ("{", '"spoken"', ":", '"')
_SIMPLE_ESCAPES = frozenset('"\\/bfnrt')
_HEX = frozenset("0123456789abcdefABCDEF")


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _is_abbreviation(text_before: str) -> bool:
    word = text_before.rsplit(None, 1)[-1] if text_before.strip() else ""
    return word.lstrip(_OPENERS).lower() in _ABBREVIATIONS


class SentenceSegmenter:
    """Fed text deltas, returns each sentence as soon as its end is certain."""

    def __init__(self, *, min_chars: int = 20, clause_chars: int = 120) -> None:
        self.min_chars = min_chars
        self.clause_chars = clause_chars
        self._buf = ""  # text of the current, unfinished sentence
        self._pos = 0  # where scanning resumes; everything before it is not a sentence end
        self._held = ""  # a finished piece shorter than min_chars, waiting for the next

    def feed(self, delta: str) -> list[str]:
        """Add text; return the sentences it completed."""
        self._buf += delta
        return self._scan(final=False)

    def finish(self) -> list[str]:
        """The end of the text: return the remaining sentences and reset."""
        out = self._scan(final=True)
        self._emit(self._buf, out, last=True)
        self._buf, self._pos, self._held = "", 0, ""
        return out

    def _scan(self, *, final: bool) -> list[str]:
        out: list[str] = []
        buf, i = self._buf, self._pos
        while i < len(buf):
            char = buf[i]
            cut: int | None = None
            if char == "\n":
                cut, skip = i, i + 1
            elif char in _TERMINATORS or (
                char == "," and len(buf[:i].lstrip()) >= self.clause_chars
            ):
                j = i + 1
                if char != ",":
                    while j < len(buf) and buf[j] in _TERMINATORS:
                        j += 1
                    while j < len(buf) and buf[j] in _CLOSERS:
                        j += 1
                if j == len(buf) and not final:
                    break  # the next character decides; wait for it
                if j < len(buf) and buf[j].isspace() and self._ends_at(buf, i, j):
                    cut = skip = j
                else:
                    i = j
                    continue
            if cut is None:
                i += 1
                continue
            self._emit(buf[:cut], out)
            buf, i = buf[skip:], 0
        self._buf, self._pos = buf, i
        return out

    @staticmethod
    def _ends_at(buf: str, i: int, j: int) -> bool:
        if buf[i:j].rstrip("".join(_CLOSERS)) == ".":
            return not _is_abbreviation(buf[:i])
        return True

    def _emit(self, piece: str, out: list[str], *, last: bool = False) -> None:
        text = _collapse(f"{self._held} {piece}")
        if not text:
            return
        if len(text) < self.min_chars and not last:
            self._held = text
            return
        self._held = ""
        out.append(text)


class _Mode(Enum):
    PREFIX = "prefix"  # not yet known whether the reply starts as the JSON contract
    VALUE = "value"  # inside the "spoken" string: decoding and streaming
    CLOSED = "closed"  # the string ended; everything streamed
    PLAIN = "plain"  # not the contract: nothing streams, finish() extracts
    BROKEN = "broken"  # the string is not valid JSON after all: finish() reconciles


def _value_start(head: str) -> int | None:
    """Index after ``{"spoken":"`` (JSON whitespace allowed); None while undecided; -1 if not."""
    i = 0
    for token in _CONTRACT_TOKENS:
        while i < len(head) and head[i] in _JSON_WHITESPACE:
            i += 1
        seen = head[i : i + len(token)]
        if not token.startswith(seen):
            return -1
        if len(seen) < len(token):
            return None
        i += len(token)
    return i


class SpokenSentences:
    """Fed the model's text deltas, returns sentences of the spoken reply as they complete."""

    def __init__(self, *, min_chars: int = 20, clause_chars: int = 120) -> None:
        self._options = {"min_chars": min_chars, "clause_chars": clause_chars}
        self._segmenter = SentenceSegmenter(**self._options)
        self._parts: list[str] = []
        self._mode = _Mode.PREFIX
        self._raw = ""  # undecoded characters of the JSON string
        self._safe = 0  # _raw[:_safe] ends on a whole character or escape
        self._escaped = False
        self._hex_left = 0
        self._held_surrogate = False  # the last escape was a high surrogate; wait for its pair
        self._yielded: list[str] = []

    @property
    def streaming(self) -> bool:
        """Whether the reply is being streamed as the JSON contract."""
        return self._mode in (_Mode.VALUE, _Mode.CLOSED)

    def feed(self, delta: str) -> list[str]:
        """Add a text delta; return the spoken sentences it completed."""
        self._parts.append(delta)
        if self._mode is _Mode.PREFIX:
            text = "".join(self._parts)
            start = _value_start(text)
            if start is None:
                return []
            if start < 0:
                self._mode = _Mode.PLAIN
                return []
            self._mode = _Mode.VALUE
            delta = text[start:]
        if self._mode is not _Mode.VALUE:
            return []
        out = self._decode(delta)
        self._yielded += out
        return out

    def finish(self) -> list[str]:
        """The reply is complete: return what is left to say, per the §9.3 extraction."""
        final = extract_spoken_from_text("".join(self._parts))
        spoken = " ".join(self._yielded)
        if final == spoken:
            return []
        if spoken and not final.startswith(f"{spoken} "):
            return []  # the stream said something the extraction disagrees with; never repeat
        segmenter = SentenceSegmenter(**self._options)
        rest = final[len(spoken) :]
        out = segmenter.feed(rest) + segmenter.finish()
        self._yielded += out
        return out

    def _decode(self, chunk: str) -> list[str]:
        for char in chunk:
            if self._hex_left:
                if char not in _HEX:
                    return self._broken()
                self._hex_left -= 1
                self._raw += char
                if not self._hex_left:
                    code = int(self._raw[-4:], 16)
                    self._held_surrogate = 0xD800 <= code <= 0xDBFF
                    self._safe = len(self._raw)
                continue
            if self._escaped:
                self._escaped = False
                if char == "u":
                    self._hex_left = 4
                elif char not in _SIMPLE_ESCAPES:
                    return self._broken()
                self._raw += char
                if char != "u":
                    self._safe, self._held_surrogate = len(self._raw), False
                continue
            if char == '"':
                return self._close()
            if ord(char) < 0x20:
                return self._broken()  # strict JSON forbids raw control characters
            self._escaped = char == "\\"
            self._raw += char
            if not self._escaped:
                self._safe, self._held_surrogate = len(self._raw), False
        end = self._safe - 6 if self._held_surrogate else self._safe
        return self._segmenter.feed(self._take(end))

    def _take(self, end: int) -> str:
        decoded: str = json.loads(f'"{self._raw[:end]}"')
        self._raw, self._safe = self._raw[end:], self._safe - end
        return decoded

    def _close(self) -> list[str]:
        self._mode = _Mode.CLOSED
        out = self._segmenter.feed(self._take(len(self._raw)))
        return out + self._segmenter.finish()

    def _broken(self) -> list[str]:
        self._mode = _Mode.BROKEN
        return []


def spoken_stream(deltas: Iterable[str]) -> Iterator[str]:
    """Sentences of the spoken reply in a stream of text deltas, each as soon as it completes."""
    sentences = SpokenSentences()
    for delta in deltas:
        yield from sentences.feed(delta)
    yield from sentences.finish()


async def aspoken_stream(deltas: AsyncIterable[str]) -> AsyncIterator[str]:
    """:func:`spoken_stream` over an async stream of text deltas."""
    sentences = SpokenSentences()
    async for delta in deltas:
        for sentence in sentences.feed(delta):
            yield sentence
    for sentence in sentences.finish():
        yield sentence
