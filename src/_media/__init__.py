"""Compiled media core of voicecall; import it only through :mod:`voicecall.media`."""
