"""The service definitions: the systemd unit and the launchd agent name a real command line."""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_speechd.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "mlx-speechd.service"
PLIST = ROOT / "launchd" / "com.mlx-speechd.plist"
SERVICE_DOC = ROOT / "docs" / "service.md"
VENV_EXE = Path(sys.executable).parent / "mlx-speechd"


def unit_entries(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> values, in order (systemd allows keys such as Environment= several times)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


UNIT_ENTRIES = unit_entries(UNIT.read_text())


def the(key: str) -> str:
    values = UNIT_ENTRIES.get(key, [])
    assert len(values) == 1, f"{UNIT.name}: expected one {key}=, found {values}"
    return values[0]


def environment() -> dict[str, str]:
    pairs = (
        item.split("=", 1) for value in UNIT_ENTRIES["Service.Environment"] for item in shlex.split(value)
    )
    return dict(pairs)


def assert_daemon_arguments(arguments: list[str]) -> None:
    """The CLI's own parser accepts them, and they start the Wyoming server with zeroconf."""
    args = build_parser().parse_args(arguments)
    assert args.uri == ["tcp://0.0.0.0:10200"]
    assert args.zeroconf == "mlx-speechd"


def assert_documented_venv(executable: str, home: str) -> None:
    """The executable is the console script in the venv that docs/service.md creates."""
    path = Path(executable)
    assert path.name == "mlx-speechd" and path.parent.name == "bin"
    venv = str(path.parent.parent).replace(home, "~") if home else str(path.parent.parent)
    assert f"python3 -m venv {venv}" in SERVICE_DOC.read_text(), f"docs/service.md does not create {venv}"


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if sys.platform != "linux":
        pytest.skip("systemd-analyze is Linux-only")
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (.ci/run does)")
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def installed_unit(tmp_path: Path) -> Path:
    """The unit as installed: its ExecStart pointing at this venv's real executable.

    systemd-analyze verify rejects a unit whose command does not exist; /opt/mlx-speechd is not here.
    """
    exec_start = the("Service.ExecStart")
    executable = exec_start.split()[0]
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(f"ExecStart={executable} ", f"ExecStart={VENV_EXE} "))
    assert f"ExecStart={VENV_EXE} " in unit.read_text()
    return unit


def test_systemd_analyze_verify_passes_without_a_warning(installed_unit: Path) -> None:
    result = systemd_analyze("verify", "--man=no", str(installed_unit))
    # verify exits 0 even for unknown keys and unparsable values; it only warns
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_systemd_unit_is_hardened(installed_unit: Path) -> None:
    # exposure 0-10 (the threshold is in tenths): the hardening options are parsed and in effect
    result = systemd_analyze(
        "security", "--offline=true", "--threshold=25", "--no-pager", str(installed_unit)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_exec_start_is_a_daemon_command_line() -> None:
    executable, *arguments = shlex.split(the("Service.ExecStart"))
    assert_documented_venv(executable, home="")
    assert_daemon_arguments(arguments)


def test_systemd_lifecycle_settings() -> None:
    assert the("Service.Restart") == "on-failure"
    assert the("Service.KillSignal") == "SIGTERM"
    assert int(the("Service.TimeoutStopSec")) <= 15
    assert the("Service.RestartPreventExitStatus") == "2"  # argparse's exit status for a bad setting
    assert the("Install.WantedBy") == "multi-user.target"


def test_systemd_directories_exist_before_start() -> None:
    """TMPDIR must exist (MLX fails otherwise): systemd creates it as the cache directory."""
    env = environment()
    assert env["TMPDIR"] == f"%C/{the('Service.CacheDirectory')}"
    assert env["HF_HOME"].startswith(f"%S/{the('Service.StateDirectory')}/")
    config_dir = the("Service.ConfigurationDirectory")
    assert env["MLX_SPEECHD_CONFIG"].startswith(f"/etc/{config_dir}/")


def test_launchd_plist() -> None:
    assert plistlib.loads(PLIST.read_bytes())["Label"] == PLIST.stem  # parses as shipped
    home = "/Users/someone"
    plist = plistlib.loads(PLIST.read_bytes().replace(b"@HOME@", home.encode()))  # as installed
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ExitTimeOut"] <= 15
    executable, *arguments = plist["ProgramArguments"]
    assert_documented_venv(executable, home)
    assert_daemon_arguments(arguments)
    env = plist["EnvironmentVariables"]
    assert env["HF_HOME"] == f"{home}/.cache/huggingface"
    assert env["TMPDIR"] == f"{home}/Library/Caches"  # always exists on macOS
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert plist[key].startswith(f"{home}/Library/Logs/")
    assert "@HOME@" not in repr(plist) and "~" not in repr(plist)  # launchd expands neither


def test_tmpdir_holds_mlx_compiled_kernels(tmp_path: Path) -> None:
    """The fact the units rely on: MLX's CPU backend caches compiled kernels in $TMPDIR/mlx/<version>."""
    if shutil.which("g++") is None:
        pytest.skip("MLX compiles CPU kernels only when g++ is installed")
    code = (
        "import mlx.core as mx\n"
        "f = mx.compile(lambda a, b: mx.exp(a) * b + a)\n"
        "mx.eval(f(mx.ones((4,)), mx.ones((4,))))\n"
        "print(mx.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=True,
    )
    version = result.stdout.strip()
    assert any((tmp_path / "mlx" / version).rglob("*.so")), sorted(tmp_path.rglob("*"))
