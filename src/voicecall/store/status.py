"""``status`` answered from the store when no gateway is reachable (SPEC §10.3)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voicecall.calls.state import TERMINAL_STATES
from voicecall.calls.status import status_of_json
from voicecall.store.records import latest_snapshots

__all__ = ["TERMINAL_STATES", "call_status", "status_from_store"]


def call_status(record: Mapping[str, Any]) -> dict[str, Any]:
    """The status payload of one call; optional fields appear only when set."""
    return status_of_json(record)


def status_from_store(
    path: Path, call_id: str | None = None, sid: str | None = None
) -> dict[str, Any]:
    """Look a call up in the store: by callId, else by providerCallId; no id lists live calls.

    Returns ``{"found": true, "call": {...}}``, ``{"found": true, "calls": [...]}`` (every
    non-terminal call, oldest write first) or ``{"found": false}``.
    """
    latest = latest_snapshots(path)
    wanted = call_id if call_id is not None else sid
    if wanted is None:
        calls = [call_status(r) for r in latest.values() if r.get("state") not in TERMINAL_STATES]
        return {"found": True, "calls": calls}
    if call_id is not None and call_id in latest:
        return {"found": True, "call": call_status(latest[call_id])}
    # Newest snapshot first: a provider id can be reused by a later call record.
    for record in reversed(latest.values()):
        if record.get("providerCallId") == wanted:
            return {"found": True, "call": call_status(record)}
    return {"found": False}
