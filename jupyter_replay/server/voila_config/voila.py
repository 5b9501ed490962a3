# Voilà config used by `jupyter replay dashboard` (this directory goes on JUPYTER_CONFIG_PATH):
# set the _xsrf cookie on dashboard pages, see jupyter_replay/server/voila.py.
from jupyter_replay.server.voila import prelaunch_hook

c = get_config()  # noqa: F821
c.VoilaConfiguration.prelaunch_hook = prelaunch_hook
