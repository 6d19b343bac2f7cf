"""An offline DNS zone for HELO and client identity checks: no network needed.

Workshops often have no internet, and a lesson must not depend on real DNS.
The lab keeps a small zone of its own as zone-file text (``DEFAULT_ZONE``)
that a lesson can print, edit and load again; dnspython parses it.

Two checks use it:

- Postfix's ``reject_unknown_helo_hostname``: the HELO name has no A, AAAA
  or MX record -> ``450 4.7.1 <name>: Helo command rejected: Host not found``
  (switched on in ``Policy.smtpd_helo_restrictions``; ``use_zone`` plugs the
  zone in as the server's resolver).
- Forward-confirmed reverse DNS (FCrDNS) of the client address: the PTR
  name of the address must resolve back to the same address.  Also: does
  the HELO name resolve to the address the client connects from?  This is a
  policy hook of the session (``ZoneIdentity``, a ``policy.IdentityCheck``),
  consulted at HELO and at RCPT; its refusals are in the persona's words.

Three checks, three verdicts (lesson 5):

- HELO name vs client address.  RFC 5321 §4.1.4: a server "MAY verify that
  the domain name argument in the EHLO command actually corresponds to the IP
  address of the client.  However, if the verification fails, the server
  MUST NOT refuse to accept a message on that basis."  Log it, never refuse.
- FCrDNS of the client address (no PTR, or a PTR name that does not lead
  back): local policy (§7.9), e.g. Postfix's ``reject_unknown_client_hostname``,
  450 4.7.25 (RFC 7372).  Common, with collateral damage.
- The HELO name's syntax and DNS records: local policy, Postfix's
  ``smtpd_helo_restrictions`` (policy.py).

``standards`` logs the first two and refuses nothing.  ``strict`` refuses
both at RCPT with 450: the FCrDNS refusal is ordinary local policy; the HELO
mismatch refusal is what §4.1.4 forbids, kept so a lesson can show a
non-compliant server (Exim's ``helo_verify_hosts`` does this for the hosts it
lists; few sites apply it to everyone).

The zone also answers MX and TXT: ``MAIL_ZONE`` is the lab's mail routing
(which host receives mail for which domain, RFC 5321 §5.1; null MX, RFC 7505;
SPF records, RFC 7208), read by ``mx.find_route``, ``spf.check_spf`` and
``mailnet.LabNet``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.reversename
import dns.zone

from ..errors import LabValueError

DEFAULT_ZONE = """\
$ORIGIN .
$TTL 300
; --- forward records: name -> address (A) --------------------------------
localhost.                  A    127.0.0.1
client.example.org.         A    127.0.0.1     ; the step client's default HELO name
mx.lab.example.org.         A    127.0.0.1     ; the lab server itself
mail.good.example.          A    127.0.0.2     ; PTR and A agree: FCrDNS passes
; mail.mismatch.example has no A record: its PTR (below) leads nowhere
mail.branch.example.        A    127.0.0.50    ; the branch's inside address, behind its NAT
; --- reverse records: address -> name (PTR) -------------------------------
1.0.0.127.in-addr.arpa.     PTR  localhost.
2.0.0.127.in-addr.arpa.     PTR  mail.good.example.
3.0.0.127.in-addr.arpa.     PTR  mail.mismatch.example.
5.0.0.127.in-addr.arpa.     PTR  mail.branch.example.   ; the NAT's public address
; 127.0.0.4 has no PTR record at all
"""

# The lab's mail routing: which host receives mail for which domain.  DNS gives
# names and addresses, never ports; LabNet.ports supplies those (see there).
MAIL_ZONE = """\
$ORIGIN .
$TTL 300
; --- shop.example: two mail exchangers; the lower preference is tried first
shop.example.            MX   10 mx1.shop.example.
shop.example.            MX   20 mx2.shop.example.
mx1.shop.example.        A    127.0.0.11
mx2.shop.example.        A    127.0.0.12
; --- twins.example: two MX at the same preference: senders pick one at random
twins.example.           MX   10 mx1.shop.example.
twins.example.           MX   10 mx2.shop.example.
; --- plain.example: no MX, only an address: the implicit MX is the domain itself
plain.example.           A    127.0.0.13
; --- nomail.example: a web site's domain that takes no mail (null MX, RFC 7505)
nomail.example.          MX   0 .
nomail.example.          A    127.0.0.14
; --- broken.example: its only MX names a host that has no address
broken.example.          MX   10 gone.broken.example.
; --- literal.example: an MX that names an address; MX data must be a host name
literal.example.         MX   10 127.0.0.11.
; --- (nothing.example has no records at all: the domain does not exist)
; --- home.example: Ada's domain; her outgoing mail leaves from mta.home.example
home.example.            MX   10 mx.home.example.
home.example.            TXT  "v=spf1 a:mta.home.example -all"
mx.home.example.         A    127.0.0.21
mta.home.example.        A    127.0.0.20
mta.home.example.        TXT  "v=spf1 a -all"   ; SPF for the HELO name (RFC 7208 §2.3)
; --- innocent.example: Carol's domain, whose address spammers forge
innocent.example.        MX   10 mx.innocent.example.
innocent.example.        TXT  "v=spf1 a:mx.innocent.example -all"
mx.innocent.example.     A    127.0.0.22
mx.innocent.example.     TXT  "v=spf1 a -all"
; --- acceptall.example: says 250 to every recipient, finds out later
acceptall.example.       MX   10 mx.acceptall.example.
mx.acceptall.example.    A    127.0.0.23
mx.acceptall.example.    TXT  "v=spf1 a -all"
; --- spam.bot.example: a spammer's machine
spam.bot.example.        A    127.0.0.66
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
    """A DNS zone held in memory, parsed from zone-file text; answers A, AAAA, PTR, MX and TXT."""

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
        """True if ``name`` has an A, AAAA or MX record (reject_unknown_helo_hostname's
        test: Postfix asks for addresses, then for MX, smtpd_check.c)."""
        return bool(self.addresses(name)) or bool(self._rdata(name, dns.rdatatype.MX))

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
            f"{address} -> {names[0]} -> {back} (not {address}: mismatch)",
        )

    def reverse(self, address: str) -> tuple[str | None, bool]:
        """(the address's PTR name or None, is it forward-confirmed?): what a server
        writes beside the HELO name in its Received: field (RFC 5321 §4.4)."""
        check = self.fcrdns(address)
        return (check.names[0] if check.names else None), check.verdict == "pass"

    def mail_domain_exists(self, name: str) -> bool:
        """True if ``name`` has an A, AAAA or MX record: what a sender-domain check asks
        (Sendmail's check_mail: "Domain of sender address ... does not exist")."""
        return bool(self.addresses(name) or self.mx(name))

    def helo_matches(self, name: str, address: str) -> bool:
        """True if the HELO ``name`` resolves to the client's ``address``."""
        return address in self.addresses(name)

    def exists(self, name: str) -> bool:
        """True if ``name`` has any record (False is DNS's NXDOMAIN: no such domain)."""
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
        except dns.exception.DNSException:
            return False
        return self.zone.get_node(qname) is not None

    def _records(self, name: str, rdtype) -> list:
        """The records of one type at ``name`` (dnspython rdata; [] if none or a bad name)."""
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
        except dns.exception.DNSException:
            return []
        return list(self.zone.get_rdataset(qname, rdtype) or [])

    def mx(self, domain: str) -> list[tuple[int, str]]:
        """The MX records of ``domain`` as (preference, host), unsorted; host "." is a null MX."""
        out = []
        for r in self._records(domain, dns.rdatatype.MX):
            host = r.exchange.to_text()
            out.append((r.preference, host if host == "." else host.rstrip(".")))
        return out

    def txt(self, name: str) -> list[str]:
        """The TXT records of ``name``, each one's strings joined (as SPF reads them)."""
        return [
            b"".join(r.strings).decode("utf-8", "replace")
            for r in self._records(name, dns.rdatatype.TXT)
        ]

    def __repr__(self) -> str:
        return f"<LabZone: {len(self.zone.nodes)} names>"


class ZoneIdentity:
    """The identity policy checked against a zone: log what is wrong, or refuse at RCPT."""

    def __init__(self, zone: LabZone, policy: str):
        self.zone, self.policy = zone, policy
        self.name = f"identity check ({'strict' if policy == 'strict' else 'standards'})"

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

    def at_helo(self, helo: str, client_ip: str) -> str | None:
        found = self.verdicts(helo.strip(), client_ip)
        if not found:
            return f"identity confirmed: {self.zone.fcrdns(client_ip).detail}"
        what = (
            "logged, not refused (RFC 5321 §4.1.4)"
            if self.policy == "standards"
            else "strict policy: RCPT will be refused"
        )
        return "; ".join(found) + f" - {what}"

    def at_rcpt(self, helo: str, client_ip: str) -> str | None:
        if self.policy != "strict" or not self.verdicts(helo, client_ip):
            return None
        if self.zone.fcrdns(client_ip).verdict != "pass":
            return "client_unknown"  # Postfix reject_unknown_client_hostname (450)
        return "helo_mismatch"  # what RFC 5321 §4.1.4 forbids: a non-compliant server


def use_zone(
    server: Any, zone: LabZone | str | None = None, *, identity: str = "standards"
) -> LabZone:
    """Give ``server`` this offline zone for HELO checks and (optionally) client identity checks.

    ``identity``: "off" (only reject_unknown_helo_hostname uses the zone),
    "standards" (log FCrDNS and HELO mismatches, refuse nothing: RFC 5321
    §4.1.4), or "strict" (refuse such clients at RCPT with 450: FCrDNS as local
    policy, and a HELO mismatch against §4.1.4, to show a non-compliant server).
    """
    if identity not in IDENTITY_POLICIES:
        raise LabValueError(
            f"identity must be one of {', '.join(IDENTITY_POLICIES)}, not {identity!r}"
        )
    if zone is None or isinstance(zone, str):
        zone = LabZone(zone or DEFAULT_ZONE)
    if not isinstance(zone, LabZone):
        raise LabValueError("zone must be a LabZone or zone-file text")
    checks = None if identity == "off" else ZoneIdentity(zone, identity)
    server.use_checks(identity=checks, **zone_hooks(zone))
    server.zone = zone
    return zone


ZONE_HOOKS = (
    "resolves",
    "reverse",
    "domain_resolves",
    "addresses",
)  # the session hooks a zone answers


def zone_hooks(zone: LabZone) -> dict[str, Any]:
    """The DNS a session consults, answered from ``zone``: HELO names (``resolves``),
    the client's reverse name (``reverse``), sender domains (``domain_resolves``) and
    a name's addresses (``addresses``, Exim's helo_verify_hosts)."""
    return {
        "resolves": zone.resolves,
        "reverse": zone.reverse,
        "domain_resolves": zone.mail_domain_exists,
        "addresses": zone.addresses,
    }
