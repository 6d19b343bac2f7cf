"""Just enough SPF (RFC 7208) to show which identity a receiver checks, offline.

SPF asks: may this client address send mail for this domain?  The domain
comes from an *identity*: the MAIL FROM address (RFC 7208 §2.4), and
separately, optionally, the HELO name (§2.3).  A bounce has no MAIL FROM
address (``MAIL FROM:<>``), so §2.4 checks ``postmaster@<HELO name>``
instead: for bounces the HELO name *is* the identity SPF tests.  That is
why an MTA that sends bounces should publish an SPF record for its own
HELO name.

This evaluator reads TXT records from the lab's offline zone and knows the
mechanisms ``all``, ``ip4``, ``ip6``, ``a``, ``mx`` and ``include`` and the
``redirect=`` modifier, with the qualifiers ``+ - ~ ?``.  It has no macros
and no ``exists``/``ptr`` (a real library such as pyspf has them); an
unknown term gives ``permerror``, as RFC 7208 §5 would.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import LabValueError
from ..protocol.policy import address_literal
from ..render import TextReport
from .dnszone import MAIL_ZONE, LabZone

RESULTS = {
    "pass": "the address is authorised to send for the domain",
    "fail": "the domain says this address is NOT authorised (-): receivers may refuse",
    "softfail": "the domain says probably not authorised (~): receivers usually accept and mark",
    "neutral": "the domain makes no assertion about this address (?)",
    "none": "no SPF record (or no usable domain): nothing to check",
    "permerror": "the SPF record is broken: it cannot be evaluated",
}
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4: at most 10 mechanisms that need DNS


@dataclass(frozen=True)
class SpfResult(TextReport):
    """What an SPF check found: the identity, the domain, its record, the result and why."""

    scope: str  # "mailfrom" (RFC 7208 §2.4) or "helo" (§2.3)
    identity: str  # the identity checked: an address, postmaster@HELO, or the HELO name
    domain: str
    client_ip: str
    record: str | None
    result: str  # a key of RESULTS
    reason: str

    def __str__(self) -> str:
        rec = f'"{self.record}"' if self.record else "(no SPF record)"
        return (
            f"SPF {self.scope} identity {self.identity} from {self.client_ip}: {self.result}\n"
            f"  record of {self.domain}: {rec}\n  {self.reason}"
        )


class _PermError(Exception):
    pass


def _spf_record(zone: LabZone, domain: str) -> str | None:
    records = [
        t for t in zone.txt(domain) if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")
    ]
    if len(records) > 1:
        raise _PermError(f"{domain} publishes {len(records)} SPF records; RFC 7208 §4.5 allows one")
    return records[0] if records else None


def _in_network(ip, addresses, cidr4: int, cidr6: int) -> bool:
    for a in addresses:
        try:
            net = ipaddress.ip_network(f"{a}/{cidr4 if ':' not in a else cidr6}", strict=False)
        except ValueError:
            continue
        if ip.version == net.version and ip in net:
            return True
    return False


def _split_cidr(arg: str, default: str) -> tuple[str, int, int]:
    """'a:host/24//64' -> (host, 24, 64); the domain defaults to ``default``."""
    arg, _, six = arg.partition("//")
    arg, _, four = arg.partition("/")
    try:
        return arg or default, int(four or 32), int(six or 128)
    except ValueError:
        raise _PermError(f"bad prefix length in {arg!r}") from None


# Over the complexity gate (ruff C90, 12) as it came from issue 12; split when next changed.
def _check_host(zone, ip, domain: str, lookups: list[int]) -> tuple[str, str, str | None]:  # noqa: C901
    """RFC 7208 §4: (result, the term that decided, the record)."""
    record = _spf_record(zone, domain)
    if record is None:
        return "none", f"{domain} has no SPF record", None
    redirect = None
    for term in record.split()[1:]:
        if "=" in term and ":" not in term.split("=", 1)[0]:
            name, _, value = term.partition("=")
            if name.lower() == "redirect":
                redirect = value
            continue  # unknown modifiers are ignored (§6)
        qualifier = _QUALIFIERS.get(term[0], None)
        mech = term[1:] if qualifier else term
        qualifier = qualifier or "pass"
        name, _, arg = mech.partition(":")
        name = name.lower()
        if "%" in mech:
            raise _PermError(f"{term!r} uses a macro, which the lab's evaluator does not expand")
        if name == "all":
            return qualifier, term, record
        if name in ("ip4", "ip6"):
            try:
                net = ipaddress.ip_network(arg, strict=False)
            except ValueError:
                raise _PermError(f"{term!r} is not an address or network") from None
            if ip.version == net.version and ip in net:
                return qualifier, term, record
            continue
        if name in ("a", "mx", "a/", "mx/") or name.startswith(("a/", "mx/")):
            lookups[0] += 1
            if lookups[0] > _LOOKUP_LIMIT:
                raise _PermError("more than 10 DNS lookups (RFC 7208 §4.6.4)")
            base = name.split("/")[0]
            rest = mech[len(base) :].lstrip(":")
            target, c4, c6 = _split_cidr(rest, domain)
            hosts = [target] if base == "a" else [h for _, h in zone.mx(target) if h != "."]
            addresses = [a for h in hosts for a in zone.addresses(h)]
            if _in_network(ip, addresses, c4, c6):
                return qualifier, term, record
            continue
        if name == "include":
            lookups[0] += 1
            if lookups[0] > _LOOKUP_LIMIT:
                raise _PermError("more than 10 DNS lookups (RFC 7208 §4.6.4)")
            inner, _, _ = _check_host(zone, ip, arg, lookups)
            if inner == "pass":
                return qualifier, term, record
            if inner == "none":
                raise _PermError(f"include:{arg} has no SPF record (RFC 7208 §5.2)")
            continue
        raise _PermError(
            f"unknown mechanism {term!r} (the lab knows all, ip4, ip6, a, mx, include)"
        )
    if redirect:
        lookups[0] += 1
        result, why, _ = _check_host(zone, ip, redirect, lookups)
        return ("permerror" if result == "none" else result), f"redirect={redirect}: {why}", record
    return "neutral", "no term matched and there is no 'all': neutral (RFC 7208 §4.7)", record


def _evaluate(scope, identity, domain, client_ip, zone) -> SpfResult:
    if zone is None or isinstance(zone, str):
        zone = LabZone(zone or MAIL_ZONE)
    try:
        ip = ipaddress.ip_address(str(client_ip).strip("[]"))
    except ValueError:
        raise LabValueError(
            f"client_ip must be an address such as '127.0.0.20', not {client_ip!r}"
        ) from None
    if not domain or address_literal(domain) or "." not in domain:
        return SpfResult(
            scope,
            identity,
            domain,
            str(ip),
            None,
            "none",
            f"{domain or 'the identity'} is not a domain name SPF can look up (RFC 7208 §4.3)",
        )
    try:
        result, why, record = _check_host(zone, ip, domain, [0])
    except _PermError as exc:
        return SpfResult(scope, identity, domain, str(ip), None, "permerror", str(exc))
    reason = f"matched {why}: {RESULTS[result]}" if record else why
    return SpfResult(scope, identity, domain, str(ip), record, result, reason)


def check_spf(
    client_ip: str, mail_from: str, helo: str, zone: LabZone | str | None = None
) -> SpfResult:
    """SPF's MAIL FROM check (RFC 7208 §2.4): for ``MAIL FROM:<>`` the identity is postmaster@HELO."""
    if not isinstance(mail_from, str) or not isinstance(helo, str):
        raise LabValueError("mail_from and helo must be strings ('' is the null reverse-path <>)")
    if mail_from:
        identity = mail_from
    else:
        # §2.4: "the SPF verifier MUST check the 'HELO' identity" in its place,
        # as the address postmaster@<HELO name>.
        identity = f"postmaster@{helo}"
    domain = identity.rpartition("@")[2].rstrip(".").lower()
    return _evaluate("mailfrom", identity, domain, client_ip, zone)


def check_spf_helo(client_ip: str, helo: str, zone: LabZone | str | None = None) -> SpfResult:
    """SPF's HELO check (RFC 7208 §2.3): may this address use this HELO name?"""
    if not isinstance(helo, str):
        raise LabValueError("helo must be a string, the name the client sent with HELO/EHLO")
    return _evaluate("helo", helo, helo.rstrip(".").lower(), client_ip, zone)
