"""Settings precedence: command line > environment > config file > defaults."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlx_speechd.cli import UsageError, build_parser, daemon_settings, engine_config, oneshot_settings
from mlx_speechd.config import ConfigError, apply_defaults, format_config, unknown_variables
from mlx_speechd.settings import (
    DaemonSettings,
    EofPolicy,
    OutputSettings,
    SpeechDefaults,
    StdioSettings,
    WyomingSettings,
)


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
    assert (args.model, args.voice, args.sentence_pause) == (["/models/from-file"], "vivian", 0.2)
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
    assert args.model == ["/models/from-file"]


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
    # --help still answers (the broken file is reported beside it), for the daemon and for narrate.
    for command in ([], ["narrate"]):
        result = subprocess.run(
            [sys.executable, "-m", "mlx_speechd", *command, "--config", str(bad), "--help"],
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0
        assert result.stdout.decode().startswith("usage: mlx-speechd")
        assert "unknown setting 'nonsense'" in result.stderr.decode()


# ---- layering, one setting kind at a time (no subprocess) ----


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(content)
    return path


def test_each_layer_wins_over_the_one_below(tmp_path: Path) -> None:
    path = write(tmp_path, "seed = 1\nlead_in = 0.1\nsentence_pause = 0.2\n")
    env = {"MLX_SPEECHD_LEAD_IN": "0.3", "MLX_SPEECHD_SENTENCE_PAUSE": "0.4"}
    _, args, sources = parse(["--sentence-pause", "0.5"], env, path)
    assert (args.seed, args.lead_in, args.sentence_pause, args.chunk_frames) == (1, 0.3, 0.5, 10)
    assert sources["seed"] == f"config file {path}"
    assert sources["lead_in"] == "environment MLX_SPEECHD_LEAD_IN"
    assert "chunk_frames" not in sources


def test_values_are_converted_to_the_options_types(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'chunk-frames = 6\nsentence_pause = "0.25"\ncache_policy = "limit"\nstdio = false\n'
    )
    _, args, _ = parse([], {"MLX_SPEECHD_SEED": "12", "MLX_SPEECHD_NO_WARMUP": "On"}, path)
    assert (args.chunk_frames, args.sentence_pause, args.cache_policy) == (6, 0.25, "limit")
    assert (args.seed, args.no_warmup, args.stdio) == (12, True, False)


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ('chunk_frames = "six"\n', {}, "'chunk_frames' in .*: invalid value 'six'"),
        ("seed = 1.5\n", {}, "'seed' in .*: invalid value '1.5'"),
        ('voice = ["ryan", "aiden"]\n', {}, "'voice' in .* must be a single value"),
        ("[voice]\nname = 1\n", {}, "'voice' in .* must be a single value"),
        ('stdio = "yes"\n', {}, "'stdio' in .* must be true or false"),
        ('stdio_eof = "later"\n', {}, "'later' is not one of finish, cancel"),
        ('text = "hello"\n', {}, "unknown setting 'text'"),
        ('config = "other.toml"\n', {}, "unknown setting 'config'"),
        ("print_config = true\n", {}, "unknown setting 'print_config'"),
        ("", {"MLX_SPEECHD_SEED": "abc"}, "MLX_SPEECHD_SEED: invalid value 'abc'"),
        ("", {"MLX_SPEECHD_CACHE_POLICY": "never"}, "MLX_SPEECHD_CACHE_POLICY: 'never' is not one of"),
        ("", {"MLX_SPEECHD_DEBUG": "2"}, "MLX_SPEECHD_DEBUG must be 1/0, true/false"),
    ],
)
def test_type_errors_name_the_setting_and_where_it_came_from(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse([], env, write(tmp_path, content))


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml"):
        parse([], {}, tmp_path / "missing.toml")


def test_unknown_keys_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse([], {}, write(tmp_path, "sentence_silence = 0.2\n"))
    assert "unknown setting 'sentence_silence'" in str(caught.value)
    assert "sentence_pause" in str(caught.value) and "max_connections" in str(caught.value)


def test_environment_variables_of_non_settings_are_ignored() -> None:
    _, args, sources = parse([], {"MLX_SPEECHD_TEXT": "hello", "MLX_SPEECHD_PRINT_CONFIG": "1"})
    assert args.text == [] and not args.print_config and sources == {}


def test_list_options(tmp_path: Path) -> None:
    _, args, _ = parse([], {}, write(tmp_path, 'uri = "tcp://0.0.0.0:1"\n'))
    assert args.uri == ["tcp://0.0.0.0:1"]  # a single string is a list of one
    env = {"MLX_SPEECHD_URI": "tcp://127.0.0.1:1, unix:///tmp/a.sock  tcp://127.0.0.1:2"}
    _, args, _ = parse([], env, write(tmp_path, 'uri = ["tcp://0.0.0.0:1"]\n'))
    assert args.uri == ["tcp://127.0.0.1:1", "unix:///tmp/a.sock", "tcp://127.0.0.1:2"]
    _, args, _ = parse(["--uri", "tcp://h:3", "--uri", "tcp://h:4"], env)
    assert args.uri == ["tcp://h:3", "tcp://h:4"]  # the command line replaces, then appends
    _, args, _ = parse([], {"MLX_SPEECHD_URI": " "})
    assert args.uri == []


@pytest.mark.parametrize(
    ("content", "env", "expected"),
    [
        ("zeroconf = true\n", {}, "mlx-speechd"),
        ("zeroconf = false\n", {}, None),
        ('zeroconf = "kitchen"\n', {}, "kitchen"),
        ("", {"MLX_SPEECHD_ZEROCONF": "yes"}, "mlx-speechd"),
        ("", {"MLX_SPEECHD_ZEROCONF": "hall"}, "hall"),
    ],
)
def test_an_option_with_an_optional_value(
    tmp_path: Path, content: str, env: dict[str, str], expected: str | None
) -> None:
    _, args, _ = parse([], env, write(tmp_path, content))
    assert args.zeroconf == expected


def test_the_cli_builds_typed_settings_from_the_layers(tmp_path: Path) -> None:
    path = write(tmp_path, 'uri = ["tcp://0.0.0.0:10200", "unix:///tmp/s.sock"]\nzeroconf = true\nseed = 3\n')
    env = {"MLX_SPEECHD_DEVICE": "2", "MLX_SPEECHD_STDIO_EOF": "cancel", "MLX_SPEECHD_LEAD_IN": "0.1"}
    _, args, _ = parse(["--stdio", "--sentence-pause", "0.2"], env, path)
    assert daemon_settings(args) == DaemonSettings(
        speech=SpeechDefaults(seed=3, sentence_pause=0.2, lead_in=0.1),
        wyoming=WyomingSettings(("tcp://0.0.0.0:10200", "unix:///tmp/s.sock"), "mlx-speechd", 16),
        stdio=StdioSettings(EofPolicy.CANCEL, device=2),
    )
    assert daemon_settings(args).wyoming.zeroconf_uri == "tcp://0.0.0.0:10200"  # type: ignore[union-attr]
    _, args, _ = parse(["-o", "out.wav", "--device", "USB Audio", "Hello", "there."], {})
    settings = oneshot_settings(args)
    assert settings.text == ("Hello", "there.")
    assert settings.output == OutputSettings(wav="out.wav", device="USB Audio")
    assert not settings.output.plays


# ---- ranges: the command line, the file and the environment refuse what stdio refuses ----


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--lead-in", "-1"),
        ("--sentence-pause", "-0.5"),
        ("--sentence-pause", "61"),
        ("--seed", "-3"),
        ("--first-chunk-frames", "0"),
        ("--chunk-frames", "0"),
        ("--cache-limit-mb", "-1"),
        ("--max-text-chars", "0"),
        ("--max-sentence-chars", "0"),
        ("--max-connections", "0"),
        ("--idle-timeout", "0"),
        ("--event-timeout", "-1"),
        ("--stall-timeout", "0"),
        ("--max-unsent-seconds", "0"),
        ("--lead-in", "nan"),
    ],
)
def test_numeric_options_out_of_range_are_refused(option: str, value: str) -> None:
    with pytest.raises(UsageError, match=f"argument {option}: .*out of range"):
        parse([f"{option}={value}"], {})


def test_ranges_hold_in_the_file_and_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'lead_in' in .*: -1 is out of range: at least 0"):
        parse([], {}, write(tmp_path, "lead_in = -1\n"))
    with pytest.raises(ConfigError, match="MLX_SPEECHD_STALL_TIMEOUT: 0 is out of range: greater than 0"):
        parse([], {"MLX_SPEECHD_STALL_TIMEOUT": "0"})
    _, args, _ = parse(["--lead-in", "0", "--max-sentence-chars", "1"], {})
    assert args.lead_in == 0 and args.max_sentence_chars == 1


def test_limits_reach_the_engine_config() -> None:
    _, args, _ = parse(["--max-sentence-chars", "120", "--max-unsent-seconds", "2.5"], {})
    config = engine_config(args)
    assert (config.max_sentence_chars, config.max_unsent_seconds, config.stall_timeout) == (120, 2.5, 30.0)
    wyoming = daemon_settings(parse(["--uri", "tcp://127.0.0.1:1", "--stall-timeout", "7"], {})[1]).wyoming
    assert wyoming is not None and wyoming.write_timeout == 7


def test_unknown_environment_variables_are_named() -> None:
    parser = build_parser()
    env = {
        "MLX_SPEECHD_VOCIE": "ryan",
        "MLX_SPEECHD_VOICE": "ryan",
        "MLX_SPEECHD_CONFIG": "x.toml",
        "MLX_SPEECHD_VOICES_DIR": "/tmp/v",
        "OTHER": "1",
    }
    warnings = unknown_variables(parser, env)
    assert len(warnings) == 1
    assert "MLX_SPEECHD_VOCIE" in warnings[0] and "did you mean MLX_SPEECHD_VOICE?" in warnings[0]


def test_setting_errors_are_one_line_without_the_usage(tmp_path: Path) -> None:
    bad = write(tmp_path, "lead_in = -1\n")
    for args, env in (
        (["--config", str(bad), "hi"], {}),
        (["hi"], {"MLX_SPEECHD_MAX_CONNECTIONS": "0"}),
        (["--lead-in", "-1", "hi"], {}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "mlx_speechd", *args],
            capture_output=True,
            env={**os.environ, **env},
            check=False,
        )
        assert result.returncode == 2
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlx-speechd: error:"), lines
        assert "out of range" in lines[0]
