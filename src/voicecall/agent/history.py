"""Session memory for the builtin runner: one JSONL file of chat turns per session key."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

from voicecall.errors import StoreError

__all__ = ["SessionHistory", "session_file_name"]

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_MAX_NAME_CHARS = 200


def session_file_name(session_key: str) -> str:
    """The file name for a session key: lower-cased, unsafe runs replaced by ``_``."""
    name = _UNSAFE.sub("_", session_key.lower()).lstrip(".")[:_MAX_NAME_CHARS]
    return f"{name or 'session'}.jsonl"


class SessionHistory:
    """Reads the last turns of a session and appends new ones under ``<store>/sessions``."""

    def __init__(self, store_dir: Path) -> None:
        self.sessions_dir = Path(store_dir) / "sessions"
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, session_key: str) -> Path:
        """Where a session's turns live."""
        return self.sessions_dir / session_file_name(session_key)

    def lock_for(self, session_key: str) -> asyncio.Lock:
        """A lock that serializes runs of one session, so turns never interleave."""
        return self._locks.setdefault(session_file_name(session_key), asyncio.Lock())

    async def recent_messages(self, session_key: str, turns: int) -> list[dict[str, str]]:
        """The last ``turns`` user/assistant pairs as chat messages, oldest first."""
        return await asyncio.to_thread(self._read, self.path_for(session_key), turns * 2)

    async def append_turn(self, session_key: str, user_text: str, spoken: str) -> None:
        """Record the caller's message and the spoken reply."""
        now_ms = int(time.time() * 1000)
        rows = [
            {"role": "user", "content": user_text, "timestamp": now_ms},
            {"role": "assistant", "content": spoken, "timestamp": now_ms},
        ]
        await asyncio.to_thread(self._append, self.path_for(session_key), rows)

    @staticmethod
    def _read(path: Path, limit: int) -> list[dict[str, str]]:
        recent: deque[dict[str, str]] = deque(maxlen=max(limit, 0))
        try:
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        row: Any = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a crash; the rest is still good
                    if (
                        isinstance(row, dict)
                        and row.get("role") in ("user", "assistant")
                        and isinstance(row.get("content"), str)
                    ):
                        recent.append({"role": row["role"], "content": row["content"]})
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read session history {path}: {exc}") from exc
        return list(recent)

    @staticmethod
    def _append(path: Path, rows: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(data)
        except OSError as exc:
            raise StoreError(f"cannot write session history {path}: {exc}") from exc
