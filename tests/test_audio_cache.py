"""The audio cache on its own: keys, storage, verification, eviction, sharing between processes."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlx_speechd.audio.pcm import float_to_pcm16
from mlx_speechd.cache import AudioCache, CacheKey, sampling_items
from mlx_speechd.cache.cli import main as cache_main
from mlx_speechd.cli import main as cli_main

SAMPLING = {"temperature": 0.9, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.05}
KEY = CacheKey(
    model="model-fingerprint",
    voice="voice-fingerprint",
    language="english",
    instruct=None,
    text="Hello there.",
    seed=7,
    sampling=sampling_items(SAMPLING),
    decoder_window=72,
)


def _noise(samples: int, seed: int = 0) -> np.ndarray:
    """int16 noise: FLAC cannot shrink it much, so entry sizes are predictable."""
    return (np.random.default_rng(seed).normal(size=samples) * 4000).astype(np.int16)


def _key(text: str) -> CacheKey:
    return dataclasses.replace(KEY, text=text)


# --- keys ---------------------------------------------------------------------------------------

CHANGED_PARTS = {
    "model": "another-model",
    "voice": "another-voice",
    "language": "german",
    "instruct": "whisper",
    "text": "Hello there!",
    "seed": 8,
    "sampling": sampling_items({**SAMPLING, "temperature": 0.8}),
    "decoder_window": 64,
    "code_version": KEY.code_version + 1,
}


def test_key_parts_cover_every_field() -> None:
    assert set(CHANGED_PARTS) == {f.name for f in dataclasses.fields(CacheKey)}


@pytest.mark.parametrize("part", sorted(CHANGED_PARTS))
def test_changing_any_key_part_misses(tmp_path: Path, part: str) -> None:
    changed = dataclasses.replace(KEY, **{part: CHANGED_PARTS[part]})
    assert changed.digest() != KEY.digest()
    with AudioCache(tmp_path) as cache:
        assert cache.put(KEY, _noise(4800), 3, "eos")
        assert cache.get(changed) is None
        assert cache.get(KEY) is not None


def test_key_digest_is_stable_and_canonical() -> None:
    reordered = dataclasses.replace(KEY, sampling=sampling_items(dict(reversed(SAMPLING.items()))))
    assert reordered.digest() == KEY.digest()
    assert dataclasses.replace(KEY).digest() == KEY.digest()
    assert len(KEY.digest()) == 64
    # Unseeded is its own key, apart from every seed (0 included).
    assert dataclasses.replace(KEY, seed=None).digest() != dataclasses.replace(KEY, seed=0).digest()


# --- storing and reading ----------------------------------------------------------------------


def test_int16_round_trip_is_exact_and_compact(tmp_path: Path) -> None:
    speechlike = (np.sin(np.arange(72000) / 9.0) * 12000).astype(np.int16)
    with AudioCache(tmp_path) as cache:
        assert cache.put(KEY, speechlike, 37, "eos")
        hit = cache.get(KEY)
        assert hit is not None
        assert hit.pcm == speechlike.tobytes()
        assert (hit.frames, hit.finish_reason) == (37, "eos")
        # FLAC: a smooth signal takes far less than its 144 kB of raw PCM.
        assert cache.info().size_bytes < 100_000


def test_float_audio_is_stored_as_its_pcm16(tmp_path: Path) -> None:
    audio = np.random.default_rng(1).uniform(-1.2, 1.2, 2400).astype(np.float32)
    with AudioCache(tmp_path) as cache:
        assert cache.put(KEY, audio, 1, "eos")
        hit = cache.get(KEY)
        assert hit is not None and hit.pcm == float_to_pcm16(audio)


def test_pcm_bytes_and_empty_audio(tmp_path: Path) -> None:
    with AudioCache(tmp_path) as cache:
        assert cache.put(KEY, _noise(100).tobytes(), 0, "eos")
        hit = cache.get(KEY)
        assert hit is not None and hit.pcm == _noise(100).tobytes()
        assert cache.put(_key("empty"), b"", 0, "eos")
        empty = cache.get(_key("empty"))
        assert empty is not None and empty.pcm == b""


@pytest.mark.parametrize("reason", ["frame-cap", "silence", "repetition", "cancelled"])
def test_only_eos_ended_sentences_are_stored(tmp_path: Path, reason: str) -> None:
    with AudioCache(tmp_path) as cache:
        assert not cache.put(KEY, _noise(4800), 3, reason)
        assert cache.get(KEY) is None
        assert cache.info().entries == 0


def test_info_and_clear(tmp_path: Path) -> None:
    with AudioCache(tmp_path, size_limit_bytes=123_456_789) as cache:
        for index in range(3):
            cache.put(_key(f"sentence {index}"), _noise(48000, index), 25, "eos")
        info = cache.info()
        assert (info.folder, info.entries, info.size_limit) == (tmp_path, 3, 123_456_789)
        assert info.size_bytes > 3 * 48000 * 2 * 0.8  # noise hardly compresses
        assert cache.clear() == 3
        assert cache.info().entries == 0
        assert cache.get(_key("sentence 0")) is None


def test_bad_size_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        AudioCache(Path("unused"), size_limit_bytes=0)


# --- verification -------------------------------------------------------------------------------


def _value_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.val"))


def test_truncated_entry_file_is_a_logged_miss_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with AudioCache(tmp_path) as cache:
        cache.put(KEY, _noise(48000), 25, "eos")  # > 32 kB: stored as a file
        (value,) = _value_files(tmp_path)
        value.write_bytes(value.read_bytes()[: value.stat().st_size // 2])
        with caplog.at_level(logging.WARNING):
            assert cache.get(KEY) is None
        assert "removing a bad entry" in caplog.text
        assert KEY not in cache
        assert _value_files(tmp_path) == []
        # The next put stores it afresh.
        assert cache.put(KEY, _noise(48000), 25, "eos")
        assert cache.get(KEY) is not None


def _set_db_value(folder: Path, value: bytes, mode: int | None = None) -> None:
    with sqlite3.connect(folder / "cache.db") as db:
        if mode is None:
            db.execute("UPDATE Cache SET value = ?", (value,))
        else:
            db.execute("UPDATE Cache SET value = ?, mode = ?", (value, mode))


def test_altered_inline_entry_is_a_logged_miss_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pcm = _noise(2400)
    with AudioCache(tmp_path) as cache:
        cache.put(KEY, pcm, 1, "eos")  # small: stored inside the database
        assert _value_files(tmp_path) == []
    with sqlite3.connect(tmp_path / "cache.db") as db:
        (blob,) = db.execute("SELECT value FROM Cache").fetchone()
    altered = bytearray(blob)
    altered[-100] ^= 0xFF  # one flipped byte in the FLAC stream
    _set_db_value(tmp_path, bytes(altered))
    with AudioCache(tmp_path) as cache, caplog.at_level(logging.WARNING):
        assert cache.get(KEY) is None
        assert "removing a bad entry" in caplog.text
        assert cache.info().entries == 0


def test_entry_under_another_key_is_refused(tmp_path: Path) -> None:
    other = _key("other")
    with AudioCache(tmp_path) as cache:
        cache.put(other, _noise(2400), 1, "eos")
        cache.put(KEY, _noise(2400, 1), 1, "eos")
    with sqlite3.connect(tmp_path / "cache.db") as db:
        (blob,) = db.execute("SELECT value FROM Cache WHERE key = ?", (other.digest(),)).fetchone()
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (blob, KEY.digest()))
    with AudioCache(tmp_path) as cache:
        assert cache.get(KEY) is None
        assert cache.get(other) is not None


class _Planted:
    """Unpickling this would create a file: the cache must never unpickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_a_planted_pickle_is_never_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "unpickled"
    folder = tmp_path / "cache"
    with AudioCache(folder) as cache:
        cache.put(KEY, _noise(2400), 1, "eos")
    _set_db_value(folder, pickle.dumps(_Planted(str(marker))), mode=4)  # diskcache's MODE_PICKLE
    with AudioCache(folder) as cache, caplog.at_level(logging.WARNING):
        assert cache.get(KEY) is None
        assert not marker.exists()
        assert KEY not in cache


def test_a_planted_file_name_outside_the_folder_is_neither_read_nor_removed(tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    folder = tmp_path / "cache"
    with AudioCache(folder) as cache:
        cache.put(KEY, _noise(48000), 25, "eos")
    with sqlite3.connect(folder / "cache.db") as db:
        db.execute("UPDATE Cache SET filename = ?", ("../precious.txt",))
    with AudioCache(folder) as cache:
        assert cache.get(KEY) is None
        assert KEY not in cache
    assert outside.read_text() == "keep me"


# --- size bound ---------------------------------------------------------------------------------


def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    keys = [_key(f"sentence {i}") for i in range(13)]
    with AudioCache(tmp_path, size_limit_bytes=10**9) as cache:
        for index, key in enumerate(keys[:12]):
            cache.put(key, _noise(48000, index), 25, "eos")  # ~85 kB each
        twelve = cache.info().size_bytes
    # Reopened with a bound that holds these twelve but not a thirteenth.
    with AudioCache(tmp_path, size_limit_bytes=twelve + 40_000) as cache:
        assert cache.get(keys[0]) is not None  # the oldest write becomes the most recent use
        cache.put(keys[12], _noise(48000, 12), 25, "eos")
        info = cache.info()
        assert info.size_bytes <= twelve + 40_000
        assert info.entries < 12
        assert cache.get(keys[0]) is not None
        assert cache.get(keys[12]) is not None
        assert cache.get(keys[1]) is None  # the least recently used went first


# --- several processes --------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import dataclasses, sys
    from pathlib import Path
    import numpy as np
    from mlx_speechd.cache import AudioCache, CacheKey

    folder, worker = Path(sys.argv[1]), int(sys.argv[2])
    base = CacheKey("m", "v", "english", None, "", None, (), None)
    with AudioCache(folder) as cache:
        for index in range(40):
            # Half the keys are shared: both processes write them at about the same time.
            name = f"shared {index}" if index % 2 else f"worker {worker} {index}"
            samples = 24000 if index % 4 == 1 else 1200  # files and inline values
            pcm = (np.sin(np.arange(samples) * (index + 1) / 50) * 9000).astype(np.int16)
            assert cache.put(dataclasses.replace(base, text=name), pcm, index, "eos")
    """
)


def test_two_processes_writing_at_once(tmp_path: Path) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(worker)]) for worker in (1, 2)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    base = CacheKey("m", "v", "english", None, "", None, (), None)
    names = {f"shared {i}" for i in range(1, 40, 2)}
    names |= {f"worker {w} {i}" for w in (1, 2) for i in range(0, 40, 2)}
    with AudioCache(tmp_path) as cache:
        assert cache.info().entries == len(names) == 60
        for name in names:
            index = int(name.rsplit(" ", 1)[1])
            hit = cache.get(dataclasses.replace(base, text=name))
            assert hit is not None, name
            samples = 24000 if index % 4 == 1 else 1200
            expected = (np.sin(np.arange(samples) * (index + 1) / 50) * 9000).astype(np.int16)
            assert hit.pcm == expected.tobytes()
            assert hit.frames == index


# --- command line -------------------------------------------------------------------------------


def test_cache_info_and_clear_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "audio"
    assert cache_main(["info", "--audio-cache-dir", str(folder)]) == 0
    assert "entries: 0" in capsys.readouterr().out
    assert not folder.exists()  # looking creates nothing
    with AudioCache(folder, size_limit_bytes=50_000_000) as cache:
        cache.put(KEY, _noise(48000), 25, "eos")
        cache.put(_key("two"), _noise(480), 0, "eos")
    assert cli_main(["cache", "info", "--audio-cache-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "entries: 2" in out and "limit: 50000000 bytes" in out
    assert cli_main(["cache", "clear", "--audio-cache-dir", str(folder)]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    with AudioCache(folder, size_limit_bytes=None) as cache:
        assert cache.info().entries == 0
        assert cache.size_limit == 50_000_000  # looking and clearing keep a writer's limit
