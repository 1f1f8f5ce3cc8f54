"""`mlx-speechd download [MODEL]`: fetch a model into the Hugging Face cache ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path

from .engine import DEFAULT_MODEL, ModelLoadError
from .engine.loader import HUB_FILES, check_qwen3_tts, first_line, looks_local, not_cached_message
from .stdout import print_error


def download(model: str) -> Path:
    """Download (or complete) `model` in the cache ($HF_HOME) and check it is a Qwen3-TTS model.

    huggingface_hub draws its progress bars on stderr. Raises ModelLoadError with one paragraph.
    """
    if looks_local(model):
        raise ModelLoadError(
            f"'{model}' is not a Hugging Face repo id (OWNER/NAME, e.g. {DEFAULT_MODEL}); "
            "a local model folder needs no download: pass it to --model."
        )
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        path = Path(snapshot_download(model, allow_patterns=HUB_FILES))
    except (HfHubHTTPError, OSError) as err:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else f"download failed: {first_line(err)}"
        raise ModelLoadError(not_cached_message(model, why)) from err
    check_qwen3_tts(model, path)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-speechd download",
        description="Fetch a model into the Hugging Face cache ($HF_HOME, default ~/.cache/huggingface) "
        "so the daemon can start without internet; prints the model's folder.",
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="Hugging Face repo id")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = download(args.model)
    except ModelLoadError as err:
        print_error(err)
        return 1
    print(path, flush=True)
    return 0
