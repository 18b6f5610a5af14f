"""Runnable benchmarks: `python -m bench` runs the quick set; `python -m bench.<name> --help` for each."""
