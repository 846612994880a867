"""The elevenlabs TTS provider: streaming HTTP (`/v1/text-to-speech/{voiceId}/stream`)."""
