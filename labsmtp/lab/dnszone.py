"""An offline DNS zone for HELO and client identity checks: no network needed.

Workshops often have no internet, and a lesson must not depend on real DNS.
The lab keeps a small zone of its own as zone-file text (``DEFAULT_ZONE``)
that a lesson can print, edit and load again; dnspython parses it.

Two checks use it:

- Postfix's ``reject_unknown_helo_hostname``: the HELO name has no A/AAAA
  record -> ``450 4.7.1 <name>: Helo command rejected: Host not found``
  (switched on in ``Policy.smtpd_helo_restrictions``; ``use_zone`` plugs the
  zone in as the server's resolver).
- Forward-confirmed reverse DNS (FCrDNS) of the client address: the PTR
  name of the address must resolve back to the same address.  Also: does
  the HELO name resolve to the address the client connects from?

RFC 5321 §4.1.4: a server "MAY verify that the domain name argument in the
EHLO command actually corresponds to the IP address of the client.
However, if the verification fails, the server MUST NOT refuse to accept a
message on that basis."  So the lab has two policies: ``standards`` logs
what it found and accepts; ``strict`` is a *local* policy (Postfix's
``reject_unknown_client_hostname`` and a HELO-address match) that refuses
at RCPT with 450, as many real sites do, going beyond what the RFC allows
for the HELO check.  NAT is why the RFC is careful: a client behind NAT is
seen from an address its own name does not resolve to.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.reversename
import dns.zone

from ..errors import LabValueError
from .faults import Action, Fault

DEFAULT_ZONE = """\
$ORIGIN .
$TTL 300
; --- forward records: name -> address (A) --------------------------------
localhost.                  A    127.0.0.1
client.example.org.         A    127.0.0.1     ; the step client's default HELO name
mx.lab.example.org.         A    127.0.0.1     ; the lab server itself
mail.good.example.          A    127.0.0.2     ; PTR and A agree: FCrDNS passes
mail.mismatch.example.      A    192.0.2.10    ; its PTR says 127.0.0.3, its A says otherwise
mail.branch.example.        A    127.0.0.50    ; NAT: the public address is 127.0.0.50 ...
; --- reverse records: address -> name (PTR) -------------------------------
1.0.0.127.in-addr.arpa.     PTR  localhost.
2.0.0.127.in-addr.arpa.     PTR  mail.good.example.
3.0.0.127.in-addr.arpa.     PTR  mail.mismatch.example.
5.0.0.127.in-addr.arpa.     PTR  mail.branch.example.   ; ... but it is seen from 127.0.0.5
; 127.0.0.4 has no PTR record at all
"""

IDENTITY_POLICIES = ("off", "standards", "strict")


@dataclass(frozen=True)
class Fcrdns:
    """The result of a forward-confirmed reverse DNS check of one address."""

    address: str
    names: tuple[str, ...]  # the PTR names of the address
    verdict: str  # "pass", "no PTR", "mismatch"
    detail: str


class LabZone:
    """A DNS zone held in memory, parsed from zone-file text; answers A, AAAA and PTR."""

    def __init__(self, text: str = DEFAULT_ZONE):
        if not isinstance(text, str):
            raise LabValueError("the zone must be zone-file text (a str), such as DEFAULT_ZONE")
        try:
            # Origin "." with absolute names: one text holds forward and reverse records.
            self.zone = dns.zone.from_text(text, origin=".", relativize=False, check_origin=False)
        except dns.exception.DNSException as exc:
            raise LabValueError(
                f"the zone text does not parse: {exc}. Each record is "
                f"'name. [TTL] TYPE data', with names ending in a dot, e.g. "
                f"'mail.good.example. A 127.0.0.2'"
            ) from None
        self.text = text

    def _rdata(self, name: str, rdtype) -> list[str]:
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
        except dns.exception.DNSException:
            return []
        rds = self.zone.get_rdataset(qname, rdtype)
        return [r.to_text() for r in rds] if rds else []

    def addresses(self, name: str) -> list[str]:
        """The A and AAAA addresses of ``name`` (empty if it has none)."""
        return self._rdata(name, dns.rdatatype.A) + self._rdata(name, dns.rdatatype.AAAA)

    def resolves(self, name: str) -> bool:
        """True if ``name`` has an A or AAAA record (reject_unknown_helo_hostname's test)."""
        return bool(self.addresses(name))

    def ptr(self, address: str) -> list[str]:
        """The PTR names of an IP address, without the trailing dot."""
        try:
            rev = dns.reversename.from_address(address).to_text()
        except (dns.exception.DNSException, ValueError):
            return []
        return [n.rstrip(".") for n in self._rdata(rev, dns.rdatatype.PTR)]

    def fcrdns(self, address: str) -> Fcrdns:
        """Forward-confirmed reverse DNS: address -> PTR name -> A records include the address?"""
        names = self.ptr(address)
        if not names:
            return Fcrdns(address, (), "no PTR", f"{address} has no PTR record")
        for n in names:
            if address in self.addresses(n):
                return Fcrdns(address, tuple(names), "pass", f"{address} -> {n} -> {address}")
        back = ", ".join(self.addresses(names[0])) or "nothing"
        return Fcrdns(
            address,
            tuple(names),
            "mismatch",
            f"{address} -> {names[0]} -> {back} (not {address}; NAT looks like this)",
        )

    def helo_matches(self, name: str, address: str) -> bool:
        """True if the HELO ``name`` resolves to the client's ``address``."""
        return address in self.addresses(name)

    def __repr__(self) -> str:
        return f"<LabZone: {len(self.zone.nodes)} names>"


class IdentityCheck(Action):
    """Check HELO name and client address against the zone; log, or refuse at RCPT if strict."""

    stages = ("helo", "rcpt")

    def __init__(self, zone: LabZone, policy: str):
        self.zone, self.policy = zone, policy

    def verdicts(self, helo: str, address: str) -> list[str]:
        """What is wrong with this client's identity (empty if nothing)."""
        out = []
        f = self.zone.fcrdns(address)
        if f.verdict != "pass":
            out.append(f"FCrDNS {f.verdict}: {f.detail}")
        try:
            ipaddress.ip_address(helo.strip("[]"))
            is_literal = True
        except ValueError:
            is_literal = False
        if helo and not is_literal and not self.zone.helo_matches(helo, address):
            got = ", ".join(self.zone.addresses(helo)) or "no address"
            out.append(f"HELO {helo} resolves to {got}, not to {address}")
        return out

    async def apply(self, ctx, normal):
        address = ctx.client_ip
        if ctx.stage == "helo":
            reply = await normal()
            if reply is not None and reply.ok:
                found = self.verdicts(ctx.arg.strip(), address)
                if found:
                    what = (
                        "logged, not refused (RFC 5321 §4.1.4)"
                        if self.policy == "standards"
                        else "strict local policy: RCPT will be refused"
                    )
                    ctx.event("; ".join(found) + f" - {what}")
                else:
                    ctx.event(f"identity confirmed: {self.zone.fcrdns(address).detail}")
            return reply
        helo = ctx.proto.session.host_name or ""
        if self.policy == "strict" and self.verdicts(helo, address):
            if self.zone.fcrdns(address).verdict != "pass":
                # Postfix reject_unknown_client_hostname (unknown_client_reject_code 450).
                return await ctx.write(
                    [f"450 4.7.25 Client host rejected: cannot find your hostname, [{address}]"]
                )
            return await ctx.write(
                [
                    f"450 4.7.1 <{helo}>: Helo command rejected: Host name does not match "
                    f"your address [{address}] (strict local policy)"
                ]
            )
        return await normal()


def use_zone(server, zone: LabZone | str | None = None, *, identity: str = "standards") -> LabZone:
    """Give ``server`` this offline zone for HELO checks and (optionally) client identity checks.

    ``identity``: "off" (only reject_unknown_helo_hostname uses the zone),
    "standards" (log FCrDNS and HELO mismatches, refuse nothing: RFC 5321
    §4.1.4), or "strict" (refuse such clients at RCPT with 450: a local policy).
    """
    if identity not in IDENTITY_POLICIES:
        raise LabValueError(
            f"identity must be one of {', '.join(IDENTITY_POLICIES)}, not {identity!r}"
        )
    if zone is None or isinstance(zone, str):
        zone = LabZone(zone or DEFAULT_ZONE)
    if not isinstance(zone, LabZone):
        raise LabValueError("zone must be a LabZone or zone-file text")
    server._resolver = zone.resolves
    if identity == "off":
        server.faults.set_checks()
    else:
        check = IdentityCheck(zone, identity)
        name = f"identity check ({'strict local policy' if identity == 'strict' else 'standards'})"
        server.faults.set_checks(Fault("helo", check, name=name), Fault("rcpt", check, name=name))
    server.zone = zone
    return zone
