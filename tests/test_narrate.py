"""Narration (`mlx-speechd narrate`, `mlx_speechd.narrate`, `TTS.narrate`): the issue's scenario on
the tiny Base model whose cloned sentences end by EOS, with a clone voice from a 19 s reference.

Timings are printed (run with -s to see them), never asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf
from test_voices import REF_TEXT, write_reference
from test_wyoming import _audio, _launch, _stop, _synthesize, _wait_ready
from wyoming.tts import SynthesizeVoice

from mlx_speechd import load, narrate
from mlx_speechd.audio.pcm import SAMPLE_RATE
from mlx_speechd.cli import main as cli_main
from mlx_speechd.narration import ScriptError, Segment
from mlx_speechd.narration.runner import RETRY_SEED_OFFSET, NarrationResult

EXECUTABLE = str(Path(sys.executable).parent / "mlx-speechd")
IDS = tuple(f"{n:03d}" for n in range(1, 21))
PARAGRAPHS = (
    "Chapter one",
    *(f"Paragraph {n} tells part {n} of the story." for n in range(2, 16)),
    *(f"Point {n} of the list." for n in range(16, 21)),
)


def markdown_script(paragraphs: tuple[str, ...] = PARAGRAPHS) -> str:
    """20 segments in Markdown: a heading, 14 paragraphs with markup, a 5-item list."""
    heading, *rest = paragraphs
    body = [
        p.replace("part", "*part*").replace("story", "[story](https://example.com/story)") for p in rest[:14]
    ]
    items = [f"- {p.replace('list', '`list`')}" for p in rest[14:]]
    return f"# {heading}\n\n" + "\n\n".join(body) + "\n\n" + "\n".join(items) + "\n"


@dataclass(frozen=True)
class FirstRun:
    script: Path
    out: Path
    cache: Path
    result: NarrationResult
    seconds: float


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A voice library with two clone voices added by `mlx-speechd voice add`: "narrator" from a
    19 s ref.wav + ref.txt, "guest" from a 12 s one."""
    folder = tmp_path_factory.mktemp("narrate-voices")
    library = folder / "voices"
    (folder / "ref.txt").write_text(REF_TEXT + "\n", encoding="utf-8")
    for name, seconds in (("narrator", 19.0), ("guest", 12.0)):
        wav = write_reference(folder, seconds=seconds)
        argv = ["voice", "add", name, "--ref-audio", str(wav), "--ref-text-file", str(folder / "ref.txt")]
        assert cli_main([*argv, "--voices-dir", str(library)]) == 0
    return library


@pytest.fixture(scope="module")
def first_run(tiny_base_ends: Path, voices: Path, tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    root = tmp_path_factory.mktemp("narrate")
    script = root / "script.md"
    script.write_text(markdown_script(), encoding="utf-8")
    cache = root / "cache"
    started = time.perf_counter()
    result = narrate(script, root / "out", str(tiny_base_ends), load=_load(voices, cache), voice="narrator")
    return FirstRun(script, root / "out", cache, result, time.perf_counter() - started)


def _load(voices: Path, cache: Path) -> dict[str, object]:
    return {"voices_dir": voices, "audio_cache_dir": cache}


def _manifest(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_consistent(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    """Every file the manifest names exists with its checksum and duration; nothing else is there."""
    records = _manifest(folder)["segments"]
    for record in records:
        if record["file"] is None:
            continue
        path = folder / record["file"]
        assert _sha256(path) == record["sha256"], record["id"]
        assert round(sf.info(str(path)).frames / SAMPLE_RATE, 3) == record["duration"], record["id"]
    named = {record["file"] for record in records if record["file"]}
    assert {p.name for p in folder.iterdir()} == named | {"manifest.json"}
    return records


def _rerun(first: FirstRun, model: Path, voices: Path, out: Path) -> tuple[NarrationResult, float]:
    started = time.perf_counter()
    result = narrate(first.script, out, str(model), load=_load(voices, first.cache), voice="narrator")
    return result, time.perf_counter() - started


def test_twenty_segments_give_twenty_files_and_a_manifest(first_run: FirstRun) -> None:
    result = first_run.result
    assert result.made == IDS and result.kept == () and result.failed == ()
    assert result.model_loaded
    records = _check_consistent(first_run.out)
    assert [r["id"] for r in records] == list(IDS)
    assert [r["text"] for r in records] == list(PARAGRAPHS)  # markup is not read aloud
    for record in records:
        assert record["file"] == f"{record['id']}.wav"
        assert record["voice"] == "narrator"
        assert record["ok"] and record["finish_reason"] == "eos" and not record["retried"]
        assert not record["from_cache"] and record["cached_sentences"] == 0
        assert record["duration"] > 0
    print(f"\nfirst run: 20 segments in {first_run.seconds:.2f}s")


def test_rerun_keeps_every_file_and_does_not_load_the_model(
    first_run: FirstRun, tiny_base_ends: Path, voices: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run.out, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result, seconds = _rerun(first_run, tiny_base_ends, voices, out)
    assert result.kept == IDS and result.made == () and not result.model_loaded
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".wav"} == {
        name: data for name, data in before.items() if name.endswith(".wav")
    }
    assert _manifest(out)["segments"] == _manifest(first_run.out)["segments"]
    print(f"\nrerun, every file kept: {seconds:.3f}s, {first_run.seconds / seconds:.0f}x faster")


def test_a_fresh_folder_is_made_from_the_audio_cache_without_the_model(
    first_run: FirstRun, tiny_base_ends: Path, voices: Path, tmp_path: Path
) -> None:
    result, seconds = _rerun(first_run, tiny_base_ends, voices, tmp_path / "fresh")
    assert result.made == IDS and result.from_cache == IDS and not result.model_loaded
    for record in _check_consistent(tmp_path / "fresh"):
        assert record["from_cache"] and record["cached_sentences"] == record["sentences"] == 1
        assert (tmp_path / "fresh" / record["file"]).read_bytes() == (
            first_run.out / record["file"]
        ).read_bytes()
    print(f"\nrerun into an empty folder, all from the audio cache: {seconds:.3f}s")


def test_without_the_audio_cache_a_fresh_folder_needs_the_model(
    first_run: FirstRun, tiny_base_ends: Path, voices: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.md"
    script.write_text("# Chapter one\n", encoding="utf-8")  # the first run's first segment
    load = {"voices_dir": voices, "audio_cache_dir": first_run.cache, "audio_cache": False}
    result = narrate(script, tmp_path / "out", str(tiny_base_ends), load=load, voice="narrator")
    assert result.made == ("001",) and result.from_cache == () and result.model_loaded


def test_editing_one_paragraph_remakes_only_it(
    first_run: FirstRun, tiny_base_ends: Path, voices: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run.out, out)
    # A sentence added: the paragraph's first sentence still comes from the audio cache.
    new_text = f"{PARAGRAPHS[6]} It has a new ending."
    edited = (*PARAGRAPHS[:6], new_text, *PARAGRAPHS[7:])
    script = tmp_path / "script.md"
    script.write_text(markdown_script(edited), encoding="utf-8")
    result = narrate(script, out, str(tiny_base_ends), load=_load(voices, first_run.cache), voice="narrator")
    assert result.made == ("007",) and result.kept == tuple(i for i in IDS if i != "007")
    assert result.model_loaded
    records = {r["id"]: r for r in _check_consistent(out)}
    assert records["007"]["text"] == new_text
    assert not records["007"]["from_cache"]
    assert records["007"]["sentences"] == 2 and records["007"]["cached_sentences"] == 1
    assert records["007"]["sha256"] != _manifest(first_run.out)["segments"][6]["sha256"]
    for segment_id in result.kept:
        assert (out / f"{segment_id}.wav").read_bytes() == (first_run.out / f"{segment_id}.wav").read_bytes()


def test_json_lines_from_stdin_with_per_segment_voices(
    tiny_base_ends: Path, voices: Path, tmp_path: Path
) -> None:
    lines = [
        {"id": "intro", "text": "Hello there.", "voice": "guest"},
        {"id": "intro-narrator", "text": "Hello there."},
        {"id": "seeded", "text": "One, two, three.", "seed": 5},
    ]
    out = tmp_path / "out"
    command = [EXECUTABLE, "narrate", "-", "--out-dir", str(out), "--model", str(tiny_base_ends)]
    command += ["--voices-dir", str(voices), "--voice", "narrator", "--format", "flac", "--quiet"]
    joined_file = tmp_path / "all.wav"
    command += ["--join", str(joined_file), "--pause", "0.25", "--audio-cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(
        command,
        input="\n".join(json.dumps(line) for line in lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "segments:" not in done.stderr  # --quiet: no summary
    manifest = _manifest(out)
    records = {r["id"]: r for r in _check_consistent(out)}
    assert list(records) == ["intro", "intro-narrator", "seeded"]
    assert [r["voice"] for r in records.values()] == ["guest", "narrator", "narrator"]
    assert [r["file"] for r in records.values()] == ["intro.flac", "intro-narrator.flac", "seeded.flac"]
    assert records["seeded"]["seed"] == 5 and records["intro"]["seed"] is None
    # The same text in two voices is two different recordings.
    assert records["intro"]["sha256"] != records["intro-narrator"]["sha256"]
    joined = manifest["joined"]
    assert joined["file"] == str(joined_file) and joined["pause"] == 0.25
    assert _sha256(joined_file) == joined["sha256"]
    parts = [sf.read(str(out / r["file"]), dtype="int16")[0] for r in records.values()]
    audio, _ = sf.read(str(joined_file), dtype="int16")
    gap = round(0.25 * SAMPLE_RATE)
    assert len(audio) == sum(len(part) for part in parts) + 2 * gap
    assert (audio[: len(parts[0])] == parts[0]).all() and not audio[len(parts[0]) : len(parts[0]) + gap].any()
    assert (audio[-len(parts[2]) :] == parts[2]).all()


def _narrate_process(
    script: Path, out: Path, model: Path, voices: Path, *extra: str
) -> subprocess.Popen[str]:
    command = [EXECUTABLE, "narrate", str(script), "--out-dir", str(out), "--model", str(model)]
    command += ["--voices-dir", str(voices), "--voice", "narrator", "--no-audio-cache", "--quiet", *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _interrupt(process: subprocess.Popen[str]) -> str:
    """SIGINT; the process's stderr once it has ended."""
    assert process.poll() is None, "the narration ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return stderr


def test_ctrl_c_while_speaking_leaves_a_consistent_manifest(
    tiny_base_ends: Path, voices: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.md"
    script.write_text(markdown_script(), encoding="utf-8")
    out = tmp_path / "out"
    process = _narrate_process(script, out, tiny_base_ends, voices)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if (out / "manifest.json").is_file() and len(_manifest(out)["segments"]) >= 2:
                break
            time.sleep(0.05)
        stderr = _interrupt(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr
    records = _check_consistent(out)  # no half-written file: only the files the manifest names
    assert 2 <= len(records) < 20 and all(r["ok"] for r in records)
    # A rerun keeps what was done and makes the rest.
    result = narrate(
        script, out, str(tiny_base_ends), load={"voices_dir": voices, "audio_cache": False}, voice="narrator"
    )
    kept = tuple(r["id"] for r in records)  # segments run max_batch at once: any may have finished
    assert result.kept == kept
    assert result.made == tuple(i for i in IDS if i not in kept) and not result.failed
    assert len(_check_consistent(out)) == 20


def test_ctrl_c_while_the_model_loads(tiny_base_ends: Path, voices: Path, tmp_path: Path) -> None:
    """SIGINT in the middle of loading the model (mlx-audio's load has returned: its codec print is logged
    at DEBUG; the engine still describes and warms it up): the engine
    thread is stopped before the process exits (it used to abort in MLX's C++ teardown)."""
    script = tmp_path / "script.md"
    script.write_text(markdown_script(), encoding="utf-8")
    out = tmp_path / "out"
    process = _narrate_process(script, out, tiny_base_ends, voices, "--debug")  # mlx-audio's prints: DEBUG
    try:
        assert process.stderr is not None
        seen = []
        while line := process.stderr.readline():
            seen.append(line)
            if "while loading: Loaded speech tokenizer" in line:
                break
        stderr = "".join(seen) + _interrupt(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-3000:]
    assert _check_consistent(out) == []  # the manifest is written before the model loads


def test_a_segment_a_guard_ended_is_retried_once_and_reported(
    tiny_custom_voice: Path, tmp_path: Path
) -> None:
    """The never-EOS model runs every sentence into the frame cap: retried with another seed,
    then recorded as failed (no file) and the exit status says so."""
    script = tmp_path / "script.txt"
    script.write_text("Hi.\n", encoding="utf-8")
    out = tmp_path / "out"
    command = [EXECUTABLE, "narrate", str(script), "--out-dir", str(out), "--model", str(tiny_custom_voice)]
    done = subprocess.run(
        [*command, "--voice", "ryan", "--seed", "3", "--no-audio-cache"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "failed segments: 001" in done.stderr
    assert "trying once more with seed" in done.stderr
    (record,) = _check_consistent(out)
    assert record["retried"] and not record["ok"]
    assert record["file"] is None and record["sha256"] is None
    assert record["seed"] == 3 + RETRY_SEED_OFFSET
    assert record["finish_reason"] != "eos"


def test_bad_input_and_output_folder_are_reported_before_the_model_loads(
    tiny_base_ends: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    missing = tmp_path / "missing.md"
    assert (
        cli_main(
            ["narrate", str(missing), "--out-dir", str(tmp_path / "out"), "--model", str(tiny_base_ends)]
        )
        == 2
    )
    assert "missing.md: cannot read" in capsys.readouterr().err
    script = tmp_path / "script.md"
    script.write_text("Hello.\n", encoding="utf-8")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert (
        cli_main(["narrate", str(script), "--out-dir", str(blocker / "out"), "--model", str(tiny_base_ends)])
        == 2
    )
    assert "cannot create the folder" in capsys.readouterr().err
    assert not [r for r in caplog.records if r.name == "mlx_speechd.engine.engine"]  # no model loaded


def test_tts_narrate_takes_texts_and_segments(tiny_base_ends: Path, voices: Path, tmp_path: Path) -> None:
    with load(
        str(tiny_base_ends), voices_dir=voices, audio_cache_dir=tmp_path / "cache", warmup=False
    ) as tts:
        result = tts.narrate(
            ["Hello there.", Segment("last", "Goodbye now.", seed=2)], tmp_path / "out", voice="narrator"
        )
        assert result.model_loaded
        assert [r.id for r in result.records] == ["001", "last"] and not result.failed
        assert result.records[1].seed == 2
        with pytest.raises(ScriptError, match="repeats"):
            tts.narrate(["One.", Segment("001", "Two.")], tmp_path / "again")
    assert [r["id"] for r in _check_consistent(tmp_path / "out")] == ["001", "last"]


def test_a_daemon_and_a_narration_share_the_audio_cache(tiny_custom_voice_ends: Path, tmp_path: Path) -> None:
    """A Wyoming daemon and a narration process use one cache folder at the same time (both
    writing); the daemon then replays, byte for byte, a sentence the narration made."""
    cache = tmp_path / "cache"
    daemon = _launch(tiny_custom_voice_ends, tmp_path, "--audio-cache-dir", str(cache))
    try:
        _wait_ready(daemon)
        script = tmp_path / "script.txt"
        script.write_text("Made by the narration.\n\nAnother paragraph.\n", encoding="utf-8")
        out = tmp_path / "out"
        command = [
            EXECUTABLE,
            "narrate",
            str(script),
            "--out-dir",
            str(out),
            "--model",
            str(tiny_custom_voice_ends),
        ]
        narration = subprocess.Popen(
            [*command, "--voice", "ryan", "--audio-cache-dir", str(cache), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        voice = SynthesizeVoice(name="ryan")

        async def speak(text: str) -> bytes:
            async with daemon.client() as client:
                return _audio(await _synthesize(client, text, voice))

        spoken = 0
        while narration.poll() is None:  # the daemon writes its own sentences meanwhile
            asyncio.run(speak(f"The daemon speaks at {time.monotonic():.3f}."))
            spoken += 1
        assert narration.wait() == 0, narration.stderr.read() if narration.stderr else ""
        assert spoken >= 1
        print(f"\n{spoken} daemon requests while the narration ran")
        records = _check_consistent(out)
        assert all(r["ok"] and not r["from_cache"] for r in records)
        narrated, _ = sf.read(str(out / records[0]["file"]), dtype="<i2")
        # Unseeded: only the cache gives the same audio twice.
        assert asyncio.run(speak("Made by the narration.")) == narrated.tobytes()
    finally:
        _stop(daemon)


def test_narrate_takes_the_daemons_config_file_and_variables_under_its_command_line(
    tiny_base_ends: Path,
    voices: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = tmp_path / "script.txt"
    script.write_text("Hello from the config file.\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        f'model = ["{tiny_base_ends}"]\nvoice = "guest"\nvoices_dir = "{voices}"\n'
        f'audio_cache_dir = "{tmp_path / "cache"}"\nuri = ["tcp://127.0.0.1:10200"]  # the daemon\'s own\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("MLX_SPEECHD_CONFIG", raising=False)
    monkeypatch.delenv("MLX_SPEECHD_VOICES_DIR")  # the tests' own library: the environment would win

    def voice_of(out: str, *extra: str) -> str:
        argv = ["narrate", str(script), "--out-dir", str(tmp_path / out), "--config", str(config), *extra]
        assert cli_main([*argv, "--quiet"]) == 0, capsys.readouterr().err
        return str(_manifest(tmp_path / out)["segments"][0]["voice"])

    assert voice_of("from-file") == "guest"  # model, voice and library all from the file
    monkeypatch.setenv("MLX_SPEECHD_VOICE", "narrator")
    assert voice_of("from-env") == "narrator"  # the environment over the file
    assert voice_of("from-argv", "--voice", "guest") == "guest"  # the command line over both

    config.write_text('voise = "guest"\n', encoding="utf-8")
    argv = ["narrate", str(script), "--out-dir", str(tmp_path / "typo"), "--config", str(config)]
    assert cli_main(argv) == 2
    assert "unknown setting 'voise'" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
