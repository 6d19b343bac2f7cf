"""A room of learners on one JupyterHub, for real: ten system users, lessons at once, kept apart.

JupyterHub from PyPI with configurable-http-proxy from npm (`make hub-deps`,
which this module runs: it returns at once when up to date), the
LocalProcessSpawner starting each learner's server as that learner's own
system user, a dummy authenticator, everything on loopback
(deploy/local/jupyterhub_config.py; tests/hub_process.py does the driving).

1. Every learner gets the course through an nbgitpuller link, then runs lessons
   0 and 1 and the fault lab at the same time as everyone else: 30 kernels at
   once, each reached through the hub's proxy with the learner's own token
   (REST for the session, the kernel websocket for each cell). No cell may raise
   or print to stderr. The figures (memory per learner, CPU per lesson, wall
   times) go to test-artifacts/hub-sizing.json; benchmarks/hub_sizing.py
   turns them into the README's table.
2. Isolation: learner A, from A's own kernel, connects with smtplib to the lab
   server running in learner B's kernel; B's server answers 554 5.7.1 and logs
   it, and B's mailbox never holds A's message. A's token cannot reach B's
   Jupyter server either.

Users, the hub, the proxy and every learner process are removed afterwards, on
failure too, and the teardown fails the test if anything is left. Needs root;
leave it out locally with `-m "not multiuser"`. In CI it must run.
LABSMTP_HUB_LEARNERS changes the room's size (default 10).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import hub_process
import pytest
from conftest import require_root, require_tool

pytestmark = [pytest.mark.multiuser, pytest.mark.slow, pytest.mark.timeout(900)]

LEARNERS = int(os.environ.get("LABSMTP_HUB_LEARNERS", "10"))
ARTIFACT = hub_process.ROOT / "test-artifacts" / "hub-sizing.json"


@pytest.fixture(scope="module")
def room():
    """The hub with LEARNERS learners whose servers are up; all of it removed afterwards."""
    require_root("creates system users and spawns servers as them (CI runs as root)")
    require_tool("git")
    require_tool("useradd", "/usr/sbin/useradd")
    require_tool("npm")  # configurable-http-proxy comes from npm (make hub-deps)
    require_tool("python3", "/usr/bin/python3")  # Debian's: the learners' venv is built from it
    started = time.monotonic()
    deps = subprocess.run(
        ["make", "--no-print-directory", "hub-deps"],
        cwd=hub_process.ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert deps.returncode == 0, (
        f"make hub-deps failed:\n{deps.stdout[-2000:]}\n{deps.stderr[-3000:]}"
    )
    deps_s = time.monotonic() - started
    classroom = hub_process.Classroom(LEARNERS)
    try:
        classroom.open()
        classroom.timings["hub-deps"] = deps_s
        yield classroom
    finally:
        t = time.monotonic()
        left = classroom.close()
        print(
            f"\nteardown: {time.monotonic() - t:.1f} s; timings: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in classroom.timings.items())
        )
        assert not left, f"left behind after teardown: {left}"


def test_every_learner_pulls_the_course_and_runs_three_lessons_at_once(room):
    lessons = hub_process.find_lessons()

    async def pull_all():
        return await asyncio.gather(*(learner.pull_course(room.repo) for learner in room.learners))

    t = time.monotonic()
    pulls = asyncio.run(pull_all())
    room.timings["course pull"] = time.monotonic() - t
    for learner, events in zip(room.learners, pulls, strict=True):
        assert events and events[-1] == {"phase": "finished"}, (learner.name, events[-3:])
        for notebook in lessons.values():
            assert (learner.home / hub_process.COURSE_DIR / notebook).is_file()

    # The link an instructor hands out (docs/instructors.md), followed the way a browser
    # does: log in to the hub, then the hub sends the learner to their own server's
    # nbgitpuller page (through OAuth), which then calls the API used above.
    link = "/hub/user-redirect/git-pull?" + urllib.parse.urlencode(
        {"repo": room.repo, "branch": "main", "urlpath": f"lab/tree/labsmtp/{lessons['lesson 0']}"}
    )
    first = room.learners[0]
    url, page = _browse_as(first.name, room.hub.url, link)
    assert urllib.parse.urlsplit(url).path == f"/user/{first.name}/git-pull", url
    assert b"nbgitpuller" in page.lower(), page[:300]

    users = {learner.name: learner.uid for learner in room.learners}
    extra = {"hub": room.hub.proc.pid, "proxy": room.hub.proxy_pid()}
    t = time.monotonic()
    with hub_process.Sampler(users, extra={k: v for k, v in extra.items() if v}) as sampler:
        runs = asyncio.run(hub_process.run_lessons(room.learners, lessons))
    room.timings["lessons, all at once"] = time.monotonic() - t

    problems = [f"{r.learner} {r.lesson}: {p}" for r in runs for p in r.problems]
    assert not problems, "\n".join(problems)
    assert len(runs) == LEARNERS * len(lessons)
    assert all(r.kernel_cpu_s is not None for r in runs), "a kernel's process was not found"
    _write_figures(room, lessons, runs, sampler)


def test_a_learners_lab_server_refuses_another_learner(room):
    a, b = room.learners[0], room.learners[1]

    async def scenario():
        kb = await b.open_kernel(f"{hub_process.COURSE_DIR}/notebooks/scratch-b.ipynb")
        ka = await a.open_kernel(f"{hub_process.COURSE_DIR}/notebooks/scratch-a.ipynb")
        try:
            # B starts a lab server the way the lessons do (owner_only is left to its
            # default: on, because JupyterHub set JUPYTERHUB_USER) and mails itself.
            started = await kb.execute(
                "import os, smtplib\n"
                "from labsmtp import LabServer\n"
                "mine = LabServer(name='mine').start()\n"
                "with smtplib.SMTP(mine.host, mine.port, timeout=10) as s:\n"
                "    s.sendmail('b@example.org', ['postmaster@lab.example.org'], 'Subject: mine\\r\\n\\r\\nB\\r\\n')\n"
                "print(mine.port, mine.owner_only, os.environ['JUPYTERHUB_USER'])\n"
            )
            assert started.status == "ok" and not started.problems, started
            port, owner_only, user = started.stdout.split()
            assert owner_only == "True" and user == b.name

            # A, in A's own kernel, tries to deliver into B's server.
            attempt = await ka.execute(
                "import smtplib\n"
                "try:\n"
                f"    with smtplib.SMTP('127.0.0.1', {port}, timeout=10) as s:\n"
                "        s.sendmail('a@example.org', ['postmaster@lab.example.org'], 'Subject: from A\\r\\n\\r\\nA\\r\\n')\n"
                "    print('DELIVERED')\n"
                "except smtplib.SMTPConnectError as e:\n"
                "    print(e.smtp_code, e.smtp_error.decode())\n"
            )
            assert attempt.status == "ok" and not attempt.problems, attempt
            code, _, text = attempt.stdout.strip().partition(" ")
            assert code == "554" and text.startswith("5.7.1 "), attempt.stdout
            assert f"belongs to {b.name} (uid {b.uid})" in text
            assert f"comes from {a.name} (uid {a.uid})" in text

            # B's mailbox holds B's own message only; B's transcript logged the refusal.
            check = await kb.execute(
                "import json\n"
                "print(json.dumps({'subjects': [m.subject for m in mine.mailbox],\n"
                "                  'senders': [m.mail_from for m in mine.mailbox],\n"
                "                  'events': [l.note for l in mine.transcript.lines() if l.direction == 'event']}))\n"
                "mine.stop()\n"
            )
            assert check.status == "ok" and not check.problems, check
            return json.loads(check.stdout)
        finally:
            await ka.shutdown()
            await kb.shutdown()

    seen = asyncio.run(scenario())
    assert seen["subjects"] == ["mine"] and seen["senders"] == ["b@example.org"], seen
    refused = [e for e in seen["events"] if e.startswith("connection refused: ")]
    assert len(refused) == 1 and f"{a.name} (uid {a.uid})" in refused[0], seen["events"]

    # The hub keeps them apart too: A's token does not open B's Jupyter server.
    code, _, _ = asyncio.run(_get(a, f"{b.base}/api/kernels"))
    assert code in (302, 403), f"A's token reached B's server: {code}"


def _browse_as(name: str, hub: str, path: str) -> tuple[str, bytes]:
    """Log in as ``name`` (the dummy authenticator takes any password), then open ``path``.

    Cookies and redirects as a browser handles them; the final URL and page.
    """
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{hub}/hub/login", timeout=60) as r:  # sets the _xsrf cookie
        r.read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": name, "password": "any", "_xsrf": xsrf}).encode()
    next_ = urllib.parse.quote(path, safe="")
    with opener.open(f"{hub}/hub/login?next={next_}", data=form, timeout=120) as r:
        return r.url, r.read()


async def _get(learner: hub_process.Learner, url: str):
    from tornado import httpclient

    resp = await httpclient.AsyncHTTPClient().fetch(
        url,
        headers={"Authorization": f"token {learner.token}"},
        follow_redirects=False,
        raise_error=False,
        request_timeout=60,
    )
    return resp.code, resp.body or b"", resp.headers.get("Location", "")


def _write_figures(room, lessons, runs, sampler) -> None:
    """What benchmarks/hub_sizing.py tabulates: raw figures of this run."""
    kinds: dict[str, list[int]] = {}
    for p in sampler.processes.values():
        kinds.setdefault(p.kind, []).append(p.pss_kb)
    figures = {
        "learners": LEARNERS,
        "lessons": lessons,
        "cores": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_during": [min(sampler.load), max(sampler.load)] if sampler.load else None,
        "timings_s": room.timings,
        "runs": [
            {
                "learner": r.learner,
                "lesson": r.lesson,
                "cells": r.cells,
                "wall_s": round(r.wall_s, 2),
                "kernel_cpu_s": r.kernel_cpu_s,
            }
            for r in runs
        ],
        "learner_peak_pss_kb": sampler.learner_peak_pss,
        "learner_peak_rss_kb": sampler.learner_peak_rss,
        "process_peak_pss_kb": kinds,
        "shared_peak_pss_kb": sampler.extra_peak_pss,
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=1))
    walls = {label: [r.wall_s for r in runs if r.lesson == label] for label in lessons}
    print(
        f"\n{LEARNERS} learners x {len(lessons)} lessons at once: "
        + "; ".join(f"{k} {min(v):.1f}-{max(v):.1f} s" for k, v in walls.items())
        + f"; peak PSS per learner {max(sampler.learner_peak_pss.values()) / 1024:.0f} MB"
        + f" -> {ARTIFACT.relative_to(hub_process.ROOT)}"
    )


def test_a_run_killed_outright_is_cleaned_up_by_the_next(room):
    """SIGKILL skips every finalizer: the next run's remove_stale() must clear what is left."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(hub_process.ROOT / 'tests')!r})\n"
        "import hub_process\n"
        "c = hub_process.Classroom(2)\n"
        "c.course = hub_process.CourseServer(c.run_dir, c.run_dir / 'git-daemon.log')\n"
        "c.names = hub_process.create_users(2)\n"
        "c.hub = hub_process.Hub(c.run_dir).start()\n"
        "print(c.run_dir, c.hub.proc.pid, c.hub.proxy_pid(), c.course.proc.pid, *c.names, flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        run_dir, hub, proxy, daemon, *names = proc.stdout.readline().split()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the harness itself dies, nothing else
        proc.wait()
    pids = {"hub": int(hub), "proxy": int(proxy)}
    pids.update({f"git daemon {p}": p for p in hub_process.group_members(int(daemon))})
    assert len(pids) >= 4 and all(hub_process.pid_alive(p) for p in pids.values()), pids

    removed = hub_process.remove_stale()
    assert run_dir in removed and {f"user {n}" for n in names} <= set(removed), removed
    assert not [k for k, p in pids.items() if hub_process.pid_alive(p)], removed
    existing = {u.pw_name for u in pwd.getpwall()}
    assert not set(names) & existing and not os.path.exists(run_dir)
    # The live room of this module was left alone.
    assert all(hub_process.pid_alive(hub_process.server_pid(lr)) for lr in room.learners)
