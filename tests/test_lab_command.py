"""The README's first command, `make lab`, on a clean checkout: it sets up, serves, and stops.

The checkout is a temporary copy of what git would commit (tracked files plus
new files that are not ignored: no .venv, no caches), so it sees exactly what a
learner's clone sees, uncommitted work included.

Setting up for real (a venv, pip installing JupyterLab) takes minutes and a
package index, so it is split in two:
- the plan: `make -n lab` on the clean copy must create .venv and install the
  pins and the package before starting JupyterLab;
- the start: `make lab` runs for real, reusing the venv this test runs in
  (VENV=...) with its stamp marked old-and-fine (`make -o`), so make never
  runs pip in that shared venv; `pip install -e .` from a temporary copy would
  point the venv's labsmtp at a directory that is deleted afterwards.
  (A .venv symlink in the copy would have the same hazard.) `make test` in CI
  has just installed that venv from the same requirement files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lab_process
import pytest
from conftest import require_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # the venv running this test (make test: .venv)
START_LESSON = "notebooks/00-start-here.ipynb"


def make_env(tmp: Path) -> dict[str, str]:
    """A clean environment for an inner make: Jupyter dirs under ``tmp``, no outer make flags."""
    env = lab_process.isolated_env(tmp)
    for var in (
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEOVERRIDES",
        "VENV",
        "LAB_ARGS",
        "LAB_PORT",
        "LAB_NOTEBOOK",
    ):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the files a commit of this working tree would hold (no .venv, no caches)."""
    git = require_tool("git")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
    )
    assert listed.returncode == 0, f"{ROOT} is not a git checkout: {listed.stderr.decode()}"
    files = listed.stdout.decode().split("\0")
    dest = tmp_path_factory.mktemp("checkout")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():  # tracked but deleted in the working tree: not there
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    assert not (dest / ".venv").exists()
    return dest


def test_make_lab_on_a_clean_checkout_sets_up_before_it_starts(checkout, tmp_path):
    make = require_tool("make")
    plan = subprocess.run(
        [make, "-n", "lab"],
        cwd=checkout,
        env=make_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert plan.returncode == 0, plan.stderr
    steps = [
        "-m venv .venv",
        "pip --no-input --quiet install -r requirements.txt",
        "pip --no-input --quiet install --no-deps -e .",
        f".venv/bin/jupyter lab {START_LESSON} --ip=127.0.0.1 --port=8888",
    ]
    lines = plan.stdout.splitlines()
    at = [next((i for i, line in enumerate(lines) if step in line), None) for step in steps]
    assert None not in at and at == sorted(at), f"expected, in order: {steps}\ngot:\n{plan.stdout}"
    assert (checkout / START_LESSON).is_file()


def test_make_lab_serves_jupyterlab_and_stops_with_its_process_group(checkout, tmp_path):
    make = require_tool("make")
    jupyter = VENV / "bin" / "jupyter"
    assert jupyter.exists(), f"{jupyter} is missing: run the tests from the venv `make test` builds"
    port, token = lab_process.free_port(), lab_process.new_token()
    cmd = [
        make,
        "lab",
        f"VENV={VENV}",
        "-o",
        f"{VENV}/.stamp-lab",  # reuse this venv; never pip into it
        f"LAB_PORT={port}",
        f"LAB_ARGS=--no-browser --IdentityProvider.token={token} --ServerApp.port_retries=0",
    ]
    log = tmp_path / "make-lab.log"
    proc = lab_process.start(cmd, cwd=checkout, env=make_env(tmp_path), log=log)
    try:
        status = lab_process.wait_for_status(proc, port, token, log, timeout=90)
        assert "started" in status, status

        code, page = lab_process.get(f"http://{lab_process.HOST}:{port}/lab?token={token}")
        assert code == 200 and b"jupyter-config-data" in page, (code, page[:300])
        # It serves the checkout it was started in: the start lesson is there. (Given a
        # file, Jupyter serves that file's folder, notebooks/, as its root; Binder
        # serves the repository's root.)
        served = [
            path
            for path in (Path(START_LESSON).name, START_LESSON)
            if lab_process.get(
                f"http://{lab_process.HOST}:{port}/api/contents/{path}?content=0&token={token}"
            )[0]
            == 200
        ]
        assert served, f"{START_LESSON} is not served:\n{lab_process.log_tail(log)}"
        # The token is required: without it the API refuses.
        code, _ = lab_process.get(f"http://{lab_process.HOST}:{port}/api/status")
        assert code == 403, f"/api/status answered {code} without the token"
        # The course's settings (binder/jupyter-config): no news pop-up over a
        # projected screen, no update check.
        assert lab_process.notification_defaults(port, token) == {
            "fetchNews": "false",
            "checkForUpdates": False,
        }
    finally:
        lab_process.stop(proc)  # SIGTERM to the group (make and its jupyter), then SIGKILL

    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the group is left
    assert lab_process.wait_until_port_is_free(port), f"port {port} is still taken after the stop"
