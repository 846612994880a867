"""Sentence streaming: the segmenter's cuts and the streamed spoken-output contract."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fakes.openai_chat import API_KEY, FakeOpenAIChat

from voicecall.agent import AgentSettings, ChatCompletionsRunner, ProviderEndpoint, RunRequest
from voicecall.agent.sentences import (
    SentenceSegmenter,
    SpokenSentences,
    aspoken_stream,
    spoken_stream,
)
from voicecall.agent.spoken import extract_spoken_from_text


def _segment(*deltas: str, min_chars: int = 0, clause_chars: int = 120) -> list[str]:
    segmenter = SentenceSegmenter(min_chars=min_chars, clause_chars=clause_chars)
    out: list[str] = []
    for delta in deltas:
        out += segmenter.feed(delta)
    return out + segmenter.finish()


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello there. How are you? Great!", ["Hello there.", "How are you?", "Great!"]),
        ("It costs 3.5 dollars. Thanks.", ["It costs 3.5 dollars.", "Thanks."]),
        ("Dr. Who is in. Ok.", ["Dr. Who is in.", "Ok."]),
        ("Bring snacks, e.g. chips. Ok.", ["Bring snacks, e.g. chips.", "Ok."]),
        ("Come at 9 a.m. tomorrow. Bye.", ["Come at 9 a.m. tomorrow.", "Bye."]),
        ("Well... maybe. Or… not.", ["Well...", "maybe.", "Or…", "not."]),
        ('She said "go." Then left.', ['She said "go."', "Then left."]),
        ("Really?! (Yes.) Fine.", ["Really?!", "(Yes.)", "Fine."]),
        ("one\ntwo", ["one", "two"]),
        ("no end at all", ["no end at all"]),
        ("Visit example.com today.", ["Visit example.com today."]),
    ],
)
def test_sentences_end_where_a_listener_would_pause(text: str, sentences: list[str]) -> None:
    """Sentence ends are cut; numbers, abbreviations and dotted names are not."""
    assert _segment(text) == sentences


def test_a_sentence_is_returned_as_soon_as_it_ends() -> None:
    """A sentence comes out as soon as the character after its end arrives."""
    segmenter = SentenceSegmenter(min_chars=0)
    assert segmenter.feed("Hello there.") == []
    assert segmenter.feed(" How") == ["Hello there."]
    assert segmenter.feed(" are you") == []
    assert segmenter.finish() == ["How are you"]


def test_short_pieces_are_joined_to_the_next() -> None:
    """With the default 20-character minimum, a short sentence waits for the next one."""
    assert _segment("Hi! Thanks for calling the clinic. Bye.", min_chars=20) == [
        "Hi! Thanks for calling the clinic.",
        "Bye.",
    ]


def test_a_long_clause_is_cut_at_a_comma() -> None:
    """A clause without an end is flushed at the first comma past clause_chars."""
    text = "one two three four, five six seven eight, nine ten"
    assert _segment(text, clause_chars=20) == [
        "one two three four, five six seven eight,",
        "nine ten",
    ]
    assert _segment(text, clause_chars=10) == [
        "one two three four,",
        "five six seven eight,",
        "nine ten",
    ]


_PROSE = st.lists(
    st.sampled_from([*"ab Z3.,!?…\"')(\n\t", "Dr.", "e.g.", " 3.5", "a.m. "]), max_size=80
).map("".join)


def _chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@given(
    text=st.lists(_PROSE, max_size=6).map("".join),
    cuts=st.lists(st.integers(0, 500), max_size=12),
    min_chars=st.sampled_from([0, 20]),
    clause_chars=st.sampled_from([5, 120]),
)
def test_segmenting_is_lossless_and_independent_of_delta_boundaries(
    text: str, cuts: list[int], min_chars: int, clause_chars: int
) -> None:
    """The sentences rejoin to the text and are the same however the text is chunked."""
    options = {"min_chars": min_chars, "clause_chars": clause_chars}
    whole = _segment(text, **options)
    assert " ".join(whole) == _collapse(text)
    assert all(sentence for sentence in whole)
    assert _segment(*_chunks(text, cuts), **options) == whole


_SPOKEN = st.text(
    alphabet=st.one_of(
        st.sampled_from(list('Hi yes. No! Why? 3.5 Dr. "quoted" \\ / \n\t…é😀')),
        st.characters(),
    ),
    max_size=120,
)


@st.composite
def _replies(draw: st.DrawFn) -> str:
    """Model output: the JSON contract in its many spellings, or anything else at all."""
    if draw(st.booleans()):
        return draw(st.text(max_size=200))
    document: dict[str, object] = {"spoken": draw(_SPOKEN)}
    if draw(st.booleans()):
        document["mood"] = draw(st.sampled_from(["calm", "}", '{"x": 1}']))
    text = json.dumps(
        document,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 2])),
        separators=draw(st.sampled_from([None, (",", ":")])),
    )
    return draw(st.sampled_from(["", " ", "\n"])) + text + draw(st.sampled_from(["", "\n"]))


@given(text=_replies(), cuts=st.lists(st.integers(0, 800), max_size=16))
def test_streamed_spoken_sentences_equal_the_extraction(text: str, cuts: list[int]) -> None:
    """The streamed sentences rejoin to the §9.3 extraction, whatever the delta chunking."""
    whole = list(spoken_stream([text]))
    assert " ".join(whole) == extract_spoken_from_text(text)
    assert list(spoken_stream(_chunks(text, cuts))) == whole


def test_sentences_stream_before_the_json_closes() -> None:
    """The first sentence of "spoken" is yielded while the JSON is still arriving."""
    reply = json.dumps({"spoken": "Your table for two is booked. See you at eight tonight."})
    pulled: list[str] = []

    def deltas() -> Iterator[str]:
        for i in range(0, len(reply), 3):
            pulled.append(reply[i : i + 3])
            yield reply[i : i + 3]

    stream = spoken_stream(deltas())
    assert next(stream) == "Your table for two is booked."
    assert len("".join(pulled)) < len(reply)
    assert list(stream) == ["See you at eight tonight."]


def test_escapes_split_across_deltas_are_decoded() -> None:
    """JSON escapes (quotes, newlines, surrogate pairs) split between deltas are decoded."""
    reply = r'{"spoken": "He said \"hello there\" \ud83d\ude00.\nBye now, see you later."}'
    deltas = [reply[i : i + 1] for i in range(len(reply))]
    assert list(spoken_stream(deltas)) == ['He said "hello there" 😀.', "Bye now, see you later."]


@pytest.mark.parametrize(
    ("reply", "spoken"),
    [
        ('```json\n{"spoken": "Fenced reply here."}\n```', "Fenced reply here."),
        ("Thinking process: be nice.\n\nHello! Lovely to hear from you.", None),
        ('Sure: {"spoken": "Inside braces, later on."}', "Inside braces, later on."),
    ],
)
def test_a_reply_not_starting_as_the_contract_streams_nothing(
    reply: str, spoken: str | None
) -> None:
    """Output that does not start as {"spoken": ...} is extracted whole at the end."""
    sentences = SpokenSentences()
    assert [s for i in range(len(reply)) for s in sentences.feed(reply[i])] == []
    assert not sentences.streaming
    assert " ".join(sentences.finish()) == (spoken or extract_spoken_from_text(reply))


def test_explicit_silence_says_nothing() -> None:
    """{"spoken": ""} streams no sentence at all."""
    assert list(spoken_stream(['{"spo', 'ken": ', '""}'])) == []


async def test_async_deltas_stream_the_same_sentences() -> None:
    """The async helper yields the same sentences as the sync one."""
    reply = json.dumps({"spoken": "First sentence is here. Second one follows it."})

    async def deltas() -> AsyncIterator[str]:
        for i in range(0, len(reply), 5):
            yield reply[i : i + 5]

    assert [s async for s in aspoken_stream(deltas())] == list(spoken_stream([reply]))


async def test_runner_deltas_feed_sentences_before_the_reply_ends(tmp_path: Path) -> None:
    """Fed from onTextDelta, the first sentence is ready before the model's reply has ended."""
    reply = json.dumps({"spoken": "Thanks for calling us today. How can I help you?"})
    sentences = SpokenSentences()
    ready: list[tuple[str, int]] = []
    received: list[str] = []

    def on_delta(delta: str) -> None:
        received.append(delta)
        ready.extend((s, len("".join(received))) for s in sentences.feed(delta))

    async with FakeOpenAIChat(replies=[reply]) as fake:
        settings = AgentSettings(
            providers={"openai": ProviderEndpoint(fake.base_url, API_KEY)}, store_dir=tmp_path
        )
        runner = ChatCompletionsRunner(settings)
        try:
            await runner.run(
                RunRequest(
                    session_key="agent:main:main",
                    agent_id="main",
                    run_id="voice:c1:1",
                    model="openai/gpt-4o-mini",
                    system_prompt="Be brief.",
                    message="Hi",
                    timeout_ms=10_000,
                    on_text_delta=on_delta,
                )
            )
        finally:
            await runner.aclose()
    ready.extend((s, len(reply)) for s in sentences.finish())
    assert [s for s, _ in ready] == ["Thanks for calling us today.", "How can I help you?"]
    assert ready[0][1] < len(reply)
