"""Clone voices with an 18 s reference: a library voice (prompt and primed decoder state computed once)
against per-request reference audio (encoded and primed again for every sentence), and a preset
speaker of a CustomVoice model of the same size.

One worker per model size (a Base and a CustomVoice model), two measurements, each interleaved
round by round (the order rotates; `warmup` rounds run first and are not counted):
- `prompt`: `start_utterance` alone (build the prompt, prime or restore the decoder), in this process;
- `first_audio`: one-sentence requests to one engine serving both models, the library voice, the
  same reference given with the request and the preset speaker in turn; the engine's own time to
  first audio. The models are random fixed-length ones: each request stops after `frames` frames.
The reference is a mix of harmonics with a slow envelope (speech-like, not speech).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from mlx_speechd.engine import Engine, GuardSettings, ReferenceAudio, ReplyOptions, VoiceSettings
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.engine.generation import Utterance, start_utterance
from mlx_speechd.engine.loader import load_model
from mlx_speechd.fingerprint import model_fingerprint
from mlx_speechd.voices import Voice, VoiceKind, VoiceLibrary, VoiceParams
from mlx_speechd.voices.prompt import voice_prompt

from .measure import median
from .workers import run_worker, setup_worker_logging, worker_parser, write_result

SAMPLE_RATE = 24000
REFERENCE_SECONDS = 18.0
REF_TEXT = (
    "I recorded this a while ago for my videos. It is a plain reading in my normal voice, not too "
    "fast and not too slow, with a few pauses. The idea is that the model hears how I sound and "
    "then keeps sounding like me in every sentence it reads."
)
SENTENCES = (
    "Welcome back to the channel.",
    "Today we look at the garden in early spring.",
    "The tulips came up a week later than last year.",
    "Let me show you what went wrong with the roses.",
)
LANGUAGE = "english"
VOICE = "me"
XVECTOR_VOICE = "me-x"
"""The same reference as a speaker-embedding-only (`--x-vector-only`) voice: no transcript, no codes."""
PRESET = "ryan"
VARIANTS = ("library", "per_request", "preset", "x_vector")


def reference() -> np.ndarray:
    """18 s of speech-like test audio at 24 kHz (harmonics, a slow envelope, a little noise)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(REFERENCE_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140.0, 280.0, 420.0, 910.0)))
    signal = 0.2 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


def _order(keys: tuple[str, ...], round_index: int) -> list[str]:
    shift = round_index % len(keys)
    return list(keys[shift:] + keys[:shift])


def prompt_costs(base: str, voice: Voice, rounds: int, warmup: int, samples: np.ndarray) -> dict[str, Any]:
    """Seconds to build the prompt and prime (per request) or restore (library) the decoder.

    Computing the library voice's prompt (saved in its folder for `first_audio`) runs the encoders
    and the priming once before the rounds, as a warm-up of the per-request path.
    """
    model, info = load_model(base)
    decoder = StreamingDecoder(model.decoder, info.decoder_window)
    began = time.perf_counter()
    prompt = voice_prompt(model, decoder, voice, model_fingerprint(Path(base)))
    once = time.perf_counter() - began
    ref_audio = mx.array(samples)
    seconds: dict[str, list[float]] = {"library": [], "per_request": []}
    identical = True
    for index in range(warmup + rounds):
        text = SENTENCES[index % len(SENTENCES)]
        utterances = {
            "library": Utterance(text, None, LANGUAGE, None, None, None, prompt.clone, prompt.decoder),
            "per_request": Utterance(text, None, LANGUAGE, None, ref_audio, REF_TEXT),
        }
        embeds = {}
        for key in _order(tuple(utterances), index):
            began = time.perf_counter()
            built = start_utterance(model, decoder, utterances[key])
            mx.eval(built.embeds, built.trailing, built.pad)
            if index >= warmup:
                seconds[key].append(time.perf_counter() - began)
            embeds[key] = built.embeds
        identical = identical and bool(mx.array_equal(embeds["library"], embeds["per_request"]).item())
    del model, decoder, prompt, ref_audio, embeds
    gc.collect()
    mx.clear_cache()
    return {"once_s": once, "seconds": seconds, "identical_prompts": identical}


def _request(engine: Engine, voice: VoiceSettings, text: str) -> float:
    """One sentence; the engine's time to its first audio."""
    reply = engine.reply(ReplyOptions(voice=voice, seed=1))
    reply.speak(text)
    reply.finish()
    for _ in reply:
        pass
    stats = reply.stats
    assert stats is not None and stats.time_to_first_audio is not None and stats.frames > 0
    return stats.time_to_first_audio


def first_audio(
    base: str, custom: str, library: VoiceLibrary, rounds: int, warmup: int, frames: int, samples: np.ndarray
) -> dict[str, Any]:
    """Time to first audio per one-sentence request, the three voices in turn on one engine.

    The engine warms up each model at start; the library voice's first request reads its saved prompt.
    """
    import mlx_speechd

    voices = {
        "library": VoiceSettings(speaker=VOICE),
        "per_request": VoiceSettings(language=LANGUAGE, ref_audio=ReferenceAudio(samples), ref_text=REF_TEXT),
        "preset": VoiceSettings(speaker=PRESET, language=LANGUAGE),
        "x_vector": VoiceSettings(speaker=XVECTOR_VOICE),
    }
    guards = GuardSettings(frames_per_char=0, min_frames=frames)
    with mlx_speechd.load([custom, base], voices_dir=library.folder, guards=guards, audio_cache=False) as tts:
        began = time.perf_counter()
        _request(tts.engine, voices["library"], SENTENCES[0])
        library_first = time.perf_counter() - began
        _request(tts.engine, voices["x_vector"], SENTENCES[0])  # computes and saves its prompt
        seconds: dict[str, list[float]] = {key: [] for key in VARIANTS}
        for index in range(warmup + rounds):
            text = SENTENCES[index % len(SENTENCES)]
            for key in _order(VARIANTS, index):
                ttfa = _request(tts.engine, voices[key], text)
                if index >= warmup:
                    seconds[key].append(ttfa)
    return {"library_first_request_s": library_first, "seconds": seconds}


def measure(base: str, custom: str, rounds: int, warmup: int, frames: int) -> dict[str, Any]:
    """Both measurements for one model size."""
    samples = reference()
    with tempfile.TemporaryDirectory(prefix="mlx-speechd-bench-voices-") as tmp:
        library = VoiceLibrary(Path(tmp))
        voice = library.add(
            VOICE, VoiceKind.CLONE, VoiceParams(language=LANGUAGE, ref_text=REF_TEXT), audio=samples
        )
        params = VoiceParams(language=LANGUAGE, x_vector_only=True)
        library.add(XVECTOR_VOICE, VoiceKind.CLONE, params, audio=samples)
        prompt = prompt_costs(base, voice, rounds, warmup, samples)
        audio = first_audio(base, custom, library, rounds, warmup, frames, samples)
    prompt_median = {key: median(values) for key, values in prompt["seconds"].items()}
    audio_median = {key: median(values) for key, values in audio["seconds"].items()}
    return {
        "base": base,
        "custom": custom,
        "reference_seconds": REFERENCE_SECONDS,
        "rounds": rounds,
        "warmup_rounds": warmup,
        "frames": frames,
        "prompt": {**prompt, "median_s": prompt_median},
        "first_audio": {**audio, "median_s": audio_median},
        "prompt_ratio": prompt_median["library"] / prompt_median["per_request"],
        "clone_over_preset": audio_median["library"] / audio_median["preset"],
        "x_vector_over_preset": audio_median["x_vector"] / audio_median["preset"],
    }


def run_voice_prompts(base: str, custom: str, rounds: int, warmup: int, frames: int) -> dict[str, Any]:
    args = ["--model", base, "--custom", custom, "--rounds", str(rounds), "--warmup", str(warmup)]
    return run_worker("voice_prompts", [*args, "--frames", str(frames)], timeout=3 * 3600)


def main() -> None:
    parser = worker_parser("Library clone voice against per-request reference audio and a preset.")
    parser.add_argument("--custom", required=True, help="CustomVoice model folder of the same size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    parser.add_argument("--frames", type=int, default=2)
    args = parser.parse_args()
    setup_worker_logging()
    write_result(args.out, measure(args.model, args.custom, args.rounds, args.warmup, args.frames))


if __name__ == "__main__":
    main()
