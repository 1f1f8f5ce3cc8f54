"""Write the conformance goldens: the official Qwen3-TTS package's outputs on the random model.

Runs in the official package's own virtual environment (it pins transformers 4.57.3), never in
the project's. Set it up once, outside git-tracked files, with the CPU build of torch
(docs/conformance.md has the same steps):

    python3 -m venv .venv-official
    .venv-official/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    .venv-official/bin/pip install --no-deps qwen-tts==0.1.1
    .venv-official/bin/pip install transformers==4.57.3 accelerate==1.12.0 librosa soundfile einops
    .venv-official/bin/python tests/conformance/make_golden.py

(``qwen-tts`` also depends on gradio, sox, onnxruntime and torchaudio, used only by its demo and its
25 Hz tokenizer: this script stubs the ones it would import, hence ``--no-deps``.)

The script rebuilds the model with ``mlx_speechd.testing.official_layout`` (numpy only) from its
fixed seed, loads it with the official classes in float32 on the CPU, checks that every weight
loaded unchanged, and writes ``golden.npz`` beside itself: decoder audio for a fixed code sequence,
talker logits (prefill and teacher-forced greedy frames), the code predictor's sub-codes and logits,
the speaker encoder's mel input and embedding and the codec encoder's codes for a fixed reference
signal, plus the package versions and the weights' digest. ``tests/conformance/test_conformance.py``
compares our side with it.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.metadata
import json
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from mlx_speechd.testing import official_layout as layout  # noqa: E402

GOLDEN = HERE / "golden.npz"
TEXT = "Conformance: the same weights, the same numbers."
LANGUAGE = "english"
DECODE_FRAMES = 160  # beyond two 72-frame windows
TALKER_FRAMES = 20
REFERENCE_SECONDS = 3.0
_STUBBED = ("sox", "onnxruntime", "torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")


def reference_signal() -> np.ndarray:
    """A voice-like test signal: a gliding harmonic tone with vibrato and some noise, int16."""
    rate = layout.SAMPLE_RATE
    t = np.arange(int(REFERENCE_SECONDS * rate)) / rate
    f0 = 140.0 + 40.0 * t / REFERENCE_SECONDS + 3.0 * np.sin(2 * np.pi * 5.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    noise = np.random.default_rng(7).standard_normal(t.size)
    signal = 0.25 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)) + 0.02 * noise
    return np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16)


def decode_codes() -> np.ndarray:
    """The fixed code sequence the decoder comparisons use, [frames, groups]."""
    rng = np.random.default_rng(11)
    return rng.integers(0, layout.CODEBOOK_SIZE, (DECODE_FRAMES, layout.NUM_CODE_GROUPS)).astype(np.int32)


def _stub_unused_modules() -> None:
    """qwen_tts imports these for its 25 Hz tokenizer only."""
    for name in _STUBBED:
        try:
            importlib.import_module(name)
        except ImportError:
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module


def _check_loaded(model: Any, folder: Path) -> None:
    """Every file weight is in the model unchanged, and every model weight came from the files."""
    import torch
    from safetensors.torch import load_file

    state = model.model.state_dict()
    codec_state = model.model.speech_tokenizer.model.state_dict()
    files = {
        "": load_file(str(folder / "model.safetensors")),
        "codec": load_file(str(folder / "speech_tokenizer" / "model.safetensors")),
    }
    for which, weights in files.items():
        target = codec_state if which else state
        expected = {k for k in target if not (which == "" and k.startswith("speech_tokenizer"))}
        if set(weights) != expected:
            raise RuntimeError(f"{which or 'main'} weights: {sorted(set(weights) ^ expected)[:5]}")
        for name, value in weights.items():
            if not torch.equal(target[name], value):
                raise RuntimeError(f"{name} did not load unchanged")


def _capture(model: Any) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Forward hooks on the talker's codec head and the code predictor's heads."""
    talker = model.model.talker
    seen: dict[str, list[Any]] = {"talker": [], "predictor": []}
    calls: dict[str, Any] = {}

    def on_talker(_module: Any, _inputs: Any, output: Any) -> None:
        seen["talker"].append(output[0].detach().float().numpy().copy())

    def on_predictor(_module: Any, _inputs: Any, output: Any) -> None:
        seen["predictor"].append(output[0, -1].detach().float().numpy().copy())

    talker.codec_head.register_forward_hook(on_talker)
    for head in talker.code_predictor.lm_head:
        head.register_forward_hook(on_predictor)
    generate = model.model.generate

    def recording_generate(*args: Any, **kwargs: Any) -> Any:
        calls["input_ids"] = kwargs["input_ids"][0][0].numpy().copy()
        calls["result"] = generate(*args, **kwargs)
        return calls["result"]

    model.model.generate = recording_generate
    return seen, calls


def make_goldens(out: Path) -> dict[str, Any]:
    _stub_unused_modules()
    import torch
    from qwen_tts import Qwen3TTSModel

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = layout.make_official_model(Path(tmp) / "model")
        digest = layout.weights_digest(folder)
        tts = Qwen3TTSModel.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager")
        _check_loaded(tts, folder)
    tts.model.eval()
    signal = reference_signal().astype(np.float32) / 32768.0
    codes = decode_codes()

    mels: list[np.ndarray] = []
    tts.model.speaker_encoder.register_forward_pre_hook(lambda _m, args: mels.append(args[0][0].numpy()))
    with torch.inference_mode():
        audio, rate = tts.model.speech_tokenizer.decode([{"audio_codes": torch.from_numpy(codes).long()}])
        embedding = tts.model.extract_speaker_embedding(signal, layout.SAMPLE_RATE)
        encoded = tts.model.speech_tokenizer.encode(signal, sr=layout.SAMPLE_RATE).audio_codes[0]

    seen, calls = _capture(tts)
    tts.generate_voice_clone(
        text=TEXT,
        language=LANGUAGE,
        ref_audio=(signal, layout.SAMPLE_RATE),
        x_vector_only_mode=True,
        non_streaming_mode=True,
        do_sample=False,
        subtalker_dosample=False,
        repetition_penalty=1.0,
        max_new_tokens=TALKER_FRAMES + 1,
    )
    talker_codes = calls["result"][0][0].numpy().astype(np.int32)  # [frames, groups]
    frames = talker_codes.shape[0]
    prefill, *steps = seen["talker"]
    predictor = np.stack(seen["predictor"][: frames * (layout.NUM_CODE_GROUPS - 1)])

    versions = {p: importlib.metadata.version(p) for p in ("qwen-tts", "transformers", "torch", "numpy")}
    goldens: dict[str, Any] = {
        "meta": np.array(
            json.dumps(
                {
                    "versions": versions,
                    "weights_sha256": digest,
                    "seed": layout.SEED,
                    "text": TEXT,
                    "language": LANGUAGE,
                    "sample_rate": int(rate),
                    "attn_implementation": "eager",
                    "dtype": "float32",
                }
            )
        ),
        "reference_signal": reference_signal(),
        "decode_codes": codes,
        "decode_audio": np.asarray(audio[0], dtype=np.float32),
        "speaker_mel": mels[0].astype(np.float32),  # the speaker encoder's input, [frames, mels]
        "speaker_embedding": embedding.numpy().astype(np.float32),
        "encoder_codes": encoded.numpy().astype(np.int32),
        "prompt_ids": calls["input_ids"].astype(np.int32),
        "talker_codes": talker_codes,
        "talker_prefill_logits": prefill.astype(np.float32),
        "talker_step_logits": np.concatenate(steps)[:frames].astype(np.float32),
        "predictor_logits": predictor.reshape(frames, layout.NUM_CODE_GROUPS - 1, -1).astype(np.float32),
    }
    np.savez_compressed(out, **goldens)
    return goldens


def check_folder(folder: Path) -> None:
    """Load any model folder (``make-test-model`` output, say) with the official classes, check
    that every weight loaded unchanged, and decode a few frames."""
    _stub_unused_modules()
    import torch
    from qwen_tts import Qwen3TTSModel

    tts = Qwen3TTSModel.from_pretrained(str(folder), dtype=torch.float32)
    _check_loaded(tts, folder)
    groups = tts.model.speech_tokenizer.model.config.decoder_config.num_quantizers
    codes = torch.zeros((8, groups), dtype=torch.long)
    audio, _rate = tts.model.speech_tokenizer.decode([{"audio_codes": codes}])
    if not np.isfinite(audio[0]).all():
        raise RuntimeError("the official decoder produced non-finite audio")
    print(f"{folder}: loads in the official classes ({tts.model.tts_model_type}), decodes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GOLDEN, help=f"output file (default {GOLDEN})")
    parser.add_argument(
        "--check-folder", type=Path, help="instead: check that this folder loads in the official package"
    )
    args = parser.parse_args(argv)
    if args.check_folder:
        check_folder(args.check_folder)
        return 0
    goldens = make_goldens(args.out)
    meta = json.loads(str(goldens["meta"]))
    shapes = {k: v.shape for k, v in goldens.items() if k != "meta"}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB): {meta['versions']}, {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
