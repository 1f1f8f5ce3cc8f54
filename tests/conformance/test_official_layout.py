"""The conformance model folder: complete for mlx-audio, and reproducible from its seed."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_audio.tts.models.qwen3_tts.config import Qwen3TTSTokenizerConfig
from mlx_audio.tts.models.qwen3_tts.speech_tokenizer import Qwen3TTSSpeechTokenizer

from mlx_speechd.testing.official_layout import SAMPLES_PER_FRAME


def test_every_codec_weight_mlx_audio_needs_is_in_the_file(official_model_folder: Path) -> None:
    """mlx-audio loads the speech tokenizer with strict=False: a missing weight would stay random."""
    config = json.loads((official_model_folder / "speech_tokenizer" / "config.json").read_text())
    codec = Qwen3TTSTokenizerConfig(
        decoder_config=config["decoder_config"], encoder_config=config["encoder_config"]
    )
    template = Qwen3TTSSpeechTokenizer(codec)
    params: dict[str, mx.array] = {}
    tree_flatten(template.parameters(), destination=params)
    loaded = Qwen3TTSSpeechTokenizer.sanitize(
        mx.load(str(official_model_folder / "speech_tokenizer" / "model.safetensors"))
    )
    # mlx-audio drops the encoder codebooks' unused `initialized` flags.
    expected = {name for name in params if not name.endswith(".codebook.initialized")}
    assert expected == set(loaded)
    assert all(loaded[name].shape == params[name].shape for name in expected)
    assert template.decoder.total_upsample == SAMPLES_PER_FRAME
