"""What a saved notebook stores: widget models only for the Replays that were displayed (a real kernel,
nbclient storing the widget state as JupyterLab's "save widget state" does)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]

CELLS = [
    "import numpy as np, pandas as pd, ipywidgets as w\nimport jupyter_replay as jr\n"
    "df = pd.DataFrame({'timestamp': pd.date_range('2024', periods=50, freq='s'), 'price': np.arange(50.0)})",
    "hidden = [jr.replay(df) for _ in range(5)]\nfor h in hidden:\n    h.step(3)\n"
    "print([len(h.buffer) for h in hidden])",
    "shown = jr.replay(df)\nshown",
    "w.VBox([jr.replay(df)])",
]


def test_only_displayed_replays_are_stored_in_the_notebook() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    env = {"PYTHONPATH": str(ROOT), "BOKEH_RESOURCES": os.environ.get("BOKEH_RESOURCES", "inline")}
    client = NotebookClient(nb, kernel_name="python3", store_widget_state=True, timeout=120,
                            resources={"metadata": {"path": str(ROOT)}})
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert nb.cells[1].outputs[0]["text"].strip() == "[3, 3, 3, 3, 3]"  # the hidden ones work
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    replays = [m for m in state.values() if m["model_name"] == "AnyModel"]
    assert len(replays) == 2  # the displayed one and the one in the VBox; none of the five hidden ones
