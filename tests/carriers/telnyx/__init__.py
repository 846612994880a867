"""Tests of the Telnyx carrier."""
