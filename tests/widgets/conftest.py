"""Widget test fixtures (helpers live in ``widget_helpers.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from widget_helpers import RecordingReplay

from jupyter_replay.widgets.replay import Replay


@pytest.fixture
def make_replay():
    """Build ``RecordingReplay`` widgets and close them after the test."""
    made: list[Replay] = []

    def make(*args: Any, render: bool = True, **kwargs: Any) -> RecordingReplay:
        r = RecordingReplay(*args, **kwargs)
        made.append(r)
        return r.render() if render else r

    yield make
    for r in made:
        r.close()
