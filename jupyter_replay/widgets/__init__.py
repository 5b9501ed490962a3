"""Notebook widgets: ``replay(data)`` -> ``Replay`` (controls + BokehJS streaming plot + Python API)."""

from .replay import InvalidTraitValue, Replay, make_source, replay

__all__ = ["Replay", "replay", "make_source", "InvalidTraitValue"]
