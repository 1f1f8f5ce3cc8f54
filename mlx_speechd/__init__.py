"""mlx-speechd: a local streaming text-to-speech daemon for Qwen3-TTS on MLX."""

__version__ = "0.1.0"
