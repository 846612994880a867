"""The mock carrier's media streams (SPEC §3.6, §5): Twilio Media Streams frames, token in the path.

A mock call's stream speaks exactly Twilio's frames (``connected``, ``start`` naming the call in
``start.callSid`` — the mock's ``providerCallId`` —, ``media``, ``mark``, ``dtmf``, ``stop``;
outbound ``media``/``mark``/``clear`` with the ``streamSid``), so the codec is Twilio's. Only
the token differs: like Telnyx and Plivo it is the last segment of the URL
(``{streamPath}/{token}``, SPEC §5.1), never a ``start`` parameter.

The token is single use: the first socket that presents it consumes it, so the URL reported by
``voicecall.status`` opens exactly one stream and a copy of it opens none.
"""

from __future__ import annotations

from voicecall.carriers.media_stream import StreamTokens
from voicecall.carriers.twilio.stream import TwilioStreamProtocol

__all__ = ["MockStreamProtocol", "SingleUseStreamTokens"]


class MockStreamProtocol(TwilioStreamProtocol):
    """One mock media-stream connection's codec: Twilio frames, token taken from the path."""

    carrier = "mock"
    token_in_path = True

    __slots__ = ()


class SingleUseStreamTokens(StreamTokens):
    """Stream tokens that a successful check consumes (a second socket with it is refused)."""

    def check(self, provider_call_id: str, token: str | None) -> bool:
        """Whether ``token`` is the call's current token; a match uses it up."""
        if not super().check(provider_call_id, token):
            return False
        self.forget(provider_call_id)
        return True
