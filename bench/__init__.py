"""Benchmarks of jupyter_replay: run with ``python -m bench`` (see ``bench/README.md``)."""
