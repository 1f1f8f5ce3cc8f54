"""Benchmarks: mlx-speechd against mlx-audio's own streaming (`python -m mlx_speechd.bench`).

See docs/performance.md for the sections, how to run them and the numbers of a full run.
"""
