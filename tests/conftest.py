"""Shared fixtures: a real lab server per test, and the no-skip rule for CI."""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

import pytest

from labsmtp import LabServer, stop_all

# Repository tooling (tools/make_index.py) is checked by the tests too.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tools"))

# In CI (LABSMTP_NO_SKIP=1, set by .ci/run) a skipped test is a failure: a missing
# tool must not turn a red test into a quiet skip.
NO_SKIP = os.environ.get("LABSMTP_NO_SKIP") == "1" or os.environ.get("CI") == "true"


def require_tool(name: str, path: str | None = None) -> str:
    """The path of an external program; skip locally, fail in CI, if it is missing."""
    found = path if path and os.path.exists(path) else shutil.which(name)
    if not found:
        msg = f"{name} is not installed (apt-get install it; .ci/run does)"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)
    return found


def require_root(why: str) -> None:
    """Skip locally, fail in CI (which runs as root), when not root."""
    if os.geteuid() != 0:
        msg = f"needs root: {why}"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)


def pytest_sessionfinish(session, exitstatus):
    if NO_SKIP and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
        if skipped:
            reporter.write_line(f"LABSMTP_NO_SKIP: {skipped} test(s) skipped; failing the run")
            session.exitstatus = 1


@pytest.fixture
def server():
    """A generic lab server on a free loopback port, stopped after the test."""
    s = LabServer(name=f"test-{os.getpid()}-{id(object())}").start()
    yield s
    s.stop()


@pytest.fixture
def postfix_server():
    """The postfix persona configured like tests/recordings/record_postfix.sh's Postfix."""
    s = LabServer.as_recorded(
        "postfix", hostname="mx.lab.example.org", name=f"test-postfix-{id(object())}"
    ).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True, scope="session")
def _stop_everything_at_the_end():
    yield
    stop_all()
