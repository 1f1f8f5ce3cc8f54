"""Our pipeline against the official Qwen3-TTS package (qwen-tts 0.1.1), on identical weights.

The goldens (``golden.npz``) are the official package's outputs on the random conformance model
(``mlx_speechd.testing.official_layout``), written by ``make_golden.py`` in the official package's
own environment. Here the same model is rebuilt from its seed and run through our side: our
``StreamingDecoder`` and one-shot reference decode, mlx-audio's talker, code predictor, speaker
encoder and codec encoder. docs/conformance.md explains the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from conformance_goldens import Goldens
from mlx_audio.tts.models.qwen3_tts.qwen3_tts import mel_spectrogram

from mlx_speechd.engine.adapter import CodecDecoder
from mlx_speechd.engine.cpu_kernels import NATIVE
from mlx_speechd.engine.decoder import StreamingDecoder, decode_reference
from mlx_speechd.testing.official_layout import DECODER_WINDOW, NUM_CODE_GROUPS, SAMPLES_PER_FRAME

_LOGGER = logging.getLogger(__name__)

MIN_SNR_DB = 90.0
MAX_AUDIO_DIFF = 1e-4
MAX_LOGIT_DIFF = 1e-4
MAX_PREFILL_LOGIT_DIFF = 1e-3
"""From the speaker embedding's position on, the prefill carries the embedding's difference (~2e-4
relative, from the mel front end)."""
SPEAKER_POSITION = 3 + 4
"""`<|im_start|>assistant\n`, then think, think-bos, language, think-eos, then the speaker."""
MIN_SPEAKER_COSINE = 0.9999

# Chunk sizes in frames; the last size repeats until the codes run out.
SCHEDULES = {
    "every-4": (4,),
    "every-10": (10,),
    "growing": (1, 2, 3, 5, 8, 13, 21, 34),
    "window-straddling": (71, 2, 5),
}


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(np.sum((reference - other) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference**2)) / noise)


def _chunks(total: int, schedule: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    start, index = 0, 0
    while start < total:
        size = schedule[min(index, len(schedule) - 1)]
        yield start, min(start + size, total)
        start, index = start + size, index + 1


def _codes(goldens: Goldens) -> mx.array:
    return mx.array(goldens["decode_codes"].T[None])  # [1, groups, frames]


def _max_diff(ours: np.ndarray, expected: np.ndarray, what: str) -> float:
    assert ours.shape == expected.shape, what
    diff = float(np.max(np.abs(ours - expected)))
    _LOGGER.info("%s: max abs diff %.2e", what, diff)
    return diff


def _assert_audio_matches(goldens: Goldens, audio: np.ndarray, what: str) -> None:
    expected = goldens["decode_audio"]
    diff = _max_diff(audio, expected, what)
    snr = snr_db(expected, audio)
    _LOGGER.info("%s: SNR %.1f dB", what, snr)
    assert snr >= MIN_SNR_DB
    assert diff <= MAX_AUDIO_DIFF


def test_goldens_were_made_by_the_official_package(goldens: Goldens) -> None:
    assert goldens.meta["versions"]["qwen-tts"] == "0.1.1"
    assert goldens.meta["versions"]["transformers"] == "4.57.3"
    assert goldens["decode_codes"].shape[0] >= 2 * DECODER_WINDOW
    assert goldens["decode_audio"].shape == (goldens["decode_codes"].shape[0] * SAMPLES_PER_FRAME,)
    assert float(np.max(np.abs(goldens["decode_audio"]))) < 1.0  # nothing clipped


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_streaming_decoder_matches_the_official_one_pass_decode(
    official_qwen3: Any, goldens: Goldens, schedule: tuple[int, ...]
) -> None:
    codes = _codes(goldens)
    decoder = StreamingDecoder(official_qwen3.decoder, DECODER_WINDOW)
    parts = []
    for start, end in _chunks(codes.shape[2], schedule):
        chunk = decoder.step(codes[:, :, start:end])
        mx.eval(chunk)
        parts.append(np.array(chunk))
    _assert_audio_matches(goldens, np.concatenate(parts), f"StreamingDecoder, chunks {schedule}")


def test_streaming_decoder_on_mlx_kernels_matches_the_official_one_pass_decode(
    official_model: Any, goldens: Goldens
) -> None:
    """The decoder as it runs on Metal and CUDA: MLX's own activations and convolutions."""
    decoder = StreamingDecoder(CodecDecoder(official_model.speech_tokenizer.decoder, NATIVE), DECODER_WINDOW)
    codes = _codes(goldens)
    parts = [np.array(decoder.step(codes[:, :, start:end])) for start, end in _chunks(codes.shape[2], (10,))]
    _assert_audio_matches(goldens, np.concatenate(parts), "StreamingDecoder on MLX kernels, chunks (10,)")


def test_reference_decode_matches_the_official_one(official_qwen3: Any, goldens: Goldens) -> None:
    audio = decode_reference(official_qwen3.decoder, _codes(goldens), DECODER_WINDOW)
    _assert_audio_matches(goldens, np.array(audio), "decode_reference")


def _decoder_module(model: Any) -> Any:
    """mlx-audio's codec decoder module (it wraps the module in `mx.compile` after loading)."""
    decoder = model.speech_tokenizer.decoder
    return getattr(decoder.streaming_step, "__self__", decoder)


def _mlx_audio_decode(model: Any, codes: mx.array) -> np.ndarray:
    # The module itself: mlx-audio wraps it in mx.compile, which costs a minute on a CPU the first time.
    return np.array(_decoder_module(model)(codes)).reshape(-1)


def _mlx_audio_streaming(model: Any, codes: mx.array) -> np.ndarray:
    """mlx-audio's incremental decode (what its `generate(stream=True)` uses), 10 frames a step."""
    decoder = _decoder_module(model)
    decoder.reset_streaming_state()
    parts = []
    for start, end in _chunks(codes.shape[2], (10,)):
        parts.append(np.array(decoder.streaming_step(codes[:, :, start:end])).reshape(-1))
    decoder.reset_streaming_state()
    return np.concatenate(parts)


@pytest.mark.parametrize("decode", [_mlx_audio_decode, _mlx_audio_streaming], ids=["decode", "streaming"])
def test_mlx_audio_decoding_ignores_the_window(official_model: Any, goldens: Goldens, decode: Any) -> None:
    """mlx-audio's own decoding attends to every earlier frame: equal up to the window, then not.

    Should this fail, mlx-audio has changed its decoder: check whether it now applies the
    sliding window (and whether our StreamingDecoder is still needed) before updating the test.
    """
    audio = decode(official_model, _codes(goldens))
    expected = goldens["decode_audio"]
    boundary = DECODER_WINDOW * SAMPLES_PER_FRAME
    what = f"mlx-audio {decode.__name__.removeprefix('_mlx_audio_')}"
    before = _max_diff(audio[:boundary], expected[:boundary], f"{what}, frames < 72")
    after = snr_db(expected[boundary:], audio[boundary:])
    _LOGGER.info("%s, frames >= 72: SNR %.1f dB", what, after)
    assert before <= MAX_AUDIO_DIFF
    assert after < 60.0


# --- talker and code predictor -------------------------------------------------------------------
# mlx-audio's prompt building and code prediction are underscore methods of its model; these
# helpers are the only places this file reaches them.


def _prompt(model: Any, goldens: Goldens) -> tuple[mx.array, mx.array]:
    embeds, _trailing, pad = model._prepare_generation_inputs(  # noqa: SLF001 (mlx-audio internal)
        text=goldens.meta["text"], language=goldens.meta["language"], ref_audio=mx.array(goldens.signal)
    )
    return embeds, pad


def _greedy_sub_codes(model: Any, first: mx.array, hidden: mx.array) -> np.ndarray:
    _tokens, codes = model._predict_code_tokens(  # noqa: SLF001 (mlx-audio internal)
        first, hidden, temperature=0.0, top_k=0, top_p=1.0
    )
    return np.array(codes)[0]


def _frame_embedding(model: Any, frame: np.ndarray) -> mx.array:
    tokens = [mx.array([[int(code)]]) for code in frame]
    return model._codec_embeds_for_tokens(tokens)  # noqa: SLF001 (mlx-audio internal)


def _suppressed(model: Any) -> list[int]:
    eos = model.config.talker_config.codec_eos_token_id
    return model._suppress_codec_tokens(eos)  # noqa: SLF001 (mlx-audio internal)


def _predictor_logits(model: Any, hidden: mx.array, frame: np.ndarray) -> np.ndarray:
    """Code predictor logits for each sub-code, fed the official sub-codes (teacher forcing)."""
    talker = model.talker
    predictor = talker.code_predictor
    cache = predictor.make_cache()
    step_input = mx.concatenate(
        [hidden[:, -1:], talker.get_input_embeddings()(mx.array([[int(frame[0])]]))], 1
    )
    logits = []
    for step in range(NUM_CODE_GROUPS - 1):
        if step:
            step_input = predictor.codec_embedding[step - 1](mx.array([[int(frame[step])]]))
        step_logits, cache, _ = predictor(step_input, cache=cache, generation_step=step)
        logits.append(np.array(step_logits[0, -1]))
    return np.stack(logits)


@pytest.fixture(scope="module")
def teacher_forced(official_model: Any, goldens: Goldens) -> dict[str, np.ndarray]:
    """Our talker and code predictor fed the official greedy frames one by one."""
    model = official_model
    embeds, pad = _prompt(model, goldens)
    cache = model.talker.make_cache()
    logits, hidden = model.talker(embeds, cache=cache)
    prefill = np.array(logits[0])
    steps, sub_codes, predictor = [], [], []
    for frame in goldens["talker_codes"]:
        steps.append(np.array(logits[0, -1]))
        sub_codes.append(_greedy_sub_codes(model, mx.array([[int(frame[0])]]), hidden))
        predictor.append(_predictor_logits(model, hidden, frame))
        logits, hidden = model.talker(pad + _frame_embedding(model, frame), cache=cache)
    return {
        "prefill": prefill,
        "frame_logits": np.stack(steps),
        "next_logits": np.array(logits[0, -1]),
        "sub_codes": np.stack(sub_codes),
        "predictor_logits": np.stack(predictor),
    }


def test_prompt_tokens_match(official_model: Any, goldens: Goldens) -> None:
    text = f"<|im_start|>assistant\n{goldens.meta['text']}<|im_end|>\n<|im_start|>assistant\n"
    assert official_model.tokenizer.encode(text) == goldens["prompt_ids"].tolist()


def test_talker_prefill_logits_match(teacher_forced: dict[str, np.ndarray], goldens: Goldens) -> None:
    ours, expected = teacher_forced["prefill"], goldens["talker_prefill_logits"]
    before = SPEAKER_POSITION
    assert _max_diff(ours[:before], expected[:before], "talker prefill logits before the speaker") <= (
        MAX_LOGIT_DIFF
    )
    assert _max_diff(ours, expected, "talker prefill logits") <= MAX_PREFILL_LOGIT_DIFF


def test_talker_teacher_forced_logits_and_greedy_codes_match(
    official_model: Any, teacher_forced: dict[str, np.ndarray], goldens: Goldens
) -> None:
    # Official step k's logits are those after feeding frame k: ours predict frame k + 1.
    ours = np.concatenate([teacher_forced["frame_logits"][1:], teacher_forced["next_logits"][None]])
    assert _max_diff(ours, goldens["talker_step_logits"], "talker teacher-forced logits") <= MAX_LOGIT_DIFF
    masked = teacher_forced["frame_logits"].copy()
    masked[:, _suppressed(official_model)] = -np.inf
    assert masked.argmax(-1).tolist() == goldens["talker_codes"][:, 0].tolist()


def test_code_predictor_sub_codes_and_logits_match(
    teacher_forced: dict[str, np.ndarray], goldens: Goldens
) -> None:
    expected_codes = goldens["talker_codes"][:, 1:]
    assert expected_codes.size == 20 * (NUM_CODE_GROUPS - 1)
    assert (teacher_forced["sub_codes"][:, 1:] == expected_codes).all()
    diff = _max_diff(teacher_forced["predictor_logits"], goldens["predictor_logits"], "code predictor logits")
    assert diff <= MAX_LOGIT_DIFF


# --- reference audio: speaker encoder and codec encoder ----------------------------------------


def test_speaker_embedding_matches(official_model: Any, goldens: Goldens) -> None:
    ours = np.array(official_model.extract_speaker_embedding(mx.array(goldens.signal)))[0]
    expected = goldens["speaker_embedding"]
    cosine = float(ours @ expected / (np.linalg.norm(ours) * np.linalg.norm(expected)))
    _LOGGER.info("speaker embedding: cosine %.8f", cosine)
    assert cosine >= MIN_SPEAKER_COSINE
    assert _max_diff(ours, expected, "speaker embedding") <= 1e-3 * float(np.max(np.abs(expected)))


def test_speaker_encoder_network_matches_on_the_official_mel(official_model: Any, goldens: Goldens) -> None:
    """The embedding's whole difference comes from the mel front end, not the network."""
    ours = np.array(official_model.speaker_encoder(mx.array(goldens["speaker_mel"][None])))[0]
    assert _max_diff(ours, goldens["speaker_embedding"], "speaker encoder on the official mel") <= 1e-4


def test_mel_front_end_is_close(goldens: Goldens) -> None:
    # The settings of extract_speaker_embedding, in both implementations.
    mel = mel_spectrogram(
        mx.array(goldens.signal),
        n_fft=1024,
        num_mels=128,
        sample_rate=24000,
        hop_size=256,
        win_size=1024,
        fmin=0,
        fmax=12000,
    )
    ours, expected = np.array(mel)[0], goldens["speaker_mel"]
    mean = float(np.mean(np.abs(ours - expected)))
    _LOGGER.info("speaker mel (log scale, +-%.1f): mean abs diff %.2e", np.max(np.abs(expected)), mean)
    assert _max_diff(ours, expected, "speaker mel") <= 0.2
    assert mean <= 1e-2


def test_codec_encoder_codes_match(official_model: Any, goldens: Goldens) -> None:
    codes = official_model.speech_tokenizer.encode(mx.array(goldens.signal)[None, None])
    assert np.array(codes)[0].T.tolist() == goldens["encoder_codes"].tolist()
