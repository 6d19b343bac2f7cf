"""The lab's little Internet: an offline DNS zone and a real lab server per mail host.

Theory of operation.  ``LabNet`` reads its zone (``MAIL_ZONE`` by default),
works out which host receives mail for which of its domains (the MX
records, or a domain's own address when it has no MX), and starts one
``LabServer`` per host, listening on that host's address from the zone
(127.0.0.11, 127.0.0.12, ...: all of 127/8 is this computer).  Each server
accepts mail for the domains that point at it and knows their users:
mail for anyone else is refused at RCPT with ``550 5.1.1`` (Postfix's
local_recipient_maps) - except on the domains listed in ``accept_all``,
which say 250 to everyone and find out later (``deliver_local``), as the
backscatter lesson needs.

DNS says which *address* serves a domain, never which *port*: on the
Internet every MX listens on port 25.  The lab cannot use port 25 (ports
below 1024 need root, and a workshop machine may run its own mail server),
so each server gets a free port, and ``LabNet.ports`` is the map the lab's
sender (``LabMta``) is given.  That map is the one thing here a real MTA
does not need.

Time is simulated: the net's ``SimClock`` is what retry waits advance and
what greylisting on its servers reads (``advance`` moves it by hand).
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field

from ..errors import LabValueError
from ..protocol.policy import Policy
from ..render import TextReport
from .delivery import Delivery, SimClock
from .dnszone import MAIL_ZONE, LabZone
from .dsn import RecipientReport
from .labserver import LabServer
from .mailbox import Mailbox, StoredMessage
from .mta import LabMta
from .mx import Route, check_domain, find_route
from .spf import SpfResult, check_spf, check_spf_helo

# The domains of MAIL_ZONE that have lab servers, and the users each one knows.
# postmaster is added to every domain: RFC 5321 §4.5.1 requires it.
LAB_USERS = {
    "shop.example": ("bob", "alice"),
    "twins.example": ("tess",),
    "plain.example": ("dan",),
    "home.example": ("ada",),
    "innocent.example": ("carol",),
    "acceptall.example": ("erin",),
}
ACCEPT_ALL = ("acceptall.example",)

_current: list[LabNet] = []  # the running net: a re-run notebook cell replaces it


class _RecipientTable:
    """The users of this net's domains: a server's local_recipient_maps (a policy hook,
    ``policy.RecipientCheck``); an unknown one is refused at RCPT with 550 5.1.1."""

    def __init__(self, users: dict[str, frozenset[str]], accept_all: frozenset[str]):
        self.users, self.accept_all = users, accept_all

    def knows(self, address: str) -> bool:
        local, _, domain = address.rpartition("@")
        domain = domain.lower().rstrip(".")
        known = self.users.get(domain)
        return known is None or domain in self.accept_all or local.lower() in known


@dataclass(repr=False)
class LocalDelivery(TextReport):
    """What a host did after accepting: messages put in mailboxes, and bounces for the rest."""

    host: str
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (queue id, recipient)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bounces: list[Delivery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What happened to each accepted recipient, and the bounces sent."""
        lines = [f"local delivery on {self.host}:"]
        lines += [f"  {q}: {r} -> mailbox" for q, r in self.delivered]
        lines += [f"  {q}: {r} -> no such user: bounce" for q, r in self.failed]
        for b in self.bounces:
            where = "delivered" if b.delivered else "NOT delivered"
            lines.append(f"  bounce {b.message_id} to <{b.recipients[0]}>: {where}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"<LocalDelivery {self.host}: {len(self.delivered)} to mailboxes, "
            f"{len(self.failed)} unknown, {len(self.bounces)} bounces>"
        )


def _can_bind(address: str) -> bool:
    """True if this computer lets a socket use ``address`` (Linux: all of 127/8; macOS: 127.0.0.1)."""
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        s.bind((address, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


class LabNet:
    """The lab's little Internet: an offline zone and a running lab server for each mail host."""

    def __init__(
        self,
        zone: LabZone | str | None = None,
        *,
        users: dict | None = None,
        accept_all=ACCEPT_ALL,
        persona: str = "postfix",
        seed: int | None = None,
        retry="mta",
    ):
        self.zone = zone if isinstance(zone, LabZone) else LabZone(zone or MAIL_ZONE)
        users = LAB_USERS if users is None else users
        if not isinstance(users, dict) or not users:
            raise LabValueError(
                "users maps each mail domain to its user names, e.g. {'shop.example': ['bob']}"
            )
        self.users: dict[str, frozenset[str]] = {}
        for domain, names in users.items():
            d = check_domain(domain)
            if isinstance(names, str):
                names = [names]
            self.users[d] = frozenset({n.lower() for n in names} | {"postmaster"})
        self.accept_all = frozenset(check_domain(d) for d in accept_all)
        unknown = self.accept_all - set(self.users)
        if unknown:
            raise LabValueError(
                f"accept_all names domains without users: {', '.join(sorted(unknown))}"
            )
        self.persona = persona
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.retry = retry
        self.clock = SimClock()
        self._rng = random.Random(f"{self.seed}/routes")
        self.servers: dict[str, LabServer] = {}
        self._hosted: dict[str, list[str]] = {}  # host -> domains it receives mail for
        self._addresses: dict[str, str] = {}  # host -> its address in the zone
        self._bound: dict[str, str] = {}  # host -> the address really listened on
        self._done: dict[str, set[str]] = {}  # host -> queue ids already delivered locally
        self.notes: list[str] = []
        self._made = 0  # MTAs made so far (each gets its own seed)
        for domain in self.users:
            route = find_route(domain, self.zone, seed=0)
            if not route.ok:
                raise LabValueError(
                    f"{domain} has lab users but no usable route in the zone: {route.explain()}"
                )
            for t in route.usable:
                self._hosted.setdefault(t.host, []).append(domain)
                self._addresses[t.host] = t.addresses[0]

    # --- lifecycle --------------------------------------------------------

    def start(self) -> LabNet:
        """Start one lab server per mail host (each on its own address and a free port)."""
        if self.servers:
            return self
        for old in list(_current):
            # Its servers use the same names and addresses; one line, not six.
            old.stop()
            print("labsmtp: stopped the earlier lab net and started this one")
        table = _RecipientTable(self.users, self.accept_all)
        try:
            for host, domains in sorted(self._hosted.items()):
                address = self._addresses[host]
                bind = address if _can_bind(address) else "127.0.0.1"
                if bind != address:
                    self.notes.append(
                        f"this computer cannot listen on {address}; {host} listens on 127.0.0.1 "
                        f"instead (the lab's port map still says which is which)"
                    )
                s = LabServer(
                    host=bind,
                    hostname=host,
                    persona=self.persona,
                    name=f"labnet {host}",
                    seed=random.Random(f"{self.seed}/{host}").randrange(2**32),
                    policy=Policy(mydestination=tuple(domains), mynetworks=()),
                )
                s.faults.clock = self.clock  # greylisting reads simulated time
                s.use_checks(recipients=table)
                s.start()
                self.servers[host], self._bound[host] = s, bind
                self._done[host] = set()
        except Exception:
            self.stop()
            raise
        _current.append(self)
        return self

    def stop(self) -> None:
        """Stop every server of the net.  Safe to call twice."""
        for s in self.servers.values():
            s.stop()
        self.servers.clear()
        if self in _current:
            _current.remove(self)

    def __enter__(self) -> LabNet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the net's servers run."""
        return bool(self.servers)

    # --- what a lesson looks at --------------------------------------------

    @property
    def ports(self) -> dict[str, tuple[str, int]]:
        """host -> (address, port): where each lab mail host listens (ports are not in DNS)."""
        self._need_running()
        return {h: (self._addresses[h], s.port) for h, s in sorted(self.servers.items())}

    def _port_map(self) -> dict[str, tuple[str, str, int]]:
        return {
            h: (self._addresses[h], self._bound[h], s.port) for h, s in sorted(self.servers.items())
        }

    def table(self) -> str:
        """The mail hosts: name, address (from DNS), port (from the lab), domains, messages."""
        lines = [f"{'host':<22} {'address':<11} {'port':>6}  domains (messages stored)"]
        for h, s in sorted(self.servers.items()):
            lines.append(
                f"{h:<22} {self._addresses[h]:<11} {s.port:>6}  "
                f"{', '.join(self._hosted[h])} ({len(s.mailbox)})"
            )
        lines.append(
            "DNS gives the address; the port comes from the lab. On the Internet every one "
            "of these would listen on port 25."
        )
        lines += self.notes
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = f"{len(self.servers)} servers" if self.servers else "stopped"
        return f"<LabNet {state}, seed {self.seed}, t={self.clock.now:g} s>"

    def _repr_html_(self) -> str:
        import html

        if not self.servers:
            return html.escape(repr(self))
        return f"<pre>{html.escape(self.table())}</pre>"

    def _need_running(self) -> None:
        if not self.servers:
            raise LabValueError("the lab net is not running: call net.start() first")

    def server(self, name: str) -> LabServer:
        """The lab server of a mail host (``'mx1.shop.example'``), or a domain's best MX."""
        self._need_running()
        key = name.lower().rstrip(".") if isinstance(name, str) else name
        if key in self.servers:
            return self.servers[key]
        if any(key in domains for domains in self._hosted.values()):
            return self.servers[find_route(key, self.zone, seed=0).hosts[0]]
        raise LabValueError(
            f"no lab mail host or domain called {name!r}; hosts: {', '.join(sorted(self.servers))}"
        )

    def route(self, domain: str) -> Route:
        """Where mail for ``domain`` goes (RFC 5321 §5.1), from the net's zone."""
        return find_route(domain, self.zone, rng=self._rng)

    def mta(
        self,
        hostname: str = "mta.home.example",
        *,
        helo: str | None = None,
        retry=None,
        bounces: bool = True,
        seed: int | None = None,
        timeout: float = 5.0,
    ) -> LabMta:
        """An MTA-like sender on this net (its address from the zone, the net's ports and clock)."""
        self._need_running()
        if seed is None:
            # One generator per MTA made, from the net's seed: the same lesson run
            # twice gives the same Message-IDs and the same random MX order.
            self._made += 1
            seed = random.Random(f"{self.seed}/{hostname}/{self._made}").randrange(2**32)
        source = next(iter(self.zone.addresses(hostname)), None)
        if source is not None and not _can_bind(source):
            source = None  # macOS: only 127.0.0.1 exists unless configured
        return LabMta(
            hostname,
            zone=self.zone,
            ports=self._port_map(),
            helo=helo,
            source=source,
            retry=self.retry if retry is None else retry,
            seed=seed,
            clock=self.clock,
            timeout=timeout,
            bounces=bounces,
        )

    def send(
        self, sender: str, recipients, message=None, *, helo: str | None = None, **kw
    ) -> Delivery:
        """Send as ``mta.home.example`` would (``helo``: another EHLO name); returns a Delivery."""
        return self.mta(helo=helo).send(sender, recipients, message, **kw)

    def advance(self, seconds: float) -> float:
        """Move the net's simulated clock forward (what greylisting sees); returns the new time."""
        return self.clock.advance(seconds)

    # --- mailboxes ------------------------------------------------------------

    def _hosts_for(self, name: str) -> list[str]:
        key = name.lower().rstrip(".")
        if key in self.servers:
            return [key]
        hosts = [h for h, ds in sorted(self._hosted.items()) if key in ds]
        if not hosts:
            raise LabValueError(
                f"no lab mail host or domain called {name!r}; domains: {', '.join(sorted(self.users))}"
            )
        return hosts

    def mailbox(self, name: str) -> Mailbox:
        """Every message stored for a domain (on all its MX hosts) or on one host, oldest first."""
        self._need_running()
        box = Mailbox()
        key = name.lower().rstrip(".")
        found = []
        for h in self._hosts_for(name):
            for m in self.servers[h].mailbox.messages:
                if key in self.servers or any(r.lower().endswith("@" + key) for r in m.rcpt_tos):
                    found.append(m)
        for m in sorted(found, key=lambda m: m.received):
            box.add(m)
        return box

    def find(self, message_id: str) -> list[tuple[str, StoredMessage]]:
        """(host, stored message) for every copy of a Message-ID anywhere on the net."""
        self._need_running()
        out = []
        for h, s in sorted(self.servers.items()):
            for m in s.mailbox.messages:
                if str(m.message.get("Message-ID", "")).strip() == message_id:
                    out.append((h, m))
        return out

    # --- after acceptance: local delivery and late bounces ---------------------

    def deliver_local(self, domain: str | None = None) -> list[LocalDelivery]:
        """Hand accepted mail to the users' mailboxes; bounce what has no user (RFC 5321 §6.1).

        Servers that refuse unknown users at RCPT never get here with one; an
        ``accept_all`` domain does, and must then send a bounce to the *envelope*
        sender, who may be an innocent third party whose address was forged.
        """
        self._need_running()
        hosts = self._hosts_for(domain) if domain else sorted(self.servers)
        reports = []
        for h in hosts:
            rep = LocalDelivery(h)
            mta = self.mta(h, helo=h)
            # A bounce to one of this host's own domains goes to itself over SMTP
            # (the lab's stand-in for local delivery), so it may not skip itself.
            mta.local_names = ()
            for m in self.servers[h].mailbox.messages:
                if m.queue_id in self._done[h]:
                    continue
                self._done[h].add(m.queue_id)
                unknown = []
                for r in m.rcpt_tos:
                    local, _, dom = r.rpartition("@")
                    if dom.lower() not in self._hosted[h]:
                        continue
                    if local.lower() in self.users.get(dom.lower(), frozenset()):
                        rep.delivered.append((m.queue_id, r))
                    else:
                        rep.failed.append((m.queue_id, r))
                        unknown.append(r)
                if not unknown:
                    continue
                if not m.mail_from:
                    rep.notes.append(
                        f"{m.queue_id} had a null reverse-path (<>): no bounce (RFC 5321 §6.1)"
                    )
                    continue
                # Arrival in simulated time, never after this (simulated) moment.
                arrival = mta.clock.date(min(m.received - mta.clock.epoch, mta.clock.now))
                reports_ = [
                    RecipientReport(
                        r,
                        "failed",
                        "5.1.1",
                        "",
                        f'X-labsmtp; unknown user: "{r.rpartition("@")[0]}"',
                        mta.clock.date(),
                    )
                    for r in unknown
                ]
                client = f"{m.helo or 'unknown'} ([{m.client}])"
                rep.bounces.append(
                    mta.bounce(
                        m.mail_from, reports_, m.content, arrival=arrival, received_from=client
                    )
                )
            reports.append(rep)
        return reports

    # --- SPF ------------------------------------------------------------------

    def spf(self, message: StoredMessage) -> SpfResult:
        """SPF's MAIL FROM check of a stored message (for <>: postmaster@ its HELO name)."""
        if not isinstance(message, StoredMessage):
            raise LabValueError(
                "spf() takes a message from a mailbox, e.g. net.mailbox('home.example')[-1]"
            )
        return check_spf(message.client, message.mail_from, message.helo or "", self.zone)

    def spf_helo(self, message: StoredMessage) -> SpfResult:
        """SPF's HELO check of a stored message (RFC 7208 §2.3)."""
        if not isinstance(message, StoredMessage):
            raise LabValueError("spf_helo() takes a message from a mailbox")
        return check_spf_helo(message.client, message.helo or "", self.zone)
