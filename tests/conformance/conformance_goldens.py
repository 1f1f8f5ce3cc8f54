"""The goldens file: the official package's outputs on the conformance model (make_golden.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).with_name("golden.npz")


@dataclass(frozen=True)
class Goldens:
    """The official package's outputs (``make_golden.py``) and how they were made."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def signal(self) -> np.ndarray:
        """The reference signal, float32 in [-1, 1)."""
        return self.arrays["reference_signal"].astype(np.float32) / 32768.0


def load_goldens(path: Path) -> Goldens:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    return Goldens(arrays, json.loads(str(arrays.pop("meta"))))
