"""Local fake servers of the carriers and AI providers (127.0.0.1 only)."""
