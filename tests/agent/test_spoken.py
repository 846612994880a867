"""Extraction of the words to speak from runner payloads (SPEC §9.3)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.agent import Payload, RunResult, extract_spoken, spoken_reply
from voicecall.errors import CallError


def _say(*texts: str) -> str:
    return extract_spoken([Payload(text=t) for t in texts])


def test_plain_json_object() -> None:
    """A JSON reply yields its spoken field with whitespace collapsed."""
    assert _say('  {"spoken": "Hello   there,\\n friend"} ') == "Hello there, friend"


def test_fenced_json() -> None:
    """A json code fence spanning the whole reply is unwrapped."""
    assert _say('```json\n{"spoken": "Fenced"}\n```') == "Fenced"
    assert _say('```\n{"spoken": "Bare fence"}\n```') == "Bare fence"


def test_object_embedded_in_prose() -> None:
    """An object between the first { and the last } is found inside surrounding prose."""
    assert _say('Sure! {"spoken": "Inside", "x": 1} hope that helps') == "Inside"


def test_empty_spoken_means_silence() -> None:
    """An empty spoken field says nothing at all."""
    assert _say('{"spoken": ""}') == ""


def test_object_without_spoken_falls_through_to_plain_text() -> None:
    """JSON without a string spoken field is not used as the reply."""
    assert _say('{"say": "no"}') == '{"say": "no"}'


def test_regex_fallback_decodes_json_string() -> None:
    """A broken object still yields its spoken string, JSON-decoded."""
    assert _say('{"spoken": "It\\u2019s \\"ok\\"", oops') == 'It\u2019s "ok"'


def test_plain_text_drops_fences_and_leading_meta() -> None:
    """Plain text loses code fences and leading planning paragraphs but keeps the last one."""
    text = (
        "Thinking process: greet them.\n\n"
        "The user asked about time, so I should answer.\n\n"
        "```python\nprint(1)\n```\n\n"
        "It is  three o'clock."
    )
    assert _say(text) == "It is three o'clock."


@pytest.mark.parametrize(
    "meta",
    [
        "Reasoning: x",
        "ANALYSIS: y",
        "The user wants help and I need to reply.",
        "The user greeted me; I will greet back.",
        "Okay, this is a natural continuation of the conversation.",
        "Let me keep the conversation flowing.",
    ],
)
def test_each_meta_rule_drops_a_leading_paragraph(meta: str) -> None:
    """Every meta pattern is dropped when another paragraph follows."""
    assert _say(f"{meta}\n\nHi there.") == "Hi there."


def test_single_meta_paragraph_is_kept() -> None:
    """The last remaining paragraph is kept even if it looks like meta text."""
    assert _say("Reasoning: fine") == "Reasoning: fine"


def test_user_paragraph_without_plan_is_kept() -> None:
    """A paragraph about the user without a plan phrase is spoken."""
    assert _say("The user manual is online.\n\nSee page two.") == (
        "The user manual is online. See page two."
    )


def test_error_and_reasoning_payloads_are_skipped_and_results_joined() -> None:
    """Error and reasoning payloads are never spoken; the rest join with one space."""
    payloads = [
        Payload(text='{"spoken": "One."}'),
        Payload(text="secret plan", is_reasoning=True),
        Payload(text="stack trace", is_error=True),
        Payload(text='{"spoken": ""}'),
        Payload(text="Two."),
    ]
    assert extract_spoken(payloads) == "One. Two."


@given(st.text())
def test_any_spoken_string_round_trips(spoken: str) -> None:
    """Whatever string the model puts in spoken comes back whitespace-collapsed."""
    assert _say(json.dumps({"spoken": spoken})) == " ".join(spoken.split())


@given(st.text())
def test_extraction_never_raises(text: str) -> None:
    """Arbitrary model output never crashes extraction and yields collapsed text."""
    spoken = _say(text)
    assert spoken == " ".join(spoken.split())


def test_aborted_run_without_text_is_an_error() -> None:
    """An aborted run that produced nothing raises the exact abort message."""
    with pytest.raises(CallError, match=r"^Response generation was aborted$"):
        spoken_reply(RunResult(payloads=[], aborted=True))
    assert spoken_reply(RunResult([Payload('{"spoken":"partial"}')], aborted=True)) == "partial"
