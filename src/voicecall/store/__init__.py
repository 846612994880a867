"""Call records on disk: the crash-safe ``calls.jsonl`` store and its readers (SPEC §10)."""

from voicecall.store.callstore import CallStore

__all__ = ["CallStore"]
