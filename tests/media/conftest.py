"""Shared media-test fixtures: the audioop oracle and the compiled/pure-Python (c/py) kernels."""

from __future__ import annotations

import warnings
from types import ModuleType, SimpleNamespace

import pytest

import voicecall.media as compiled_media
from voicecall.media.ref import g711 as ref_g711
from voicecall.media.ref import resample as ref_resample


def load_audioop() -> ModuleType:
    """The stdlib ``audioop`` (deprecated on 3.11/3.12) or ``audioop-lts`` (3.13+), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # pragma: no cover - Python >= 3.13 without the dev extra
            pytest.fail("the audioop oracle is missing: pip install audioop-lts (the dev extra)")
    return audioop


@pytest.fixture(scope="session")
def audioop() -> ModuleType:
    """The G.711 oracle: CPython's classic audioop (or audioop-lts on Python >= 3.13)."""
    return load_audioop()


_G711_NAMES = ("ulaw_to_pcm16", "alaw_to_pcm16", "pcm16_to_ulaw", "pcm16_to_alaw")


@pytest.fixture(
    params=[
        SimpleNamespace(**{n: getattr(compiled_media, n) for n in _G711_NAMES}),
        SimpleNamespace(**{n: getattr(ref_g711, n) for n in _G711_NAMES}),
    ],
    ids=["c", "py"],
    scope="session",
)
def g711(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The G.711 codec functions, compiled (c) or pure-Python reference (py)."""
    namespace: SimpleNamespace = request.param
    return namespace


@pytest.fixture(
    params=[compiled_media.Resampler, ref_resample.Resampler], ids=["c", "py"], scope="session"
)
def resampler_cls(request: pytest.FixtureRequest) -> type:
    """The streaming resampler class, compiled (c) or pure-Python reference (py)."""
    cls: type = request.param
    return cls
