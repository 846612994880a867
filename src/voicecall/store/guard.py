"""The size guard that keeps one call record line under 2 MiB (SPEC §10.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["MAX_RECORD_BYTES", "fit_record"]

MAX_RECORD_BYTES = 2 * 1024 * 1024
KEPT_EVENT_IDS = 500
KEPT_TRANSCRIPT_ENTRIES = 20
# Scalars that survive when metadata is replaced: small, and what restore and reports read.
_KEPT_METADATA_STR_CHARS = 256


def _fits(record: Mapping[str, Any]) -> bool:
    return len(orjson.dumps(record)) <= MAX_RECORD_BYTES


def _small_scalars(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        small_text = isinstance(value, str) and len(value) <= _KEPT_METADATA_STR_CHARS
        if small_text or value is None or isinstance(value, bool | int | float):
            kept[key] = value
    return kept


def fit_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return the record, reduced step by step until its JSON is at most 2 MiB.

    Steps, each only if still too large: keep the newest 500 ``processedEventIds``; keep the last
    20 transcript entries; drop the transcript; replace metadata by its small scalar values. Any
    reduction is recorded in ``metadata.voiceCallPersistence``. The input is never modified.
    """
    fitted = dict(record)
    if _fits(fitted):
        return fitted
    transcript = fitted.get("transcript")
    original_entries = len(transcript) if isinstance(transcript, list) else 0
    persistence: dict[str, Any] = {
        "transcriptTruncated": False,
        "originalTranscriptEntries": original_entries,
    }

    def with_persistence(candidate: dict[str, Any]) -> dict[str, Any]:
        metadata = candidate.get("metadata")
        base = dict(metadata) if isinstance(metadata, Mapping) else {}
        base["voiceCallPersistence"] = dict(persistence)
        return {**candidate, "metadata": base}

    event_ids = fitted.get("processedEventIds")
    if isinstance(event_ids, list) and len(event_ids) > KEPT_EVENT_IDS:
        fitted["processedEventIds"] = event_ids[-KEPT_EVENT_IDS:]
        if _fits(with_persistence(fitted)):
            return with_persistence(fitted)
    if isinstance(transcript, list):
        for kept in (transcript[-KEPT_TRANSCRIPT_ENTRIES:], []):
            if len(kept) == original_entries:
                continue
            fitted["transcript"] = kept
            persistence["transcriptTruncated"] = True
            if _fits(with_persistence(fitted)):
                return with_persistence(fitted)
    persistence["metadataTruncated"] = True
    fitted["metadata"] = _small_scalars(fitted.get("metadata"))
    # Written even if still too large: other fields are not ours to cut, and losing the
    # snapshot entirely would be worse than one long line.
    return with_persistence(fitted)
