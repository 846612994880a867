"""The store's readers in one place: records, latency report, status and tail (SPEC §10.3)."""

from voicecall.store.follow import tail
from voicecall.store.latency import format_latency, latency_report
from voicecall.store.records import read_records
from voicecall.store.status import status_from_store

__all__ = ["format_latency", "latency_report", "read_records", "status_from_store", "tail"]
