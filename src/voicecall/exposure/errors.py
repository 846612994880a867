"""The one error exposure raises: a tunnel or Tailscale route could not be set up."""

from __future__ import annotations

from voicecall.errors import VoicecallError

__all__ = ["ExposureError"]


class ExposureError(VoicecallError):
    """ngrok or Tailscale failed; the message says what to install or fix.

    ``output`` holds what the tool printed (Tailscale's enable instructions, ngrok's error).
    """

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.output = output
