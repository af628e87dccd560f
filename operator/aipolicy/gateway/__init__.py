"""``aipolicy gateway``: the OpenAI-compatible L7 front door that enforces modes on requests."""
