"""A deterministic random Qwen3-TTS 12 Hz model in the official Hugging Face layout.

``make_official_model`` writes a folder laid out like the ``Qwen/Qwen3-TTS-12Hz-*`` repositories
(``config.json`` and ``model.safetensors`` in PyTorch naming and layout, ``speech_tokenizer/`` with
its configs and weights, ``generation_config.json``, a text tokenizer) that loads unchanged both in
the official ``qwen-tts`` package and through mlx-audio's loader. It is the model the conformance
tests compare the two implementations on (``tests/conformance/``).

Only numpy, safetensors and the ``tokenizers`` library are needed, so the official package's own
virtual environment can rebuild the very same files: every weight comes from the seed and its name
alone (numpy's PCG64 stream, uniform values), independent of MLX and PyTorch versions.

The model is small but keeps the real structure: 16 code groups, an mrope talker with a code
predictor, the ECAPA speaker encoder, the codec decoder's sliding-window (72) transformer, ConvNeXt
upsampling and a SnakeBeta decoder block, and the Mimi codec encoder. Widths respect mlx-audio's
conv layout guess (kernel-1 convs need more than 64 inputs, a transposed conv at least as many
outputs as its kernel width). The one departure from the real shapes is the decoder's upsampling:
one SnakeBeta block of rate 4 after the real (2, 2) ConvNeXt stages, 16 samples per frame instead
of 1920. A SnakeBeta block must be more than 64 channels wide to load in mlx-audio, and such a block
took 5-10 s per 160-frame decode on a 2-core CPU already at 120 samples per frame; the frame-level
behaviour under test (the 72-frame attention window, conv state across chunk seams) is the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from mlx_speechd.testing.tokenizer import write_tokenizer

_LOGGER = logging.getLogger(__name__)

SEED = 20261123
"""The seed of the conformance model; the goldens in tests/conformance/ were made from it."""

WEIGHT_FILES = ("model.safetensors", "speech_tokenizer/model.safetensors")

CODEBOOK_SIZE = 256
NUM_CODE_GROUPS = 16
SAMPLE_RATE = 24000
DECODER_WINDOW = 72
_SHIFT = CODEBOOK_SIZE - 2048  # the real special codec ids, moved to the small codebook

TALKER_CONFIG: dict[str, Any] = {
    "vocab_size": CODEBOOK_SIZE + 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": {"interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default"},
    "attention_bias": False,
    "use_sliding_window": False,
    "attention_dropout": 0.0,
    "num_code_groups": NUM_CODE_GROUPS,
    "text_hidden_size": 64,
    "text_vocab_size": 1024,
    "codec_eos_token_id": 2150 + _SHIFT,
    "codec_think_id": 2154 + _SHIFT,
    "codec_nothink_id": 2155 + _SHIFT,
    "codec_think_bos_id": 2156 + _SHIFT,
    "codec_think_eos_id": 2157 + _SHIFT,
    "codec_pad_id": 2148 + _SHIFT,
    "codec_bos_id": 2149 + _SHIFT,
    "codec_language_id": {"chinese": 2055 + _SHIFT, "english": 2050 + _SHIFT, "german": 2053 + _SHIFT},
    "spk_id": {},
    "spk_is_dialect": {},
    "code_predictor_config": {
        "vocab_size": CODEBOOK_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "attention_bias": False,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "num_code_groups": NUM_CODE_GROUPS,
    },
}

SPEAKER_ENCODER_CONFIG: dict[str, Any] = {
    "mel_dim": 128,
    "enc_dim": TALKER_CONFIG["hidden_size"],
    "enc_channels": [128, 128, 128, 128, 384],
    "enc_kernel_sizes": [5, 3, 3, 3, 1],
    "enc_dilations": [1, 2, 3, 4, 1],
    "enc_attention_channels": 128,
    "enc_res2net_scale": 8,
    "enc_se_channels": 128,
    "sample_rate": SAMPLE_RATE,
}

DECODER_CONFIG: dict[str, Any] = {
    "codebook_size": CODEBOOK_SIZE,
    "codebook_dim": 160,
    "latent_dim": 32,
    "hidden_size": 32,
    "intermediate_size": 64,
    "head_dim": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "sliding_window": DECODER_WINDOW,
    "max_position_embeddings": 8000,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "layer_scale_initial_scale": 0.01,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "hidden_act": "silu",
    "num_quantizers": NUM_CODE_GROUPS,
    "num_semantic_quantizers": 1,
    "upsampling_ratios": [2, 2],
    "upsample_rates": [4],
    "decoder_dim": 130,
}
SAMPLES_PER_FRAME = 16  # prod(upsampling_ratios + upsample_rates)

ENCODER_CONFIG: dict[str, Any] = {
    "sampling_rate": SAMPLE_RATE,
    "frame_rate": 12.5,
    "audio_channels": 1,
    "hidden_size": 64,
    "num_filters": 4,
    "num_residual_layers": 1,
    "upsampling_ratios": [8, 6, 5, 4],
    "kernel_size": 7,
    "last_kernel_size": 3,
    "residual_kernel_size": 3,
    "dilation_growth_rate": 2,
    "use_causal_conv": True,
    "pad_mode": "constant",
    "compress": 2,
    "trim_right_ratio": 1.0,
    "codebook_size": CODEBOOK_SIZE,
    "codebook_dim": 32,
    "vector_quantization_hidden_dimension": 32,
    "num_quantizers": NUM_CODE_GROUPS,
    "num_semantic_quantizers": 1,
    "upsample_groups": 64,
    "use_conv_shortcut": False,
    "num_hidden_layers": 1,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 16,
    "hidden_act": "gelu",
    "max_position_embeddings": 8000,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "sliding_window": 250,
    "layer_scale_initial_scale": 0.01,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "use_cache": False,
    "use_streaming": False,
}

SPEECH_TOKENIZER_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen3TTSTokenizerV2Model"],
    "model_type": "qwen3_tts_tokenizer_12hz",
    "encoder_valid_num_quantizers": NUM_CODE_GROUPS,
    "input_sample_rate": SAMPLE_RATE,
    "output_sample_rate": SAMPLE_RATE,
    "decode_upsample_rate": SAMPLES_PER_FRAME,
    "encode_downsample_rate": 1920,
    "decoder_config": DECODER_CONFIG,
    "encoder_config": ENCODER_CONFIG,
}

PREPROCESSOR_CONFIG: dict[str, Any] = {
    "chunk_length_s": None,
    "feature_extractor_type": "EncodecFeatureExtractor",
    "feature_size": 1,
    "overlap": None,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": SAMPLE_RATE,
}

GENERATION_CONFIG: dict[str, Any] = {
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

Shapes = dict[str, tuple[int, ...]]


def make_official_model(out_dir: Path, seed: int = SEED) -> Path:
    """Write the conformance model folder (creating it) and return its path."""
    out_dir = Path(out_dir)
    (out_dir / "speech_tokenizer").mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(out_dir)
    config = {
        "architectures": ["Qwen3TTSForConditionalGeneration"],
        "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz",
        "tts_model_type": "base",
        "tts_model_size": "0b6",
        "im_start_token_id": tokenizer.im_start_id,
        "im_end_token_id": tokenizer.im_end_id,
        "tts_pad_token_id": tokenizer.tts_pad_id,
        "tts_bos_token_id": tokenizer.tts_bos_id,
        "tts_eos_token_id": tokenizer.tts_eos_id,
        "sample_rate": SAMPLE_RATE,
        "talker_config": TALKER_CONFIG,
        "speaker_encoder_config": SPEAKER_ENCODER_CONFIG,
    }
    main = random_weights(main_shapes(), seed, "model")
    # EOS never wins a greedy choice, so every run yields the frames asked for.
    main["talker.codec_head.weight"][TALKER_CONFIG["codec_eos_token_id"]] = 0.0
    _save(out_dir / "model.safetensors", main)
    codec = random_weights(codec_shapes(), seed, "codec")
    # Keep the audio around -20 dBFS: clipping at +-1 would hide differences.
    codec[f"decoder.decoder.{len(DECODER_CONFIG['upsample_rates']) + 2}.conv.weight"] *= 0.1
    _save(out_dir / "speech_tokenizer" / "model.safetensors", codec)
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "generation_config.json", GENERATION_CONFIG)
    _write_json(out_dir / "speech_tokenizer" / "config.json", SPEECH_TOKENIZER_CONFIG)
    _write_json(out_dir / "speech_tokenizer" / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    return out_dir


def weights_digest(folder: Path) -> str:
    """SHA-256 over the weight files: equal digests, equal models."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


# --- parameter names and shapes (PyTorch naming and layout) ------------------------------------


def main_shapes() -> Shapes:
    """Every parameter of the official ``Qwen3TTSForConditionalGeneration`` (a base model)."""
    talker, predictor = TALKER_CONFIG, TALKER_CONFIG["code_predictor_config"]
    hidden = talker["hidden_size"]
    shapes: Shapes = {}
    for i in range(talker["num_hidden_layers"]):
        shapes |= _qwen3_layer(f"talker.model.layers.{i}", talker)
    shapes["talker.model.norm.weight"] = (hidden,)
    shapes["talker.model.codec_embedding.weight"] = (talker["vocab_size"], hidden)
    shapes["talker.model.text_embedding.weight"] = (talker["text_vocab_size"], talker["text_hidden_size"])
    text = talker["text_hidden_size"]
    shapes |= {
        "talker.text_projection.linear_fc1.weight": (text, text),
        "talker.text_projection.linear_fc1.bias": (text,),
        "talker.text_projection.linear_fc2.weight": (hidden, text),
        "talker.text_projection.linear_fc2.bias": (hidden,),
        "talker.codec_head.weight": (talker["vocab_size"], hidden),
    }
    if predictor["hidden_size"] != hidden:
        raise ValueError("the conformance model keeps the code predictor as wide as the talker")
    for i in range(predictor["num_hidden_layers"]):
        shapes |= _qwen3_layer(f"talker.code_predictor.model.layers.{i}", predictor)
    shapes["talker.code_predictor.model.norm.weight"] = (predictor["hidden_size"],)
    for i in range(NUM_CODE_GROUPS - 1):
        shapes[f"talker.code_predictor.model.codec_embedding.{i}.weight"] = (predictor["vocab_size"], hidden)
        shapes[f"talker.code_predictor.lm_head.{i}.weight"] = (predictor["vocab_size"], hidden)
    return shapes | _speaker_encoder_shapes()


def codec_shapes() -> Shapes:
    """Every parameter of the official ``Qwen3TTSTokenizerV2Model`` (codec encoder and decoder)."""
    return _mimi_encoder_shapes() | _codec_decoder_shapes()


def _qwen3_layer(prefix: str, config: dict[str, Any]) -> Shapes:
    hidden, head = config["hidden_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * head, config["num_key_value_heads"] * head
    inter = config["intermediate_size"]
    return {
        f"{prefix}.self_attn.q_proj.weight": (q, hidden),
        f"{prefix}.self_attn.k_proj.weight": (kv, hidden),
        f"{prefix}.self_attn.v_proj.weight": (kv, hidden),
        f"{prefix}.self_attn.o_proj.weight": (hidden, q),
        f"{prefix}.self_attn.q_norm.weight": (head,),
        f"{prefix}.self_attn.k_norm.weight": (head,),
        f"{prefix}.mlp.gate_proj.weight": (inter, hidden),
        f"{prefix}.mlp.up_proj.weight": (inter, hidden),
        f"{prefix}.mlp.down_proj.weight": (hidden, inter),
        f"{prefix}.input_layernorm.weight": (hidden,),
        f"{prefix}.post_attention_layernorm.weight": (hidden,),
    }


def _conv(prefix: str, out_ch: int, in_ch: int, kernel: int, bias: bool = True) -> Shapes:
    shapes: Shapes = {f"{prefix}.weight": (out_ch, in_ch, kernel)}
    if bias:
        shapes[f"{prefix}.bias"] = (out_ch,)
    return shapes


def _speaker_encoder_shapes() -> Shapes:
    """ECAPA-TDNN: a TDNN, SE-Res2Net blocks, feature aggregation, attentive pooling."""
    cfg = SPEAKER_ENCODER_CONFIG
    channels, kernels, scale = cfg["enc_channels"], cfg["enc_kernel_sizes"], cfg["enc_res2net_scale"]
    se, attention = cfg["enc_se_channels"], cfg["enc_attention_channels"]
    p = "speaker_encoder"
    shapes = _conv(f"{p}.blocks.0.conv", channels[0], cfg["mel_dim"], kernels[0])
    for i in range(1, len(channels) - 1):
        block, width = f"{p}.blocks.{i}", channels[i]
        shapes |= _conv(f"{block}.tdnn1.conv", width, channels[i - 1], 1)
        for j in range(scale - 1):
            part = width // scale
            shapes |= _conv(f"{block}.res2net_block.blocks.{j}.conv", part, part, kernels[i])
        shapes |= _conv(f"{block}.tdnn2.conv", width, width, 1)
        shapes |= _conv(f"{block}.se_block.conv1", se, width, 1)
        shapes |= _conv(f"{block}.se_block.conv2", width, se, 1)
    last = channels[-1]
    shapes |= _conv(f"{p}.mfa.conv", last, sum(channels[1:-1]), kernels[-1])
    shapes |= _conv(f"{p}.asp.tdnn.conv", attention, last * 3, 1)
    shapes |= _conv(f"{p}.asp.conv", last, attention, 1)
    return shapes | _conv(f"{p}.fc", cfg["enc_dim"], last * 2, 1)


def _mimi_encoder_shapes() -> Shapes:
    """Hugging Face Mimi's encoder half: SEANet convs, a transformer, split RVQ."""
    cfg = ENCODER_CONFIG
    hidden, filters = cfg["hidden_size"], cfg["num_filters"]
    p = "encoder.encoder.layers"
    shapes = _conv(f"{p}.0.conv", filters, cfg["audio_channels"], cfg["kernel_size"])
    index, width = 1, filters
    for ratio in reversed(cfg["upsampling_ratios"]):
        inner = width // cfg["compress"]
        shapes |= _conv(f"{p}.{index}.block.1.conv", inner, width, cfg["residual_kernel_size"])
        shapes |= _conv(f"{p}.{index}.block.3.conv", width, inner, 1)
        shapes |= _conv(f"{p}.{index + 2}.conv", width * 2, width, ratio * 2)
        index, width = index + 3, width * 2
    shapes |= _conv(f"{p}.{index + 1}.conv", hidden, width, cfg["last_kernel_size"])
    attention, inter = cfg["num_attention_heads"] * cfg["head_dim"], cfg["intermediate_size"]
    for i in range(cfg["num_hidden_layers"]):
        layer = f"encoder.encoder_transformer.layers.{i}"
        shapes |= {
            f"{layer}.self_attn.q_proj.weight": (attention, hidden),
            f"{layer}.self_attn.k_proj.weight": (cfg["num_key_value_heads"] * cfg["head_dim"], hidden),
            f"{layer}.self_attn.v_proj.weight": (cfg["num_key_value_heads"] * cfg["head_dim"], hidden),
            f"{layer}.self_attn.o_proj.weight": (hidden, attention),
            f"{layer}.mlp.fc1.weight": (inter, hidden),
            f"{layer}.mlp.fc2.weight": (hidden, inter),
            f"{layer}.input_layernorm.weight": (hidden,),
            f"{layer}.input_layernorm.bias": (hidden,),
            f"{layer}.post_attention_layernorm.weight": (hidden,),
            f"{layer}.post_attention_layernorm.bias": (hidden,),
            f"{layer}.self_attn_layer_scale.scale": (hidden,),
            f"{layer}.mlp_layer_scale.scale": (hidden,),
        }
    shapes |= _conv("encoder.downsample.conv", hidden, hidden, 2 * cfg["compress"], bias=False)
    vq_dim = cfg["vector_quantization_hidden_dimension"]
    semantic = cfg["num_semantic_quantizers"]
    for name, count in (("semantic", semantic), ("acoustic", cfg["num_quantizers"] - semantic)):
        rvq = f"encoder.quantizer.{name}_residual_vector_quantizer"
        shapes |= _conv(f"{rvq}.input_proj", vq_dim, hidden, 1, bias=False)
        shapes |= _conv(f"{rvq}.output_proj", hidden, vq_dim, 1, bias=False)
        for j in range(count):
            shapes |= {
                f"{rvq}.layers.{j}.codebook.initialized": (1,),
                f"{rvq}.layers.{j}.codebook.cluster_usage": (cfg["codebook_size"],),
                f"{rvq}.layers.{j}.codebook.embed_sum": (cfg["codebook_size"], cfg["codebook_dim"]),
            }
    return shapes


def _codec_decoder_shapes() -> Shapes:
    """Codes to waveform: split RVQ, causal conv, sliding-window transformer, ConvNeXt
    upsampling, SnakeBeta decoder blocks."""
    cfg = DECODER_CONFIG
    latent, hidden = cfg["latent_dim"], cfg["hidden_size"]
    shapes: Shapes = {}
    for i in range(cfg["num_hidden_layers"]):
        layer = dict(_qwen3_layer(f"decoder.pre_transformer.layers.{i}", cfg))
        for name in [n for n in layer if "_norm." in n]:
            del layer[name]
        layer[f"decoder.pre_transformer.layers.{i}.self_attn_layer_scale.scale"] = (hidden,)
        layer[f"decoder.pre_transformer.layers.{i}.mlp_layer_scale.scale"] = (hidden,)
        shapes |= layer
    shapes |= {
        "decoder.pre_transformer.norm.weight": (hidden,),
        "decoder.pre_transformer.input_proj.weight": (hidden, latent),
        "decoder.pre_transformer.input_proj.bias": (hidden,),
        "decoder.pre_transformer.output_proj.weight": (latent, hidden),
        "decoder.pre_transformer.output_proj.bias": (latent,),
    }
    dim = cfg["codebook_dim"]
    semantic = cfg["num_semantic_quantizers"]
    for name, count in (("rvq_first", semantic), ("rvq_rest", cfg["num_quantizers"] - semantic)):
        rvq = f"decoder.quantizer.{name}"
        shapes |= _conv(f"{rvq}.input_proj", dim // 2, dim, 1, bias=False)
        shapes |= _conv(f"{rvq}.output_proj", dim, dim // 2, 1, bias=False)
        for j in range(count):
            shapes[f"{rvq}.vq.layers.{j}._codebook.cluster_usage"] = (cfg["codebook_size"],)
            shapes[f"{rvq}.vq.layers.{j}._codebook.embedding_sum"] = (cfg["codebook_size"], dim // 2)
    shapes |= _conv("decoder.pre_conv.conv", latent, dim, 3)
    for i, factor in enumerate(cfg["upsampling_ratios"]):
        p = f"decoder.upsample.{i}"
        shapes |= {
            f"{p}.0.conv.weight": (latent, latent, factor),  # ConvTranspose1d: (in, out, kernel)
            f"{p}.0.conv.bias": (latent,),
            f"{p}.1.gamma": (latent,),
            f"{p}.1.norm.weight": (latent,),
            f"{p}.1.norm.bias": (latent,),
            f"{p}.1.pwconv1.weight": (4 * latent, latent),
            f"{p}.1.pwconv1.bias": (4 * latent,),
            f"{p}.1.pwconv2.weight": (latent, 4 * latent),
            f"{p}.1.pwconv2.bias": (latent,),
        } | _conv(f"{p}.1.dwconv.conv", latent, 1, 7)
    width = cfg["decoder_dim"]
    shapes |= _conv("decoder.decoder.0.conv", width, latent, 7)
    for i, rate in enumerate(cfg["upsample_rates"]):
        p, out = f"decoder.decoder.{i + 1}.block", width // 2
        shapes |= {f"{p}.0.alpha": (width,), f"{p}.0.beta": (width,)}
        shapes |= {f"{p}.1.conv.weight": (width, out, 2 * rate), f"{p}.1.conv.bias": (out,)}
        for unit in range(2, 5):
            u = f"{p}.{unit}"
            shapes |= {f"{u}.act1.alpha": (out,), f"{u}.act1.beta": (out,)}
            shapes |= {f"{u}.act2.alpha": (out,), f"{u}.act2.beta": (out,)}
            shapes |= _conv(f"{u}.conv1.conv", out, out, 7) | _conv(f"{u}.conv2.conv", out, out, 1)
        width = out
    last = len(cfg["upsample_rates"]) + 1
    shapes |= {f"decoder.decoder.{last}.alpha": (width,), f"decoder.decoder.{last}.beta": (width,)}
    return shapes | _conv(f"decoder.decoder.{last + 1}.conv", 1, width, 7)


# --- values -------------------------------------------------------------------------------------


def random_weights(shapes: Shapes, seed: int, scope: str) -> dict[str, np.ndarray]:
    """float32 values for every parameter, each drawn from the seed and its own name."""
    return {name: _value(name, shape, _rng(seed, f"{scope}:{name}")) for name, shape in shapes.items()}


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    return (low + (high - low) * rng.random(shape, dtype=np.float64)).astype(np.float32)


def _value(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Matrices scaled by fan-in (unit variance out); vectors near their trained ranges."""
    if name.endswith(("embedding_sum", "embed_sum")):
        return _uniform(rng, shape, -1.7, 1.7)
    if name.endswith("cluster_usage"):
        return _uniform(rng, shape, 0.5, 1.5)
    if name.endswith("initialized"):
        return np.ones(shape, np.float32)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        if name.endswith("embedding.weight") or ".codec_embedding." in name:
            fan_in = 1
        limit = float(np.sqrt(3.0 / fan_in))
        return _uniform(rng, shape, -limit, limit)
    if name.endswith((".alpha", ".beta")):  # SnakeBeta, log scale
        return _uniform(rng, shape, -0.3, 0.3)
    if name.endswith(("layer_scale.scale", ".gamma")):
        return _uniform(rng, shape, 0.2, 0.6)
    if name.endswith("bias"):
        return _uniform(rng, shape, -0.1, 0.1)
    return _uniform(rng, shape, 0.8, 1.2)  # norm weights


# --- files --------------------------------------------------------------------------------------


def _save(path: Path, weights: dict[str, np.ndarray]) -> None:
    save_file(weights, str(path), metadata={"format": "pt"})
    _LOGGER.info("Wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
