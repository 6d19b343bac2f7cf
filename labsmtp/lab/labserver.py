"""``LabServer``: a real SMTP server on loopback, in a background thread of this kernel.

Theory of operation.  ``LabServer`` holds the settings a lesson changes
(persona, policy, mode, TLS, users; checked in ``security.py``) and the
records it reads (transcript, mailbox, fault rules).  ``start()`` runs an
asyncio loop on a daemon thread of its own and listens there (and on an
implicit-TLS port if asked; ``listening.py``); each connection is a
``server.Connection`` around a sans-IO ``Session``.
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
import random
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import LabValueError, PortInUseError
from ..protocol.personas import Persona, get_persona
from ..protocol.policy import MODE_ABOUT, IdentityCheck, Policy, RecipientCheck
from ..protocol.session import Setup
from . import peeruid, security
from .client import StepClient
from .dnszone import DEFAULT_ZONE, ZONE_HOOKS, LabZone, zone_hooks
from .dsn import notify_delivered
from .faults import FaultEngine
from .limits import Admission
from .listening import LoopThread, Site, goodbye, listen, port_is_free
from .mailbox import Mailbox, StoredMessage
from .transcript import Line, SessionInfo, Transcript

DEFAULT_HOSTNAME = "mx.lab.example.org"

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
        security.check_host(host, allow_non_loopback)
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
        # Other users' connections on a shared host: 554 (peeruid.py).
        self.owner_only = security.owner_only(owner_only)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._thread: LoopThread | None = None
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
        """A "delivered" DSN for a sender who asked NOTIFY=SUCCESS (RFC 3461 §6.2)."""
        return notify_delivered(
            message,
            reporting_mta=self.hostname,
            queue_id=self.new_queue_id,
            is_local=lambda domain: self.policy.is_local_domain(domain, self.hostname),
            mailbox=self.mailbox,
            outbox=self.outbox,
        )

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
        thread = LoopThread(self.name)
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
        host = self.host
        main = self._requested_port or (again if again and port_is_free(host, again) else 0)
        tls_port = security.implicit_port(self.implicit_tls)
        if tls_port == 0 and again_tls and port_is_free(host, again_tls):
            tls_port = again_tls
        wanted = [(main, None)]
        if tls_port is not None:
            wanted.append((tls_port, self._server_tls_context()))
        handshake = min(60.0, self.policy.idle_timeout)
        self._servers = await listen(self._site, host, wanted, handshake)
        ports = [s.sockets[0].getsockname()[1] for s in self._servers]
        self._tls_listener = self._servers[1] if len(ports) > 1 else None
        return ports[0], (ports[1] if len(ports) > 1 else None)

    def stop(self) -> None:
        """Stop the server; open sessions get 421 first.  Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        try:
            thread.call(goodbye(self._servers, self._site), 2.0)
        except Exception:
            pass  # a stuck goodbye must not keep the server (and its thread) alive
        thread.stop()
        self._tls_listener, self._tls_port = None, None

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
        checked = security.check_security(
            self.persona,
            mode=mode,
            tls=tls,
            implicit_tls=implicit_tls,
            users=users,
            auth_require_tls=auth_require_tls,
        )
        self._tls_asked = tls  # None: as the persona's program offers it, stock
        self.mode, self.tls, self.implicit_tls = checked.mode, checked.tls, checked.implicit_tls
        self.users, self.auth_require_tls = checked.users, checked.auth_require_tls
        if self.policy.open_relay != (self.mode == "open-relay"):
            self.policy = self.policy.with_(open_relay=self.mode == "open-relay")
            self._switches["open_relay"] = self.mode == "open-relay"

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
        return security.ca_file()

    def client_ssl_context(self, verify: bool = True) -> Any:
        """An ``ssl.SSLContext`` that trusts the lab CA, for smtplib's starttls(context=...)."""
        return security.client_ssl_context(verify)

    def _server_tls_context(self) -> Any:
        ctx = getattr(self, "_server_ctx", None)
        if ctx is None or ctx[0] != self.hostname:
            ctx = (self.hostname, security.server_ssl_context(self.hostname))
            self._server_ctx = ctx
        return ctx[1]
