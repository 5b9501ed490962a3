"""Voilà hooks for pages that use the replay server extension (``/voila/render/...`` on a Jupyter server).

Voilà's page handler never reads tornado's XSRF token, so a visitor who logged in by cookie (``?token=``
once, or JupyterHub's OAuth) gets no ``_xsrf`` cookie: every POST the page makes is refused with 403
"'_xsrf' argument missing" — the widget's ``POST replay/api/sessions`` (it then stays on the kernel-local
engine) and Voilà's own ``beforeunload`` shutdown request (the kernel then outlives the page).
``prelaunch_hook`` reads the token, which makes tornado set the cookie on the page response.

Enable it in a Voilà config file (``voila.py`` in a Jupyter config directory; ``jupyter replay dashboard``
puts ``voila_config/`` on ``JUPYTER_CONFIG_PATH``)::

    from jupyter_replay.server.voila import prelaunch_hook
    c.VoilaConfiguration.prelaunch_hook = prelaunch_hook
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Jupyter config directory holding ``voila.py`` with the hook below (for ``JUPYTER_CONFIG_PATH``).
CONFIG_DIR = Path(__file__).resolve().parent / "voila_config"


def prelaunch_hook(req: Any, notebook: Any, cwd: str) -> None:
    """Voilà ``prelaunch_hook``: set the ``_xsrf`` cookie on the page (reading the token sets it)."""
    req.xsrf_token  # noqa: B018  (tornado's property sets the cookie as a side effect)
