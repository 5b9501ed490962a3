"""A real JupyterHub on loopback for the end-to-end tests (subprocess; cleaned up even on failure).

The hub runs configurable-http-proxy (npm, ``./node_modules/.bin``), the dummy authenticator and the simple
local process spawner (single-user servers as the current user, ``--allow-root``, with the replay extension
enabled by its shared config and ``HubReplayAuthorizer``). A service token with admin scopes drives the hub
REST API; users act through API tokens issued to them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

__all__ = ["HubProcess", "find_chp", "free_port", "HUB_CONFIG"]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: the hub configuration, formatted with the run's paths, ports and tokens (a real jupyterhub_config.py)
HUB_CONFIG = """\
c = get_config()  # noqa
import sys

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {{"alice", "bob"}}

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = [
    "--allow-root",
    "--ServerApp.authorizer_class=jupyter_replay.server.hub.HubReplayAuthorizer",
]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {{"BOKEH_RESOURCES": "inline"}}
# browser logins: the server's OAuth tokens may carry the jupyter_server custom scopes for that server
c.Spawner.oauth_client_allowed_scopes = [
    "custom:jupyter_server:read:*!server",
    "custom:jupyter_server:write:*!server",
    "custom:jupyter_server:execute:*!server",
    "custom:jupyter_server:read:replay!server",
]

c.JupyterHub.custom_scopes = {{
    "custom:jupyter_server:read:*": {{"description": "read-only access to a Jupyter server"}},
    "custom:jupyter_server:write:*": {{
        "description": "modify files and control replays (no code execution)",
        "subscopes": ["custom:jupyter_server:read:*"],
    }},
    "custom:jupyter_server:execute:*": {{
        "description": "full access, including running code",
        "subscopes": ["custom:jupyter_server:write:*"],
    }},
    "custom:jupyter_server:read:replay": {{"description": "watch replay sessions shared with you"}},
}}

c.JupyterHub.services = [{{"name": "e2e", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "e2e-service",
        "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
        "services": ["e2e"],
    }},
    {{
        # bob may reach alice's server, but only to watch replays she shares with him
        "name": "replay-viewer-of-alice",
        "scopes": ["access:servers!user=alice", "custom:jupyter_server:read:replay!user=alice"],
        "users": ["bob"],
    }},
]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_chp() -> str | None:
    """configurable-http-proxy: the project's ``node_modules`` (``./dev setup``), else ``PATH``."""
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


class HubProcess:
    """One JupyterHub subprocess in ``tmp``; ``api()`` calls its REST API with the service token."""

    def __init__(self, tmp: Path, chp: str) -> None:
        self.tmp = tmp
        self.chp = chp
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.service_token = secrets.token_hex(16)
        self.password = secrets.token_hex(8)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "jupyterhub.log"
        self.proc: subprocess.Popen | None = None
        self.tokens: dict[str, str] = {}

    # ----------------------------------------------------------------- life cycle
    def start(self, timeout: float = 45.0) -> None:
        config = self.tmp / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                port=self.port,
                hub_port=self.hub_port,
                proxy_api_port=self.proxy_api_port,
                chp=self.chp,
                proxy_token=secrets.token_hex(16),
                tmp=self.tmp,
                password=self.password,
                service_token=self.service_token,
            )
        )
        (self.tmp / "home").mkdir(exist_ok=True)
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join(
            [str(Path(self.chp).parent), str(Path(sys.executable).parent), env.get("PATH", "")]
        )
        for key in [k for k in env if k.startswith(("JUPYTERHUB_", "JUPYTER_CONFIG", "JPY_"))]:
            env.pop(key)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=self.tmp,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                code, _ = self.api("GET", "/")
                if code == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyterhub did not come up in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the hub (it stops the servers it spawned); kill whatever is left of its process tree."""
        if self.proc is None:
            return
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        alive = [p for p in tree if p.is_running()]
        for proc in alive:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(alive, timeout=5)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self._log.close()
        self.proc = None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    # ----------------------------------------------------------------- hub REST API
    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """``(status, JSON, text or None)`` of a hub API call (through the proxy), without raising on errors."""
        data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT") else None)
        request = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {token or self.service_token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw, code = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, code = err.read(), err.code
        try:
            return code, (json.loads(raw) if raw else None)
        except ValueError:  # e.g. the proxy's plain "Not Found" before the hub's route is added
            return code, raw.decode(errors="replace")

    def issue_token(self, user: str) -> str:
        code, model = self.api("POST", f"/users/{user}/tokens", {"note": "e2e", "expires_in": 3600})
        assert code == 201, (code, model)
        self.tokens[user] = model["token"]
        return model["token"]

    def start_servers(self, *users: str, timeout: float = 60.0) -> None:
        """Start each user's default server through the hub API and wait until all are ready."""
        for user in users:
            code, model = self.api("POST", f"/users/{user}/server")
            assert code in (201, 202), (code, model, self.log_tail())
        deadline = time.monotonic() + timeout
        pending = set(users)
        while pending:
            for user in list(pending):
                code, model = self.api("GET", f"/users/{user}")
                server = (model or {}).get("servers", {}).get("")
                if server and server.get("ready"):
                    pending.discard(user)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"servers of {sorted(pending)} not ready in {timeout}s:\n{self.log_tail()}")
            if pending:
                time.sleep(0.25)

    def server_url(self, user: str, *parts: str) -> str:
        """A URL on ``user``'s single-user server, through the proxy."""
        return "/".join([f"{self.url}/user/{user}", *parts])
