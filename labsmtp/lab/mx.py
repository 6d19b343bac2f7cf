"""How a sender finds the server that receives mail for a domain (RFC 5321 §5.1).

Theory of operation.  ``find_route`` reads the lab's offline zone the way an
MTA reads DNS: the MX records of the recipient's domain, sorted by
preference (lowest first), equal preferences shuffled (§5.1 "MUST randomize
them to spread the load"), each host's addresses looked up.  No MX record at
all: the domain's own A/AAAA record is an *implicit MX* of preference 0.  A
null MX (``MX 0 .``, RFC 7505) means the domain accepts no mail: nothing is
tried.  A domain with no records at all does not exist (DNS's NXDOMAIN).  An
MX whose data is an address, or names a host without an address, is
unusable; if no MX is usable, that is an error (§5.1).

Only the recipient's domain decides the route.  The sender's HELO name, its
address and the message play no part: ``find_route`` is not even told them.

The random order among equal preferences comes from a ``random.Random``
that the caller seeds, so a lesson shows the same order on every run.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

from ..errors import LabValueError
from ..protocol.policy import address_literal, is_valid_hostname
from ..render import TextReport
from .dnszone import MAIL_ZONE, LabZone

# Route kinds, and what each means for a sender.
KINDS = {
    "mx": "MX records found: try their hosts in order of preference",
    "implicit": "no MX record: the domain's own address is an implicit MX (preference 0)",
    "null": "null MX (RFC 7505): the domain accepts no mail; do not try at all",
    "nxdomain": "the domain does not exist in DNS: report an error (RFC 5321 §5.1)",
    "unusable": "MX records exist but none is usable: report an error (RFC 5321 §5.1)",
    "no address": "no MX and no address record: nowhere to deliver",
    "loop": "this MTA is itself the best MX: only more preferred hosts may be used (§5.1)",
}


@dataclass(frozen=True)
class MxTarget:
    """One host a sender may try: its MX preference, name and addresses (empty: unusable)."""

    host: str
    preference: int
    addresses: tuple[str, ...]
    implicit: bool = False  # from the domain's own A/AAAA record, not an MX record
    problem: str = ""  # why this host cannot be used ("" if it can)

    @property
    def usable(self) -> bool:
        """True if a sender can try this host (a host name with an address)."""
        return not self.problem and bool(self.addresses)


@dataclass(frozen=True)
class Route(TextReport):
    """Where mail for one domain goes: the hosts to try, in order, or why there are none."""

    domain: str
    kind: str  # a key of KINDS
    targets: tuple[MxTarget, ...] = ()  # every MX found, in the order tried (unusable included)
    status: str = ""  # RFC 3463 status if no host can be tried (e.g. 5.1.10 for a null MX)
    diagnostic: str = ""  # why nothing can be tried, as the sender reports it
    notes: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> tuple[MxTarget, ...]:
        """The hosts the sender will really try, in order."""
        return tuple(t for t in self.targets if t.usable)

    @property
    def ok(self) -> bool:
        """True if there is at least one host to try."""
        return bool(self.usable)

    @property
    def hosts(self) -> list[str]:
        """The names of the usable hosts, in the order a sender tries them."""
        return [t.host for t in self.usable]

    def explain(self) -> str:
        """A few lines a learner can read: the kind of route and each host."""
        lines = [f"{self.domain}: {KINDS[self.kind]}"]
        for t in self.targets:
            where = ", ".join(t.addresses) or "no address"
            pref = "implicit" if t.implicit else f"MX {t.preference:>3}"
            state = "" if t.usable else f"  UNUSABLE: {t.problem or 'no address'}"
            lines.append(f"  {pref}  {t.host:<22} {where}{state}")
        if self.diagnostic:
            lines.append(f"  a sender reports status {self.status}: {self.diagnostic}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()


def check_domain(domain, what: str = "domain") -> str:
    """``domain`` lower-cased without a trailing dot, or a LabValueError saying what is wrong."""
    if not isinstance(domain, str) or not domain.strip():
        raise LabValueError(
            f"the {what} must be a domain name such as 'shop.example', not {domain!r}"
        )
    d = domain.strip().rstrip(".").lower()
    if address_literal(d):
        raise LabValueError(
            f"{domain!r} is an address literal: mail to user@[address] goes straight to that "
            f"address with no MX lookup (RFC 5321 §4.1.3); the lab's MTA only follows MX"
        )
    if not is_valid_hostname(d) or "." not in d:
        raise LabValueError(
            f"{domain!r} is not a fully-qualified domain name such as 'shop.example' "
            f"(RFC 5321 §5.1: an MTA looks names up as given and never guesses the rest)"
        )
    return d


def _is_address(host: str) -> bool:
    """True if an MX host 'name' is really an IP address (``127.0.0.11`` or ``[127.0.0.11]``)."""
    if address_literal(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


# Over the complexity gate (ruff C90, 12) as it came from issue 12; split when next changed.
def find_route(  # noqa: C901
    domain: str,
    zone: LabZone | str | None = None,
    *,
    rng: random.Random | None = None,
    seed: int | None = None,
    local_names: tuple[str, ...] | list[str] = (),
) -> Route:
    """The hosts a sender tries for ``domain``, in RFC 5321 §5.1 order (MX, implicit MX, null MX).

    ``zone``: a LabZone or zone text (default ``MAIL_ZONE``).  ``rng`` or
    ``seed``: the random order among equal preferences (same seed, same order).
    ``local_names``: the names this MTA is known by; if one is an MX of the
    domain, it and every worse MX are dropped (§5.1, to avoid mail loops).
    """
    d = check_domain(domain)
    if zone is None or isinstance(zone, str):
        zone = LabZone(zone or MAIL_ZONE)
    if not isinstance(zone, LabZone):
        raise LabValueError("zone must be a LabZone or zone-file text, such as MAIL_ZONE")
    if rng is None:
        rng = random.Random(seed)
    if not zone.exists(d):
        return Route(
            d,
            "nxdomain",
            status="5.4.4",  # Postfix's status for "Host or domain name not found"
            diagnostic=f"Host or domain name not found: {d} does not exist in DNS",
        )
    records = zone.mx(d)
    if not records:
        addresses = tuple(zone.addresses(d))
        if not addresses:
            return Route(
                d,
                "no address",
                status="5.4.4",
                diagnostic=f"{d} has neither an MX nor an address record: unable to route",
            )
        # §5.1: "an implicit MX RR, with a preference of 0, pointing to that host".
        return Route(d, "implicit", (MxTarget(d, 0, addresses, implicit=True),))
    notes = []
    if any(host == "." for _, host in records):
        if len(records) == 1 and records[0][0] == 0:
            return Route(
                d,
                "null",
                (MxTarget(".", 0, (), problem="null MX: this domain accepts no mail"),),
                status="5.1.10",
                # RFC 7505 §4.1: fail at once, no connection, reply code 556.
                diagnostic=f"Recipient address has null MX (reply code 556): {d} accepts no mail",
            )
        # RFC 7505 §3: a domain with a null MX MUST NOT publish any other MX.
        notes.append(
            f"{d} mixes a null MX with other MX records, which RFC 7505 §3 forbids; "
            f"the '.' entry is ignored"
        )
    # Sort by preference; shuffle within each preference (§5.1).  Shuffle first,
    # then a stable sort keeps the shuffled order among equals.
    shuffled = list(records)
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda r: r[0])
    targets = []
    for pref, host in shuffled:
        if host == ".":
            targets.append(MxTarget(".", pref, (), problem="a null MX among other MX records"))
        elif _is_address(host):
            targets.append(
                MxTarget(
                    host,
                    pref,
                    (),
                    problem="MX data is an address; RFC 5321 §5.1 says it MUST be a host name",
                )
            )
        else:
            addresses = tuple(zone.addresses(host))
            problem = "" if addresses else f"{host} has no A or AAAA record"
            targets.append(MxTarget(host, pref, addresses, problem=problem))
    local = {n.lower().rstrip(".") for n in local_names}
    mine = [t.preference for t in targets if t.host.lower() in local]
    if mine:
        # §5.1: discard this host's own preference level and every worse one.
        best = min(mine)
        kept = tuple(t for t in targets if t.preference < best)
        notes.append(
            f"this MTA is an MX of {d} at preference {best}: only more preferred hosts are tried"
        )
        if not any(t.usable for t in kept):
            return Route(
                d,
                "loop",
                kept,
                status="5.4.6",
                diagnostic=f"mail for {d} loops back to myself (RFC 5321 §5.1)",
                notes=tuple(notes),
            )
        return Route(d, "mx", kept, notes=tuple(notes))
    if not any(t.usable for t in targets):
        return Route(
            d,
            "unusable",
            tuple(targets),
            status="5.4.4",
            diagnostic=f"no usable MX host for {d} (RFC 5321 §5.1)",
            notes=tuple(notes),
        )
    return Route(d, "mx", tuple(targets), notes=tuple(notes))
