"""``LabServer``: a real SMTP server on loopback, in a background thread of this kernel.

Theory of operation.  ``LabServer`` holds the settings a lesson changes
(persona, policy, mode, TLS, users) and the records it reads (transcript,
mailbox, fault rules).  ``start()`` runs an asyncio loop on a daemon thread
of its own and listens there (and on an implicit-TLS port if asked); each
connection is a ``server.Connection`` around a sans-IO ``Session``.
``stop()`` says 421 to live sessions, closes every socket, stops the loop and
joins the thread, so a server can start and stop as often as a cell is run.
A process-wide registry stops an earlier server of the same name first.

The traps of the aiosmtpd Controller this replaces (aiosmtpd-notes.md) have
no room here: port 0 is read from the bound socket, there is no start-up
self-test connection, a taken port fails at once (binding is the first
thing ``start()`` does), and every start gets a fresh loop and thread.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import ipaddress
import os
import random
import socket
import ssl
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import LabValueError, PortInUseError
from ..protocol import auth as _auth
from ..protocol.personas import Persona, get_persona
from ..protocol.policy import MODE_ABOUT, IdentityCheck, Policy, RecipientCheck, check_mode
from ..protocol.session import Setup
from . import peeruid
from .client import StepClient
from .dnszone import DEFAULT_ZONE, ZONE_HOOKS, LabZone, zone_hooks
from .dsn import delivered_notice
from .faults import FaultEngine
from .limits import Places
from .mailbox import Mailbox, StoredMessage
from .server import Admission, Connection
from .transcript import Line, SessionInfo, Transcript

DEFAULT_HOSTNAME = "mx.lab.example.org"
T = TypeVar("T")

_registry: dict[str, LabServer] = {}  # the running servers, by name
_latest: dict[str, weakref.ref[LabServer]] = {}  # the server most recently started under each name
_registry_lock = threading.Lock()


def stop_all() -> int:
    """Stop every lab server this kernel started; returns how many, shown with their names."""
    from ..render import StoppedServers

    with _registry_lock:
        servers = list(_registry.values())
    for s in servers:
        s.stop()
    return StoppedServers(s.name for s in servers)


def running_servers() -> list[LabServer]:
    """The lab servers running in this process."""
    with _registry_lock:
        return list(_registry.values())


atexit.register(stop_all)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _port_is_free(host: str, port: int) -> bool:
    """True if a listener could bind ``host:port`` now (SO_REUSEADDR, as asyncio does)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _port_error(host: str, port: int, exc: OSError) -> PortInUseError:
    """What a failed bind means, and what to do about it (in a notebook's terms; the
    command line words its own advice from ``reason``)."""
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"port {port} on {host} is already in use by another program or server. "
            f"Leave out port= to let the lab pick a free one, choose another port, "
            f"or stop the other server (labsmtp.stop_all() stops every lab server "
            f"in this notebook).",
            host=host,
            port=port,
            reason="in use",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PortInUseError(
            f"not allowed to listen on port {port} (ports below 1024 need root). "
            f"Use a port such as 2525, or leave out port= to let the lab pick one.",
            host=host,
            port=port,
            reason="not allowed",
        )
    return PortInUseError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}", host=host, port=port
    )


def _owner_only(asked: bool | None) -> bool:
    """Whether to refuse other users' connections: on by default under JupyterHub, on Linux."""
    if asked is None:
        return "JUPYTERHUB_USER" in os.environ and peeruid.available()
    if not isinstance(asked, bool):
        raise LabValueError(f"owner_only must be True, False or left out, not {asked!r}")
    if asked and not peeruid.available():
        raise LabValueError(
            "owner_only=True needs Linux (it reads who opened each connection from "
            "/proc/net/tcp); leave it out on this system"
        )
    return asked


@dataclass
class Site:
    """What the connections of one running server share (LabServer builds it)."""

    transcript: Transcript
    mailbox: Mailbox
    faults: FaultEngine
    setup: Callable[[], Setup]  # the server's settings now, for a new connection
    tls_context: Callable[[], ssl.SSLContext]
    admission: Callable[[], Admission | None] = lambda: None
    # After a message is stored: what final delivery does next (a "delivered" DSN);
    # returns notes for the transcript.
    delivered: Callable[[StoredMessage], list[str]] = lambda message: []
    listeners: list[Callable[[Line], None]] = field(default_factory=list)
    active: set[Connection] = field(default_factory=set)  # every open connection
    places: Places = field(default_factory=Places)  # the admitted: the limits count these
    internal_errors: list[str] = field(default_factory=list)
    _ids: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_session_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids


class _LoopThread:
    """An asyncio event loop on a daemon thread: where a running server lives."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=f"labsmtp {name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # Cancel what is left (connections waiting for a client) and close the
            # loop here, on its own thread: a notebook's thread runs a loop already.
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


class LabServer:
    """A real SMTP server on loopback, running in a background thread of this kernel.

    ``owner_only`` (default: on under JupyterHub, on Linux) answers connections
    opened by other users of the machine with 554 5.7.1, so learners sharing a
    host stay apart; ``owner_only=False`` lets them in.

    >>> with LabServer(persona="postfix") as server:
    ...     client = server.client()
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        persona: str | Persona = "generic",
        hostname: str = DEFAULT_HOSTNAME,
        policy: Policy | None = None,
        name: str | None = None,
        max_lines: int = 50_000,
        max_messages: int = 10_000,
        max_sessions: int = 10_000,
        seed: int | None = None,
        allow_non_loopback: bool = False,
        mode: str = "mx",
        tls: bool | None = None,
        implicit_tls: bool | int = False,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        owner_only: bool | None = None,
        **policy_switches: Any,
    ):
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise LabValueError(f"port must be a whole number from 1 to 65535, not {port!r}")
        if port is not None and not 0 <= port <= 65535:
            raise LabValueError(f"port must be from 1 to 65535 (or left out), not {port}")
        if not isinstance(host, str) or not host:
            raise LabValueError(f"host must be an address such as '127.0.0.1', not {host!r}")
        if not _is_loopback(host):
            if not allow_non_loopback:
                raise LabValueError(
                    f"the lab server listens on loopback only (127.0.0.1); {host!r} would "
                    f"let other machines talk to it. Pass allow_non_loopback=True if you "
                    f"really mean it."
                )
            warnings.warn(
                f"labsmtp: listening on {host}, which other machines may reach", stacklevel=2
            )
        if not isinstance(hostname, str) or not hostname or " " in hostname:
            raise LabValueError(
                f"hostname must be a name such as 'mx.lab.example.org', not {hostname!r}"
            )
        for label, value in (
            ("max_lines", max_lines),
            ("max_messages", max_messages),
            ("max_sessions", max_sessions),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabValueError(f"{label} must be a whole number of at least 1, not {value!r}")
        self.host, self._requested_port = host, port
        self.hostname = hostname
        self.persona = get_persona(persona)
        if policy is not None and not isinstance(policy, Policy):
            raise LabValueError("policy must be a labsmtp.Policy (or leave it out)")
        self._policy_arg = policy
        # The lab's changes, by the lab's names (a program's own name for a shared
        # switch, Exim's smtp_accept_max, is stored as max_connections).
        self._switches: dict[str, Any] = self.persona.canonical(policy_switches)
        self.policy, self.settings = self.persona.configure(policy, **self._switches)
        self.name = name if name is not None else (f"port {port}" if port else "lab")
        if self.policy.open_relay and mode == "mx":
            mode = "open-relay"  # open_relay=True is the open-relay mode: name it as such
        self._tls_listener: asyncio.AbstractServer | None = None
        self._tls_port: int | None = None
        self._tls_asked = tls  # None: as the persona's program does out of the box
        self._set_security(
            mode=mode,
            tls=tls,
            implicit_tls=implicit_tls,
            users=users,
            auth_require_tls=auth_require_tls,
        )
        self.mailbox = Mailbox(max_messages)
        # Mail this server would send to other hosts (a "delivered" DSN for a sender of
        # another domain): the lab sends nothing off this machine, so it waits here.
        self.outbox = Mailbox(max_messages)
        self.transcript = Transcript(max_lines, max_sessions)
        self.seed = seed
        self.faults = FaultEngine(seed)  # fault rules; empty until a lesson adds some
        self.resolves: Callable[[str], bool] | None = None  # reject_unknown_helo_hostname's DNS
        self.identity: IdentityCheck | None = None  # a client identity policy (use_zone)
        self.recipients: RecipientCheck | None = None  # local_recipient_maps (a lab net)
        # The client's reverse name for Received: (use_zone); None: the lab's /etc/hosts.
        self.reverse: Callable[[str], tuple[str | None, bool]] | None = None
        # Sender domains' DNS (use_zone); None: every domain exists.
        self.domain_resolves: Callable[[str], bool] | None = None
        self.zone: LabZone | None = None
        self._lab_dns = False  # the lab zone was plugged in for the persona (Persona.lab_dns)
        self._follow_lab_dns()
        self.addresses: Callable[[str], list[str]] | None = None  # a name's A/AAAA (use_zone)
        self.admission: Admission | None = None  # may refuse a connection before its greeting
        self.owner_only = _owner_only(owner_only)  # other users' connections: 554 (peeruid.py)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._thread: _LoopThread | None = None
        self._servers: list[asyncio.Server] = []
        self._port: int | None = None
        self._last_tls_port: int | None = None  # a restart listens there again if it can
        self._starts = 0  # how many times start() succeeded (a client can tell a restart)
        self._listeners: list[Callable[[Line], None]] = []
        self._site = Site(
            self.transcript,
            self.mailbox,
            self.faults,
            self.setup,
            self._server_tls_context,
            admission=self._admission,
            delivered=self._delivered,
            listeners=self._listeners,
        )

    def _admission(self) -> Admission | None:
        """The owner check (on a shared host), then the lesson's own admission, if any."""
        if not self.owner_only:
            return self.admission
        other = self.admission
        return lambda ip, port: self._owner_refusal(ip, port) or (other and other(ip, port))

    def _delivered(self, message: StoredMessage) -> list[str]:
        """Final delivery's duty to a sender who asked NOTIFY=SUCCESS (RFC 3461 §6.2): a
        "delivered" DSN to the envelope sender, into this server's mailbox when the
        sender's domain is one of its own, else into ``outbox`` (nothing leaves the machine)."""
        asked = [r for r in message.rcpt_tos if message.dsn.wants(r, "SUCCESS")]
        if not asked:
            return []
        who = ", ".join(f"<{r}>" for r in asked)
        sender = message.mail_from
        if not sender:
            return [
                f"NOTIFY=SUCCESS for {who}, but the sender is <>: no notification (RFC 3461 §6.2)"
            ]
        queue_id = self.new_queue_id()
        dsn = delivered_notice(
            message, asked, reporting_mta=self.hostname, queue_id=queue_id, when=time.time()
        )
        notice = StoredMessage(
            queue_id,
            None,
            "",
            (sender,),
            "",
            b"Return-Path: <>\r\n" + dsn,
            session=message.session,
            sent=dsn,
        )
        if self.policy.is_local_domain(sender.rpartition("@")[2], self.hostname):
            self.mailbox.add(notice)
            return [
                f"NOTIFY=SUCCESS for {who}: a 'delivered' notification (RFC 3464) to <{sender}>, in this server's mailbox"
            ]
        self.outbox.add(notice)
        return [
            f"NOTIFY=SUCCESS for {who}: a 'delivered' notification (RFC 3464) is due to <{sender}>, "
            f"whose domain is not this server's; a real server would send it to that domain's MX. "
            f"The lab sends no mail off this machine: it waits in server.outbox"
        ]

    def _owner_refusal(self, ip: str, port: int) -> str | None:
        # The address the client connected to: where we listen, or on a wildcard
        # bind, its own address (a local client connects to the address it has).
        host = ip if self.host in ("0.0.0.0", "::", "localhost") else self.host
        ports = [p for p in (self._port, self._tls_port) if p]
        return peeruid.check([(host, p) for p in ports], (ip, port))

    @classmethod
    def as_recorded(cls, persona: str | Persona, **changes: Any) -> LabServer:
        """A server playing ``persona``'s program as configured in its lab-config
        recording (``Persona.recorded_configuration()``), with ``changes`` on top.

        ``LabServer(persona="postfix")`` is a stock Postfix; ``LabServer.as_recorded
        ("postfix")`` is the Postfix of tests/recordings/postfix-3.7.json (HELO required,
        reject_non_fqdn_helo_hostname, no STARTTLS, ...)."""
        p = get_persona(persona)
        return cls(persona=p, **{**p.recorded_configuration(), **changes})

    # --- lifecycle ------------------------------------------------------

    def start(self) -> LabServer:
        """Start listening (stopping any earlier lab server with the same name)."""
        if self.running:
            return self
        with _registry_lock:
            old = _registry.get(self.name)
        if old is not None and old is not self:
            # Re-running a cell lands here: replace, never "address in use". Say so,
            # in case two different servers were given the same (default) name.
            where = f"{old.host}:{old._port}" if old.running else "stopped"
            old.stop()
            print(
                f"labsmtp: stopped the earlier server named {self.name!r} ({where}) and started "
                f"this one; give servers different name= values to run several at once."
            )
        # A restart keeps its ports when they are free, so ports printed earlier stay right.
        again = self._port if self._port and not self._requested_port else None
        again_tls = self._last_tls_port if self.implicit_tls is True else None
        thread = _LoopThread(self.name)
        try:
            try:
                ports = thread.call(self._listen(again, again_tls), 5.0)
            except PortInUseError:
                if again is None and again_tls is None:
                    raise
                ports = thread.call(self._listen(), 5.0)  # the old ports went meanwhile
        except BaseException:
            thread.stop()
            raise
        self._port, self._tls_port = ports
        self._last_tls_port = self._tls_port
        self._thread = thread
        self._starts += 1
        with _registry_lock:
            _registry[self.name] = self
            _latest[self.name] = weakref.ref(self)
        return self

    async def _listen(
        self, again: int | None = None, again_tls: int | None = None
    ) -> tuple[int, int | None]:
        loop, site = asyncio.get_running_loop(), self._site
        self._servers = []
        main = self._requested_port or (again if again and _port_is_free(self.host, again) else 0)
        tls_port = self._implicit_port()
        if tls_port == 0 and again_tls and _port_is_free(self.host, again_tls):
            tls_port = again_tls
        for port, tls in ((main, False), (tls_port, True)):
            if port is None:
                continue
            try:
                server = await loop.create_server(
                    lambda: Connection(site),
                    self.host,
                    port,
                    reuse_address=True,
                    ssl=self._server_tls_context() if tls else None,
                    ssl_handshake_timeout=min(60.0, self.policy.idle_timeout) if tls else None,
                )
            except OSError as exc:
                for s in self._servers:
                    s.close()
                raise _port_error(self.host, port, exc) from None
            self._servers.append(server)
        ports = [s.sockets[0].getsockname()[1] for s in self._servers]
        self._tls_listener = self._servers[1] if len(ports) > 1 else None
        return ports[0], (ports[1] if len(ports) > 1 else None)

    def _implicit_port(self) -> int | None:
        """The implicit-TLS port to listen on (0: any free one), None for none (RFC 8314 §3.3)."""
        if self.implicit_tls is False:
            return None
        return 0 if self.implicit_tls is True else int(self.implicit_tls)

    def stop(self) -> None:
        """Stop the server; open sessions get 421 first.  Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        try:
            thread.call(self._goodbye(), 2.0)
        except Exception:
            pass  # a stuck goodbye must not keep the server (and its thread) alive
        thread.stop()
        self._tls_listener, self._tls_port = None, None

    async def _goodbye(self) -> None:
        for server in self._servers:
            server.close()  # the listening sockets close at once
        live = list(self._site.active)
        for conn in live:
            conn.shutdown()
        await asyncio.sleep(0.01)  # let the 421s out
        for conn in live:
            if conn.transport is not None:
                conn.transport.abort()  # a client that never reads must not keep its socket
        await asyncio.sleep(0)  # connection_lost runs

    def ensure_running(self) -> LabServer:
        """Start the server again if it was stopped (and say so in one line); returns it."""
        notice = self._revive()
        if notice:
            print(notice)
        return self

    def _revive(self) -> str | None:
        """Restart a stopped server; the one-line notice to show, or None if it was running.

        A learner runs a lesson's last cell, or stop_all(), and then goes back to an
        exercise: every way of *using* a server (client(), trials, the widgets, the
        mysteries) comes through here, so a stopped server starts again, on its old
        port if that is free, with its mailbox, transcript, settings and fault
        rules.  A server that a newer one replaced (same name) is not restarted:
        that would stop the newer one.  Reading ``port`` never restarts anything
        (the MX lab stops a host on purpose and reads every port for its map).
        """
        if self.running:
            return None
        with _registry_lock:
            latest = _latest.get(self.name)
        if self._starts and latest is not None and latest() is not self:
            raise LabValueError(
                f"this lab server was replaced: a later cell started another server named "
                f"{self.name!r}. Use that one (the variable that cell set), or run again the "
                f"cell that made this one."
            )
        if not self._starts:
            raise LabValueError("the server has not been started yet: call server.start() first")
        old = self._port
        self.start()
        moved = "" if self._port == old else f" (its old port {old} is taken now)"
        return (
            f"labsmtp: the server {self.name!r} had been stopped (stop_all() or .stop()); "
            f"started it again on {self.host}:{self._port}{moved}."
        )

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            if self._thread is not None:
                self.stop()
        except Exception:
            pass

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def port(self) -> int:
        """The port the server listens on (chosen by the system if none was asked for).

        Reading it never starts a stopped server; server.ensure_running() does,
        before handing the port to smtplib or swaks.
        """
        if self._port is None:
            if self._requested_port:
                return self._requested_port
            raise LabValueError("the server has not been started yet: call server.start() first")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self.running else "stopped"
        extra = ""
        if self.tls:
            extra += " STARTTLS" + (f" implicit-TLS:{self._tls_port}" if self._tls_port else "")
        if self.users:
            extra += " AUTH"
        if self.mode != "mx":
            extra += (
                " OPEN RELAY (deliberately misconfigured)"
                if self.mode == "open-relay"
                else " submission"
            )
        return f"<LabServer {self.persona.name} {self.hostname} {where}{extra}>"

    # --- settings a lesson changes live --------------------------------

    def configure(
        self,
        *,
        persona: str | Persona | None = None,
        mode: str | None = None,
        **policy_switches: Any,
    ) -> LabServer:
        """Change the persona, the mode and/or policy switches; new connections see the change."""
        if persona is not None or policy_switches:
            new = get_persona(persona) if persona is not None else self.persona
            policy_switches = new.canonical(policy_switches)
            switches = {**self._switches, **policy_switches}
            if persona is not None:  # the old persona's own settings mean nothing to the new one
                switches = {
                    k: v
                    for k, v in switches.items()
                    if k in new.settings or k in policy_switches or k not in self.persona.settings
                }
            self.policy, self.settings = new.configure(self._policy_arg, **switches)
            self.persona, self._switches = new, switches
            self._follow_lab_dns()
        if policy_switches:
            if "open_relay" in policy_switches and mode is None:
                mode = "open-relay" if self.policy.open_relay else "mx"
        if mode is not None or (persona is not None and self._tls_asked is None):
            # A new persona offers STARTTLS as its program does, unless tls= was given.
            self._set_security(
                mode=mode or self.mode,
                tls=self._tls_asked,
                implicit_tls=self.implicit_tls,
                users=self.users,
                auth_require_tls=self.auth_require_tls,
            )
        return self

    _CHECKS = ("resolves", "identity", "recipients", "reverse", "domain_resolves", "addresses")

    def use_checks(self, **hooks: Any) -> None:
        """Plug in the session's policy hooks (only those named change; None removes one):
        ``resolves`` (DNS for reject_unknown_helo_hostname) and ``identity`` (a client
        identity policy), as ``use_zone`` sets them, and ``recipients`` (the users of
        the server's own domains, as a lab net sets them), ``reverse`` (the client's
        reverse name, for the Received: field and Sendmail's greeting) and
        ``domain_resolves`` (sender domains' DNS) and ``addresses`` (a name's A and AAAA
        records, for Exim's helo_verify_hosts).  New connections see them."""
        unknown = set(hooks) - set(self._CHECKS)
        if unknown:
            raise LabValueError(
                f"unknown check(s): {', '.join(sorted(unknown))}; known: {', '.join(self._CHECKS)}"
            )
        for name, hook in hooks.items():
            setattr(self, name, hook)
        self._lab_dns = False  # the lesson's DNS now, not the persona's default

    def _follow_lab_dns(self) -> None:
        """A persona whose answers depend on DNS (Persona.lab_dns, Sendmail) sees the lab
        zone its recordings saw, as use_zone(server, identity="off") would plug it in;
        a lesson's own use_zone or use_checks wins, and another persona drops it."""
        if self.persona.lab_dns and self.zone is None:
            self.zone = LabZone(DEFAULT_ZONE)
            for name, hook in zone_hooks(self.zone).items():
                setattr(self, name, hook)
            self._lab_dns = True
        elif not self.persona.lab_dns and self._lab_dns:
            self.use_checks(**dict.fromkeys(ZONE_HOOKS))
            self.zone = None

    def on_line(self, callback: Callable[[Line], None]) -> None:
        """Call ``callback(line)`` for every transcript line (from the server thread)."""
        self._listeners.append(callback)

    def setup(self) -> Setup:
        """The settings a new connection's session gets (a snapshot)."""
        return Setup(
            self.persona,
            self.policy,
            self.hostname,
            self.mode,
            tls_offered=self.tls,
            users=self.users,
            auth_require_tls=self.auth_require_tls,
            resolves=self.resolves,
            identity=self.identity,
            recipients=self.recipients,
            reverse=self.reverse,
            domain_resolves=self.domain_resolves,
            addresses=self.addresses,
            queue_id=self.new_queue_id,
            settings=self.settings,
        )

    def new_queue_id(self) -> str:
        """A queue id shaped like the persona's server's (Postfix: 11 hex digits)."""
        with self._lock:
            return self.persona.new_queue_id(self._rng)

    # --- what the server has seen -----------------------------------------

    @property
    def sessions(self) -> list[SessionInfo]:
        """Every session the transcript still holds."""
        return self.transcript.sessions()

    @property
    def internal_errors(self) -> list[str]:
        """Failures of the lab itself (each also answered with 421); empty if all is well."""
        return list(self._site.internal_errors)

    @property
    def active_sessions(self) -> int:
        """How many connections are open now."""
        return len(self._site.active)

    # --- clients --------------------------------------------------------

    def client(
        self,
        source: str | None = None,
        *,
        connect: bool = True,
        timeout: float = 10.0,
        implicit_tls: bool = False,
    ) -> StepClient:
        """A step client for this server (connected, greeting read, unless connect=False)."""
        self.ensure_running()
        port = self.port
        if implicit_tls:
            if not self._tls_port:
                raise LabValueError(
                    "this server has no implicit-TLS port: start it with "
                    "LabServer(implicit_tls=True) first"
                )
            port = self._tls_port
        c = StepClient(
            self.host,
            port,
            source=source,
            timeout=timeout,
            server_name=self.hostname,
            implicit_tls=implicit_tls,
        )
        c._lab = self  # connect() starts a stopped server again; errors can say it was stopped
        if connect:
            c.connect()
        return c

    # --- TLS, AUTH and modes ----------------------------------------------

    def _set_security(
        self,
        *,
        mode: str,
        tls: bool | None,
        implicit_tls: bool | int,
        users: Mapping[str, str] | None,
        auth_require_tls: bool,
    ) -> None:
        """Check and set mode, TLS and AUTH settings (a learner's typo gets a clear message)."""
        mode = check_mode(mode)
        users = _auth.check_users(users)
        if tls is not None and not isinstance(tls, bool):
            raise LabValueError(f"tls must be True or False, not {tls!r}")
        if not isinstance(auth_require_tls, bool):
            raise LabValueError(f"auth_require_tls must be True or False, not {auth_require_tls!r}")
        if implicit_tls is not False and implicit_tls is not True:
            if (
                isinstance(implicit_tls, bool)
                or not isinstance(implicit_tls, int)
                or not 1 <= implicit_tls <= 65535
            ):
                raise LabValueError(
                    f"implicit_tls must be True (pick a free port), False, or a port from 1 to "
                    f"65535, not {implicit_tls!r}"
                )
        if mode == "submission" and not users:
            raise LabValueError(
                "mode='submission' refuses MAIL until the client authenticates, so it needs lab "
                "users to log in as: add users={'alice': 'wonderland'}"
            )
        self._tls_asked = tls  # None: as the persona's program offers it, stock
        if tls is None:
            tls = self.persona.stock_tls or bool(users) or implicit_tls is not False
        if not tls and implicit_tls is not False:
            raise LabValueError("implicit_tls needs TLS: leave out tls=False")
        if not tls and users and auth_require_tls:
            raise LabValueError(
                "AUTH is offered only inside TLS (RFC 4954 §4: passwords travel merely "
                "base64-encoded). Leave out tls=False, or pass auth_require_tls=False to "
                "show on purpose why AUTH in the clear is dangerous."
            )
        self.mode, self.tls, self.implicit_tls = mode, tls, implicit_tls
        self.users, self.auth_require_tls = users, auth_require_tls
        if self.policy.open_relay != (mode == "open-relay"):
            self.policy = self.policy.with_(open_relay=mode == "open-relay")
            self._switches["open_relay"] = mode == "open-relay"

    @property
    def mode_about(self) -> str:
        """What this server's mode (mx, submission, open-relay) accepts and refuses."""
        return f"{self.mode}: {MODE_ABOUT[self.mode]}"

    @property
    def tls_port(self) -> int | None:
        """The implicit-TLS port (RFC 8314, like 465), or None if there is none."""
        return self._tls_port

    @property
    def ca_file(self) -> str:
        """Path of the lab CA certificate (PEM): give it to swaks, curl or smtplib to trust the lab."""
        from .tls import lab_ca  # trustme is costly: only TLS lessons pay for it

        return lab_ca().ca_file

    def client_ssl_context(self, verify: bool = True) -> Any:
        """An ``ssl.SSLContext`` that trusts the lab CA, for smtplib's starttls(context=...)."""
        from .tls import lab_ca

        return lab_ca().client_context(verify=verify)

    def _server_tls_context(self) -> Any:
        ctx = getattr(self, "_server_ctx", None)
        if ctx is None or ctx[0] != self.hostname:
            from .tls import lab_ca

            ctx = (self.hostname, lab_ca().server_context(self.hostname))
            self._server_ctx = ctx
        return ctx[1]
