"""Notebook widgets: ``replay(data)`` -> ``Replay`` (controls + BokehJS streaming plot + Python API)."""

from .replay import InvalidTraitValue, Replay, replay

__all__ = ["Replay", "replay", "InvalidTraitValue"]
