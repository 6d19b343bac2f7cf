"""Real MTAs as clients of the lab server: Debian's Postfix 3.7 and Exim 4.96.

    with PostfixClient() as postfix:
        result = postfix.deliver(server.port, message)
        result.delivered, result.detail, result.seconds

Each client is the Debian package's own program with a private configuration in
a temporary directory.  Postfix: the installed package, its own master with a
private config_directory and queue (the system instance stays unconfigured and
stopped).  Exim: exim4-daemon-light unpacked from its .deb (it conflicts with
the installed postfix package), run with -C.  The SMTP client settings are
Debian's stock ones; only the plumbing differs: where the instance lives, and
that a lab server on 127.0.0.1 is the only next hop (nothing else is reachable).

deliver() submits one message as a local program would (sendmail -i / exim -oi),
lets the MTA make one delivery attempt and reads the result from the MTA's own
log: delivered or not, the remote server's reply or the error in the MTA's
words, and the time taken.  A deferred message is removed from the queue, so
no retry reaches a later server.  Both need root (Postfix's master runs as
root; Exim's -C keeps its privileges only for root), as the recordings do.
Used by tests/test_mta_clients.py.
"""

from __future__ import annotations

import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

LAB_HOST = "127.0.0.1"  # loopback only: the only host either client may reach
CLIENT_DOMAIN = "client.example.org"  # the clients' own name (HELO, Received:, senders)
RECORDINGS = pathlib.Path(__file__).parent / "recordings"

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTSUPER = "/usr/sbin/postsuper"
SENDMAIL = "/usr/sbin/sendmail"  # Postfix's sendmail(1), from the postfix package
DEBIAN_MAIN_CF = pathlib.Path("/usr/share/postfix/main.cf.debian")
DEBIAN_MAIN_CF_TLS = pathlib.Path("/usr/share/postfix/main.cf.tls")
MASTER_CF_DIST = pathlib.Path("/usr/share/postfix/master.cf.dist")
EXIM_USER = "Debian-exim"  # compiled into Debian's exim4 binary


class Unavailable(RuntimeError):
    """This machine cannot run the client (not root, package missing, no download)."""


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt by a real MTA, as the MTA itself logged it."""

    mta: str  # e.g. "Postfix 3.7.11"
    port: int  # the lab server's port on 127.0.0.1
    sender: str  # the envelope sender the MTA was given
    recipients: tuple[str, ...]
    status: str  # sent, bounced, deferred, or "no result" (nothing logged in time)
    detail: str  # the remote reply ("250 2.0.0 OK: queued as ...") or the error text
    seconds: float  # from submission to the logged result
    log: str  # every log line about this message

    @property
    def delivered(self) -> bool:
        return self.status == "sent"

    def __str__(self) -> str:
        return (
            f"{self.mta} -> {LAB_HOST}:{self.port}: {self.status} in {self.seconds:.2f} s: "
            f"{self.detail}"
        )


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise Unavailable(f"{what} as a client needs root (its master / -C run as root)")


def _run(args, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, timeout=kw.pop("timeout", 60), **kw)
    if out.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {out.returncode}: "
            f"{out.stderr.decode(errors='replace').strip()}"
        )
    return out


def _read_from(path: pathlib.Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


class PostfixClient:
    """The installed Postfix as an SMTP client of lab servers on 127.0.0.1.

    One private instance serves several lab servers: the envelope sender
    lab-PORT@client.example.org names the next hop, [127.0.0.1]:PORT, through
    sender_dependent_default_transport_maps; every other destination gets the
    error transport.  Postfix reads that table at start-up (and allows no regexp
    substitution in it), so give the ports up front: deliver() to a port not
    given restarts the instance with it, which costs a few seconds.
    """

    name = "postfix"

    def __init__(self, ports=()):
        self.work: pathlib.Path | None = None
        self.version = ""
        self.ports: set[int] = set(ports)
        self._started = False
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------

    def start(self) -> PostfixClient:
        _need_root("Postfix")
        for path in (POSTFIX, POSTCONF, POSTSUPER, SENDMAIL, DEBIAN_MAIN_CF, MASTER_CF_DIST):
            if not os.path.exists(path):
                raise Unavailable(f"{path} is missing (apt-get install postfix; .ci/run does)")
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="labsmtp-postfix-client."))
        try:
            self._configure()
            _run([POSTFIX, "-c", self.conf, "check"])
            self._start_master()
        except BaseException:
            self.close()
            raise
        return self

    def _start_master(self) -> None:
        self._write_routes()
        _run([POSTFIX, "-c", self.conf, "start"])
        self._started = True

    def _write_routes(self) -> None:
        (self.work / "etc" / "lab_routes").write_text(
            "".join(
                f"lab-{port}@{CLIENT_DOMAIN} smtp:[{LAB_HOST}]:{port}\n"
                for port in sorted(self.ports)
            )
        )

    @property
    def conf(self) -> str:
        return str(self.work / "etc")

    @property
    def maillog(self) -> pathlib.Path:
        return self.work / "maillog"

    def _configure(self) -> None:
        work = self.work
        work.chmod(0o755)  # the postfix user must be able to traverse it
        for sub in ("etc", "spool"):
            (work / sub).mkdir(mode=0o755)
        (work / "lib").mkdir(mode=0o755)
        pw = pwd.getpwnam("postfix")
        os.chown(work / "lib", pw.pw_uid, pw.pw_gid)
        # Stock: Debian's main.cf as the postinst writes it (main.cf.debian, plus
        # the smtp_* half of main.cf.tls where ssl-cert is installed: opportunistic
        # TLS, smtp_tls_security_level = may).  The smtpd_* lines are left out: no
        # smtpd runs here.
        stock = DEBIAN_MAIN_CF.read_text()
        if DEBIAN_MAIN_CF_TLS.exists():
            stock += "".join(
                line + "\n"
                for line in DEBIAN_MAIN_CF_TLS.read_text().splitlines()
                if line.startswith("smtp_")
            )
        # Plumbing: where the instance lives, who it is, and where mail may go.
        plumbing = f"""
# --- tests/mta_clients.py: a private client-only instance ---
config_directory = {work}/etc
queue_directory = {work}/spool
data_directory = {work}/lib
maillog_file = {self.maillog}
maillog_file_prefixes = {work}
myhostname = {CLIENT_DOMAIN}
mydestination = $myhostname, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
# A bounce (to lab-PORT@$myhostname) ends here.
local_transport = discard
# The sender names the lab server's port; nothing else is reachable.
sender_dependent_default_transport_maps = texthash:$config_directory/lab_routes
default_transport = error:only lab servers on {LAB_HOST} are reachable from this instance
relayhost =
"""
        (work / "etc" / "main.cf").write_text(stock + plumbing)
        # master.cf: Debian's, without any inet listener (no smtpd: nothing listens)
        # and without chroot (the private queue has no /etc, /lib copies).
        shutil.copy(MASTER_CF_DIST, work / "etc" / "master.cf")
        services = _run([POSTCONF, "-c", self.conf, "-M"]).stdout.decode()
        for line in services.splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1] == "inet":
                _run([POSTCONF, "-c", self.conf, "-MX", f"{fields[0]}/inet"])
        _run([POSTCONF, "-c", self.conf, "-Fe", "*/*/chroot = n"])
        self.version = (
            _run([POSTCONF, "-c", self.conf, "-h", "mail_version"]).stdout.decode().strip()
        )

    def close(self) -> None:
        """Stop the instance (waiting for its master to exit) and delete it."""
        if self.work is None:
            return
        self._stop_master()
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None

    def _stop_master(self) -> None:
        if not self._started:
            return
        pid = self._master_pid()
        subprocess.run([POSTFIX, "-c", self.conf, "stop"], capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _alive(pid):
            subprocess.run([POSTFIX, "-c", self.conf, "abort"], capture_output=True, timeout=30)
            time.sleep(1)
        self._started = False

    def _master_pid(self) -> int | None:
        try:
            return int((self.work / "spool" / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def __enter__(self) -> PostfixClient:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one message -----------------------------------------------------

    def deliver(
        self,
        port: int,
        message: bytes,
        recipients=("postmaster@lab.example.org",),
        options=(),
        timeout: float = 30,
    ) -> Delivery:
        """Submit ``message`` with sendmail(1) and wait for the attempt to 127.0.0.1:``port``.

        ``options`` go to sendmail(1) as they are, e.g. ("-N", "success") for DSN.
        """
        sender = f"lab-{port}@{CLIENT_DOMAIN}"
        recipients = tuple(recipients)
        with self._lock:  # one submission at a time: the pickup line names the message
            if port not in self.ports:
                self.ports.add(port)
                self._stop_master()
                self._start_master()
            offset = self.maillog.stat().st_size if self.maillog.exists() else 0
            t0 = time.monotonic()
            _run(
                [SENDMAIL, "-C", self.conf, "-i", "-f", sender, *options, "--", *recipients],
                input=message,
            )
            qid, statuses, text = None, {}, ""
            pickup = re.compile(
                r"postfix[^/\s]*/pickup\[\d+\]: (\w+): uid=\d+ from=<" + re.escape(sender) + ">"
            )
            while time.monotonic() - t0 < timeout:
                text = _read_from(self.maillog, offset)
                if qid is None and (m := pickup.search(text)):
                    qid = m[1]
                if qid is not None:
                    for m in re.finditer(
                        rf": {qid}: to=<([^>]*)>,.*? status=(\w+) \((.*)\)$", text, re.M
                    ):
                        statuses.setdefault(m[1], (m[2], m[3]))
                    if len(statuses) >= len(recipients):
                        break
                time.sleep(0.05)
            seconds = time.monotonic() - t0
            unfinished = len(statuses) < len(recipients) or any(
                s not in ("sent", "bounced") for s, _ in statuses.values()
            )
            if qid is not None and unfinished:
                # Deferred (or still queued): drop it, so no retry reaches a later server.
                subprocess.run(
                    [POSTSUPER, "-c", self.conf, "-d", qid], capture_output=True, timeout=30
                )
        log = "\n".join(line for line in text.splitlines() if qid and f" {qid}: " in line)
        return _summarise(
            f"Postfix {self.version}", port, sender, recipients, statuses, seconds, log or text
        )


class EximClient:
    """Debian's Exim 4.96 (exim4-daemon-light), unpacked, as an SMTP client of lab servers.

    Each delivery gets a fresh spool and config (Exim starts in milliseconds):
    one manualroute router sends every domain but the client's own to
    127.0.0.1::PORT through an smtp transport with Debian's remote_smtp options
    (stock: PIPELINING, CHUNKING, SIZE and opportunistic STARTTLS are used when
    the server offers them).  ``exim -odf`` delivers in the foreground.
    """

    name = "exim"

    def __init__(self):
        self.work: pathlib.Path | None = None
        self.version = ""
        self._count = 0

    def start(self) -> EximClient:
        _need_root("Exim")
        for tool in ("apt-get", "dpkg", "bash"):
            if shutil.which(tool) is None:
                raise Unavailable(f"{tool} is needed to unpack Debian's exim4-daemon-light")
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="labsmtp-exim-client."))
        try:
            self.work.chmod(0o755)  # Exim drops to Debian-exim, which must traverse it
            # mta_common.sh's exim_extract: apt-get download + dpkg -x, as record_exim.sh.
            out = subprocess.run(
                [
                    "bash",
                    "-c",
                    '. "$0" && exim_extract "$1"',
                    str(RECORDINGS / "mta_common.sh"),
                    str(self.work),
                ],
                capture_output=True,
                timeout=600,
            )
            if out.returncode != 0 or not os.path.exists(self.exim):
                raise Unavailable(
                    "could not unpack Debian's exim4-daemon-light: "
                    + out.stderr.decode(errors="replace")[-2000:]
                )
            bv = subprocess.run(
                [self.exim, "-C", "/dev/null", "-bV"], capture_output=True, timeout=30
            )
            m = re.search(rb"^Exim version (\S+)", bv.stdout, re.M)
            if not m:
                raise Unavailable(
                    f"exim -bV failed: {(bv.stdout + bv.stderr).decode(errors='replace')}"
                )
            self.version = m[1].decode()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def exim(self) -> str:
        return str(self.work / "root" / "usr" / "sbin" / "exim4")

    def close(self) -> None:
        """Delete the unpacked Exim and every spool (no Exim process outlives deliver())."""
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None

    def __enter__(self) -> EximClient:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _configure(self, port: int) -> pathlib.Path:
        self._count += 1
        run = self.work / f"run{self._count}"
        pw = pwd.getpwnam(EXIM_USER)
        for sub in ("", "spool", "log"):
            (run / sub).mkdir(mode=0o755)
            os.chown(run / sub, pw.pw_uid, pw.pw_gid)
        conf = run / "exim.conf"
        conf.write_text(f"""\
# tests/mta_clients.py: a throw-away Exim that delivers to one lab server.
# Plumbing: where this instance lives and what it calls itself.
primary_hostname = {CLIENT_DOMAIN}
spool_directory = {run}/spool
log_file_path = {run}/log/%slog
exim_path = {self.exim}
keep_environment =

begin routers
# The only router: every domain but our own (bounces) to the lab server.
lab_server:
  driver = manualroute
  domains = ! {CLIENT_DOMAIN}
  transport = remote_smtp
  route_list = * {LAB_HOST}::{port}
  # The next hop is this machine, another server on another port.
  self = send

begin transports
# Debian exim4-config's remote_smtp, none of whose optional macros is set.
remote_smtp:
  driver = smtp
  # Without it Exim defers: "remote host address is the local host".
  allow_localhost

begin retry
# Debian exim4-config's single rule.
* * F,2h,15m; G,16h,1h,1.5; F,4d,6h
""")
        conf.chmod(0o644)
        return run

    def deliver(
        self,
        port: int,
        message: bytes,
        recipients=("postmaster@lab.example.org",),
        options=(),
        timeout: float = 30,
    ) -> Delivery:
        """Submit ``message`` with ``exim -odf -oi`` (foreground delivery) to 127.0.0.1:``port``.

        ``options`` go to exim's command line as they are.
        """
        sender = f"lab-{port}@{CLIENT_DOMAIN}"
        recipients = tuple(recipients)
        run = self._configure(port)
        conf = str(run / "exim.conf")
        t0 = time.monotonic()
        # Output to a file, not a pipe: exim's delivery process (which may leave the
        # session) would hold a pipe open past a timeout.
        with open(run / "exim.out", "w+b") as output:
            proc = subprocess.Popen(
                [self.exim, "-C", conf, "-odf", "-oi", "-f", sender, *options, "--", *recipients],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
            )
            try:
                proc.communicate(message, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_exims(conf)
                proc.wait()
            output.seek(0)
            stderr = output.read()
        _kill_exims(conf)  # none should be left; a stuck one must not outlive the test
        seconds = time.monotonic() - t0
        text = _read_from(run / "log" / "mainlog", 0)
        m = re.search(r"^\S+ \S+ (\S+) <= " + re.escape(sender) + " ", text, re.M)
        statuses = {}
        if m:
            mid = m[1]
            for line in re.finditer(rf"^\S+ \S+ {mid} (=>|\*\*|==) (\S+) (.*)$", text, re.M):
                flag, rcpt, rest = line[1], line[2], line[3]
                status = {"=>": "sent", "**": "bounced", "==": "deferred"}[flag]
                conf = re.search(r' C="(.*)"', rest)
                statuses.setdefault(rcpt, (status, conf[1] if conf else rest))
        elif proc.returncode != 0:
            text += stderr.decode(errors="replace")
        return _summarise(f"Exim {self.version}", port, sender, recipients, statuses, seconds, text)


def _summarise(mta, port, sender, recipients, statuses, seconds, log) -> Delivery:
    """One Delivery for all recipients: the worst status, and each distinct detail."""
    if len(statuses) < len(recipients):
        status = "no result"
        detail = "the MTA logged no result for " + ", ".join(
            r for r in recipients if r not in statuses
        )
    else:
        order = ("sent", "deferred", "bounced")
        status = max(
            (s for s, _ in statuses.values()), key=lambda s: order.index(s) if s in order else 9
        )
        detail = "; ".join(dict.fromkeys(d for _, d in statuses.values()))
    return Delivery(mta, port, sender, recipients, status, detail, seconds, log)


def _kill_exims(conf: str) -> None:
    """SIGKILL every process running with this (unique, temporary) exim config."""
    needle = conf.encode()
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "cmdline").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
