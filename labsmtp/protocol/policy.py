"""Local policy: the switches a mail administrator sets, named as Postfix names them.

RFC 5321 fixes the dialogue; what a server *accepts* is local policy.  The
lab keeps each rule separate and switchable so a lesson can turn one on,
run the same dialogue again and see the difference.  Names follow Postfix
(``smtpd_helo_required``, ``smtpd_helo_restrictions``, ``mydestination``,
``mynetworks``, ``message_size_limit``) so that what learners see here is
what they will type into ``main.cf`` later.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..errors import LabValueError

HELO_RESTRICTIONS = (
    "reject_invalid_helo_hostname",  # syntax: 501 5.5.2 ... Invalid name
    "reject_non_fqdn_helo_hostname",  # no dot: 504 5.5.2 ... need fully-qualified hostname
    "reject_unknown_helo_hostname",  # no A/AAAA record in the lab's DNS zone: 450 4.7.1
)

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_ADDR_LITERAL = re.compile(r"^\[(?:IPv6:)?([^\]]+)\]$", re.I)


def address_literal(name: str) -> str | None:
    """The IP inside an address literal such as ``[192.0.2.7]`` (RFC 5321 §4.1.3), else None."""
    m = _ADDR_LITERAL.match(name)
    if not m:
        return None
    inner = m.group(1)
    try:
        ip = ipaddress.ip_address(inner)
    except ValueError:
        return None
    if ip.version == 6 and not name[1:].lower().startswith("ipv6:"):
        return None  # §4.1.3: IPv6 literals carry the "IPv6:" tag
    return str(ip)


def is_valid_hostname(name: str) -> bool:
    """Postfix's valid_hostname(): letters, digits, '-' and '_' in labels of 1-63, or a literal."""
    if address_literal(name):
        return True
    if not name or len(name) > 255:
        return False
    labels = name.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)  # "1.2.3.4" unbracketed is not a name


def is_fqdn(name: str) -> bool:
    """True for a fully-qualified name (has a dot) or an address literal (RFC 5321 §2.3.5)."""
    return bool(address_literal(name)) or ("." in name.strip(".") and is_valid_hostname(name))


@dataclass(frozen=True)
class Policy:
    """The lab server's local policy; every rule can be switched on or off."""

    smtpd_helo_required: bool | None = None  # None: the persona's default
    smtpd_helo_restrictions: tuple[str, ...] = ()
    mydestination: tuple[str, ...] = ("lab.example.org",)  # plus the server's own name
    mynetworks: tuple[str, ...] = ("127.0.0.1/32",)  # may relay (Postfix trusts its own host)
    message_size_limit: int = 10_240_000  # Postfix's default, in bytes
    open_relay: bool = False  # the deliberately misconfigured mode: accept every recipient
    max_recipients: int = 1000  # Postfix smtpd_recipient_limit
    command_line_limit: int = 512  # RFC 5321 §4.5.3.1.4, with CRLF
    text_line_limit: int = 1000  # RFC 5321 §4.5.3.1.6, with CRLF
    hard_error_limit: int = 20  # Postfix smtpd_hard_error_limit: then 421 and close
    idle_timeout: float = 300.0  # RFC 5321 §4.5.3.2.7: at least 5 minutes
    max_connections: int = 100  # sessions served at once (Postfix default_process_limit)
    # Sessions at once from one client address, trusted clients (mynetworks) exempt, as
    # Postfix's smtpd_client_connection_count_limit with its exceptions = $mynetworks;
    # 0: no limit.  The next gets the persona's too_many_from_client (421).
    max_connections_per_client: int = 0
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("smtpd_helo_restrictions", "mydestination", "mynetworks"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v.strip() for v in re.split(r"[,\s]+", value) if v.strip())
            elif not isinstance(value, (tuple, list)):
                raise LabValueError(
                    f"{name} must be a list of strings or a comma-separated string, not {value!r}"
                )
            object.__setattr__(self, name, tuple(value))
        for r in self.smtpd_helo_restrictions:
            if r not in HELO_RESTRICTIONS:
                raise LabValueError(
                    f"unknown HELO restriction {r!r}; the lab knows: {', '.join(HELO_RESTRICTIONS)}"
                )
        object.__setattr__(self, "mydestination", tuple(d.lower() for d in self.mydestination))
        nets = []
        for cidr in self.mynetworks:
            try:
                nets.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                raise LabValueError(
                    f"mynetworks: {cidr!r} is not an address or network like 127.0.0.1/32"
                ) from None
        object.__setattr__(self, "_networks", tuple(nets))
        self._check_numbers()

    def _check_numbers(self) -> None:
        for name in (
            "message_size_limit",
            "max_recipients",
            "command_line_limit",
            "text_line_limit",
            "hard_error_limit",
            "max_connections",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        per = self.max_connections_per_client
        if isinstance(per, bool) or not isinstance(per, int) or per < 0:
            raise LabValueError(
                f"max_connections_per_client must be a whole number (0: no limit), not {per!r}"
            )
        if isinstance(self.idle_timeout, bool) or not isinstance(self.idle_timeout, (int, float)):
            raise LabValueError(
                f"idle_timeout must be a number of seconds, not {self.idle_timeout!r}"
            )
        if self.idle_timeout <= 0:
            raise LabValueError(
                f"idle_timeout must be more than 0 seconds, not {self.idle_timeout}"
            )

    def with_(self, **changes: Any) -> Policy:
        """A copy of this policy with some switches changed."""
        unknown = set(changes) - set(self.__dataclass_fields__) - {"_networks"}
        if unknown:
            raise LabValueError(
                f"unknown policy setting(s): {', '.join(sorted(unknown))}; known: "
                + ", ".join(f for f in self.__dataclass_fields__ if not f.startswith("_"))
            )
        return replace(self, **changes)

    # --- the checks -------------------------------------------------------

    def helo_verdict(
        self, name: str, *, resolves: Callable[[str], bool] | None = None
    ) -> str | None:
        """The reply key refusing HELO ``name`` under this policy, or None to accept.

        ``resolves(name) -> bool`` answers reject_unknown_helo_hostname (the
        fault lab plugs in its offline DNS zone); without it that check passes.
        """
        for r in self.smtpd_helo_restrictions:
            if r == "reject_invalid_helo_hostname" and not is_valid_hostname(name):
                return "helo_invalid"
            if r == "reject_non_fqdn_helo_hostname" and not is_fqdn(name):
                return "helo_non_fqdn"
            if (
                r == "reject_unknown_helo_hostname"
                and not address_literal(name)
                and resolves is not None
                and not resolves(name)
            ):
                return "helo_unknown"
        return None

    def is_local_domain(self, domain: str, hostname: str) -> bool:
        domain = domain.lower().rstrip(".")
        return domain in self.mydestination or domain == hostname.lower()

    def is_trusted(self, client_ip: str) -> bool:
        """True if the client is in mynetworks (may relay)."""
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)

    def may_deliver(self, recipient: str, client_ip: str, hostname: str) -> bool:
        """Postfix's permit_mynetworks + reject_unauth_destination for one recipient."""
        if self.open_relay:
            return True
        domain = recipient.rpartition("@")[2]
        if not domain or "@" not in recipient:
            # A bare local part (RCPT TO:<postmaster>) is local (RFC 5321 §4.5.1).
            return True
        return self.is_local_domain(domain, hostname) or self.is_trusted(client_ip)


class IdentityCheck(Protocol):
    """A check of who the client is, consulted by the session at HELO and at RCPT.

    ``lab/dnszone.py`` implements it from the offline DNS zone (FCrDNS, and
    whether the HELO name resolves to the client's address).  RFC 5321 §4.1.4
    lets a server log what it finds but not refuse on the HELO check alone; a
    strict *local* policy refuses anyway, at RCPT, as many real sites do.
    """

    name: str  # how transcript notes name it: "identity check (standards)"

    def at_helo(self, helo: str, client_ip: str) -> str | None:
        """A note on what the check found once HELO/EHLO was accepted (None: nothing)."""

    def at_rcpt(self, helo: str, client_ip: str) -> str | None:
        """The reply key refusing this client's recipients (client_unknown,
        helo_mismatch), or None to let the normal checks decide."""


class RecipientCheck(Protocol):
    """Which addresses of the server's own domains exist: Postfix's local_recipient_maps.

    The session asks it at RCPT for an address the server would accept; an
    unknown user is refused with the persona's ``user_unknown`` (550 5.1.1).
    """

    def knows(self, address: str) -> bool:
        """False for a user this server knows does not exist."""


# Server modes: who may relay through the lab (a relay policy, not an AUTH fact).
MODES = ("mx", "submission", "open-relay")
MODE_ABOUT = {
    "mx": "port-25 style: mail for the lab's own domains from anyone; relaying only for "
    "trusted networks (mynetworks) and authenticated users",
    "submission": "port-587 style (RFC 6409): MAIL is refused with 530 5.7.0 until the "
    "client has authenticated",
    "open-relay": "DELIBERATELY MISCONFIGURED: accepts mail for any domain from anyone. "
    "A real server set up like this is found and abused by spammers within hours. "
    "(This one stays on loopback and never delivers anything.)",
}


def check_mode(mode: object) -> str:
    """Validate a learner's ``mode=`` argument."""
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise LabValueError(
            f"mode must be one of {', '.join(repr(m) for m in MODES)}, not {mode!r}: "
            + "; ".join(f"{m!r} is {MODE_ABOUT[m]}" for m in MODES)
        )
    return mode.lower()
