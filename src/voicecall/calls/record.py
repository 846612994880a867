"""The persisted CallRecord (SPEC §2.1) and the bounded lists it carries (§10.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voicecall.calls.state import CallState, EndReason

__all__ = [
    "MAX_PROCESSED_EVENT_IDS",
    "MAX_TURNS",
    "CallRecord",
    "Direction",
    "Speaker",
    "TranscriptEntry",
    "TurnKind",
]

MAX_PROCESSED_EVENT_IDS = 500
MAX_TURNS = 200

Direction = Literal["outbound", "inbound"]
Speaker = Literal["bot", "user"]
TurnKind = Literal["continue", "auto", "realtime"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class TranscriptEntry(_Model):
    """One spoken line: who said it, when (epoch ms) and whether the STT result was final."""

    timestamp_ms: int = Field(alias="timestamp")
    speaker: Speaker
    text: str
    is_final: bool = Field(default=True, alias="isFinal")


class CallRecord(_Model):
    """Everything voicecall remembers about one call; one snapshot per line in calls.jsonl."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    call_id: str = Field(alias="callId")
    provider_call_id: str | None = Field(default=None, alias="providerCallId")
    provider: str
    direction: Direction
    state: CallState
    from_number: str = Field(alias="from")
    to_number: str = Field(alias="to")
    session_key: str | None = Field(default=None, alias="sessionKey")
    agent_id: str | None = Field(default=None, alias="agentId")
    started_at_ms: int = Field(alias="startedAt")
    answered_at_ms: int | None = Field(default=None, alias="answeredAt")
    ended_at_ms: int | None = Field(default=None, alias="endedAt")
    end_reason: EndReason | None = Field(default=None, alias="endReason")
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    processed_event_ids: list[str] = Field(default_factory=list, alias="processedEventIds")
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The camelCase JSON object persisted to calls.jsonl (absent optionals omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> CallRecord:
        """Parse a persisted snapshot (camelCase names, epoch-ms times)."""
        return cls.model_validate(dict(data))

    def remember_event_id(self, event_id: str) -> None:
        """Record a processed event id, keeping only the newest 500."""
        ids = self.processed_event_ids
        ids.append(event_id)
        if len(ids) > MAX_PROCESSED_EVENT_IDS:
            del ids[: len(ids) - MAX_PROCESSED_EVENT_IDS]

    def add_transcript(
        self, speaker: Speaker, text: str, *, at_ms: int, is_final: bool = True
    ) -> None:
        """Append a line to the transcript."""
        entry = {"timestamp": at_ms, "speaker": speaker, "text": text, "isFinal": is_final}
        self.transcript.append(TranscriptEntry.model_validate(entry))

    def add_turn(
        self,
        kind: TurnKind,
        *,
        started_at_ms: int,
        completed_at_ms: int,
        latency_ms: int | None = None,
        listen_wait_ms: int | None = None,
        response_ms: int | None = None,
    ) -> dict[str, Any]:
        """Append a per-turn metric to ``metadata.turns`` (newest 200, ``n`` 1-based per call)."""
        turns = self.metadata.get("turns")
        if not isinstance(turns, list):
            turns = []
        last_n = turns[-1].get("n") if turns and isinstance(turns[-1], dict) else 0
        turn: dict[str, Any] = {
            "n": (last_n if isinstance(last_n, int) else len(turns)) + 1,
            "kind": kind,
            "startedAt": started_at_ms,
            "completedAt": completed_at_ms,
        }
        if latency_ms is not None:
            turn["latencyMs"] = latency_ms
        if listen_wait_ms is not None:
            turn["listenWaitMs"] = listen_wait_ms
        if response_ms is not None:
            turn["responseMs"] = response_ms
        turns.append(turn)
        self.metadata["turns"] = turns[-MAX_TURNS:]
        return turn

    @property
    def mode(self) -> str | None:
        """The call's ``metadata.mode`` (``notify`` / ``conversation``), if set."""
        value = self.metadata.get("mode")
        return value if isinstance(value, str) else None
