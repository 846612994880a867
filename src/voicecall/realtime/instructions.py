"""The realtime model's instructions (SPEC §7.4, §7.6), composed from exact texts.

Composition, in this order, each part present only when it has text:

1. ``realtime.instructions``, or :data:`DEFAULT_INSTRUCTIONS` when unset or blank;
2. the ``consultPolicy`` guidance (:func:`consult_guidance`: nothing for ``auto``);
3. the agent-context capsule when ``realtime.agentContext.enabled``
   (:func:`agent_context_capsule`);
4. the greeting directive (:func:`greeting_directive`) when the call has a greeting.

Parts are stripped of surrounding whitespace and joined with one blank line (``"\\n\\n"``).

The capsule is its own parts joined the same way: the identity line ``Agent: <agent.name>``
(``includeIdentity``), then each listed workspace file that exists and is not empty
(``includeWorkspaceFiles``) as a header line ``<file name>:`` followed by the file's text. The
whole capsule is at most ``maxChars`` characters: a longer one is cut and ends with ``…``.

Everything here is pure except :func:`read_workspace_files`, the one function that touches the
file system (it reads ``<store>/workspace/<name>``, skipping missing or unreadable files).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALWAYS_CONSULT_GUIDANCE",
    "DEFAULT_INSTRUCTIONS",
    "ELLIPSIS",
    "SUBSTANTIVE_CONSULT_GUIDANCE",
    "WorkspaceFile",
    "agent_context_capsule",
    "compose_instructions",
    "consult_guidance",
    "greeting_directive",
    "read_workspace_files",
    "realtime_instructions",
    "speak_instructions",
    "truncate_text",
]

DEFAULT_INSTRUCTIONS = (
    "You are the live phone voice of the user's assistant. Keep what you say short and natural. "
    "If a request needs deeper reasoning, current information, or tools, call agent_consult "
    "before answering. If the caller wants to hang up, say your goodbye first and then call "
    "end_call; the call ends once your goodbye has played, and nothing you say after calling it "
    "will be heard."
)

SUBSTANTIVE_CONSULT_GUIDANCE = (
    "Answer greetings, thanks, acknowledgements and simple conversational filler yourself. "
    "Before answering anything that needs facts, memory, current information, tools, workspace "
    "state or actions, call agent_consult."
)

ALWAYS_CONSULT_GUIDANCE = (
    "Call agent_consult before every substantive answer and speak its result; only greetings "
    "and brief acknowledgements may be answered directly."
)

_GUIDANCE: dict[str, str | None] = {
    "auto": None,
    "substantive": SUBSTANTIVE_CONSULT_GUIDANCE,
    "always": ALWAYS_CONSULT_GUIDANCE,
}

ELLIPSIS = "…"
_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    """One workspace file as it goes into the capsule."""

    name: str
    text: str


def consult_guidance(policy: str) -> str | None:
    """The sentence appended for ``consultPolicy`` (SPEC §7.6); None for ``auto``."""
    if policy not in _GUIDANCE:
        raise ValueError(f"unknown consultPolicy {policy!r} (known: auto, substantive, always)")
    return _GUIDANCE[policy]


def greeting_directive(greeting: str) -> str:
    """Tells the model to open with ``greeting`` (SPEC §7.4)."""
    return (
        "Open the call by greeting the caller naturally, and include this greeting in your "
        f'first spoken reply: "{greeting}"'
    )


def speak_instructions(message: str) -> str:
    """The response instructions for ``voicecall.speak`` on a realtime call (SPEC §7.4)."""
    return f'Say this to the caller now, naturally: "{message}"'


def truncate_text(text: str, max_chars: int) -> str:
    """``text`` if it fits in ``max_chars``, else cut so that it ends with ``…`` and fits."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    if len(text) <= max_chars:
        return text
    return text[: max_chars - len(ELLIPSIS)].rstrip() + ELLIPSIS


def agent_context_capsule(
    *,
    agent_name: str | None,
    files: Iterable[WorkspaceFile] = (),
    max_chars: int = 6000,
    include_identity: bool = True,
    include_workspace_files: bool = True,
) -> str | None:
    """The agent-context capsule (SPEC §7.4, §1.6 ``agentContext``), or None when empty."""
    parts: list[str] = []
    if include_identity and agent_name and agent_name.strip():
        parts.append(f"Agent: {agent_name.strip()}")
    if include_workspace_files:
        for file in files:
            text = file.text.strip()
            if text:
                parts.append(f"{file.name}:\n{text}")
    if not parts:
        return None
    return truncate_text(_SEPARATOR.join(parts), max_chars)


def _inside(directory: Path, name: str) -> Path | None:
    """``directory/name`` when it stays inside ``directory`` (no ``..`` or absolute escapes)."""
    base = directory.resolve()
    path = (base / name).resolve()
    return path if path.is_relative_to(base) and path != base else None


def read_workspace_files(
    directory: str | Path, names: Sequence[str], *, max_chars: int | None = None
) -> list[WorkspaceFile]:
    """The listed files of ``directory`` (``<store>/workspace``) that exist, in list order.

    Missing, unreadable or non-file entries, and names that would leave ``directory``, are
    skipped. Text is read as UTF-8 (bad bytes replaced); with ``max_chars`` at most that many
    characters of each file are read (the capsule is cut to it anyway).
    """
    out: list[WorkspaceFile] = []
    for name in names:
        path = _inside(Path(directory), name)
        if path is None:
            continue
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                text = handle.read(-1 if max_chars is None else max_chars + 1)
        except OSError:  # missing, a directory, no permission
            continue
        out.append(WorkspaceFile(name=name, text=text))
    return out


def compose_instructions(
    *,
    instructions: str | None = None,
    consult_policy: str = "auto",
    capsule: str | None = None,
    greeting: str | None = None,
) -> str:
    """The session instructions: the parts of the module docstring joined by blank lines."""
    base = instructions.strip() if instructions else ""
    parts = [
        base or DEFAULT_INSTRUCTIONS,
        consult_guidance(consult_policy),
        capsule.strip() if capsule else None,
        greeting_directive(greeting.strip()) if greeting and greeting.strip() else None,
    ]
    return _SEPARATOR.join(part for part in parts if part)


def realtime_instructions(
    *,
    instructions: str | None,
    consult_policy: str,
    agent_context_enabled: bool,
    agent_name: str | None,
    workspace_dir: str | Path | None,
    files: Sequence[str] = (),
    max_chars: int = 6000,
    include_identity: bool = True,
    include_workspace_files: bool = True,
    greeting: str | None = None,
) -> str:
    """Everything of :func:`compose_instructions`, reading the workspace files when needed.

    Takes the ``realtime`` settings as plain values so a per-call agent (number route
    ``agentId``) can pass its own name and workspace. ``workspace_dir`` None skips the files.
    """
    capsule = None
    if agent_context_enabled:
        found: list[WorkspaceFile] = []
        if include_workspace_files and workspace_dir is not None and files:
            found = read_workspace_files(workspace_dir, files, max_chars=max_chars)
        capsule = agent_context_capsule(
            agent_name=agent_name,
            files=found,
            max_chars=max_chars,
            include_identity=include_identity,
            include_workspace_files=include_workspace_files,
        )
    return compose_instructions(
        instructions=instructions,
        consult_policy=consult_policy,
        capsule=capsule,
        greeting=greeting,
    )
