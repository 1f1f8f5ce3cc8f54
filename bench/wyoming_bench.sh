#!/usr/bin/env bash
# Benchmark mlx-speechd's Wyoming server with the third-party wyoming-bench client.
#
#   bench/wyoming_bench.sh [WYOMING-BENCH TTS OPTIONS...]
#
# Starts `mlx-speechd --uri tcp://127.0.0.1:$PORT` with $MODEL (default: a tiny random-weight
# model written to a temporary folder), waits until it answers `describe`, runs
#   wyoming-bench tts 127.0.0.1:$PORT --mode both --rounds 3 --warmup 1   (or the options given)
# and stops the daemon. Environment: MODEL, PORT (default 10299), VENV (default .venv),
# DAEMON_ARGS (extra mlx-speechd options). The daemon's log goes to $TMPDIR/wyoming-bench-daemon.log.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
port=${PORT:-10299}
work=$(mktemp -d)
log=${TMPDIR:-/tmp}/wyoming-bench-daemon.log
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

model=${MODEL:-}
if [[ -z $model ]]; then
  model=$work/tiny
  "$venv/bin/mlx-speechd" make-test-model "$model" --variant custom_voice --fixed-length >/dev/null 2>&1
fi

# shellcheck disable=SC2086  # DAEMON_ARGS is a list of options
"$venv/bin/mlx-speechd" --model "$model" --uri "tcp://127.0.0.1:$port" ${DAEMON_ARGS:-} 2>"$log" &
daemon=$!
until "$venv/bin/mlx-speechd" check --uri "tcp://127.0.0.1:$port" >/dev/null 2>&1; do
  kill -0 "$daemon" 2>/dev/null || { echo "mlx-speechd exited; see $log" >&2; exit 1; }
  sleep 1
done

if [[ $# -eq 0 ]]; then
  set -- --mode both --rounds 3 --warmup 1
fi
echo "model: $model; $(uname -sm), $(nproc) CPU cores" >&2
"$venv/bin/wyoming-bench" tts "127.0.0.1:$port" "$@"
