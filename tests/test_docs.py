"""The docs can't rot: code blocks run or are listed with a reason; the options reference is generated.

Conventions (docs/README.md explains them to writers):
- A fenced block whose info string is a shell language or `python` and the word `runnable`
  (```` ```sh runnable ````, ```` ```python runnable ````) is run: all runnable blocks of one file in
  order, in one fresh folder, shell with `bash -euo pipefail`, Python with the project's interpreter.
- Every other shell or Python block is listed in NOT_RUN below with the reason it can't run here.
- Every fence names its language (```` ```text ```` for output), so no command hides in a bare fence.

`python tests/test_docs.py` rewrites the generated options reference in docs/configuration.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = ROOT / ".ci" / "run"
CONFIGURATION = ROOT / "docs" / "configuration.md"
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", "zsh"}
RUN_LANGUAGES = SHELL_LANGUAGES | {"python"}
BLOCK_TIMEOUT = 300.0
"""Only catches hangs: the slowest runnable block takes well under a minute."""

NOT_RUN: dict[tuple[str, str], str] = {
    # (file, first line of the block): why it can't run in the test
    ("docs/protocol.md", "mlx-speechd --model mlx-community/Qwen3-TTS-12Hz-0.6B-CustomVoice-8bit --stdio"): (
        "downloads the real model and waits for requests on stdin; tests/test_stdio.py drives --stdio"
    ),
    (
        "docs/protocol.md",
        "MLX_SPEECHD=.venv/bin/mlx-speechd node docs/examples/write-wav.mjs "
        'hello.wav "Hello there." --model ./model',
    ): "tests/test_bun_client.py runs write-wav.mjs on Node and on Bun against a test model",
    (
        "docs/protocol.md",
        "npx -p typescript@5.9.3 -p @types/node@20 tsc --allowJs --checkJs --strict "
        "--target es2022 --module nodenext \\",
    ): "tests/test_bun_client.py installs TypeScript and checks the generated .d.mts is current",
    (
        "README.md",
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
        'echo "Hello there." | .venv/bin/mlx-speechd --play',
    ): "downloads the real model (about 1 GB); .ci/run does the install, tests/test_cli.py the playback",
    (
        "README.md",
        'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/python -m pytest',
    ): ".ci/run runs it verbatim (test_ci_runs_the_readme_test_command)",
    ("README.md", "tail -f events.log | mlx-speechd --play                # speak each line as it arrives"): (
        "`tail -f` never ends and aplay needs a sound card; tests/test_cli.py covers stdin lines and --raw"
    ),
    ("docs/quickstart.md", "python3 -m venv .venv && .venv/bin/pip install -q -e ."): (
        "installs into a new venv (minutes, network); .ci/run installs, the test folder links this venv"
    ),
    ("docs/service.md", "python3 -m venv ~/.local/share/mlx-speechd"): (
        "installs from PyPI and downloads the real model (minutes, network)"
    ),
    ("docs/service.md", "mkdir -p ~/.config/mlx-speechd ~/Library/LaunchAgents"): (
        "launchctl: macOS only (tests/test_service.py checks the plist)"
    ),
    (
        "docs/service.md",
        "~/.local/share/mlx-speechd/bin/mlx-speechd check",
    ): "needs the installed LaunchAgent",
    (
        "docs/service.md",
        "launchctl kickstart -k gui/$(id -u)/com.mlx-speechd   # restart",
    ): "launchctl: macOS only",
    ("docs/service.md", "sudo python3 -m venv /opt/mlx-speechd"): "needs root; downloads the real model",
    ("docs/service.md", "sudo install -Dm644 /dev/null /etc/mlx-speechd/config.toml"): (
        "needs root and systemd as PID 1 (tests/test_service.py verifies the unit)"
    ),
    ("docs/service.md", "/opt/mlx-speechd/bin/mlx-speechd check"): "needs the installed systemd service",
    ("docs/service.md", "sudo systemctl restart mlx-speechd"): "needs root and systemd as PID 1",
    ("docs/python.md", "# a hub repository id (downloaded on first use) or the path of a model folder"): (
        "downloads the real model; tests/test_api.py runs the same calls on a test model"
    ),
    ("docs/conformance.md", ".venv/bin/python -m pytest tests/conformance -o log_cli=true"): (
        "the repository's own tests (CI runs them with the suite); the blocks run outside the checkout"
    ),
    ("docs/conformance.md", "python3 -m venv .venv-official"): (
        "downloads PyTorch and the official qwen-tts package from the network"
    ),
    ("docs/conformance.md", ".venv/bin/python -m pytest tests/conformance/test_live_official.py"): (
        "needs the official package's environment that the block before sets up"
    ),
    ("docs/troubleshooting.md", "journalctl -u mlx-speechd -e             # systemd"): (
        "needs the installed service (systemd or launchd)"
    ),
    ("docs/troubleshooting.md", "systemctl status mlx-speechd             # Linux: Memory: line"): (
        "needs the installed service"
    ),
}


@dataclass(frozen=True)
class Block:
    path: str
    line: int
    info: str
    text: str

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def checked(self) -> bool:
        """A block that must run or be listed in NOT_RUN."""
        return self.language in RUN_LANGUAGES

    @property
    def runnable(self) -> bool:
        return self.checked and "runnable" in self.info.split()[1:]

    @property
    def key(self) -> tuple[str, str]:
        return self.path, next((line for line in self.text.splitlines() if line.strip()), "")

    def where(self) -> str:
        return f"{self.path}:{self.line} (```{self.info}, starting `{self.key[1]}`)"


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (fences may be indented, e.g. inside list items)."""
    blocks = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or "`" in opening["info"]:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[j]):
            body.append(lines[j][indent:] if not lines[j][:indent].strip() else lines[j].lstrip())
            j += 1
        rel = path.relative_to(ROOT).as_posix()
        blocks.append(Block(rel, i + 1, opening["info"].strip(), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


ALL_BLOCKS = [block for path in doc_files() for block in fenced_blocks(path)]
RUNNABLE_FILES = sorted({block.path for block in ALL_BLOCKS if block.runnable})


def test_every_fence_names_its_language() -> None:
    bare = [block.where() for block in ALL_BLOCKS if not block.language]
    assert not bare, (
        "fenced blocks without a language (use ```text for output, ```sh for commands):\n" + "\n".join(bare)
    )


def test_every_shell_and_python_block_is_run_or_listed() -> None:
    problems = []
    keys = [block.key for block in ALL_BLOCKS if block.checked]
    for block in ALL_BLOCKS:
        if not block.checked:
            continue
        if not block.runnable and keys.count(block.key) > 1:
            problems.append(f"{block.where()}: another checked block in that file starts with the same line")
        if block.runnable and block.key in NOT_RUN:
            problems.append(
                f"{block.where()}: marked runnable, so remove it from NOT_RUN in tests/test_docs.py"
            )
        if not block.runnable and block.key not in NOT_RUN:
            problems.append(
                f"{block.where()}: mark it runnable (```{block.language} runnable) if it can run in a "
                f"temporary folder with a test model, or add {block.key!r} to NOT_RUN in tests/test_docs.py "
                "with the reason it can't"
            )
    for key, reason in NOT_RUN.items():
        if key not in keys:
            problems.append(f"NOT_RUN entry {key!r} matches no shell block: remove or update it")
        if not reason.strip():
            problems.append(f"NOT_RUN entry {key!r} needs a reason")
    assert not problems, "\n".join(problems)


@pytest.fixture
def doc_folder(tmp_path: Path, tiny_custom_voice: Path) -> tuple[Path, dict[str, str]]:
    """A fresh folder and environment for one file's runnable blocks.

    In it: `.venv` (this venv), `bench` (the repository's benchmark, run from the repository root as
    `python -m bench`), `models/tiny` (a tiny random-weight model, also the default model via
    MLX_SPEECHD_MODEL), an empty Hugging Face cache with HF_HUB_OFFLINE=1, and a HOME whose default
    ALSA device writes to a file, so --play works without a sound card.
    """
    folder = tmp_path / "work"
    home = tmp_path / "home"
    home.mkdir()
    played = home / "played.raw"
    (home / ".asoundrc").write_text(
        f'pcm.!default {{\n  type file\n  slave.pcm "null"\n  file "{played}"\n  format "raw"\n}}\n'
    )
    (folder / "models").mkdir(parents=True)
    shutil.copytree(tiny_custom_voice, folder / "models" / "tiny")
    venv_bin = Path(sys.executable).parent
    (folder / ".venv").symlink_to(venv_bin.parent)
    (folder / "bench").symlink_to(ROOT / "bench")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLX_SPEECHD_")}
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        HF_HOME=str(tmp_path / "huggingface"),
        HF_HUB_OFFLINE="1",
        MLX_SPEECHD_MODEL=str(folder / "models" / "tiny"),
    )
    return folder, env


def run_block(block: Block, folder: Path, env: dict[str, str]) -> None:
    """Run one block with bash (or Python); kill whatever it left running in the background."""
    stdout, stderr = folder.parent / "stdout.txt", folder.parent / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        # files, not pipes: a background process would hold a pipe open past the block's end
        process = subprocess.Popen(
            [sys.executable, "-c", block.text]
            if block.language == "python"
            else ["bash", "-e", "-u", "-o", "pipefail", "-c", block.text],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    tail = (
        f"\n--- block ---\n{block.text}--- stdout (end) ---\n{stdout.read_text(errors='replace')[-3000:]}"
        f"\n--- stderr (end) ---\n{stderr.read_text(errors='replace')[-3000:]}"
    )
    assert code is not None, f"{block.where()}: still running after {BLOCK_TIMEOUT:.0f}s{tail}"
    assert code == 0, f"{block.where()}: exit status {code}{tail}"


@pytest.mark.parametrize("doc", RUNNABLE_FILES)
def test_runnable_blocks(doc: str, doc_folder: tuple[Path, dict[str, str]]) -> None:
    folder, env = doc_folder
    for block in ALL_BLOCKS:
        if block.path == doc and block.runnable:
            run_block(block, folder, env)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Setup: two commands", 1)[1].split("\n## ", 1)[0]
    commands = [
        block.text.strip() for block in fenced_blocks(ROOT / "README.md") if block.text.strip() in setup
    ]
    assert len(commands) == 2, "README.md's 'Setup: two commands' should hold two ```sh blocks"
    ci_lines = CI_RUN.read_text().splitlines()
    assert commands[1] in ci_lines, f".ci/run does not run the README's test command verbatim:\n{commands[1]}"


# ---- the generated options reference in docs/configuration.md ----

GENERATED_START = "<!-- options: generated by tests/test_docs.py from the argument parsers; do not edit -->"
GENERATED_END = "<!-- end of generated options -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _default(action: argparse.Action) -> str:
    from mlx_speechd.config import is_flag

    if is_flag(action):
        return "off"
    if action.default in (None, [], argparse.SUPPRESS):  # also --version
        return ""
    return f"`{_cell(str(action.default))}`"


def _option(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}` (positional)"
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{names}`"
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return f"`{names} [{metavar}]`" if action.nargs == "?" else f"`{names} {metavar}`"


def options_table(parser: argparse.ArgumentParser, settable: set[str]) -> str:
    """A Markdown table of the parser's options; `settable` ones also get their environment variable."""
    from mlx_speechd.config import ENV_PREFIX, is_help, parser_actions

    header = ["option", "default", "description"] + (["environment / config file"] if settable else [])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for action in parser_actions(parser):
        if is_help(action):
            continue
        cells = [_option(action), _default(action), _cell(action.help or "")]
        if settable:
            where = f"`{ENV_PREFIX}{action.dest.upper()}`, `{action.dest}`" if action.dest in settable else ""
            cells.append(where or "command line only")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def options_reference() -> str:
    from mlx_speechd import cli, download, healthcheck
    from mlx_speechd.config import settable_actions

    main = cli.build_parser()
    sections = [
        ("mlx-speechd", main, set(settable_actions(main))),
        ("mlx-speechd check", healthcheck.build_parser(), set()),
        ("mlx-speechd download", download.build_parser(), set()),
    ]
    parts = [GENERATED_START]
    for title, parser, settable in sections:
        parts += [
            f"### `{title}`",
            "",
            _cell(parser.description or ""),
            "",
            options_table(parser, settable),
            "",
        ]
    parts.append(GENERATED_END)
    return "\n".join(parts)


def _generated_part(text: str) -> str:
    start, end = text.find(GENERATED_START), text.find(GENERATED_END)
    assert 0 <= start < end, f"{CONFIGURATION.name} lacks the generated-options markers"
    return text[start : end + len(GENERATED_END)]


def test_configuration_reference_is_current() -> None:
    assert _generated_part(CONFIGURATION.read_text()) == options_reference(), (
        "docs/configuration.md's options reference is out of date: run `.venv/bin/python tests/test_docs.py`"
    )


def test_relative_links_resolve() -> None:
    broken = []
    for path in doc_files():
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", path.read_text()):
            local = "://" not in target and not target.startswith("mailto:")
            if local and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


if __name__ == "__main__":
    text = CONFIGURATION.read_text()
    CONFIGURATION.write_text(text.replace(_generated_part(text), options_reference()))
    print(f"rewrote the options reference in {CONFIGURATION}")
