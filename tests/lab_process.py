"""A real JupyterLab server as a test sees it: a free port, a token, a status API, a clean stop.

Shared by test_browser.py and test_lab_command.py (not a test module itself).
Every server runs in its own process group (start_new_session=True) so that
stopping it also stops whatever it started (``make`` starts ``jupyter lab``).
Kernels start in sessions of their own (jupyter_client does that); they exit
when the server shuts them down, or within a second of it dying (ipykernel
polls its parent), so ``stop`` asks the server to shut down first.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if a server could bind ``port`` now (SO_REUSEADDR, as Jupyter's own listener)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def new_token() -> str:
    return secrets.token_hex(16)


def isolated_env(tmp: Path) -> dict[str, str]:
    """os.environ with Jupyter's and IPython's config, data and runtime dirs under ``tmp``.

    A developer's ~/.jupyter (a password, extensions, a saved workspace) must not
    change what the test sees, and the test must not write there.
    """
    env = dict(os.environ)
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / sub)
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def start(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` in a new process group, output to ``log`` (a pipe nobody reads can fill up)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") if nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def notification_defaults(port: int, token: str) -> dict:
    """The defaults JupyterLab serves for its news and update-check settings (overrides applied)."""
    code, body = get(
        f"http://{HOST}:{port}/lab/api/settings/@jupyterlab/apputils-extension:notification"
        f"?token={token}"
    )
    assert code == 200, (code, body[:300])
    schema = json.loads(body)["schema"]["properties"]
    return {k: schema[k].get("default") for k in ("fetchNews", "checkForUpdates")}


def wait_for_status(
    proc: subprocess.Popen, port: int, token: str, log: Path, timeout: float = 60.0
) -> dict:
    """Poll /api/status until it answers 200 (the server is up); its JSON.

    Fails at once, with the server's log, if the process exits first (a taken
    port with port_retries=0, a bad option, a missing package).
    """
    url = f"http://{HOST}:{port}/api/status?token={token}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the server exited with {proc.returncode} before answering {url}:\n{log_tail(log)}"
            )
        status, body = get(url, timeout=2.0)
        if status == 200:
            return json.loads(body)
        time.sleep(0.2)
    raise AssertionError(f"no 200 from {url} within {timeout:.0f} s:\n{log_tail(log)}")


def stop(
    proc: subprocess.Popen, port: int | None = None, token: str | None = None, timeout: float = 15.0
) -> None:
    """Stop the server and its process group; safe to call on a process that already exited.

    With a port and token it first asks the server to shut down (POST
    /api/shutdown: kernels are shut down too), then SIGTERM, then SIGKILL.
    """
    if port is not None and token is not None and proc.poll() is None:
        req = urllib.request.Request(
            f"http://{HOST}:{port}/api/shutdown?token={token}", method="POST"
        )
        try:
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout=timeout)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            pass
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not _group_alive(proc):
            break
        try:
            os.killpg(proc.pid, sig)  # the group: make and its jupyter, or jupyter alone
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while _group_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
    proc.wait(timeout=5)


def _group_alive(proc: subprocess.Popen) -> bool:
    """True while any process of ``proc``'s group exists (``proc`` is reaped, not a zombie)."""
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_port_is_free(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(port):
            return True
        time.sleep(0.1)
    return port_is_free(port)
