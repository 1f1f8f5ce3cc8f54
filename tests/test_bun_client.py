"""The example TypeScript-typed client (docs/examples) on Bun and Node, against the real daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from mlx_speechd.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
CLIENT = EXAMPLES / "mlx-speechd-client.mjs"
DAEMON = str(Path(sys.executable).parent / "mlx-speechd")
SENTENCE_FRAMES = 75
"""The fixed-length test model runs each short sentence to the 75-frame minimum cap."""
SENTENCE_BYTES = SENTENCE_FRAMES * FRAME_SAMPLES * 2
NPM_PACKAGES = ["bun@1", "typescript@5.9.3", "@types/node@20"]
TSC_OPTIONS = [
    "--allowJs",
    "--checkJs",
    "--strict",
    "--target",
    "es2022",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--types",
    "node",
]
RUNTIMES = ["bun", "node"]
TIMEOUT = 180


@pytest.fixture(scope="module")
def js_tools(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_modules with Bun, TypeScript and Node's types, installed from the npm registry once."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install Bun and TypeScript from the npm registry")
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    folder = cache.mkdir("mlx-speechd-js-tools") if cache is not None else tmp_path_factory.mktemp("js")
    bins = folder / "node_modules" / ".bin"
    if not ((bins / "bun").exists() and (bins / "tsc").exists()):
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), *NPM_PACKAGES],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return folder / "node_modules"


def runtime_command(runtime: str, js_tools: Path) -> list[str]:
    if runtime == "bun":
        return [str(js_tools / ".bin" / "bun")]
    node = shutil.which("node")
    assert node is not None  # npm runs on Node
    return [node]


def run_js(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MLX_SPEECHD": DAEMON},
        check=False,
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_write_wav_example(runtime: str, js_tools: Path, tiny_custom_voice: Path, tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    command = [
        *runtime_command(runtime, js_tools),
        str(EXAMPLES / "write-wav.mjs"),
        str(wav),
        "Hello there. A second sentence.",
        "--model",
        str(tiny_custom_voice),
    ]
    result = run_js(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    info = soundfile.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert info.frames == 2 * SENTENCE_FRAMES * FRAME_SAMPLES
    assert "real-time factor" in result.stderr


SMOKE = """
import { SpeechdClient, SpeechdError } from "%(client)s";

const [command, model] = process.argv.slice(2);
const speechd = await SpeechdClient.spawn({ command, args: ["--model", model], stderr: "ignore" });
const results = { ready: speechd.info, voices: (await speechd.describe()).voices.length };
await speechd.ping();

// LLM-style text in pieces: the first audio comes before the end.
const stream = speechd.stream({ voice: "vivian" });
stream.append("Hello the");
stream.append("re. And mo");
const chunks = stream[Symbol.asyncIterator]();
const first = await chunks.next();
stream.append("re.");
stream.end();
let bytes = first.done ? 0 : first.value.pcm.length;
for (let next = await chunks.next(); !next.done; next = await chunks.next()) bytes += next.value.pcm.length;
results.stream = { bytes, done: await stream.done };

// Cancel a long request after its first chunk.
const long = speechd.synthesize("One here. Two here. Three here. Four here. Five here. Six here.");
for await (const _ of long) {
  long.cancel();
  break;
}
results.cancelled = (await long.done).finish_reason;

// A daemon error rejects the request.
try {
  for await (const _ of speechd.synthesize("Hi.", { voice: "nobody" }));
} catch (error) {
  results.error = error instanceof SpeechdError ? error.code : String(error);
}
results.exit = await speechd.close();
console.log(JSON.stringify(results));
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_client_streams_cancels_and_reports_errors(
    runtime: str, js_tools: Path, tiny_custom_voice: Path, tmp_path: Path
) -> None:
    script = tmp_path / "smoke.mjs"
    script.write_text(SMOKE % {"client": CLIENT.as_uri()})
    result = run_js(
        [*runtime_command(runtime, js_tools), str(script), DAEMON, str(tiny_custom_voice)], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)
    assert results["ready"]["protocol"] == 1 and results["ready"]["sample_rate"] == SAMPLE_RATE
    assert results["voices"] == 9
    assert results["stream"]["bytes"] == 2 * SENTENCE_BYTES
    assert results["stream"]["done"]["sentences"] == 2
    assert results["cancelled"] == "cancelled"
    assert results["error"] == "unknown-voice"
    assert results["exit"] == 0


NOT_PROTOCOL = """
import { SpeechdClient, SpeechdError } from "%(client)s";

// Each of these makes the daemon print something else than protocol lines on stdout, then exit.
const [command, model, strayDaemon] = process.argv.slice(2);
const results = {};
for (const option of ["--version", "--help", "--print-config"]) {
  try {
    const args = ["--model", model, option];
    const speechd = await SpeechdClient.spawn({ command, args, stderr: "ignore" });
    results[option] = `resolved: ${JSON.stringify(speechd.info)}`;
  } catch (error) {
    results[option] = error instanceof SpeechdError ? error.code : `${error}`;
  }
}

// A stand-in daemon that is ready, then prints a stray line with nothing pending, and would run on.
const speechd = await SpeechdClient.spawn({ command: process.execPath, args: [strayDaemon] });
results.stray = await new Promise((resolve) => (speechd.onerror = (error) => resolve(error.code)));
results.stopped = (await speechd.exited) === null; // stopped by a signal, not exited by itself
console.log(JSON.stringify(results));
"""

STRAY_DAEMON = """
console.log(JSON.stringify({ type: "ready", protocol: 1 }));
setTimeout(() => console.log("a stray line"), 100);
setInterval(() => {}, 1000);
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_daemon_that_breaks_the_protocol_rejects_spawn(
    runtime: str, js_tools: Path, tiny_custom_voice: Path, tmp_path: Path
) -> None:
    """Not an uncaught SyntaxError that ends the parent process: the pending promise rejects."""
    script = tmp_path / "not-protocol.mjs"
    script.write_text(NOT_PROTOCOL % {"client": CLIENT.as_uri()})
    stray = tmp_path / "stray-daemon.mjs"
    stray.write_text(STRAY_DAEMON)
    command = [*runtime_command(runtime, js_tools), str(script), DAEMON, str(tiny_custom_voice), str(stray)]
    result = run_js(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    options = ("--version", "--help", "--print-config", "stray")
    assert json.loads(result.stdout) == {**dict.fromkeys(options, "protocol-error"), "stopped": True}


TYPED = """
import { SpeechdClient } from "./mlx-speechd-client.mjs";

const speechd = await SpeechdClient.spawn({ args: ["--model", "./model"] });
const rate: number = speechd.info.sample_rate; // no null check needed once spawn has resolved
try {
  await speechd.describe();
} catch (error: any) {
  switch (error.code as import("./mlx-speechd-client.mjs").ErrorCode) {
    case "unknown-voice":
    case "daemon-exited":
      break;
  }
}
console.log(rate);
"""
TYPED_WRONG = """
import { SpeechdError } from "./mlx-speechd-client.mjs";

const error = new SpeechdError("no-such-code", "a code that is not in the union");
console.log(error);
"""


def _tsc(js_tools: Path, source: Path) -> subprocess.CompletedProcess[str]:
    options = ["--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--moduleResolution",
               "nodenext", "--types", "node", "--typeRoots", str(js_tools / "@types")]  # fmt: skip
    command = [str(js_tools / ".bin" / "tsc"), *options, str(source)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_declarations_type_a_typescript_caller(js_tools: Path, tmp_path: Path) -> None:
    for name in ("mlx-speechd-client.mjs", "mlx-speechd-client.d.mts", "package.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "typed.mts").write_text(TYPED)
    result = _tsc(js_tools, tmp_path / "typed.mts")
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "wrong.mts").write_text(TYPED_WRONG)
    result = _tsc(js_tools, tmp_path / "wrong.mts")
    assert result.returncode != 0 and "no-such-code" in result.stdout, result.stdout


IMPORT_BY_NAME = """
import { SpeechdClient, PROTOCOL } from "mlx-speechd-client";
console.log(PROTOCOL, typeof SpeechdClient);
"""


def test_examples_install_as_a_package(js_tools: Path, tmp_path: Path) -> None:
    """`npm install ./docs/examples` in a project, then an import by package name on Node and Bun."""
    npm = shutil.which("npm")
    assert npm is not None
    manifest = json.loads((EXAMPLES / "package.json").read_text())
    assert manifest["type"] == "module" and manifest["engines"]["node"] and manifest["engines"]["bun"]
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "app", "private": True, "type": "module"}))
    install = [npm, "install", "--no-audit", "--no-fund", "--offline", str(EXAMPLES)]
    subprocess.run(install, cwd=project, check=True, capture_output=True, timeout=TIMEOUT)
    (project / "main.mjs").write_text(IMPORT_BY_NAME)
    for runtime in RUNTIMES:
        result = run_js([*runtime_command(runtime, js_tools), "main.mjs"], project)
        assert result.returncode == 0, (runtime, result.stderr[-3000:])
        assert result.stdout.strip() == "1 function", runtime


def test_client_type_checks_and_its_declarations_are_current(js_tools: Path, tmp_path: Path) -> None:
    tsc = [str(js_tools / ".bin" / "tsc"), *TSC_OPTIONS, "--typeRoots", str(js_tools / "@types")]
    result = subprocess.run(
        [
            *tsc,
            "--declaration",
            "--emitDeclarationOnly",
            "--outDir",
            str(tmp_path),
            str(CLIENT),
            str(EXAMPLES / "write-wav.mjs"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr  # type errors in either file
    generated = (tmp_path / "mlx-speechd-client.d.mts").read_text()
    committed = EXAMPLES / "mlx-speechd-client.d.mts"
    assert committed.read_text() == generated, f"regenerate {committed.name}: see docs/protocol.md"
