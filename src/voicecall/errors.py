"""The voicecall exception tree.

    VoicecallError
    ├── ConfigError (ValueError)          a config value is wrong; the message names the key path
    ├── MediaError (ValueError)           audio input the media core cannot take
    ├── MediaCoreUnavailable (ImportError) the compiled media core is not installed
    ├── CallError                         a call operation failed (JSON-RPC -32000 UNAVAILABLE)
    │   ├── InvalidParamsError (ValueError) a request's parameters are wrong (JSON-RPC -32602)
    │   ├── UnknownCallError (LookupError)
    │   └── CallEndedError
    ├── StoreError (OSError)              the call store cannot be written or read
    └── RpcError                          a JSON-RPC call failed (client side)

Errors that a peer caused carry ``remote = True``; errors we caused carry ``remote = False``.
"""

from __future__ import annotations

__all__ = [
    "CallEndedError",
    "CallError",
    "ConfigError",
    "InvalidParamsError",
    "MediaCoreUnavailable",
    "MediaError",
    "RpcError",
    "StoreError",
    "UnknownCallError",
    "VoicecallError",
]


class VoicecallError(Exception):
    """Root of every error voicecall raises on purpose."""

    remote: bool = False


class ConfigError(VoicecallError, ValueError):
    """A configuration problem; the message names the key path."""


class MediaError(VoicecallError, ValueError):
    """Audio input the media core cannot process."""


class MediaCoreUnavailable(VoicecallError, ImportError):
    """The compiled media core is missing (the package was not built)."""


class CallError(VoicecallError):
    """A call operation failed."""


class InvalidParamsError(CallError, ValueError):
    """A request parameter is missing or malformed; the message names it."""


class UnknownCallError(CallError, LookupError):
    """No call with that id."""


class CallEndedError(CallError):
    """The call has already ended."""


class StoreError(VoicecallError, OSError):
    """The call store could not be written or read."""


class RpcError(VoicecallError):
    """A JSON-RPC request failed; ``code`` is the JSON-RPC error code."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
