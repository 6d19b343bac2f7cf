"""A real JupyterHub with real learners on this machine, as tests and benchmarks drive it.

Shared by tests/test_multiuser.py and benchmarks/hub_sizing.py (not a test module).

- The hub: JupyterHub from the venv `make hub-deps` builds (/opt/labsmtp-hub-venv,
  from Debian's /usr/bin/python3 so that every learner's user can run it), its
  configurable-http-proxy from npm, deploy/local/jupyterhub_config.py (loopback,
  dummy authenticator, LocalProcessSpawner), free ports, a run directory of its own.
- The learners: real system users (useradd -m), marked in their GECOS field with
  this run's process id so that a run killed half-way is cleaned up by the next.
- The course: handed out the way an instructor does, through nbgitpuller from a
  git repository (here a bare copy of this working tree served by `git daemon`
  on a free loopback port; a file:// URL would trip git's safe.directory check,
  the repository being root's).
- A lesson: a kernel of the learner's own single-user server, reached through the
  hub's proxy (REST for the session, the kernel websocket for each code cell).
- The figures: every learner's processes read from /proc (PSS, RSS, CPU ticks).

Everything runs as root (useradd, setuid spawning); callers check that first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tornado import httpclient, websocket

ROOT = Path(__file__).resolve().parent.parent
HUB_VENV = Path(os.environ.get("LABSMTP_HUB_VENV", "/opt/labsmtp-hub-venv"))
CONFIG = ROOT / "deploy" / "local" / "jupyterhub_config.py"
HOST = "127.0.0.1"
GECOS_MARK = "labsmtp hub test pid="  # + the pid of the run that made the user
COURSE_DIR = "labsmtp"  # where nbgitpuller puts the course in each home (the config's default)
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOGS = ROOT / "test-artifacts" / "hub"

# --- small helpers -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """True while the process runs; an exited one its parent has not reaped yet (a
    zombie: the hub reaps its servers only when it next polls them) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def processes_by_uid(uids) -> dict[int, list[int]]:
    """The pids of each of ``uids``, in one pass over /proc (a /proc/PID directory belongs
    to the process's effective uid)."""
    found: dict[int, list[int]] = {uid: [] for uid in uids}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
        except OSError:  # gone meanwhile
            continue
        if uid in found:
            found[uid].append(int(entry))
    return found


def processes_of(uid: int) -> list[int]:
    return processes_by_uid([uid])[uid]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(PSS, RSS) in kB from /proc/PID/smaps_rollup; None if the process is gone."""
    pss = rss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        return None
    return (pss or 0, rss or 0)


def group_members(pgid: int) -> list[int]:
    """Every process of process group ``pgid`` (field 5 of /proc/PID/stat)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        members.append(int(entry))
    return members


def kill_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        pids = [p for p in pids if pid_alive(p)]
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)


# --- system users --------------------------------------------------------------


def test_users() -> list[pwd.struct_passwd]:
    return [u for u in pwd.getpwall() if u.pw_gecos.startswith(GECOS_MARK)]


def remove_users(names: list[str]) -> None:
    """Stop every process of these users, then delete them and their homes."""
    existing = {u.pw_name: u for u in pwd.getpwall()}
    users = [existing[n] for n in names if n in existing]
    kill_pids([pid for u in users for pid in processes_of(u.pw_uid)])
    for u in users:
        subprocess.run(["userdel", "--remove", "--force", u.pw_name], capture_output=True)


def remove_stale_users() -> list[str]:
    """Users left by a run that died (its pid is gone): removed, names returned."""
    stale = []
    for u in test_users():
        pid = u.pw_gecos[len(GECOS_MARK) :].split(",")[0]
        if not (pid.isdigit() and pid_alive(int(pid))):
            stale.append(u.pw_name)
    remove_users(stale)
    return stale


def remove_stale() -> list[str]:
    """What a run killed outright left behind (its pid is gone): hub, proxy, git
    daemon, run directory and users, removed; a description of each returned.

    A failing test tears down in its finalizer; this is for a run that could not
    (SIGKILL, a lost CI runner), so that the next run starts clean.
    """
    removed = []
    # Each pid file, what its process's command line holds, and whether the process
    # leads a process group of its own (started with start_new_session) to stop whole.
    expected = {
        "hub/jupyterhub.pid": ("jupyterhub", True),
        "hub/proxy.pid": ("configurable-http-proxy", False),
        "git-daemon.pid": ("daemon --export-all", True),  # `git daemon` and its git-daemon
    }
    for run_dir in Path(tempfile.gettempdir()).glob("labsmtp-hub-*"):
        try:
            owner = int((run_dir / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(owner):
            continue
        for name, (program, group) in expected.items():
            with contextlib.suppress(OSError, ValueError):
                pid = int((run_dir / name).read_text())
                if program in cmdline(pid):
                    kill_pids(group_members(pid) if group else [pid])
                    removed.append(f"{program} {pid}")
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(str(run_dir))
    stale_users = remove_stale_users()
    return removed + [f"user {name}" for name in stale_users]


def create_users(count: int) -> list[str]:
    """``count`` new system users with homes, named lab<run>-NN, marked with this pid."""
    run = secrets.token_hex(2)
    names = [f"lab{run}-{i:02d}" for i in range(count)]
    made = []
    try:
        for name in names:
            subprocess.run(
                [
                    "useradd",
                    "--create-home",
                    "--shell",
                    "/bin/bash",
                    "--comment",
                    f"{GECOS_MARK}{os.getpid()}",
                    name,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            made.append(name)
    except subprocess.CalledProcessError as exc:
        remove_users(made)
        raise AssertionError(f"useradd {exc.cmd[-1]} failed: {exc.stderr}") from None
    return names


# --- the course as a git repository ----------------------------------------------


def course_repository(dest: Path) -> Path:
    """A bare git repository holding what a commit of this working tree would hold.

    Tracked files plus new files that are not ignored (so uncommitted work is
    tested too); no .venv, no caches. World-readable: learners clone it.
    """
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    work = dest / "course-work"
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / name)
    git = ["git", "-c", "user.name=labsmtp", "-c", "user.email=labsmtp@example.org"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "course"]):
        subprocess.run([*git, *args], cwd=work, check=True, capture_output=True)
    bare = dest / "course.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True
    )
    shutil.rmtree(work)
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return bare


class CourseServer:
    """git daemon serving the course repository on a free loopback port (git:// protocol).

    Shallow clones work (nbgitpuller clones with --depth 1), and the daemon reads
    the repository as its owner, so git's safe.directory check does not apply.
    """

    def __init__(self, base: Path, log: Path):
        self.port = free_port()
        self.url = f"git://{HOST}:{self.port}"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--export-all",
                    "--reuseaddr",
                    f"--base-path={base}",
                    f"--listen={HOST}",
                    f"--port={self.port}",
                    "--informative-errors",
                    str(base),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (base / "git-daemon.pid").write_text(str(self.proc.pid))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            assert self.proc.poll() is None, f"git daemon exited: {log.read_text()}"
            time.sleep(0.1)
        raise AssertionError(f"git daemon did not listen on {self.port}: {log.read_text()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


# --- the hub -----------------------------------------------------------------------


class Hub:
    """jupyterhub -f deploy/local/jupyterhub_config.py on free loopback ports."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.token = secrets.token_hex(32)
        self.port, self.api_port, self.hub_port = free_port(), free_port(), free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = run_dir / "jupyterhub.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> Hub:
        hub_run = self.run_dir / "hub"
        hub_run.mkdir(mode=0o700)
        env = {
            "PATH": f"{HUB_VENV}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(hub_run),
            "LABSMTP_HUB_RUN": str(hub_run),
            "LABSMTP_HUB_TOKEN": self.token,
            "LABSMTP_HUB_PORT": str(self.port),
            "LABSMTP_HUB_API_PORT": str(self.api_port),
            "LABSMTP_HUB_HUB_PORT": str(self.hub_port),
            "LABSMTP_HUB_VENV": str(HUB_VENV),
            "LABSMTP_HUB_COURSE": COURSE_DIR,
        }
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(CONFIG)],
                cwd=hub_run,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(AssertionError):
                if self.api("GET", "/")[0] == 200:
                    return self
            time.sleep(0.3)
        raise AssertionError(f"the hub did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 30.0):
        """(status, JSON or None) of a hub REST call with the admin service's token."""
        req = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")
        except OSError as e:
            raise AssertionError(f"{method} {path}: {e}") from None

    def add_learner(self, name: str) -> str:
        """Create the hub user and a token of theirs; the token."""
        status, body = self.api("POST", f"/users/{name}")
        assert status == 201, (status, body)
        status, body = self.api("POST", f"/users/{name}/tokens", {"note": "labsmtp test"})
        assert status == 201, (status, body)
        return body["token"]

    def start_servers(self, names: list[str], timeout: float = 180.0) -> float:
        """Ask for every server at once, then wait until all are ready; seconds taken."""
        started = time.monotonic()
        for name in names:
            status, body = self.api("POST", f"/users/{name}/server")
            assert status in (201, 202), (name, status, body)
        pending = set(names)
        while pending and time.monotonic() - started < timeout:
            for name in sorted(pending):
                status, body = self.api("GET", f"/users/{name}")
                server = (body or {}).get("servers", {}).get("", {}) if status == 200 else {}
                if server.get("ready"):
                    pending.discard(name)
                elif status == 200 and not server.get("pending") and not server:
                    raise AssertionError(f"{name}'s server failed to start:\n{self.log_tail()}")
            time.sleep(0.5)
        assert not pending, f"not ready after {timeout:.0f} s: {sorted(pending)}\n{self.log_tail()}"
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop the hub and its proxy (and any server still running); safe after any failure."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the hub stops its proxy and servers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # The proxy runs in the hub's process group; the pid file says if it survived.
        pid_file = self.run_dir / "hub" / "proxy.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if "configurable-http-proxy" in cmdline(pid):
                kill_pids([pid])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def proxy_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.run_dir / "hub" / "proxy.pid").read_text())
        return None


# --- measuring: every learner's processes, sampled from /proc -------------------


@dataclass
class ProcessPeak:
    pid: int
    kind: str  # "server" (jupyterhub-singleuser), "kernel", "other"
    cmd: str
    pss_kb: int = 0
    rss_kb: int = 0


class Sampler:
    """Samples each learner's processes every ``interval`` s: peak PSS/RSS per process and per learner."""

    def __init__(
        self, users: dict[str, int], extra: dict[str, int] | None = None, interval: float = 1.0
    ):
        self.users = users  # name -> uid
        self.extra = extra or {}  # label -> pid (the hub, the proxy)
        self.interval = interval
        self.processes: dict[int, ProcessPeak] = {}
        self.learner_peak_pss: dict[str, int] = dict.fromkeys(users, 0)
        self.learner_peak_rss: dict[str, int] = dict.fromkeys(users, 0)
        self.extra_peak_pss: dict[str, int] = dict.fromkeys(self.extra, 0)
        self.load: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        self.load.append(os.getloadavg()[0])
        pids = processes_by_uid(self.users.values())
        for name, uid in self.users.items():
            pss_sum = rss_sum = 0
            for pid in pids[uid]:
                mem = memory_kb(pid)
                if mem is None:
                    continue
                pss_sum += mem[0]
                rss_sum += mem[1]
                peak = self.processes.get(pid)
                if peak is None:
                    cmd = cmdline(pid)
                    kind = (
                        "server"
                        if "jupyterhub-singleuser" in cmd
                        else "kernel"
                        if "ipykernel" in cmd
                        else "other"
                    )
                    peak = self.processes[pid] = ProcessPeak(pid, kind, cmd[:200])
                peak.pss_kb = max(peak.pss_kb, mem[0])
                peak.rss_kb = max(peak.rss_kb, mem[1])
            self.learner_peak_pss[name] = max(self.learner_peak_pss[name], pss_sum)
            self.learner_peak_rss[name] = max(self.learner_peak_rss[name], rss_sum)
        for label, pid in self.extra.items():
            mem = memory_kb(pid)
            if mem:
                self.extra_peak_pss[label] = max(self.extra_peak_pss[label], mem[0])


# --- a learner, through the proxy --------------------------------------------------


@dataclass
class LessonRun:
    learner: str
    lesson: str
    cells: int = 0
    wall_s: float = 0.0
    kernel_cpu_s: float | None = None
    kernel_pid: int | None = None
    problems: list[str] = field(default_factory=list)


def lesson_code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]


def find_lessons(course: Path = ROOT) -> dict[str, str]:
    """Lessons 0 and 1 and the fault lab, found by their titles (lessons may be renumbered).

    Values are paths inside the course ("notebooks/06-....ipynb").
    """
    found: dict[str, str] = {}
    for path in sorted((course / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
        title = "".join(first["source"]).splitlines()[0] if first else ""
        m = re.match(r"#\s*(\d+)\.", title)
        if m and m[1] in ("0", "1"):
            found.setdefault(f"lesson {m[1]}", f"notebooks/{path.name}")
        if re.search(r"\bfaults?\b", title, re.IGNORECASE):
            found.setdefault("fault lab", f"notebooks/{path.name}")
    missing = {"lesson 0", "lesson 1", "fault lab"} - set(found)
    assert not missing, f"no lesson titled for {sorted(missing)} in {course / 'notebooks'}"
    return dict(sorted(found.items()))


class Learner:
    """One learner's single-user server, reached only through the hub's proxy with their token."""

    def __init__(self, hub: Hub, name: str, token: str):
        self.hub, self.name, self.token = hub, name, token
        self.uid = pwd.getpwnam(name).pw_uid
        self.base = f"{hub.url}/user/{name}"
        self.home = Path(pwd.getpwnam(name).pw_dir)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        timeout: float = 60.0,
        base: str | None = None,
    ):
        # One client per event loop (tornado keeps it); 30 lessons at once need more than 10.
        http = httpclient.AsyncHTTPClient(max_clients=64)
        resp = await http.fetch(
            f"{base or self.base}{path}",
            method=method,
            headers=self._headers(),
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            raise_error=False,
            follow_redirects=False,
            request_timeout=timeout,
        )
        return resp.code, resp.body

    async def pull_course(
        self, repo: str, branch: str = "main", timeout: float = 120.0
    ) -> list[dict]:
        """nbgitpuller's API (what the link's page calls): clone the course into ~/labsmtp."""
        query = urllib.parse.urlencode({"repo": repo, "branch": branch, "targetpath": COURSE_DIR})
        code, body = await self.request("GET", f"/git-pull/api?{query}", timeout=timeout)
        events = [
            json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")
        ]
        assert code == 200, (self.name, code, body[:500])
        return events

    async def open_kernel(self, notebook: str) -> Kernel:
        code, body = await self.request(
            "POST",
            "/api/sessions",
            {
                "path": notebook,
                "type": "notebook",
                "name": Path(notebook).name,
                "kernel": {"name": "python3"},
            },
        )
        assert code == 201, (self.name, notebook, code, body[:500])
        session = json.loads(body)
        kernel = Kernel(self, session["id"], session["kernel"]["id"])
        await kernel.connect()
        return kernel

    async def run_lesson(self, lesson: str, notebook: str, cell_timeout: float) -> LessonRun:
        """Every code cell of ``notebook`` (a path in the learner's course copy), in order."""
        cells = lesson_code_cells(self.home / COURSE_DIR / notebook)
        run = LessonRun(self.name, lesson, cells=len(cells))
        kernel = await self.open_kernel(f"{COURSE_DIR}/{notebook}")
        try:
            run.kernel_pid = kernel.pid()
            started = time.monotonic()
            for i, source in enumerate(cells):
                result = await kernel.execute(source, timeout=cell_timeout)
                run.problems += [f"cell {i}: {p}" for p in result.problems]
                if result.status != "ok":
                    break  # as Run All does: later cells would only fail for the same reason
            run.wall_s = time.monotonic() - started
            if run.kernel_pid:
                run.kernel_cpu_s = cpu_seconds(run.kernel_pid)
        finally:
            await kernel.shutdown()
        return run


@dataclass
class Execution:
    status: str = ""
    stdout: str = ""
    problems: list[str] = field(default_factory=list)


class Kernel:
    """A kernel of a learner's server, over its websocket through the proxy."""

    def __init__(self, learner: Learner, session_id: str, kernel_id: str):
        self.learner, self.session_id, self.kernel_id = learner, session_id, kernel_id
        self.session = uuid.uuid4().hex
        self.ws: websocket.WebSocketClientConnection | None = None

    async def connect(self) -> None:
        url = (
            self.learner.base.replace("http://", "ws://")
            + f"/api/kernels/{self.kernel_id}/channels"
        )
        # Generous: thirty kernels starting at once on two cores take their time.
        req = httpclient.HTTPRequest(url, headers=self.learner._headers(), request_timeout=180)
        self.ws = await websocket.websocket_connect(req)
        # The kernel is ready when it answers kernel_info (it may still be starting).
        msg_id = self._send("kernel_info_request", {})
        while True:
            msg = await self._recv(180)
            if (
                msg["msg_type"] == "kernel_info_reply"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return

    def pid(self) -> int | None:
        """The kernel's process: the learner's process whose command line names this kernel."""
        for pid in processes_of(self.learner.uid):
            if self.kernel_id in cmdline(pid) and "ipykernel" in cmdline(pid):
                return pid
        return None

    def _send(self, msg_type: str, content: dict, channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": msg_type,
                        "username": self.learner.name,
                        "session": self.session,
                        "date": "",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": content,
                    "channel": channel,
                    "buffers": [],
                }
            )
        )
        return msg_id

    async def _recv(self, timeout: float) -> dict:
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), timeout)
            if raw is None:
                raise AssertionError(f"{self.learner.name}: the kernel websocket closed")
            if isinstance(raw, bytes):
                continue  # a message with binary buffers (widget state): not an output we check
            return json.loads(raw)

    async def execute(self, code: str, timeout: float = 120.0) -> Execution:
        """Run one cell; its status, what it printed, and its error or stderr outputs."""
        msg_id = self._send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        result = Execution()
        idle = replied = False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.learner.name}: a cell ran longer than {timeout:.0f} s:\n{code[:300]}"
                )
            msg = await self._recv(left)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "execute_reply":
                replied = True
                result.status = content["status"]
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "error":
                result.problems.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "stream" and content.get("name") == "stderr":
                result.problems.append(f"stderr: {content['text'][:300]}")
            elif kind == "stream":
                result.stdout += content["text"]
        return result

    async def shutdown(self) -> None:
        if self.ws is not None:
            self.ws.close()
        await self.learner.request("DELETE", f"/api/sessions/{self.session_id}")


def server_pid(learner: Learner) -> int | None:
    """The learner's single-user server process (jupyterhub-singleuser)."""
    for pid in processes_of(learner.uid):
        if "jupyterhub-singleuser" in cmdline(pid):
            return pid
    return None


async def run_lessons(
    learners: list[Learner], lessons: dict[str, str], cell_timeout: float = 300.0
) -> list[LessonRun]:
    """Every learner runs every lesson, all at the same time, each in a kernel of its own."""
    return await asyncio.gather(
        *(
            learner.run_lesson(label, notebook, cell_timeout)
            for learner in learners
            for label, notebook in lessons.items()
        )
    )


# --- one place that sets everything up and tears it all down ------------------------


class Classroom:
    """Users, a hub, servers and the course pulled into every home; all removed by ``close``."""

    def __init__(self, learners: int):
        self.count = learners
        self.run_dir = Path(tempfile.mkdtemp(prefix="labsmtp-hub-"))
        os.chmod(self.run_dir, 0o755)  # learners read the course repository here
        (self.run_dir / "owner.pid").write_text(str(os.getpid()))  # for remove_stale()
        self.names: list[str] = []
        self.uids: dict[str, int] = {}
        self.hub: Hub | None = None
        self.learners: list[Learner] = []
        self.course: CourseServer | None = None
        self.timings: dict[str, float] = {}

    def open(self) -> Classroom:
        t = time.monotonic()
        self.stale = remove_stale()
        self.course = CourseServer(self.run_dir, self.run_dir / "git-daemon.log")
        self.repo = f"{self.course.url}/{course_repository(self.run_dir).name}"
        self.names = create_users(self.count)
        self.uids = {name: pwd.getpwnam(name).pw_uid for name in self.names}
        self.timings["users"] = time.monotonic() - t
        t = time.monotonic()
        self.hub = Hub(self.run_dir).start()
        self.timings["hub start"] = time.monotonic() - t
        tokens = {name: self.hub.add_learner(name) for name in self.names}
        self.timings["servers start"] = self.hub.start_servers(self.names)
        self.learners = [Learner(self.hub, name, tokens[name]) for name in self.names]
        return self

    def close(self) -> list[str]:
        """Tear down; returns what was still left afterwards (empty when clean)."""
        left = []
        t = time.monotonic()
        try:
            # Every learner's processes at once (SIGTERM: servers shut their kernels
            # down), which is quicker than asking the hub to stop ten servers in turn.
            kill_pids(
                [pid for pids in processes_by_uid(self.uids.values()).values() for pid in pids]
            )
            self.timings["stop learners"] = time.monotonic() - t
            t = time.monotonic()
            if self.hub is not None:
                self.hub.stop()
            self.timings["stop hub"] = time.monotonic() - t
            t = time.monotonic()
        finally:
            if self.course is not None:
                self.course.close()
            # The hub's log holds every learner's server log too (LocalProcessSpawner
            # servers inherit its output): kept for a failed run, CI's artifacts.
            with contextlib.suppress(OSError):
                LOGS.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.run_dir / "jupyterhub.log", LOGS / "jupyterhub.log")
            remove_users(self.names)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.timings["remove users"] = time.monotonic() - t
        left += [
            f"process {pid} ({cmdline(pid)[:80]}) of {name}"
            for name, uid in self.uids.items()
            for pid in processes_of(uid)
        ]
        existing = {u.pw_name for u in pwd.getpwall()}
        left += [f"user {n}" for n in self.names if n in existing]
        left += [f"home /home/{n}" for n in self.names if os.path.exists(f"/home/{n}")]
        if self.hub is not None and self.hub.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.hub.proc.pid, 0)
                left.append(f"hub process group {self.hub.proc.pid}")
            proxy = self.hub.proxy_pid()
            if proxy and "configurable-http-proxy" in cmdline(proxy):
                left.append(f"proxy {proxy}")
        if self.run_dir.exists():
            left.append(f"run directory {self.run_dir}")
        return left

    def __enter__(self) -> Classroom:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()
