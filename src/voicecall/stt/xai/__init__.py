"""The xai streaming transcription provider: sans-IO protocol and websocket session."""
