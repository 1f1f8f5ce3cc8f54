"""The random-weight test models load and stream through mlx-audio's normal loader."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_audio.tts.models.qwen3_tts.config import (
    Qwen3TTSTokenizerConfig,
    Qwen3TTSTokenizerDecoderConfig,
    Qwen3TTSTokenizerEncoderConfig,
    filter_dict_for_dataclass,
)
from mlx_audio.tts.models.qwen3_tts.speech_tokenizer import Qwen3TTSSpeechTokenizer
from mlx_audio.tts.utils import load, load_model
from transformers import AutoTokenizer

from mlx_speechd.testing.__main__ import main
from mlx_speechd.testing.model_factory import MARKER_FILE, make_test_model

SAMPLES_PER_FRAME = 1920
ModelFactory = Callable[..., Path]
REAL_SPEAKERS = {
    "vivian",
    "serena",
    "uncle_fu",
    "dylan",
    "eric",
    "ryan",
    "aiden",
    "ono_anna",
    "sohee",
}


def _voice_kwargs(variant: str) -> dict[str, Any]:
    if variant == "custom_voice":
        return {"voice": "ryan"}
    if variant == "voice_design":
        return {"instruct": "A calm voice"}
    noise = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    return {"ref_audio": mx.array(noise), "ref_text": "hello"}


def _stream(model: Any, variant: str, max_tokens: int) -> list[int]:
    results = model.generate(
        text="Hello world.",
        max_tokens=max_tokens,
        stream=True,
        streaming_interval=0.16,
        **_voice_kwargs(variant),
    )
    return [int(result.audio.shape[0]) for result in results]


@pytest.mark.parametrize("variant", ["custom_voice", "voice_design", "base"])
def test_tiny_model_loads_and_streams_exactly_max_tokens(model_factory: ModelFactory, variant: str) -> None:
    folder = model_factory(variant)
    model = load_model(folder)
    assert model.model_type == "qwen3_tts"
    assert model.config.tts_model_type == variant
    assert {"english", "chinese", "german", "japanese"} <= set(model.get_supported_languages())
    if variant == "custom_voice":
        assert set(model.get_supported_speakers()) == REAL_SPEAKERS
        assert model.config.tts_model_size == "1b7"  # keeps `instruct`
    else:
        assert model.get_supported_speakers() == []
    assert (model.speaker_encoder is not None) == (variant == "base")
    assert model.speech_tokenizer.has_encoder

    chunks = _stream(model, variant, max_tokens=6)
    assert chunks == [2 * SAMPLES_PER_FRAME] * 3
    assert sum(chunks) == 6 * SAMPLES_PER_FRAME


def test_random_eos_model_stops_on_frame_boundaries(tiny_custom_voice_eos: Path) -> None:
    model = load_model(tiny_custom_voice_eos)
    total = sum(_stream(model, "custom_voice", max_tokens=6))
    assert total <= 6 * SAMPLES_PER_FRAME
    assert total % SAMPLES_PER_FRAME == 0


def test_streamed_audio_is_finite_and_not_silent(tiny_custom_voice: Path) -> None:
    model = load_model(tiny_custom_voice)
    results = model.generate(text="Hi", voice="vivian", max_tokens=4, stream=True)
    audio = np.concatenate([np.array(result.audio) for result in results])
    assert np.isfinite(audio).all()
    assert 1e-4 < float(np.sqrt(np.mean(audio**2))) < 0.5


def test_compiled_decoder_keeps_streaming_entry_points(tiny_custom_voice: Path) -> None:
    """mlx-audio wraps the decoder in mx.compile: methods stay reachable, submodules via them."""
    decoder = load_model(tiny_custom_voice).speech_tokenizer.decoder
    assert callable(decoder.streaming_step) and callable(decoder.reset_streaming_state)
    with pytest.raises(AttributeError):
        _ = decoder.pre_transformer
    module = decoder.streaming_step.__self__
    for name in ("pre_transformer", "decoder", "upsample", "quantizer", "pre_conv"):
        assert getattr(module, name) is decoder.get(name)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    first = make_test_model(tmp_path / "a", "base", seed=7)
    second = make_test_model(tmp_path / "b", "base", seed=7)
    other = make_test_model(tmp_path / "c", "base", seed=8)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert Path("model.safetensors") in files
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    for weights in ("model.safetensors", "speech_tokenizer/model.safetensors"):
        assert (first / weights).read_bytes() != (other / weights).read_bytes(), weights


def test_every_speech_tokenizer_weight_is_written(tiny_base: Path) -> None:
    config = json.loads((tiny_base / "speech_tokenizer" / "config.json").read_text())
    model = Qwen3TTSSpeechTokenizer(
        Qwen3TTSTokenizerConfig(
            decoder_config=Qwen3TTSTokenizerDecoderConfig(**config["decoder_config"]),
            encoder_config=Qwen3TTSTokenizerEncoderConfig(
                **filter_dict_for_dataclass(Qwen3TTSTokenizerEncoderConfig, config["encoder_config"])
            ),
        )
    )
    params: dict[str, mx.array] = {}
    tree_flatten(model.parameters(), destination=params)
    # mlx-audio drops the unused `initialized` flags of the encoder codebooks on load.
    expected = {name for name in params if not name.endswith(".codebook.initialized")}
    written = Qwen3TTSSpeechTokenizer.sanitize(
        mx.load(str(tiny_base / "speech_tokenizer" / "model.safetensors"))
    )
    assert expected == set(written)


def test_tokenizer_fits_the_prompt_slicing(tiny_custom_voice: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_custom_voice))
    assert len(tokenizer.encode("<|im_start|>assistant\n")) == 3
    assert len(tokenizer.encode("<|im_end|>\n<|im_start|>assistant\n")) == 5
    config = json.loads((tiny_custom_voice / "config.json").read_text())
    assert tokenizer.convert_tokens_to_ids(
        ["<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>"]
    ) == [
        config[key]
        for key in (
            "im_start_token_id",
            "im_end_token_id",
            "tts_pad_token_id",
            "tts_bos_token_id",
            "tts_eos_token_id",
        )
    ]
    text = "Grüße, 你好, こんにちは, 🙂 — ok?"
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_quantized_model_loads_and_streams(tmp_path: Path) -> None:
    folder = make_test_model(tmp_path / "q4", "custom_voice", fixed_length=True, quantize_bits=4)
    model = load(str(folder))
    assert type(model.talker.codec_head).__name__ == "QuantizedLinear"
    assert sum(_stream(model, "custom_voice", max_tokens=2)) == 2 * SAMPLES_PER_FRAME


def test_cli_prints_only_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main([str(out), "--variant", "voice_design", "--fixed-length", "--seed", "3"]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    marker = json.loads((out / MARKER_FILE).read_text())
    expected = {"random_weights": True, "variant": "voice_design", "size": "tiny", "seed": 3}
    assert {key: marker[key] for key in expected} == expected
    assert marker["fixed_length"] is True


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="variant"):
        make_test_model(tmp_path, "nope")
    with pytest.raises(ValueError, match="size"):
        make_test_model(tmp_path, size="7b")
    with pytest.raises(ValueError, match="quantize_bits"):
        make_test_model(tmp_path, quantize_bits=3)
