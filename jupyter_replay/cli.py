"""Command line: ``jupyter replay <command>`` (also ``jupyter-replay`` / ``python -m jupyter_replay.cli``).

Commands:
    demo      write sample data and the example notebooks into a folder, start JupyterLab on the quickstart
    dashboard serve the market replay dashboard (notebooks/dashboard.ipynb) with Voilà, one kernel per visitor
    bench     run the benchmarks (source checkout: ``bench/``) and print the results table
    version   print the version

Adding a command (e.g. ``bench``): write ``_add_<name>(sub)`` that registers a subparser with
``set_defaults(func=<handler>)`` and append it to ``SUBCOMMANDS``. Handlers take the parsed
``argparse.Namespace`` and return an exit code.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_DEMO_DIR = Path("~/jupyter_replay_demo")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter-replay")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


# -- locating the example notebooks -----------------------------------------------------------------


def notebooks_dir() -> Path | None:
    """Folder holding the example notebooks, or None.

    Looked up in order: the source checkout next to the package (``<repo>/notebooks``, the editable
    install used by ``./dev``), then ``<sys.prefix>/share/jupyter_replay/notebooks`` (a wheel install).
    """
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "notebooks", Path(sys.prefix) / "share" / "jupyter_replay" / "notebooks"]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.ipynb")):
            return folder
    return None


def quickstart_name(names: Sequence[str]) -> str | None:
    """The notebook the demo opens: the first (sorted) name containing 'quickstart', else the first one."""
    ordered = sorted(n for n in names if n.endswith(".ipynb"))
    for name in ordered:
        if "quickstart" in name.lower():
            return name
    return ordered[0] if ordered else None


# -- demo ------------------------------------------------------------------------------------------


def write_sample_data(data_dir: Path) -> list[Path]:
    """Write the embedded sample data sets as Parquet and CSV files into ``data_dir``."""
    from jupyter_replay import sources

    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("sample_trades", "sample_quotes"):
        make = getattr(sources, name, None)
        if make is None:  # not provided by this version of the engine
            continue
        df = make()
        for path, write in ((data_dir / f"{name}.parquet", df.to_parquet), (data_dir / f"{name}.csv", df.to_csv)):
            write(path, index=False)
            written.append(path)
    return written


def prepare_demo(directory: Path, *, reset: bool = False,
                 notebooks: Path | None = None) -> tuple[list[Path], str | None]:
    """Fill ``directory`` with sample data and the example notebooks (from ``notebooks`` or ``notebooks_dir()``).

    Notebooks already there are kept (the user may have edited them) unless ``reset`` is true.
    Returns the files written and the notebook to open (relative name) or None.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = write_sample_data(directory / "data")
    src = notebooks if notebooks is not None else notebooks_dir()
    names: list[str] = []
    if src is not None:
        for nb in sorted(src.glob("*.ipynb")):
            names.append(nb.name)
            target = directory / nb.name
            if reset or not target.exists():
                shutil.copyfile(nb, target)
                written.append(target)
    return written, quickstart_name(names)


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
        except OSError:
            return False
        return True


def lab_command(directory: Path, *, ip: str, port: int, token: str, open_browser: bool,
                default_url: str, extra: Sequence[str] = ()) -> list[str]:
    """The ``jupyter lab`` command line the demo runs."""
    return [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={directory}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--LabApp.default_url={default_url}",
        f"--ServerApp.open_browser={open_browser}",
        *(["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *extra,
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser().resolve()
    written, notebook = prepare_demo(directory, reset=args.reset,
                                     notebooks=Path(args.notebooks).expanduser() if args.notebooks else None)
    print(f"jupyter_replay demo in {directory} ({len(written)} files written)")
    if notebook is None:
        print("  (no example notebooks found; opening the file browser)")
    port = args.port or _free_port(args.ip)
    if not _port_free(args.ip, port):
        print(f"error: port {port} on {args.ip} is in use; pick another with --port", file=sys.stderr)
        return 1
    token = args.token or secrets.token_hex(24)
    default_url = f"/lab/tree/{notebook}" if notebook else "/lab"
    host = f"[{args.ip}]" if ":" in args.ip else args.ip
    url = f"http://{host}:{port}{default_url}?token={token}"
    cmd = lab_command(directory, ip=args.ip, port=port, token=token, open_browser=not args.no_browser,
                      default_url=default_url, extra=args.lab_args)
    env = dict(os.environ)
    env.setdefault("BOKEH_RESOURCES", "inline")  # the demo works offline
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    print(f"Open JupyterLab at:\n\n    {url}\n\nStop it with Ctrl-C.", flush=True)
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)  # replace this process: Ctrl-C and signals go to JupyterLab
    return subprocess.call(cmd, env=env)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="start JupyterLab on the quickstart notebook with embedded sample data",
                       description="Write the embedded sample data and the example notebooks into DIR, then "
                                   "start JupyterLab (with the jupyter_replay server extension) on the quickstart.")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL with the token")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--ip", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    p.add_argument("--dir", default=str(DEFAULT_DEMO_DIR), help=f"demo folder (default: {DEFAULT_DEMO_DIR})")
    p.add_argument("--token", default="", help="server token (default: a random one)")
    p.add_argument("--reset", action="store_true", help="overwrite notebooks already in the demo folder")
    p.add_argument("--notebooks", default="",
                   help="copy the notebooks from this folder (default: the bundled examples)")
    p.add_argument("--dry-run", action="store_true", help="prepare the folder and print the command, do not start")
    p.add_argument("lab_args", nargs="*", metavar="-- LAB_ARG", help="extra arguments for jupyter lab (after --)")
    p.set_defaults(func=cmd_demo)


# -- dashboard -------------------------------------------------------------------------------------

DASHBOARD_NOTEBOOK = "dashboard.ipynb"
CULLING_KERNEL_MANAGER = "jupyter_replay.server.culling.DisconnectCullingKernelManager"


def dashboard_command(notebook: Path, *, ip: str, port: int, open_browser: bool, server: bool, token: str,
                      disconnect_timeout: float, connect_timeout: float = 300.0,
                      extra: Sequence[str] = ()) -> tuple[list[str], str]:
    """The command line serving ``notebook`` with Voilà, and the URL visitors open.

    Standalone (default): ``voila`` alone. Every visitor gets a kernel that may only exchange widget
    messages (no code execution); Voilà does not load jupyter_server extensions, so the widget runs the
    replay engine in the visitor's kernel. ``server``: ``jupyter server`` with Voilà as a server extension
    next to the jupyter_replay extension (``/voila/render/<notebook>``), so each visitor's widget attaches
    to its kernel's server session; it needs the token (a token holder may also use the server's other
    APIs, so hand this mode only to people you would give a notebook server).
    Both shut a visitor's kernel down when the page is closed (Voilà's ``beforeunload`` request) and cull
    kernels that no browser has been connected to for ``disconnect_timeout`` seconds.
    """
    host = f"[{ip}]" if ":" in ip else ip
    culling = [f"--DisconnectCullingKernelManager.disconnect_timeout={disconnect_timeout:g}",
               f"--DisconnectCullingKernelManager.connect_timeout={connect_timeout:g}"]
    if not server:
        cmd = [
            sys.executable, "-m", "voila", str(notebook), f"--Voila.ip={ip}", f"--Voila.port={port}",
            "--Voila.port_retries=0", f"--Voila.open_browser={open_browser}",
            f"--VoilaConfiguration.multi_kernel_manager_class={CULLING_KERNEL_MANAGER}", *culling, *extra,
        ]
        return cmd, f"http://{host}:{port}/"
    default_url = f"/voila/render/{notebook.name}"
    cmd = [
        sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={notebook.parent}",
        f"--ServerApp.ip={ip}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.default_url={default_url}",
        f"--ServerApp.open_browser={open_browser}", f"--ServerApp.kernel_manager_class={CULLING_KERNEL_MANAGER}",
        *(["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *culling, *extra,
    ]
    return cmd, f"http://{host}:{port}{default_url}?token={token}"


def dashboard_config_dir() -> str:
    """The Jupyter config directory with the dashboard's ``voila.py`` (the XSRF cookie hook)."""
    from jupyter_replay.server.voila import CONFIG_DIR

    return str(CONFIG_DIR)


def cmd_dashboard(args: argparse.Namespace) -> int:
    if args.notebook:
        notebook = Path(args.notebook).expanduser().resolve()
    else:
        folder = notebooks_dir()
        notebook = (folder / DASHBOARD_NOTEBOOK) if folder is not None else Path(DASHBOARD_NOTEBOOK)
    if not notebook.is_file():
        print(f"error: notebook {notebook} not found; pass one with --notebook", file=sys.stderr)
        return 1
    try:
        import voila  # noqa: F401
    except ImportError:
        print('error: the dashboard needs Voilà: pip install "jupyter-replay[dashboard]"', file=sys.stderr)
        return 1
    port = args.port or _free_port(args.ip)
    if not _port_free(args.ip, port):
        print(f"error: port {port} on {args.ip} is in use; pick another with --port", file=sys.stderr)
        return 1
    cmd, url = dashboard_command(notebook, ip=args.ip, port=port, open_browser=not args.no_browser,
                                 server=args.server, token=args.token or secrets.token_hex(24),
                                 disconnect_timeout=args.disconnect_timeout, connect_timeout=args.connect_timeout,
                                 extra=args.voila_args)
    env = dict(os.environ)
    env.setdefault("BOKEH_RESOURCES", "inline")  # works offline
    config_path = (dashboard_config_dir(), env.get("JUPYTER_CONFIG_PATH"))
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in config_path if p)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    print(f"Serving the replay dashboard ({'server extension' if args.server else 'standalone Voilà'}) at:\n\n"
          f"    {url}\n\nEvery visitor gets their own kernel and replay session. Stop it with Ctrl-C.", flush=True)
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)
    return subprocess.call(cmd, env=env)


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the market replay dashboard with Voilà (one session per visitor)",
                       description="Serve notebooks/dashboard.ipynb as a web app with Voilà: every visitor gets "
                                   "their own kernel and replay session, cleaned up when they leave.")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--ip", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL")
    p.add_argument("--server", action="store_true",
                   help="run jupyter server with Voilà as a server extension: widgets use the replay server "
                        "extension's sessions (token required)")
    p.add_argument("--token", default="", help="server token with --server (default: a random one)")
    p.add_argument("--notebook", default="", help=f"notebook to serve (default: the bundled {DASHBOARD_NOTEBOOK})")
    p.add_argument("--disconnect-timeout", type=float, default=60.0,
                   help="shut down a visitor's kernel after this many seconds without a browser connection "
                        "(a closed page is shut down at once; default: 60)")
    p.add_argument("--connect-timeout", type=float, default=300.0,
                   help="shut down a kernel whose page never connected, this many seconds after it ran the "
                        "notebook (default: 300)")
    p.add_argument("--dry-run", action="store_true", help="print the command, do not start")
    p.add_argument("voila_args", nargs="*", metavar="-- ARG",
                   help="extra arguments for voila / jupyter server (after --)")
    p.set_defaults(func=cmd_dashboard)


# -- bench -----------------------------------------------------------------------------------------


def _bench_root() -> Path | None:
    """The source checkout holding ``bench/`` (benchmarks are not part of the wheel), or None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "bench" / "options.py").is_file() else None


def bench_options(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the bench options with ``bench/options.py`` (imported only now: building the CLI parser
    must not import the source checkout's ``bench/``)."""
    root = _bench_root()
    if root is None:
        raise SystemExit("error: the benchmarks live in the source checkout (bench/); run from a clone")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench.options import DESCRIPTION, build_parser

    return build_parser(argparse.ArgumentParser(prog="jupyter replay bench", description=DESCRIPTION)).parse_args(
        list(argv)
    )


def cmd_bench(args: argparse.Namespace) -> int:
    options = bench_options(args.rest)
    from bench.__main__ import run_from_args

    return int(run_from_args(options, list(args.rest)))


def _add_bench(sub: argparse._SubParsersAction) -> None:
    # Options (and -h) are passed through to bench/options.py, parsed when the command runs.
    p = sub.add_parser("bench", add_help=False, help="run the benchmarks and print the results table (source checkout)",
                       description="Run the benchmarks in bench/ (same as `python -m bench`).")
    p.set_defaults(func=cmd_bench, takes_rest=True)


# -- version ---------------------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> int:
    print(_version())
    return 0


def _add_version(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)


# -- entry point -----------------------------------------------------------------------------------

# Subcommand registrars, in --help order. `bench` plugs in here.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_demo, _add_dashboard, _add_bench, _add_version]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter replay",
                                     description="jupyter_replay: replay recorded time series in Jupyter.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; ``args.rest`` holds the arguments a pass-through command parses itself."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "takes_rest", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parse_args(argv)
    if not hasattr(args, "func"):
        build_parser().print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
