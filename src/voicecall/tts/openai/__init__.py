"""The openai TTS provider: the speech API (`POST {baseUrl}/audio/speech`) through the SDK."""
