"""A logger for websocket clients that never shows a credential (secrets are never logged).

The ``websockets`` library logs every handshake header at DEBUG (``> Authorization: Bearer
…``). Connections that carry a key get :data:`WIRE_LOG` as their ``logger``: its filter replaces
the value of any credential-bearing header with ``***`` before a handler sees the record.
"""

from __future__ import annotations

import logging

__all__ = ["SECRET_HEADERS", "WIRE_LOG", "SecretHeaderFilter"]

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "xi-api-key",
        "x-goog-api-key",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
    }
)


class SecretHeaderFilter(logging.Filter):
    """Masks ``(name, value)`` header records whose name carries a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in SECRET_HEADERS
        ):
            record.args = (args[0], "***")
        return True


WIRE_LOG = logging.getLogger("voicecall.wire")
WIRE_LOG.addFilter(SecretHeaderFilter())
