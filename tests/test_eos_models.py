"""Random test models whose sentences end by EOS (``make_test_model(..., ends_by_eos=True)``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlx_speechd.audio.pcm import FRAME_SAMPLES
from mlx_speechd.cache import AudioCache, CacheKey
from mlx_speechd.cli import main as cli_main
from mlx_speechd.engine import Engine, EngineConfig, ReplyOptions
from mlx_speechd.testing.eos import eos_hazard
from mlx_speechd.testing.model_factory import MARKER_FILE, make_test_model

TEXTS = ("Hello there.", "The quick brown fox jumps over the lazy dog.", "One, two, three.")
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def engine(tiny_custom_voice_ends: Path) -> Iterator[Engine]:
    engine = Engine(EngineConfig(model=str(tiny_custom_voice_ends)))
    engine.start()
    yield engine
    engine.close()


def _sentence(engine: Engine, text: str, seed: int) -> tuple[int, str, bytes]:
    reply = engine.reply(ReplyOptions(seed=seed))
    reply.speak(text)
    reply.finish()
    pcm = b"".join(chunk.pcm for chunk in reply)
    assert reply.stats is not None
    return reply.stats.frames, reply.stats.finish_reason, pcm


def test_sentences_end_by_eos_after_tens_of_frames(engine: Engine) -> None:
    runs = {(text, seed): _sentence(engine, text, seed) for text in TEXTS for seed in SEEDS}
    assert {reason for _, reason, _ in runs.values()} == {"eos"}
    lengths = {key: frames for key, (frames, _, _) in runs.items()}
    assert all(2 <= frames < 75 for frames in lengths.values()), lengths  # 75: the frame cap
    assert 8 <= float(np.median(list(lengths.values()))) <= 40, lengths
    # The length depends on the seed and on the text.
    assert all(len({lengths[text, seed] for seed in SEEDS}) > 1 for text in TEXTS), lengths
    assert any(len({lengths[text, seed] for text in TEXTS}) > 1 for seed in SEEDS), lengths
    # The same text and seed give the same length and the same audio.
    assert _sentence(engine, TEXTS[1], 2) == runs[TEXTS[1], 2]


def test_command_line_flag_writes_the_same_files(tiny_custom_voice_ends: Path, tmp_path: Path) -> None:
    assert cli_main(["make-test-model", str(tmp_path), "--ends-by-eos"]) == 0
    for name in ("model.safetensors", "config.json", MARKER_FILE):
        assert (tmp_path / name).read_bytes() == (tiny_custom_voice_ends / name).read_bytes(), name
    marker = json.loads((tmp_path / MARKER_FILE).read_text())
    assert marker["ends_by_eos"] is True and marker["fixed_length"] is False


def test_ends_by_eos_goes_with_neither_fixed_length_nor_quantizing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ends_by_eos"):
        make_test_model(tmp_path, ends_by_eos=True, fixed_length=True)
    with pytest.raises(ValueError, match="ends_by_eos"):
        make_test_model(tmp_path, ends_by_eos=True, quantize_bits=4)


def test_eos_hazard_follows_temperature_and_top_k() -> None:
    codes = np.array([[2.0, 1.0, 0.0, -1.0]])
    # EOS among the top 3 at temperature 1: its share of the softmax over the top 3.
    top = np.exp([2.0, 1.0, 1.5])
    assert eos_hazard(codes, np.array([1.5]), 1.0, 3)[0] == pytest.approx(top[2] / top.sum())
    # Outside the top k: never sampled.
    assert eos_hazard(codes, np.array([-0.5]), 1.0, 3)[0] == 0.0
    # A lower temperature sharpens: EOS below the best code loses share.
    assert eos_hazard(codes, np.array([1.5]), 0.5, 3)[0] < eos_hazard(codes, np.array([1.5]), 1.0, 3)[0]


def test_an_engine_sentence_round_trips_through_the_audio_cache(engine: Engine, tmp_path: Path) -> None:
    frames, reason, pcm = _sentence(engine, TEXTS[0], 4)
    key = CacheKey("tiny-ends", "ryan", "auto", None, TEXTS[0], 4, (), None)
    with AudioCache(tmp_path) as cache:
        assert cache.put(key, pcm, frames, reason)
        hit = cache.get(key)
    assert hit is not None
    assert (hit.pcm, hit.frames, hit.finish_reason) == (pcm, frames, "eos")
    assert len(pcm) == frames * FRAME_SAMPLES * 2
