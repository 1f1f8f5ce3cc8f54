"""Test helpers: random-weight Qwen3-TTS model folders (see ``model_factory``)."""
