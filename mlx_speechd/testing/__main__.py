"""Command line: write a random-weight Qwen3-TTS test model folder and print its path."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mlx_speechd.testing.model_factory import SIZES, VARIANTS, make_test_model


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-speechd make-test-model",
        description=(
            "Write a Qwen3-TTS 12 Hz model folder with random weights (the real architecture; it "
            "speaks noise) that loads through mlx_audio.tts.utils.load_model. Prints the folder "
            "path on stdout; logs go to stderr."
        ),
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument("--variant", choices=VARIANTS, default="custom_voice", help="model type")
    parser.add_argument(
        "--size",
        choices=SIZES,
        default="tiny",
        help="tiny: a few MB, fast on CPU; 0.6b/1.7b: full-size shapes (GBs, for benchmarks)",
    )
    parser.add_argument(
        "--fixed-length",
        action="store_true",
        help="never emit EOS, so generation runs to max_tokens frames",
    )
    parser.add_argument(
        "--ends-by-eos",
        action="store_true",
        help="sentences end by EOS after tens of frames (reproducible per sampling seed)",
    )
    parser.add_argument("--seed", type=int, default=0, help="weight seed (same seed, same files)")
    parser.add_argument(
        "--quantize", type=int, choices=(4, 8), help="quantize the talker like mlx-community repos"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    path = make_test_model(
        args.out_dir,
        args.variant,
        args.size,
        fixed_length=args.fixed_length,
        seed=args.seed,
        quantize_bits=args.quantize,
        ends_by_eos=args.ends_by_eos,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
