"""Realtime instructions (SPEC §7.4, §7.6 consultPolicy guidance, §1.6 agentContext)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.realtime.instructions import (
    DEFAULT_INSTRUCTIONS,
    WorkspaceFile,
    agent_context_capsule,
    compose_instructions,
    consult_guidance,
    greeting_directive,
    read_workspace_files,
    realtime_instructions,
    speak_instructions,
    truncate_text,
)

# ---- SPEC texts, copied verbatim as the oracle ------------------------------------------------

SPEC_DEFAULT = (
    "You are the live phone voice of the user's assistant. Keep what you say short and natural. "
    "If a request needs deeper reasoning, current information, or tools, call agent_consult "
    "before answering. If the caller wants to hang up, say your goodbye first and then call "
    "end_call; the call ends once your goodbye has played, and nothing you say after calling it "
    "will be heard."
)
SPEC_SUBSTANTIVE = (
    "Answer greetings, thanks, acknowledgements and simple conversational filler yourself. "
    "Before answering anything that needs facts, memory, current information, tools, workspace "
    "state or actions, call agent_consult."
)
SPEC_ALWAYS = (
    "Call agent_consult before every substantive answer and speak its result; only greetings "
    "and brief acknowledgements may be answered directly."
)


def spec_greeting(greeting: str) -> str:
    return (
        "Open the call by greeting the caller naturally, and include this greeting in your "
        f'first spoken reply: "{greeting}"'
    )


def test_default_instructions_text() -> None:
    assert DEFAULT_INSTRUCTIONS == SPEC_DEFAULT


@pytest.mark.parametrize(
    ("policy", "text"), [("auto", None), ("substantive", SPEC_SUBSTANTIVE), ("always", SPEC_ALWAYS)]
)
def test_consult_guidance(policy: str, text: str | None) -> None:
    assert consult_guidance(policy) == text


def test_unknown_consult_policy() -> None:
    with pytest.raises(ValueError, match="consultPolicy"):
        consult_guidance("sometimes")


def test_greeting_directive() -> None:
    assert greeting_directive("Hi, it's Ada.") == spec_greeting("Hi, it's Ada.")


def test_speak_instructions() -> None:
    assert speak_instructions("Your table is ready") == (
        'Say this to the caller now, naturally: "Your table is ready"'
    )


# ---- composition ------------------------------------------------------------------------------


def test_compose_defaults_only() -> None:
    assert compose_instructions() == SPEC_DEFAULT


@pytest.mark.parametrize("blank", [None, "", "   \n"])
def test_blank_instructions_use_default(blank: str | None) -> None:
    assert compose_instructions(instructions=blank) == SPEC_DEFAULT


def test_compose_all_parts_in_order_with_blank_lines() -> None:
    text = compose_instructions(
        instructions="  Be a pirate.  ",
        consult_policy="always",
        capsule="Agent: Ada",
        greeting=" Ahoy! ",
    )
    assert text == "\n\n".join(["Be a pirate.", SPEC_ALWAYS, "Agent: Ada", spec_greeting("Ahoy!")])


def test_compose_skips_empty_parts() -> None:
    text = compose_instructions(consult_policy="substantive", capsule="", greeting="  ")
    assert text == SPEC_DEFAULT + "\n\n" + SPEC_SUBSTANTIVE


def test_compose_auto_adds_nothing() -> None:
    assert compose_instructions(consult_policy="auto", greeting="Hello") == (
        SPEC_DEFAULT + "\n\n" + spec_greeting("Hello")
    )


# ---- capsule ----------------------------------------------------------------------------------

FILES = [WorkspaceFile("SOUL.md", "Calm and kind.\n"), WorkspaceFile("USER.md", "  Bob  ")]


def test_capsule_identity_and_files() -> None:
    capsule = agent_context_capsule(agent_name="Ada", files=FILES)
    assert capsule == "Agent: Ada\n\nSOUL.md:\nCalm and kind.\n\nUSER.md:\nBob"


def test_capsule_without_identity() -> None:
    capsule = agent_context_capsule(agent_name="Ada", files=FILES, include_identity=False)
    assert capsule is not None and not capsule.startswith("Agent:")
    assert capsule.startswith("SOUL.md:\n")


def test_capsule_without_files() -> None:
    capsule = agent_context_capsule(agent_name="Ada", files=FILES, include_workspace_files=False)
    assert capsule == "Agent: Ada"


def test_capsule_skips_empty_files_and_may_be_none() -> None:
    assert agent_context_capsule(agent_name=None, files=[WorkspaceFile("A.md", " \n")]) is None
    assert agent_context_capsule(agent_name="", files=[]) is None


def test_capsule_truncated_to_max_chars() -> None:
    capsule = agent_context_capsule(
        agent_name="Ada", files=[WorkspaceFile("SOUL.md", "x" * 500)], max_chars=40
    )
    assert capsule is not None
    assert len(capsule) == 40
    assert capsule.endswith("…")
    assert capsule.startswith("Agent: Ada\n\nSOUL.md:\nxxx")


@given(text=st.text(max_size=300), max_chars=st.integers(min_value=1, max_value=400))
def test_truncate_bounds(text: str, max_chars: int) -> None:
    out = truncate_text(text, max_chars)
    assert len(out) <= max_chars
    if len(text) <= max_chars:
        assert out == text
    else:
        assert out.endswith("…")
        assert text.startswith(out[:-1])


@given(
    name=st.text(min_size=1, max_size=40),
    bodies=st.lists(st.text(max_size=200), max_size=4),
    max_chars=st.integers(min_value=1, max_value=500),
)
def test_capsule_never_exceeds_max_chars(name: str, bodies: list[str], max_chars: int) -> None:
    files = [WorkspaceFile(f"F{i}.md", body) for i, body in enumerate(bodies)]
    capsule = agent_context_capsule(agent_name=name, files=files, max_chars=max_chars)
    assert capsule is None or 0 < len(capsule) <= max_chars


def test_truncate_refuses_zero() -> None:
    with pytest.raises(ValueError):
        truncate_text("abc", 0)


# ---- workspace files (I/O) --------------------------------------------------------------------


def test_read_workspace_files_in_list_order_skipping_missing(tmp_path: Path) -> None:
    (tmp_path / "SOUL.md").write_text("soul", encoding="utf-8")
    (tmp_path / "USER.md").write_text("user", encoding="utf-8")
    (tmp_path / "DIR.md").mkdir()
    found = read_workspace_files(tmp_path, ["USER.md", "IDENTITY.md", "DIR.md", "SOUL.md"])
    assert found == [WorkspaceFile("USER.md", "user"), WorkspaceFile("SOUL.md", "soul")]


def test_read_workspace_files_stays_inside(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    names = ["../secret.txt", str(tmp_path / "secret.txt"), "."]
    assert read_workspace_files(workspace, names) == []


def test_read_workspace_files_limit_and_bad_bytes(tmp_path: Path) -> None:
    (tmp_path / "A.md").write_bytes(b"ab\xffcd" + b"z" * 100)
    (found,) = read_workspace_files(tmp_path, ["A.md"], max_chars=3)
    assert found.text == "ab\ufffdc"  # max_chars + 1 characters at most


def test_read_missing_directory(tmp_path: Path) -> None:
    assert read_workspace_files(tmp_path / "nope", ["SOUL.md"]) == []


# ---- realtime_instructions --------------------------------------------------------------------


def test_realtime_instructions_with_agent_context(tmp_path: Path) -> None:
    (tmp_path / "SOUL.md").write_text("Kind.", encoding="utf-8")
    text = realtime_instructions(
        instructions=None,
        consult_policy="substantive",
        agent_context_enabled=True,
        agent_name="Ada",
        workspace_dir=tmp_path,
        files=["SOUL.md", "USER.md"],
        greeting="Hello there",
    )
    assert text == "\n\n".join(
        [
            SPEC_DEFAULT,
            SPEC_SUBSTANTIVE,
            "Agent: Ada\n\nSOUL.md:\nKind.",
            spec_greeting("Hello there"),
        ]
    )


def test_realtime_instructions_context_disabled_reads_nothing(tmp_path: Path) -> None:
    (tmp_path / "SOUL.md").write_text("Kind.", encoding="utf-8")
    text = realtime_instructions(
        instructions="Custom.",
        consult_policy="auto",
        agent_context_enabled=False,
        agent_name="Ada",
        workspace_dir=tmp_path,
        files=["SOUL.md"],
    )
    assert text == "Custom."


def test_realtime_instructions_capsule_cut_to_max_chars(tmp_path: Path) -> None:
    (tmp_path / "SOUL.md").write_text("y" * 10_000, encoding="utf-8")
    text = realtime_instructions(
        instructions="I.",
        consult_policy="auto",
        agent_context_enabled=True,
        agent_name="Ada",
        workspace_dir=tmp_path,
        files=["SOUL.md"],
        max_chars=100,
    )
    head, capsule = text.split("\n\n", 1)
    assert head == "I."
    assert len(capsule) == 100 and capsule.endswith("…")
