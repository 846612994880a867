"""`voicecall doctor [--fix]` (SPEC §1.12): report legacy keys and problems, optionally rewrite."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicecall.config.legacy import LegacyChange, rewrite_legacy, rewrite_tts_legacy
from voicecall.config.loader import build_config, read_document, split_document
from voicecall.config.validate import missing_tts_programs, validate_setup
from voicecall.errors import ConfigError

__all__ = ["DoctorResult", "doctor", "doctor_fix"]


@dataclass(frozen=True)
class DoctorResult:
    """What doctor found: legacy change lines, remaining problems, and what --fix wrote."""

    path: Path
    changes: list[str]
    problems: list[str] = field(default_factory=list)
    fixed: bool = False
    backup_path: Path | None = None

    @property
    def exit_code(self) -> int:
        """1 when anything needs attention (unfixed legacy keys or problems), else 0."""
        return 1 if self.problems or (self.changes and not self.fixed) else 0


def _rewrite(document: Any) -> tuple[Any, list[LegacyChange]]:
    parts = split_document(document)
    if not parts.wrapped:
        return rewrite_legacy(document)
    out = json.loads(json.dumps(document))
    changes: list[LegacyChange] = []
    entry = out["plugins"].get("entries", {}).get("voice-call")
    if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
        entry["config"], changes = rewrite_legacy(entry["config"])
    tts = out.get("messages", {}).get("tts")
    if isinstance(tts, dict):
        rewrite_tts_legacy(tts, "messages.tts", changes)
    return out, changes


def _problems(document: Any, env: Mapping[str, str]) -> list[str]:
    try:
        config, _, _ = build_config(split_document(document), env)
    except ConfigError as exc:
        return str(exc).splitlines()
    if not (split_document(document).entry_enabled and config.enabled):
        return []
    return validate_setup(config) + missing_tts_programs(config, env)


def _examine(path: str | Path, env: Mapping[str, str] | None) -> tuple[Path, Any, Any, list[str]]:
    file = Path(path).expanduser()
    document = read_document(file)
    rewritten, changes = _rewrite(document)
    return file, document, rewritten, [c.line() for c in changes]


def doctor(path: str | Path, *, env: Mapping[str, str] | None = None) -> DoctorResult:
    """Reports legacy keys (one `- <old> -> <new>` line each) and validation problems."""
    environ = dict(os.environ if env is None else env)
    file, _, rewritten, lines = _examine(path, environ)
    return DoctorResult(file, lines, _problems(rewritten, environ))


def doctor_fix(path: str | Path, *, env: Mapping[str, str] | None = None) -> DoctorResult:
    """Backs the file up to `<file>.bak` and rewrites it as 2-space JSON with canonical keys."""
    environ = dict(os.environ if env is None else env)
    file, _, rewritten, lines = _examine(path, environ)
    problems = _problems(rewritten, environ)
    if not lines:
        return DoctorResult(file, lines, problems)
    backup = file.with_name(file.name + ".bak")
    shutil.copy2(file, backup)
    text = json.dumps(rewritten, indent=2, ensure_ascii=False) + "\n"
    temp = file.with_name(file.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, file)
    return DoctorResult(file, lines, problems, fixed=True, backup_path=backup)
