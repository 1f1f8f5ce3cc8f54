"""The voice library: the `mlx-speechd voice` command as a subprocess, reference checks, atomic writes,
and precomputed clone prompts that equal mlx-audio's fresh computation bit for bit."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import soundfile

import mlx_speechd
from mlx_speechd.engine.adapter import Qwen3Model
from mlx_speechd.engine.decoder import StreamingDecoder
from mlx_speechd.errors import InvalidRequestError, UnknownVoiceError
from mlx_speechd.fingerprint import model_fingerprint
from mlx_speechd.voices import VoiceKind, VoiceLibrary, VoiceParams, check_name
from mlx_speechd.voices.cli import voices_dir
from mlx_speechd.voices.prompt import (
    compute_voice_prompt,
    load_prompt,
    reference_digest,
    save_prompt,
    voice_prompt,
)
from mlx_speechd.voices.reference import SAMPLE_RATE, check_transcript, load_reference, read_audio

CLI = [sys.executable, "-m", "mlx_speechd", "voice"]
REF_TEXT = (
    "The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly, "
    "and a wizard's job is to vex chumps quickly in fog."
)


def write_reference(
    folder: Path, seconds: float = 19.0, rate: int = SAMPLE_RATE, stereo: bool = False
) -> Path:
    """A speech-like test reference: a few harmonics with a slow envelope, plus a little noise."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140.0, 280.0, 420.0, 910.0)))
    signal = 0.2 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)
    data = np.stack([signal, 0.5 * signal], axis=1) if stereo else signal
    path = folder / f"ref-{seconds:g}s-{rate}{'-stereo' if stereo else ''}.wav"
    soundfile.write(str(path), data.astype(np.float32), rate, subtype="FLOAT")
    return path


@pytest.fixture
def reference(tmp_path: Path) -> tuple[Path, Path]:
    """The seed scenario: a ~19 s ref.wav and its ref.txt."""
    wav = write_reference(tmp_path)
    txt = tmp_path / "ref.txt"
    txt.write_text(REF_TEXT + "\n", encoding="utf-8")
    return wav, txt


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return tmp_path / "voices"


def voice_cli(lib: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLX_SPEECHD_")}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, "MLX_SPEECHD_VOICES_DIR": str(lib), **(env or {})},
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("mlx-speechd: warning:")]
    assert len(lines) == 1 and lines[0].startswith("mlx-speechd: error:") and text in lines[0], result.stderr


def show(lib: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(ok(voice_cli(lib, "show", name, "--json")))
    return data


def entries(lib: Path) -> list[str]:
    """Everything in the library folder, hidden work folders included."""
    return sorted(p.name for p in lib.iterdir()) if lib.exists() else []


# ---- the command line, per kind ----


def test_clone_voice_round_trip(library: Path, reference: tuple[Path, Path]) -> None:
    wav, txt = reference
    out = ok(
        voice_cli(
            library, "add", "Alice", "--ref-audio", str(wav), "--ref-text-file", str(txt), "--language", "en"
        )
    )
    assert "added clone voice 'alice'" in out

    table = ok(voice_cli(library, "list")).splitlines()
    assert table[0].split() == ["NAME", "KIND", "MODEL", "LANGUAGES"]
    assert table[1].split() == ["alice", "clone", "any", "Base", "english"]

    listed = json.loads(ok(voice_cli(library, "list", "--json")))
    assert [(v["name"], v["kind"], v["languages"]) for v in listed] == [("alice", "clone", ["english"])]
    data = show(library, "ALICE")  # names are case-insensitive
    assert data["kind"] == "clone" and data["variant"] == "base"
    assert data["ref_text"] == REF_TEXT and data["language"] == "english"
    assert data["source"] == str(wav.resolve())
    assert data["files"] == ["manifest.json", "ref.txt", "ref.wav"]
    stored, rate = soundfile.read(str(library / "alice" / "ref.wav"), dtype="float32")
    original, _ = soundfile.read(str(wav), dtype="float32")
    assert rate == SAMPLE_RATE and np.array_equal(stored, original)  # already 24 kHz mono: stored as is
    assert (library / "alice" / "ref.txt").read_text(encoding="utf-8").strip() == REF_TEXT
    assert "alice" in ok(voice_cli(library, "show", "alice"))

    assert "removed voice 'alice'" in ok(voice_cli(library, "remove", "alice"))
    assert entries(library) == []
    assert ok(voice_cli(library, "list")) == ""
    assert_one_line_error(voice_cli(library, "show", "alice"), 2, "no voice named 'alice'")
    assert_one_line_error(voice_cli(library, "remove", "alice"), 2, "no voice named 'alice'")


def test_clone_voice_from_the_speaker_embedding_alone(library: Path, reference: tuple[Path, Path]) -> None:
    wav, _ = reference
    ok(voice_cli(library, "add", "xv", "--ref-audio", str(wav), "--x-vector-only"))
    data = show(library, "xv")
    assert data["x_vector_only"] is True and "ref_text" not in data
    assert data["files"] == ["manifest.json", "ref.wav"]


def test_style_voice_round_trip(library: Path) -> None:
    ok(
        voice_cli(
            library,
            "add",
            "calm-ryan",
            "--speaker",
            "Ryan",
            "--instruct",
            " Speak slowly. ",
            "--language",
            "en",
        )
    )
    data = show(library, "calm-ryan")
    assert (data["kind"], data["variant"], data["speaker"], data["instruct"]) == (
        "style",
        "custom_voice",
        "ryan",
        "Speak slowly.",
    )
    assert data["files"] == ["manifest.json"]
    assert ok(voice_cli(library, "list")).splitlines()[1].split() == [
        "calm-ryan",
        "style",
        "any",
        "CustomVoice",
        "english",
    ]


def test_designed_voice_round_trip(library: Path) -> None:
    ok(
        voice_cli(
            library,
            "add",
            "narrator",
            "--description",
            "A deep, calm voice",
            "--sample-text",
            "Once.",
            "--seed",
            "7",
        )
    )
    data = show(library, "narrator")
    assert (data["kind"], data["description"], data["sample_text"], data["seed"]) == (
        "designed",
        "A deep, calm voice",
        "Once.",
        7,
    )
    ok(voice_cli(library, "add", "random-seed", "--description", "A bright voice"))
    seed = show(library, "random-seed")["seed"]
    assert isinstance(seed, int) and seed >= 0  # a random seed, recorded so the voice stays the same


def test_adopt_turns_a_designed_sample_into_a_clone(library: Path, tmp_path: Path) -> None:
    lib = VoiceLibrary(library)
    sample = read_audio(write_reference(tmp_path, seconds=6.0))
    # What `voice design` does after rendering the sample (phase 2): a designed voice with its audio.
    design = VoiceParams(description="A deep voice", sample_text="A sample sentence to adopt.", seed=3)
    lib.add("deep", VoiceKind.DESIGNED, design, audio=sample)
    lib.add("no-sample", VoiceKind.DESIGNED, design)
    lib.add("style", VoiceKind.STYLE, VoiceParams(speaker="ryan"))

    out = ok(voice_cli(library, "adopt", "deep", "--as", "deep-clone"))
    assert "as clone voice 'deep-clone'" in out
    clone = lib.get("deep-clone")
    assert clone.kind is VoiceKind.CLONE and clone.settings.ref_text == "A sample sentence to adopt."
    assert clone.settings.description == "A deep voice" and clone.settings.seed == 3
    assert clone.source == "adopted from designed voice 'deep'"
    assert np.array_equal(read_audio(clone.ref_audio_path), sample)
    assert lib.get("deep").kind is VoiceKind.DESIGNED  # --as keeps the designed voice

    assert_one_line_error(voice_cli(library, "adopt", "deep", "--as", "deep-clone"), 2, "already exists")
    ok(voice_cli(library, "adopt", "deep"))  # in place: the designed voice becomes the clone
    assert lib.get("deep").kind is VoiceKind.CLONE
    assert_one_line_error(voice_cli(library, "adopt", "no-sample"), 2, "has no rendered sample")
    assert_one_line_error(voice_cli(library, "adopt", "style"), 2, "only designed voices adopt")
    assert not [name for name in entries(library) if name.startswith(".")]


def test_design_renders_the_sample_then_adopt_makes_a_clone(
    library: Path, tmp_path: Path, tiny_voice_design: Path, tiny_base: Path
) -> None:
    """Design, then clone: the sample is rendered by a VoiceDesign model, kept, and adopted."""
    text = "Once upon a time, by the sea."
    design = ["design", "narrator", "--model", str(tiny_voice_design), "--description", "A deep voice."]
    out = ok(voice_cli(library, *design, "--text", text, "--seed", "3", "-o", str(tmp_path / "listen.wav")))
    assert "rendered designed voice 'narrator' (seed 3)" in out
    lib = VoiceLibrary(library)
    narrator = lib.get("narrator")
    assert narrator.kind is VoiceKind.DESIGNED and narrator.settings.seed == 3
    assert narrator.settings.sample_text == text and narrator.settings.description == "A deep voice."
    assert narrator.model == str(tiny_voice_design) and narrator.sample_path.is_file()
    sample = read_audio(narrator.sample_path)
    assert len(sample) > SAMPLE_RATE // 2 and np.abs(sample).max() > 0
    listened, rate = soundfile.read(str(tmp_path / "listen.wav"), dtype="float32")
    assert rate == SAMPLE_RATE and len(listened) == len(sample)
    assert np.abs(listened - sample).max() < 1e-3  # the same audio, the file in 16 bits

    # rendering the stored design again (its model and seed, no --description) gives the same sample
    manifest = library / "narrator" / "manifest.json"
    manifest.write_text(manifest.read_text().replace(narrator.created, "2020-01-02T03:04:05+00:00"))
    ok(voice_cli(library, "design", "narrator"))
    assert np.array_equal(read_audio(lib.get("narrator").sample_path), sample)
    assert lib.get("narrator").created == "2020-01-02T03:04:05+00:00"  # still the voice made then
    # and it is what the daemon says in that voice on the same model
    with mlx_speechd.load(tiny_voice_design, voices_dir=library, warmup=False, audio_cache=False) as tts:
        spoken = tts.generate(text, voice="narrator")
    assert np.array_equal(spoken.samples, sample)

    ok(voice_cli(library, "adopt", "narrator", "--as", "narrator-clone"))
    clone = lib.get("narrator-clone")
    assert clone.kind is VoiceKind.CLONE and clone.settings.ref_text == text
    assert np.array_equal(read_audio(clone.ref_audio_path), sample)
    # the adopted clone speaks on a Base model
    with mlx_speechd.load(tiny_base, voices_dir=library, warmup=False, audio_cache=False) as tts:
        spoken = tts.generate("Hello again.", voice="narrator-clone", seed=1)
    assert spoken.duration > 0 and np.abs(spoken.samples).max() > 0


def test_design_errors_are_one_line_and_write_nothing(
    library: Path, tmp_path: Path, tiny_voice_design: Path, tiny_base: Path
) -> None:
    ok(voice_cli(library, "add", "ann", "--speaker", "ryan"))
    before = entries(library)
    new = ["design", "bob", "--description", "A bright voice.", "--text", "Hi there."]
    cases = [
        ([*new, "--model", str(tiny_base)], "needs a VoiceDesign model"),
        ([*new, "--model", str(tmp_path / "missing")], "No such folder"),
        ([*new, "--model", str(tiny_voice_design), "-o", str(tmp_path / "x.mp3")], "audio format"),
        ([*new, "--model", str(tiny_voice_design), "-o", str(tmp_path / "no" / "x.wav")], "does not exist"),
        (["design", "bob", "--model", str(tiny_voice_design), "--description", "A voice."], "give --text"),
        (
            ["design", "ann", "--model", str(tiny_voice_design), "--description", "x", "--text", "Hi."],
            "exists",
        ),
        (["design", "ann", "--model", str(tiny_voice_design)], "is a style voice"),
        (["design", "nobody", "--model", str(tiny_voice_design)], "no voice named 'nobody'"),
        (
            ["design", "../up", "--model", str(tiny_voice_design), "--description", "x", "--text", "Hi."],
            "name",
        ),
    ]
    for args, text in cases:
        assert_one_line_error(voice_cli(library, *args), 2, text)
    assert entries(library) == before
    assert not (tmp_path / "up").exists()


def test_seed_scenario_ref_wav_and_txt_become_a_voice_that_speaks_three_sentences(
    library: Path, reference: tuple[Path, Path], tiny_base_ends: Path, tmp_path: Path
) -> None:
    """A ~19 s ref.wav plus ref.txt, added with the CLI, speaks three sentences from the command line,
    and a second run reuses the prompt and decoder state saved by the first (same audio)."""
    wav, txt = reference
    assert 18.5 < soundfile.info(str(wav)).duration < 19.5
    ok(
        voice_cli(
            library, "add", "me", "--ref-audio", str(wav), "--ref-text-file", str(txt), "--language", "en"
        )
    )
    text = "This is my own voice. It was cloned once and saved. Now it reads every sentence."

    def speak(out: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *CLI[:-1], "--model", str(tiny_base_ends), "--voices-dir", str(library), "--voice", "me",
                "--seed", "11", "--no-warmup", "--no-audio-cache", "-o", str(out), text,
            ],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    first = speak(tmp_path / "first.wav")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "in 3 sentence(s)" in first.stderr and "finished: eos" in first.stderr, first.stderr[-2000:]
    prompt = VoiceLibrary(library).get("me").prompt_path(model_fingerprint(tiny_base_ends))
    saved = prompt.stat().st_mtime_ns
    second = speak(tmp_path / "second.wav")
    assert second.returncode == 0, second.stderr[-2000:]
    assert prompt.stat().st_mtime_ns == saved  # read, not computed again
    audio, rate = soundfile.read(str(tmp_path / "first.wav"), dtype="int16")
    again, _ = soundfile.read(str(tmp_path / "second.wav"), dtype="int16")
    assert rate == SAMPLE_RATE and len(audio) > SAMPLE_RATE // 2 and np.abs(audio).max() > 0
    assert np.array_equal(audio, again)


def test_an_existing_name_needs_force(library: Path, reference: tuple[Path, Path]) -> None:
    wav, txt = reference
    ok(voice_cli(library, "add", "ann", "--speaker", "ryan"))
    manifest = (library / "ann" / "manifest.json").read_text()
    result = voice_cli(library, "add", "ann", "--ref-audio", str(wav), "--ref-text-file", str(txt))
    assert_one_line_error(result, 2, "voice 'ann' already exists (use --force")
    assert (library / "ann" / "manifest.json").read_text() == manifest
    ok(voice_cli(library, "add", "ANN", "--ref-audio", str(wav), "--ref-text-file", str(txt), "--force"))
    assert show(library, "ann")["kind"] == "clone"
    assert entries(library) == ["ann"]  # the replaced folder is gone, no work folders left


@pytest.mark.parametrize("name", ["a/b", "..", "../evil", "a b", "café", "", "_x", "x" * 65])
def test_bad_names_are_refused(library: Path, name: str) -> None:
    assert_one_line_error(voice_cli(library, "add", name, "--speaker", "ryan"), 2, "invalid voice name")
    lib = VoiceLibrary(library)
    for use in (lib.get, lib.remove, lambda name: lib.adopt("x", name)):
        with pytest.raises(InvalidRequestError, match="invalid voice name"):
            use(name)
    assert entries(library) == []


def test_show_and_remove_refuse_paths(library: Path) -> None:
    (library / "victim").mkdir(parents=True)  # a folder beside the library that a path could reach
    lib = library / "lib"
    ok(voice_cli(lib, "add", "v", "--speaker", "ryan"))
    assert_one_line_error(voice_cli(lib, "show", "../victim"), 2, "invalid voice name")
    assert_one_line_error(voice_cli(lib, "remove", "../victim"), 2, "invalid voice name")
    assert (library / "victim").is_dir() and entries(lib) == ["v"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --ref-audio (a clone voice), --speaker"),
        (["--speaker", "ryan", "--ref-text", "hi"], "belong to different kinds"),
        (["--ref-text", "hi"], "a clone voice needs --ref-audio"),
        (["--instruct", "calm"], "a style voice needs --speaker"),
        (["--seed", "3"], "a designed voice needs --description"),
        (["--ref-audio", "{missing}", "--ref-text", "hi"], "does not exist"),
        (["--ref-audio", "{junk}", "--ref-text", "hi"], "cannot read reference audio"),
        (["--ref-audio", "{long}", "--ref-text", "hi"], "is 31.0 s long; the limit is 30 s"),
        (["--ref-audio", "{silent}", "--ref-text", "hi"], "is silent"),
        (["--ref-audio", "{wav}", "--ref-text", "   "], "transcript of the reference is empty"),
        (["--ref-audio", "{wav}"], "transcript of the reference is empty"),
        (["--ref-audio", "{wav}", "--ref-text-file", "{missing}"], "cannot read --ref-text-file"),
        (["--ref-audio", "{wav}", "--ref-text", "a", "--ref-text-file", "{txt}"], "not both"),
        (["--speaker", "ryan", "--language", "klingon"], "Unsupported language 'klingon'"),
        (["--description", "x", "--seed", "three"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    library: Path, tmp_path: Path, reference: tuple[Path, Path], args: list[str], message: str
) -> None:
    wav, txt = reference
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(SAMPLE_RATE * 5, np.float32), SAMPLE_RATE)
    files = {
        "wav": wav,
        "txt": txt,
        "missing": tmp_path / "missing.wav",
        "junk": junk,
        "silent": silent,
        "long": write_reference(tmp_path, seconds=31.0),
    }
    args = [arg.format(**files) for arg in args]
    assert_one_line_error(voice_cli(library, "add", "v", *args), 2, message)
    assert entries(library) == []


def test_voices_dir_comes_from_option_environment_config_then_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "speechd.toml"
    config.write_text(
        f'model = "some/model"\nuri = ["tcp://0.0.0.0:10200"]\nvoices_dir = "{tmp_path / "c"}"\n'
    )
    env = {"MLX_SPEECHD_VOICES_DIR": str(tmp_path / "e"), "MLX_SPEECHD_CONFIG": str(config)}
    assert voices_dir(str(tmp_path / "o"), None, env) == tmp_path / "o"
    assert voices_dir(None, None, env) == tmp_path / "e"
    assert voices_dir(None, None, {"MLX_SPEECHD_CONFIG": str(config)}) == tmp_path / "c"
    assert voices_dir(None, str(config), {}) == tmp_path / "c"
    if sys.platform == "linux":
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert voices_dir(None, None, {}) == tmp_path / "xdg" / "mlx-speechd" / "voices"
    # and through the real command: the option beats the environment
    ok(voice_cli(tmp_path / "e", "add", "v", "--speaker", "ryan", "--voices-dir", str(tmp_path / "o")))
    assert entries(tmp_path / "o") == ["v"] and entries(tmp_path / "e") == []
    ok(
        voice_cli(
            tmp_path / "unused",
            "add",
            "w",
            "--speaker",
            "ryan",
            "--config",
            str(config),
            env={"MLX_SPEECHD_VOICES_DIR": ""},
        )
    )
    assert entries(tmp_path / "c") == ["w"]


# ---- the library ----


def test_names_are_short_ascii_slugs_stored_in_lower_case() -> None:
    assert check_name("Alice_2-b") == "alice_2-b"
    assert check_name("x" * 64) == "x" * 64
    for bad in ("-x", ".", "a.b", "a\\b", "\u212a", "x\n", "x" * 65):  # \u212a (Kelvin) lowercases to "k"
        with pytest.raises(InvalidRequestError, match="invalid voice name"):
            check_name(bad)


def test_broken_voice_folders_are_skipped_with_a_warning(
    library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lib = VoiceLibrary(library)
    lib.add("good", VoiceKind.STYLE, VoiceParams(speaker="ryan"))
    (library / "no-manifest").mkdir()
    (library / "garbage").mkdir()
    (library / "garbage" / "manifest.json").write_text("{not json")
    (library / "future").mkdir()
    (library / "future" / "manifest.json").write_text('{"format": 2, "kind": "clone"}')
    (library / "odd-kind").mkdir()
    (library / "odd-kind" / "manifest.json").write_text('{"format": 1, "kind": "robot", "created": ""}')
    (library / "clone-no-audio").mkdir()
    (library / "clone-no-audio" / "manifest.json").write_text('{"format": 1, "kind": "clone"}')
    (library / "bad-seed").mkdir()
    (library / "bad-seed" / "manifest.json").write_text(
        '{"format": 1, "kind": "designed", "settings": {"seed": "x"}}'
    )
    (library / "Upper").mkdir()
    (library / "stray-file.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        assert lib.names() == ["good"]
    assert len([r for r in caplog.records if "Skipping voice folder" in r.getMessage()]) == 7
    with pytest.raises(UnknownVoiceError):
        lib.get("garbage")
    with pytest.raises(UnknownVoiceError):
        lib.get("no-manifest")
    result = voice_cli(library, "list")
    assert result.returncode == 0 and result.stdout.splitlines()[1].startswith("good ")
    assert result.stderr.count("mlx-speechd: warning: Skipping voice folder") == 7
    assert VoiceLibrary(library / "absent").list() == []


def test_a_failed_add_leaves_nothing_half_written(library: Path, reference: tuple[Path, Path]) -> None:
    lib = VoiceLibrary(library)
    audio = load_reference(reference[0]).audio
    unwritable = VoiceParams(ref_text="text with a lone surrogate \ud800")  # fails after ref.wav is written
    with pytest.raises(UnicodeEncodeError):
        lib.add("half", VoiceKind.CLONE, unwritable, audio=audio)
    assert entries(library) == []
    lib.add("whole", VoiceKind.CLONE, VoiceParams(ref_text=REF_TEXT), audio=audio)
    with pytest.raises(UnicodeEncodeError):
        lib.add("whole", VoiceKind.CLONE, unwritable, audio=audio, force=True)
    assert entries(library) == ["whole"]  # the old voice survives a failed replacement
    assert lib.get("whole").settings.ref_text == REF_TEXT
    with pytest.raises(InvalidRequestError, match="needs reference audio"):
        lib.add("no-audio", VoiceKind.CLONE, VoiceParams(ref_text="hi"))
    assert entries(library) == ["whole"]


# ---- reference audio ----


def test_stereo_44k_reference_is_mixed_to_mono_and_resampled(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(int(5 * rate)) / rate
    left, right = 0.6 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.stack([left, right], axis=1), rate, subtype="FLOAT")
    ref = load_reference(path)
    assert (ref.source_rate, ref.source_channels) == (rate, 2)
    assert ref.audio.dtype == np.float32 and ref.audio.ndim == 1
    assert abs(len(ref.audio) - 5 * SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(ref.audio))
    assert np.argmax(spectrum) * SAMPLE_RATE / len(ref.audio) == pytest.approx(440, abs=1)
    middle = ref.audio[SAMPLE_RATE : 4 * SAMPLE_RATE]
    assert np.abs(middle).max() == pytest.approx(0.4, abs=0.01)  # the mean of the two channels

    opposite = tmp_path / "opposite.wav"
    soundfile.write(str(opposite), np.stack([left, -left], axis=1), rate, subtype="FLOAT")
    with pytest.raises(InvalidRequestError, match="is silent"):
        load_reference(opposite)  # the channels cancel in the mono mix


def test_reference_length_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidRequestError, match=r"is 31\.0 s long; the limit is 30 s"):
        load_reference(write_reference(tmp_path, seconds=31.0, rate=16000))
    for seconds, warned in ((2.0, True), (3.0, False), (19.0, False), (25.0, True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            ref = load_reference(write_reference(tmp_path, seconds=seconds))
        assert ref.seconds == pytest.approx(seconds)
        assert any("clear speech clone best" in r.getMessage() for r in caplog.records) == warned, seconds


def test_transcript_checks(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidRequestError, match="transcript of the reference is empty"):
        check_transcript(" \n ", 10.0, x_vector_only=False)
    assert check_transcript(None, 10.0, x_vector_only=True) is None
    assert check_transcript("  Hello there.  ", 1.0, x_vector_only=False) == "Hello there."
    with caplog.at_level(logging.WARNING):
        check_transcript("Hi.", 19.0, x_vector_only=False)
    assert any("may run on" in r.getMessage() for r in caplog.records)


# ---- model fingerprints and clone prompts ----


def test_model_fingerprint(tiny_base: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_base, tmp_path / "copy"))
    assert model_fingerprint(copy) == model_fingerprint(tiny_base)  # independent of where it lives
    (copy / ".cache").mkdir()
    (copy / ".cache" / "download.json").write_text("{}")
    assert model_fingerprint(copy) == model_fingerprint(tiny_base)  # download bookkeeping ignored
    config = json.loads((copy / "generation_config.json").read_text())
    (copy / "generation_config.json").write_text(json.dumps({**config, "temperature": 0.5}))
    assert model_fingerprint(copy) != model_fingerprint(tiny_base)
    with pytest.raises(FileNotFoundError):
        model_fingerprint(tmp_path / "empty-folder-that-does-not-exist")


@pytest.fixture(scope="module")
def base_model(tiny_base: Path) -> Qwen3Model:
    from mlx_speechd.engine.loader import load_model

    model, _ = load_model(str(tiny_base))
    return model


def decoder_of(model: Qwen3Model, window: int | None = 72) -> StreamingDecoder:
    return StreamingDecoder(model.decoder, window)


TEXTS = [("Say this sentence now.", "auto"), ("A second, longer sentence to speak in English.", "english")]


def test_precomputed_in_context_prompt_equals_mlx_audio(
    base_model: Qwen3Model, tiny_base: Path, library: Path, reference: tuple[Path, Path]
) -> None:
    model = base_model
    lib = VoiceLibrary(library)
    voice = lib.add(
        "alice", VoiceKind.CLONE, VoiceParams(ref_text=REF_TEXT), audio=load_reference(reference[0]).audio
    )
    fingerprint = model_fingerprint(tiny_base)
    decoder = decoder_of(model)
    computed = voice_prompt(model, decoder, voice, fingerprint)
    path = voice.prompt_path(fingerprint)
    assert computed.clone.in_context and path.is_file() and voice.prompt_files() == [path]
    assert computed.decoder is not None and computed.decoder.arrays
    saved = path.read_bytes()
    loaded = voice_prompt(model, decoder, voice, fingerprint)  # now read from the file, not recomputed
    assert path.read_bytes() == saved
    assert loaded.decoder is not None and set(loaded.decoder.arrays) == set(computed.decoder.arrays)
    for key, value in computed.decoder.arrays.items():
        assert mx.array_equal(loaded.decoder.arrays[key], value).item(), key

    ref_audio = mx.array(read_audio(voice.ref_audio_path))
    for text, language in TEXTS:
        fresh = model.prepare(text, language=language, ref_audio=ref_audio, ref_text=REF_TEXT)
        for prompt in (computed, loaded):
            ours = model.prepare_clone(text, prompt.clone, language=language)
            for name in ("embeds", "trailing", "pad", "ref_codes"):
                mine, theirs = getattr(ours, name), getattr(fresh, name)
                assert mine.dtype == theirs.dtype
                assert mx.array_equal(mine, theirs).item(), (text, language, name)


def test_precomputed_speaker_embedding_prompt_equals_mlx_audio(
    base_model: Qwen3Model, tiny_base: Path, library: Path, reference: tuple[Path, Path]
) -> None:
    model = base_model
    lib = VoiceLibrary(library)
    audio = load_reference(reference[0]).audio
    voice = lib.add("xv", VoiceKind.CLONE, VoiceParams(x_vector_only=True, ref_text=REF_TEXT), audio=audio)
    fingerprint = model_fingerprint(tiny_base)
    voice_prompt(model, decoder_of(model), voice, fingerprint)
    prompt = voice_prompt(model, decoder_of(model), voice, fingerprint)
    assert not prompt.clone.in_context and prompt.clone.ref_codes is None and prompt.decoder is None

    ref_audio = mx.array(read_audio(voice.ref_audio_path))
    for text, language in TEXTS:
        fresh = model.prepare(text, language=language, ref_audio=ref_audio)
        ours = model.prepare_clone(text, prompt.clone, language=language)
        assert ours.ref_codes is None and fresh.ref_codes is None
        for name in ("embeds", "trailing", "pad"):
            mine, theirs = getattr(ours, name), getattr(fresh, name)
            assert mine.dtype == theirs.dtype and mx.array_equal(mine, theirs).item(), (text, language)


def test_saved_prompts_are_tagged_with_model_reference_and_window(
    base_model: Qwen3Model, tmp_path: Path, reference: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    audio = load_reference(reference[0]).audio
    prompt = compute_voice_prompt(base_model, decoder_of(base_model), audio, REF_TEXT)
    digest = reference_digest(audio, REF_TEXT)
    path = tmp_path / "prompts" / "fp1.safetensors"
    save_prompt(path, prompt, "fp1", digest, 72)
    assert sorted(p.name for p in path.parent.iterdir()) == ["fp1.safetensors"]  # no temporary left
    loaded = load_prompt(path, "fp1", digest, 72)
    assert loaded is not None and loaded.clone.ref_codes is not None and prompt.clone.ref_codes is not None
    assert loaded.clone.ref_codes.dtype == prompt.clone.ref_codes.dtype and mx.array_equal(
        loaded.clone.ref_codes, prompt.clone.ref_codes
    )
    assert load_prompt(path, "fp2", digest, 72) is None  # another model
    assert load_prompt(path, "fp1", digest, 36) is None  # another decoder window
    assert load_prompt(path, "fp1", reference_digest(audio, "Another transcript."), 72) is None
    assert load_prompt(path, "fp1", reference_digest(audio, None), 72) is None  # x-vector only differs
    assert load_prompt(tmp_path / "absent.safetensors", "fp1", digest, 72) is None
    path.write_bytes(b"corrupt")
    with caplog.at_level(logging.WARNING):
        assert load_prompt(path, "fp1", digest, 72) is None
    assert any("unreadable voice prompt" in r.getMessage() for r in caplog.records)
