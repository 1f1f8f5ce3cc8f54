"""A short, path-independent identity for a model folder, for tagging what was computed with it."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CONTENT_SUFFIXES = (".json", ".txt", ".model", ".tiktoken", ".jinja")
"""Small files (configs, tokenizer) hashed by content."""
_WEIGHT_SUFFIX = ".safetensors"
"""Large files, identified by relative path and size (hashing gigabytes at every start is too slow)."""


def model_fingerprint(path: str | Path) -> str:
    """Hex digest of the folder's config and tokenizer files' contents and its weight files' names and sizes.

    The same model gives the same fingerprint wherever its folder lives (another machine, a copy,
    the Hugging Face cache's symlinks). Weights rewritten to exactly the same sizes with every
    config file unchanged are not told apart. Raises OSError when the folder can't be read or holds
    no weights.
    """
    root = Path(path).expanduser()
    digest = hashlib.sha256()
    weights = 0
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        name = file.relative_to(root).as_posix()
        if any(part.startswith(".") for part in name.split("/")):
            continue  # download bookkeeping such as .cache/huggingface/
        if file.suffix == _WEIGHT_SUFFIX:
            digest.update(f"{name}\0size={file.stat().st_size}\0".encode())
            weights += 1
        elif file.suffix in _CONTENT_SUFFIXES:
            digest.update(f"{name}\0sha256={hashlib.sha256(file.read_bytes()).hexdigest()}\0".encode())
    if not weights:
        raise FileNotFoundError(f"no *{_WEIGHT_SUFFIX} files in model folder {root}")
    return digest.hexdigest()[:16]
