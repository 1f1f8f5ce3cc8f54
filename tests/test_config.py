"""Settings precedence: command line > environment > config file > defaults."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlx_speechd.cli import build_parser
from mlx_speechd.config import ConfigError, apply_defaults, format_config


def parse(
    argv: list[str], env: dict[str, str], config: Path | None = None
) -> tuple[argparse.ArgumentParser, argparse.Namespace, dict[str, str]]:
    parser = build_parser()
    sources = apply_defaults(parser, str(config) if config else None, env)
    return parser, parser.parse_args(argv), sources


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mlx-speechd.toml"
    path.write_text(
        'model = "/models/from-file"\nvoice = "vivian"\nsentence_pause = 0.2\n'
        'uri = ["tcp://0.0.0.0:10200"]\nzeroconf = true\ndebug = true\n'
    )
    return path


def test_file_then_environment_then_command_line(config_file: Path) -> None:
    _, args, _ = parse([], {}, config_file)
    assert (args.model, args.voice, args.sentence_pause) == ("/models/from-file", "vivian", 0.2)
    assert args.uri == ["tcp://0.0.0.0:10200"] and args.zeroconf == "mlx-speechd" and args.debug
    env = {"MLX_SPEECHD_VOICE": "aiden", "MLX_SPEECHD_DEBUG": "no", "MLX_SPEECHD_CHUNK_FRAMES": "6"}
    _, args, sources = parse([], env, config_file)
    assert (args.voice, args.debug, args.chunk_frames) == ("aiden", False, 6)
    assert sources["voice"] == "environment MLX_SPEECHD_VOICE"
    _, args, _ = parse(["--voice", "ryan", "--uri", "tcp://127.0.0.1:1"], env, config_file)
    assert args.voice == "ryan"
    assert args.uri == ["tcp://127.0.0.1:1"]  # replaces, not extends, the file's list


def test_config_file_from_the_environment(config_file: Path) -> None:
    _, args, _ = parse([], {"MLX_SPEECHD_CONFIG": str(config_file)})
    assert args.model == "/models/from-file"


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("model = ", {}, "not valid TOML"),
        ('colour = "blue"\n', {}, "unknown setting 'colour'"),
        ("debug = 3\n", {}, "true or false"),
        ('cache_policy = "sometimes"\n', {}, "not one of"),
        ("", {"MLX_SPEECHD_CHUNK_FRAMES": "many"}, "MLX_SPEECHD_CHUNK_FRAMES"),
        ("", {"MLX_SPEECHD_STDIO": "perhaps"}, "MLX_SPEECHD_STDIO"),
    ],
)
def test_bad_settings_are_clear_errors(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        parse([], env, path)


def test_printed_config_is_a_config_file_giving_the_same_settings(config_file: Path, tmp_path: Path) -> None:
    parser, args, sources = parse(["--chunk-frames", "8"], {"MLX_SPEECHD_SEED": "4"}, config_file)
    printed = format_config(parser, args, sources)
    assert "# environment MLX_SPEECHD_SEED" in printed and "# command line" in printed
    assert tomllib.loads(printed)["chunk_frames"] == 8
    again = tmp_path / "printed.toml"
    again.write_text(printed)
    _, reparsed, _ = parse([], {}, again)
    for key in tomllib.loads(printed):
        assert getattr(reparsed, key) == getattr(args, key), key


def test_print_config_and_config_errors_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "MLX_SPEECHD_VOICE": "serena"}
    result = subprocess.run(
        [sys.executable, "-m", "mlx_speechd", "--print-config"], capture_output=True, env=env, check=False
    )
    assert result.returncode == 0
    assert tomllib.loads(result.stdout.decode())["voice"] == "serena"
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "mlx_speechd", "--config", str(bad), "hi"], capture_output=True, check=False
    )
    assert result.returncode == 2
    assert "unknown setting 'nonsense'" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
