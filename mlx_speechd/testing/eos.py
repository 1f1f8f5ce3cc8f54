"""Make a random test model end its sentences by EOS after tens of frames.

A random talker's hidden states vary little from frame to frame, so a random or scaled EOS row
of the codec head either (almost) always or never wins. Instead the talker is probed: a few
prompts are generated with EOS masked out, recording the hidden state behind every frame's
logits. Over a sentence those states drift from their early mean towards a later one, so the
EOS row is set along the part of the late mean that is orthogonal to the early mean: EOS has
no chance in the first frames and a growing one after. Its scale is chosen so that, for the
probed sentences, the expected length (temperature and top-k as in generation, the special
ids suppressed) averages ``target_frames``. Sentences then end by EOS after a number of frames
that depends on the text and the sampling seed and is the same for the same seed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_audio.tts.utils import load_model

_LOGGER = logging.getLogger(__name__)

DEFAULT_TARGET_FRAMES = 16
"""Mean sentence length aimed at, in frames (1.3 s); single sentences range over ~5-50."""
_CODEC_HEAD = "talker.codec_head.weight"
_SPECIAL_CODES = 1024
"""The talker vocabulary's top 1024 ids are special (EOS among them); the rest are codes."""
_PROBE_PROMPTS = (
    "Hello there, how are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "Numbers: one, two, three, four, five.",
)
_PROBE_FRAMES = 48
_EARLY = slice(1, 12)
_LATE = slice(24, None)
_MAX_SCALE = 1024.0


class _HiddenRecorder(nn.Module):
    """Wraps the codec head: records the hidden state behind each frame's logits and masks EOS."""

    def __init__(self, head: nn.Module, eos: int) -> None:
        super().__init__()
        self.head = head
        self.eos = eos
        self.states: list[mx.array] = []

    def __call__(self, hidden: mx.array) -> mx.array:
        self.states.append(hidden[:, -1, :])
        logits = self.head(hidden)
        return mx.where(mx.arange(logits.shape[-1]) == self.eos, -mx.inf, logits)


def end_sentences_by_eos(folder: Path, target_frames: int = DEFAULT_TARGET_FRAMES) -> float:
    """Rewrite ``folder``'s EOS row in place (an unquantized model); returns the row's norm."""
    config = json.loads((folder / "config.json").read_text())
    if "quantization" in config:
        raise ValueError("end_sentences_by_eos needs an unquantized model (quantize afterwards)")
    with contextlib.redirect_stdout(sys.stderr):  # mlx-audio prints while loading
        model = load_model(folder)
    eos = config["talker_config"]["codec_eos_token_id"]
    weights = np.array(model.talker.codec_head.weight, dtype=np.float64)
    probes = _probe(model, config, eos)
    early = np.mean([states[_EARLY].mean(axis=0) for states in probes], axis=0)
    late = np.mean([states[_LATE].mean(axis=0) for states in probes], axis=0)
    direction = late - (late @ early) / (early @ early) * early
    direction /= np.linalg.norm(direction)
    sampling = model.generate_config or {}
    temperature = float(sampling.get("temperature", 0.9))
    top_k = int(sampling.get("top_k", 50))
    codes = weights[: weights.shape[0] - _SPECIAL_CODES]

    def mean_length(scale: float) -> float:
        lengths = [
            _expected_length(eos_hazard(states @ codes.T, scale * (states @ direction), temperature, top_k))
            for states in probes
        ]
        return float(np.mean(lengths))

    scale = _bisect_decreasing(mean_length, float(target_frames))
    _write_eos_row(folder / "model.safetensors", eos, scale * direction)
    _LOGGER.info("EOS row set (norm %.3f), aiming at %d frames per sentence", scale, target_frames)
    return scale


def _probe(model: Any, config: dict[str, Any], eos: int) -> list[np.ndarray]:
    """Per prompt, the hidden states behind every frame of a generation with EOS masked out."""
    recorder = _HiddenRecorder(model.talker.codec_head, eos)
    model.talker.codec_head = recorder
    speakers = sorted(config["talker_config"].get("spk_id") or {})
    voice = {"voice": speakers[0]} if speakers else {}
    if config["tts_model_type"] == "voice_design":
        voice = {"instruct": "A calm, clear voice."}
    elif config["tts_model_type"] == "base":  # calibrated for in-context cloning, how Base models are used
        voice = {"ref_audio": _probe_reference(), "ref_text": "A short recording to clone the voice from."}
    probes = []
    try:
        for index, prompt in enumerate(_PROBE_PROMPTS):
            recorder.states.clear()
            mx.random.seed(index)
            for _ in model.generate(text=prompt, lang_code="english", max_tokens=_PROBE_FRAMES, **voice):
                pass
            probes.append(np.array(mx.concatenate(recorder.states), dtype=np.float64))
    finally:
        model.talker.codec_head = recorder.head
    return probes


def _probe_reference(seconds: float = 4.0, rate: int = 24000) -> mx.array:
    """A voiced-sounding reference for probing Base models: a wavering tone with some noise."""
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * (140 + 40 * np.sin(np.pi * t)) * t) * (0.6 + 0.4 * np.sin(6 * np.pi * t))
    noise = np.random.default_rng(0).standard_normal(t.size)
    return mx.array((0.3 * tone + 0.02 * noise).astype(np.float32))


def eos_hazard(code_logits: np.ndarray, eos_logits: np.ndarray, temperature: float, top_k: int) -> np.ndarray:
    """Per frame, the chance of sampling EOS: the special ids other than EOS are suppressed,
    then temperature and top-k apply as in mlx-audio's sampler (top-p and the repetition
    penalty, both mild by default, are left out)."""
    logits = np.concatenate([code_logits, eos_logits[:, None]], axis=1) / temperature
    if 0 < top_k < logits.shape[1]:
        kth = np.sort(logits, axis=1)[:, -top_k][:, None]
        logits = np.where(logits >= kth, logits, -np.inf)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights[:, -1] / weights.sum(axis=1)


def _expected_length(hazard: np.ndarray) -> float:
    """Expected frames before EOS, given each step's EOS chance (capped at the probe length)."""
    return float(np.cumprod(1.0 - hazard).sum())


def _bisect_decreasing(function: Callable[[float], float], target: float) -> float:
    """The x >= 0 where a decreasing ``function`` meets ``target``."""
    low, high = 0.0, 1.0
    while function(high) > target:
        low, high = high, high * 2
        if high > _MAX_SCALE:
            raise RuntimeError("no EOS row reaches the target length: the probe's states look degenerate")
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if function(middle) > target else (low, middle)
    return (low + high) / 2


def _write_eos_row(path: Path, eos: int, row: np.ndarray) -> None:
    loaded = mx.load(str(path))
    if not isinstance(loaded, dict):
        raise TypeError(f"{path} does not hold named weights")
    weights: dict[str, mx.array] = loaded
    head = weights[_CODEC_HEAD]
    rows = mx.arange(head.shape[0])[:, None]
    weights[_CODEC_HEAD] = mx.where(rows == eos, mx.array(row, dtype=head.dtype)[None, :], head)
    mx.eval(weights)
    partial = path.with_name(f".{path.stem}.partial.safetensors")
    try:
        mx.save_safetensors(str(partial), weights, metadata={"format": "mlx"})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
