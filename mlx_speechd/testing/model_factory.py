"""Random-weight Qwen3-TTS 12 Hz model folders for tests and benchmarks.

``make_test_model`` writes a folder laid out like the mlx-community Qwen3-TTS repos (config, MLX
weights, text tokenizer, and the speech tokenizer in its upstream PyTorch naming) that loads,
unchanged, through ``mlx_audio.tts.utils.load_model`` and streams audio. Conv weights are stored
in the PyTorch layout and the configs are ones the official ``qwen-tts`` classes accept too, so an
unquantized folder also loads there (tests/conformance/test_live_official.py checks it). The
weights are random, so the audio is noise. Every weight is generated from the seed and its name
alone, so the same seed gives byte-identical files, and each file is checked by running mlx-audio's
own ``sanitize`` on it before it is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten
from mlx_audio.tts.models.qwen3_tts.config import (
    ModelConfig,
    Qwen3TTSSpeakerEncoderConfig,
    Qwen3TTSTalkerCodePredictorConfig,
    Qwen3TTSTalkerConfig,
    Qwen3TTSTokenizerConfig,
    Qwen3TTSTokenizerDecoderConfig,
    Qwen3TTSTokenizerEncoderConfig,
    filter_dict_for_dataclass,
)
from mlx_audio.tts.models.qwen3_tts.qwen3_tts import Model, check_array_shape_qwen3
from mlx_audio.tts.models.qwen3_tts.speech_tokenizer import Qwen3TTSSpeechTokenizer

from mlx_speechd.testing.eos import end_sentences_by_eos
from mlx_speechd.testing.official_layout import PREPROCESSOR_CONFIG
from mlx_speechd.testing.tokenizer import TokenizerInfo, write_tokenizer

_LOGGER = logging.getLogger(__name__)

VARIANTS = ("custom_voice", "voice_design", "base")
SIZES = ("tiny", "0.6b", "1.7b")
MARKER_FILE = "mlx_speechd_test_model.json"
QUANTIZATION_GROUP_SIZE = 64

Params = dict[str, mx.array]

# Codec-side ids of the real models, all in the talker's special range [2048, 3072). A smaller
# codebook shifts them by (codebook_size - 2048) so that layout holds.
_REAL_CODEBOOK_SIZE = 2048
_CODEC_SPECIAL_IDS = {
    "codec_pad_id": 2148,
    "codec_bos_id": 2149,
    "codec_eos_token_id": 2150,
    "codec_think_id": 2154,
    "codec_nothink_id": 2155,
    "codec_think_bos_id": 2156,
    "codec_think_eos_id": 2157,
}
_LANGUAGE_IDS = {
    "chinese": 2055, "english": 2050, "german": 2053, "italian": 2070, "portuguese": 2071,
    "spanish": 2054, "japanese": 2058, "korean": 2064, "french": 2061, "russian": 2069,
}  # fmt: skip
_DIALECT_IDS = {"beijing_dialect": 2074, "sichuan_dialect": 2062}
_SPEAKER_IDS = {
    "serena": 3066, "vivian": 3065, "uncle_fu": 3010, "ryan": 3061, "aiden": 2861,
    "ono_anna": 2873, "sohee": 2864, "eric": 2875, "dylan": 2878,
}  # fmt: skip
_SPEAKER_DIALECTS = {"eric": "sichuan_dialect", "dylan": "beijing_dialect"}

_GENERATION_CONFIG = {
    "do_sample": True,
    "max_new_tokens": 8192,
    "repetition_penalty": 1.05,
    "temperature": 0.9,
    "top_k": 50,
    "top_p": 1.0,
    "subtalker_dosample": True,
    "subtalker_temperature": 0.9,
    "subtalker_top_k": 50,
    "subtalker_top_p": 1.0,
}

_FIXED_LENGTH_LOGIT_SCALE = 8.0
"""With ``fixed_length`` the code logits get this standard deviation and EOS a logit of 0, so EOS
is never among the top-k and, even without top-k, has a vanishing probability."""


@dataclass(frozen=True)
class _SizeSpec:
    """Shapes of one model size; empty overrides keep mlx-audio's (the real models') defaults."""

    tts_model_size: str
    codebook_size: int
    dtype: mx.Dtype
    talker: dict[str, Any] = field(default_factory=dict)
    code_predictor: dict[str, Any] = field(default_factory=dict)
    speaker_encoder: dict[str, Any] = field(default_factory=dict)
    decoder: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)


_TINY_HEADS = {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
_SIZE_SPECS: dict[str, _SizeSpec] = {
    "tiny": _SizeSpec(
        tts_model_size="1b7",  # "0b6" would make custom_voice drop `instruct`
        codebook_size=256,
        dtype=mx.float32,
        talker={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            **_TINY_HEADS,
            "text_hidden_size": 64,
            "text_vocab_size": 1024,
            "rope_scaling": {
                "interleaved": True,
                "mrope_section": [4, 2, 2],
                "rope_type": "default",
            },
        },
        code_predictor={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            **_TINY_HEADS,
        },
        speaker_encoder={
            "enc_channels": [128, 128, 128, 128, 384],
            "enc_attention_channels": 128,
            "enc_se_channels": 128,
        },
        # mlx-audio guesses each conv's layout from its shape and cannot tell for kernel-1 convs
        # with <= 64 inputs, which the decoder blocks have; no blocks (`upsample_rates` empty)
        # and the 1920x upsampling in the narrow transposed-conv stages keep it cheap, too.
        decoder={
            "latent_dim": 8,
            "codebook_dim": 160,
            "decoder_dim": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "head_dim": 8,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "num_hidden_layers": 1,
            "upsample_rates": [],
            "upsampling_ratios": [8, 8, 5, 6],
        },
        encoder={
            "codebook_dim": 32,
            "vector_quantization_hidden_dimension": 32,  # Hugging Face Mimi: equal to codebook_dim
            "hidden_size": 64,
            "head_dim": 16,  # hidden_size / num_attention_heads, as mlx-audio assumes
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "num_filters": 4,
            "num_hidden_layers": 1,
            "num_quantizers": 16,
        },
    ),
    "0.6b": _SizeSpec(tts_model_size="0b6", codebook_size=2048, dtype=mx.bfloat16),
    "1.7b": _SizeSpec(
        tts_model_size="1b7",
        codebook_size=2048,
        dtype=mx.bfloat16,
        talker={"hidden_size": 2048, "intermediate_size": 6144},
    ),
}


def make_test_model(
    out_dir: Path,
    variant: str = "custom_voice",
    size: str = "tiny",
    *,
    fixed_length: bool = False,
    seed: int = 0,
    quantize_bits: int | None = None,
    ends_by_eos: bool = False,
) -> Path:
    """Write the model folder (creating it) and return its path.

    ``fixed_length``: EOS never wins, so generation runs to ``max_tokens`` frames.
    ``ends_by_eos``: sentences end by EOS after tens of frames, reproducibly per sampling seed
    (see `mlx_speechd.testing.eos`).
    """
    if ends_by_eos and (fixed_length or quantize_bits is not None):
        raise ValueError("ends_by_eos goes with neither fixed_length nor quantize_bits")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}, expected one of {VARIANTS}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}, expected one of {SIZES}")
    if quantize_bits not in (None, 4, 8):
        raise ValueError(f"quantize_bits must be None, 4 or 8, not {quantize_bits!r}")
    spec = _SIZE_SPECS[size]
    out_dir = Path(out_dir)
    (out_dir / "speech_tokenizer").mkdir(parents=True, exist_ok=True)
    _LOGGER.info("Writing a random %s %s Qwen3-TTS model to %s", size, variant, out_dir)

    tokenizer = write_tokenizer(out_dir)
    config = _model_config(variant, spec, tokenizer, quantize_bits)
    _write_main_weights(out_dir, config, spec, seed, fixed_length, quantize_bits)
    codec_config = _speech_tokenizer_config(spec)
    _write_speech_tokenizer_weights(out_dir, codec_config, seed)

    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "generation_config.json", _GENERATION_CONFIG)
    _write_json(out_dir / "speech_tokenizer" / "config.json", codec_config)
    _write_json(out_dir / "speech_tokenizer" / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    _write_json(
        out_dir / MARKER_FILE,
        {
            "generator": __name__,
            "random_weights": True,
            "variant": variant,
            "size": size,
            "seed": seed,
            "fixed_length": fixed_length,
            "quantize_bits": quantize_bits,
            "ends_by_eos": ends_by_eos,
            "note": "Random weights: the real Qwen3-TTS architecture, but it speaks noise.",
        },
    )
    if ends_by_eos:
        end_sentences_by_eos(out_dir)
    return out_dir


# --- configs ----------------------------------------------------------------------------------


def _model_config(
    variant: str, spec: _SizeSpec, tokenizer: TokenizerInfo, quantize_bits: int | None
) -> dict[str, Any]:
    """The top-level config.json, shaped like the real one."""
    talker = dataclasses.asdict(
        Qwen3TTSTalkerConfig(
            code_predictor_config=Qwen3TTSTalkerCodePredictorConfig(
                vocab_size=spec.codebook_size, **spec.code_predictor
            ),
            **_talker_ids(variant, spec.codebook_size),
            **spec.talker,
        )
    )
    if tokenizer.vocab_size > talker["text_vocab_size"]:
        raise RuntimeError("the text tokenizer is larger than the text embedding")
    config: dict[str, Any] = {
        "architectures": ["Qwen3TTSForConditionalGeneration"],
        "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz",
        "tts_model_type": variant,
        "tts_model_size": spec.tts_model_size,
        "im_start_token_id": tokenizer.im_start_id,
        "im_end_token_id": tokenizer.im_end_id,
        "tts_pad_token_id": tokenizer.tts_pad_id,
        "tts_bos_token_id": tokenizer.tts_bos_id,
        "tts_eos_token_id": tokenizer.tts_eos_id,
        "sample_rate": 24000,
        "talker_config": talker,
    }
    if variant == "base":
        config["speaker_encoder_config"] = dataclasses.asdict(
            Qwen3TTSSpeakerEncoderConfig(enc_dim=talker["hidden_size"], **spec.speaker_encoder)
        )
    if quantize_bits is not None:
        quantization = {"group_size": QUANTIZATION_GROUP_SIZE, "bits": quantize_bits}
        config["quantization"] = quantization
        config["quantization_config"] = quantization
    return config


def _talker_ids(variant: str, codebook_size: int) -> dict[str, Any]:
    """Codec special, language and speaker ids, shifted to the codebook size."""
    shift = codebook_size - _REAL_CODEBOOK_SIZE
    languages = dict(_LANGUAGE_IDS)
    speakers: dict[str, list[int]] = {}
    dialects: dict[str, str | bool] = {}
    if variant == "custom_voice":
        languages.update(_DIALECT_IDS)
        speakers = {name: [token + shift] for name, token in _SPEAKER_IDS.items()}
        dialects = {name: _SPEAKER_DIALECTS.get(name, False) for name in _SPEAKER_IDS}
    return {
        "vocab_size": codebook_size + 1024,
        **{name: token + shift for name, token in _CODEC_SPECIAL_IDS.items()},
        "codec_language_id": {name: token + shift for name, token in languages.items()},
        "spk_id": speakers,
        "spk_is_dialect": dialects,
    }


def _speech_tokenizer_config(spec: _SizeSpec) -> dict[str, Any]:
    """speech_tokenizer/config.json in the upstream layout."""
    bins = {"codebook_size": spec.codebook_size}
    return {
        "architectures": ["Qwen3TTSTokenizerV2Model"],
        "model_type": "qwen3_tts_tokenizer_12hz",
        "encoder_valid_num_quantizers": 16,
        "input_sample_rate": 24000,
        "output_sample_rate": 24000,
        "decode_upsample_rate": 1920,
        "encode_downsample_rate": 1920,
        "decoder_config": dataclasses.asdict(Qwen3TTSTokenizerDecoderConfig(**bins, **spec.decoder)),
        "encoder_config": _encoder_config(spec, bins),
    }


def _encoder_config(spec: _SizeSpec, bins: dict[str, int]) -> dict[str, Any]:
    """The codec encoder's config; also read by Hugging Face's MimiConfig in the official package,
    whose decoder-side `upsample_groups` (never used by the encoder) must divide the width."""
    config = dataclasses.asdict(Qwen3TTSTokenizerEncoderConfig(**bins, **spec.encoder))
    return config | {"upsample_groups": config["hidden_size"]}


# --- random weights -----------------------------------------------------------------------------


def _random_params(template: nn.Module, seed: int, scope: str, dtype: mx.Dtype) -> Params:
    """Random values for every parameter of ``template``, each from the seed and its name."""
    return {
        name: _random_param(f"{scope}.{name}", value, seed, dtype)
        for name, value in _flat_params(template).items()
    }


def _flat_params(module: nn.Module) -> Params:
    """A module's parameters by dotted name."""
    flat: Params = {}
    tree_flatten(module.parameters(), destination=flat)
    return flat


def _random_param(name: str, template: mx.array, seed: int, dtype: mx.Dtype) -> mx.array:
    """Scaled normal weights; zero biases; other vectors keep mlx-audio's initial values."""
    if template.ndim >= 2:
        fan_in = math.prod(template.shape[1:])
        key = mx.random.key(_name_seed(seed, name))
        return mx.random.normal(template.shape, dtype=dtype, key=key) * (fan_in**-0.5)
    if name.endswith(("cluster_usage", "initialized")):
        return mx.ones(template.shape, dtype=dtype)  # codebook usage counts: embedding = sum
    if name.endswith("bias"):
        return mx.zeros(template.shape, dtype=dtype)
    return template.astype(dtype)  # norms, layer scales, snake parameters


def _name_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


# --- main model ---------------------------------------------------------------------------------


def _write_main_weights(
    out_dir: Path,
    config: dict[str, Any],
    spec: _SizeSpec,
    seed: int,
    fixed_length: bool,
    quantize_bits: int | None,
) -> None:
    """Generate, check and write model.safetensors (MLX names and layout)."""
    model = Model(ModelConfig.from_dict(config))
    params = _random_params(model, seed, "model", spec.dtype)
    _shape_codec_head(params, config["talker_config"], fixed_length)
    if quantize_bits is not None:
        params = _quantize(model, params, quantize_bits)
    written = {name: _main_file_layout(name, value) for name, value in params.items()}
    _check_roundtrip(params, Model.sanitize(dict(written)), "model.safetensors")
    _save(out_dir / "model.safetensors", written)


def _shape_codec_head(params: Params, talker: Mapping[str, Any], fixed_length: bool) -> None:
    """With ``fixed_length``, make EOS lose against every code so generation never stops."""
    if not fixed_length:
        return
    head = params["talker.codec_head.weight"]
    rows = mx.arange(head.shape[0])[:, None]
    codes = rows < talker["code_predictor_config"]["vocab_size"]
    scaled = mx.where(codes, head * _FIXED_LENGTH_LOGIT_SCALE, head)
    eos = rows == talker["codec_eos_token_id"]
    params["talker.codec_head.weight"] = mx.where(eos, mx.zeros_like(head), scaled)


def _quantize(model: Model, params: Params, bits: int) -> Params:
    """Quantize like mlx-audio's loader expects (same layers, group size 64)."""
    model.update(tree_unflatten(list(params.items())))

    def predicate(path: str, module: nn.Module) -> bool:
        weight = getattr(module, "weight", None)
        return (
            hasattr(module, "to_quantized")
            and weight is not None
            and weight.shape[-1] % QUANTIZATION_GROUP_SIZE == 0
            and model.model_quant_predicate(path, module)
        )

    nn.quantize(model, group_size=QUANTIZATION_GROUP_SIZE, bits=bits, class_predicate=predicate)
    return _flat_params(model)


def _main_file_layout(name: str, value: mx.array) -> mx.array:
    """The layout of a main-model weight that ``Model.sanitize`` turns back into ``value``."""
    if value.ndim == 3 and ("conv" in name or "speaker_encoder.fc" in name):
        return _conv_file_layout(name, value, torch_axes=(0, 2, 1))
    return value


def _conv_file_layout(name: str, weight: mx.array, torch_axes: tuple[int, int, int]) -> mx.array:
    """The PyTorch layout (the official package reads only that) if mlx-audio's shape heuristic
    transposes it back, else the MLX layout if the heuristic keeps that."""
    torch_layout = weight.transpose(torch_axes)
    if not check_array_shape_qwen3(torch_layout):
        return torch_layout
    if check_array_shape_qwen3(weight):
        return weight
    raise ValueError(f"{name}: no layout of shape {weight.shape} survives mlx-audio's sanitize")


# --- speech tokenizer ---------------------------------------------------------------------------


def _write_speech_tokenizer_weights(out_dir: Path, codec_config: dict[str, Any], seed: int) -> None:
    """Generate, check and write speech_tokenizer/model.safetensors (upstream names and layout)."""
    template = Qwen3TTSSpeechTokenizer(
        Qwen3TTSTokenizerConfig(
            decoder_config=Qwen3TTSTokenizerDecoderConfig(**codec_config["decoder_config"]),
            encoder_config=Qwen3TTSTokenizerEncoderConfig(
                **filter_dict_for_dataclass(Qwen3TTSTokenizerEncoderConfig, codec_config["encoder_config"])
            ),
        )
    )
    params = _random_params(template, seed, "speech_tokenizer", mx.float32)
    written: Params = {}
    for name, value in params.items():
        written.update(_codec_upstream(name, value))
    # mlx-audio drops the codebooks' `initialized` flags (unused) on load.
    unloadable = {name for name in params if name.endswith(".codebook.initialized")}
    _check_roundtrip(
        params,
        Qwen3TTSSpeechTokenizer.sanitize(dict(written)),
        "speech_tokenizer/model.safetensors",
        unloadable=unloadable,
    )
    _save(out_dir / "speech_tokenizer" / "model.safetensors", written)


def _codec_upstream(name: str, value: mx.array) -> Params:
    """Upstream name(s) and layout of one speech tokenizer parameter."""
    if name.startswith("encoder_model."):
        return _encoder_upstream(name, value)
    if name.endswith(".codebook.embed.weight"):
        base = name.removesuffix(".codebook.embed.weight")
        return {
            f"{base}._codebook.embedding_sum": value,
            f"{base}._codebook.cluster_usage": mx.ones(value.shape[:1], dtype=value.dtype),
        }
    if value.ndim == 3:
        # Mirrors Qwen3TTSSpeechTokenizer.sanitize: PyTorch ConvTranspose1d is (in, out, kernel).
        transposed = ("upsample" in name and ".0.conv.weight" in name) or (
            "decoder.decoder" in name and "block.1.conv.weight" in name
        )
        axes = (2, 0, 1) if transposed else (0, 2, 1)
        return {name: _conv_file_layout(name, value, torch_axes=axes)}
    return {name: value}


_SEANET_EDGE_CONVS = {"init_conv1d": 0, "final_conv1d": 14}
_ENCODER_TRANSFORMER_NAMES = {
    "self_attn.out_proj": "self_attn.o_proj",
    "gating.linear1": "mlp.fc1",
    "gating.linear2": "mlp.fc2",
    "norm1": "input_layernorm",
    "norm2": "post_attention_layernorm",
    "layer_scale_1": "self_attn_layer_scale",
    "layer_scale_2": "mlp_layer_scale",
}
_RVQ_NAMES = {"rvq_first": "semantic", "rvq_rest": "acoustic"}
_CODEBOOK_NAMES = {"embedding_sum": "embed_sum"}
_ENCODER_IN_PROJ = re.compile(
    r"encoder_model\.encoder_transformer\.transformer\.layers\.(\d+)\.self_attn\.in_proj\.weight"
)


def _seanet_name(match: re.Match[str]) -> str:
    """Upstream SeanetEncoder convs are one flat list: a residual block and a downsampling conv
    per stage, between the first and the last conv."""
    stage, residual_conv, edge_conv, rest = match.groups()
    if edge_conv is not None:
        return f"encoder.encoder.layers.{_SEANET_EDGE_CONVS[edge_conv]}.{rest}"
    if residual_conv is not None:
        block = f"{1 + 3 * int(stage)}.block.{1 + 2 * int(residual_conv)}"
        return f"encoder.encoder.layers.{block}.{rest}"
    return f"encoder.encoder.layers.{3 + 3 * int(stage)}.{rest}"


_ENCODER_RENAMES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(
            r"encoder_model\.encoder\.(?:layers\.(\d+)\.(?:residuals\.0\.block\.(\d+)|downsample)"
            r"|(init_conv1d|final_conv1d))\.conv\.(conv\.\w+)"
        ),
        _seanet_name,
    ),
    (
        re.compile(r"encoder_model\.encoder_transformer\.transformer\.layers\.(\d+)\.(.+)\.(\w+)"),
        lambda m: f"encoder.encoder_transformer.layers.{m[1]}.{_ENCODER_TRANSFORMER_NAMES[m[2]]}.{m[3]}",
    ),
    (
        re.compile(r"encoder_model\.downsample\.conv\.conv\.(conv\.\w+)"),
        lambda m: f"encoder.downsample.{m[1]}",
    ),
    (
        re.compile(r"encoder_model\.quantizer\.(rvq_\w+)\.(\w+_proj\.weight)"),
        lambda m: f"encoder.quantizer.{_RVQ_NAMES[m[1]]}_residual_vector_quantizer.{m[2]}",
    ),
    (
        re.compile(r"encoder_model\.quantizer\.(rvq_\w+)\.vq\.layers\.(\d+)\.codebook\.(\w+)"),
        lambda m: (
            f"encoder.quantizer.{_RVQ_NAMES[m[1]]}_residual_vector_quantizer.layers.{m[2]}"
            f".codebook.{_CODEBOOK_NAMES.get(m[3], m[3])}"
        ),
    ),
)


def _encoder_upstream(name: str, value: mx.array) -> Params:
    """Upstream (HF Mimi) name(s) and layout of one codec encoder parameter."""
    match = _ENCODER_IN_PROJ.fullmatch(name)
    if match:  # upstream keeps q, k and v apart; mlx-audio concatenates them
        base = f"encoder.encoder_transformer.layers.{match[1]}.self_attn"
        return dict(zip((f"{base}.{p}_proj.weight" for p in "qkv"), mx.split(value, 3), strict=True))
    for pattern, rename in _ENCODER_RENAMES:
        match = pattern.fullmatch(name)
        if match:
            # The encoder's convs are always swapped on load: write PyTorch (out, in, kernel).
            return {rename(match): value.swapaxes(-1, -2) if value.ndim == 3 else value}
    raise ValueError(f"no upstream name known for codec encoder parameter {name}")


# --- checks and files ---------------------------------------------------------------------------


def _check_roundtrip(
    expected: Params, loaded: Params, what: str, unloadable: frozenset[str] | set[str] = frozenset()
) -> None:
    """Raise unless mlx-audio's sanitize of the written file gives back exactly ``expected``."""
    missing = sorted(expected.keys() - loaded.keys() - unloadable)
    extra = sorted(loaded.keys() - expected.keys())
    if missing or extra:
        raise RuntimeError(f"{what}: missing {missing[:5]}, unexpected {extra[:5]}")
    for name in loaded:
        if loaded[name].shape != expected[name].shape:
            raise RuntimeError(
                f"{what}: {name} loads as {loaded[name].shape}, expected {expected[name].shape}"
            )
        if not mx.array_equal(loaded[name], expected[name]).item():
            raise RuntimeError(f"{what}: {name} does not load back unchanged")


def _save(path: Path, weights: Params) -> None:
    mx.save_safetensors(str(path), weights, metadata={"format": "mlx"})
    _LOGGER.info("Wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
