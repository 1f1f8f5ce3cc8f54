"""Benchmarks: mlx-speechd against mlx-audio's own streaming (`python -m bench` from the repository root).

Not part of the installed package: it drives mlx-audio directly (and patches its HTTP server to run
on a CPU-only MLX). See docs/performance.md for the sections, how to run them and a full run's numbers.
"""

import mlx_speechd  # noqa: F401  (first, so that MLX runs on MKL when it is installed: mlx_speechd/blas.py)
