"""The call runtime: the asyncio pump that runs the sans-IO call manager."""

from voicecall.runtime.runtime import CallRuntime

__all__ = ["CallRuntime"]
