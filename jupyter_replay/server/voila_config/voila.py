# Voilà config used by `jupyter replay dashboard` (this directory goes on JUPYTER_CONFIG_PATH):
# set the _xsrf cookie on dashboard pages, see jupyter_replay/server/voila.py.
from jupyter_replay.server.voila import prelaunch_hook

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by traitlets when it loads this file
c.VoilaConfiguration.prelaunch_hook = prelaunch_hook
