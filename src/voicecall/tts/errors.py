"""Why speech synthesis failed: the tree the playback layer and the provider chain catch.

TtsError (VoicecallError)
├── TtsAuthError                 the provider refused the credentials
├── TtsTimeout (TimeoutError)    no audio within `tts.timeoutMs`
├── UnsupportedOutputFormat (ValueError)   audio we cannot turn into telephony µ-law
└── TtsUnavailable               no provider can be used (setup/config); names the fix
"""

from __future__ import annotations

from voicecall.errors import VoicecallError

__all__ = ["TtsAuthError", "TtsError", "TtsTimeout", "TtsUnavailable", "UnsupportedOutputFormat"]


class TtsError(VoicecallError):
    """A synthesis attempt failed."""

    remote = True


class TtsAuthError(TtsError):
    """The provider rejected the API key; retrying cannot help."""


class TtsTimeout(TtsError, TimeoutError):
    """The provider sent no audio within the attempt's time limit."""


class UnsupportedOutputFormat(TtsError, ValueError):
    """The provider returned (or would return) audio we cannot turn into telephony µ-law."""


class TtsUnavailable(TtsError):
    """No provider can synthesize: a missing program, package, key or setting (we must fix it)."""

    remote = False
