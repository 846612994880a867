"""A call-store wrapper that feeds each persisted snapshot to the gateway's metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from voicecall.server.metrics import GatewayMetrics

__all__ = ["MeteredStore"]

log = logging.getLogger(__name__)


class MeteredStore:
    """Delegates to the real store; after every successful append, updates the metrics."""

    def __init__(self, store: Any, metrics: GatewayMetrics) -> None:
        self._store = store
        self._metrics = metrics

    @property
    def inner(self) -> Any:
        """The wrapped store."""
        return self._store

    async def append(self, record: Mapping[str, Any]) -> None:
        """Persist ``record``, then count it (metrics never break persistence)."""
        await self._store.append(record)
        try:
            self._metrics.observe_record(record)
        except Exception:
            log.exception("metrics update failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
