"""What a session knows of its server (``Setup``) and what its replies are filled from.

``LabServer.setup()`` takes a snapshot of its settings for every new
connection (so ``configure`` changes what new connections see); the
in-memory pair builds one directly.  ``Fields`` are the values a persona's
reply templates may use (``{hostname}``, ``{peer}``, ``{date}``, ...),
computed only when a template asks for them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from . import auth
from .personas import Persona
from .policy import IdentityCheck, Policy, RecipientCheck

# The lab's reverse DNS for {peer}: only /etc/hosts' localhost has a name.
REVERSE_NAMES: Mapping[str, str] = MappingProxyType({"127.0.0.1": "localhost", "::1": "localhost"})


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class Setup:
    """What a session knows of its server: identity, policy, what it offers, its hooks."""

    persona: Persona
    policy: Policy = field(default_factory=Policy)
    hostname: str = "mx.lab.example.org"
    mode: str = "mx"  # mx, submission or open-relay (policy.MODES)
    tls_offered: bool = False  # STARTTLS is advertised outside TLS
    users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    auth_require_tls: bool = True  # RFC 4954 §4: AUTH only inside TLS
    resolves: Callable[[str], bool] | None = None  # reject_unknown_helo_hostname's DNS
    # Does a mail domain exist (an A, AAAA or MX record)?  Sender-domain checks
    # (Sendmail's check_mail: "Domain of sender address ... does not exist");
    # use_zone plugs in the lab zone's.  None: no DNS, every domain passes.
    domain_resolves: Callable[[str], bool] | None = None
    identity: IdentityCheck | None = None  # a client identity policy (lab/dnszone.py)
    recipients: RecipientCheck | None = None  # local_recipient_maps (lab/mailnet.py)
    queue_id: Callable[[], str] | None = None  # the next queue id; None: a random one
    clock: Callable[[], datetime.datetime] = _utcnow  # {date} in replies
    reverse_names: Mapping[str, str] = field(default_factory=lambda: REVERSE_NAMES)
    # The client's reverse name and whether it is forward-confirmed, for the
    # Received: field (use_zone plugs in its FCrDNS); None: reverse_names, confirmed.
    reverse: Callable[[str], tuple[str | None, bool]] | None = None
    # A name's addresses (A and AAAA; use_zone plugs in its zone); None: reverse_names.
    addresses: Callable[[str], list[str]] | None = None
    # The persona's own settings (Persona.settings: stock values, the lab's changes on top).
    settings: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.settings:  # Setup(persona) alone: the program's stock settings
            object.__setattr__(self, "settings", self.persona.settings)

    def reverse_of(self, client_ip: str) -> tuple[str | None, bool]:
        """(PTR name or None, forward-confirmed?) of the client's address."""
        if self.reverse is not None:
            return self.reverse(client_ip)
        name = self.reverse_names.get(client_ip)
        return name, name is not None

    def addresses_of(self, name: str) -> list[str]:
        """The addresses a name resolves to (the lab's zone, or its /etc/hosts)."""
        if self.addresses is not None:
            return self.addresses(name)
        return [ip for ip, n in self.reverse_names.items() if n.lower() == name.lower()]

    @property
    def helo_required(self) -> bool:
        """smtpd_helo_required, or the persona's default when the policy leaves it open."""
        req = self.policy.smtpd_helo_required
        return self.persona.helo_required_default if req is None else bool(req)

    def ehlo_keywords(self, *, tls: bool, hidden: frozenset[str] = frozenset()) -> list[str]:
        """The EHLO keywords a session offers: STARTTLS before TLS, AUTH inside it
        (or outside too, with auth_require_tls=False), less any ``hidden`` (faults)."""
        words = [k.format(size=self.policy.message_size_limit) for k in self.persona.ehlo_keywords]
        starttls = self.tls_offered and not tls
        extra = []
        if "STARTTLS" in words:  # the persona says where its program lists it
            words = [w for w in words if w != "STARTTLS" or starttls]
        elif starttls:
            extra.append("STARTTLS")
        if self.users and (tls or not self.auth_require_tls):
            extra.append("AUTH " + " ".join(auth.MECHANISMS))
        # Where the program puts them: Postfix before ENHANCEDSTATUSCODES (or at the end).
        before = self.persona.extensions_before
        at = next((i for i, w in enumerate(words) if w == before), len(words))
        words = words[:at] + extra + words[at:]
        return [w for w in words if w.split(" ", 1)[0].upper() not in hidden]


class Fields(dict[str, object]):
    """Template values for one reply, computed on first use (str.format_map asks
    only for what it needs)."""

    def __init__(
        self,
        setup: Setup,
        client_ip: str,
        line: str,
        helo: str | None,
        extra: dict[str, object],
        more: Callable[[str, Fields], object] | None = None,
    ) -> None:
        super().__init__(extra)
        self.setup, self.client_ip, self.line, self.helo = setup, client_ip, line, helo
        self.more = more  # the fields a persona's grammar computes (Grammar.field)

    def __missing__(self, key: str) -> object:
        value = self[key] = self._compute(key)
        return value

    def _compute(self, key: str) -> object:
        verb, _, arg = self.line.partition(" ")
        simple = {
            "hostname": self.setup.hostname,
            "client": self.client_ip,
            "limit": self.setup.policy.message_size_limit,
            "line": self.line,
            "verb": verb.upper(),
            "word": arg.strip().split(" ", 1)[0],
            "helo": self.helo or "",
        }
        if key in simple:
            return simple[key]
        if key == "client_name":  # Postfix's name[addr]: a forward-confirmed name or "unknown"
            name, confirmed = self.setup.reverse_of(self.client_ip)
            return name if name and confirmed else "unknown"
        if key == "peer":  # as a reverse lookup names the client (Sendmail's greeting)
            name = self.setup.reverse_names.get(self.client_ip)
            return f"{name} [{self.client_ip}]" if name else f"[{self.client_ip}]"
        if key == "date":
            return self.setup.persona.date_format.format(d=self.setup.clock())
        if key == "keyword":
            return arg.partition(":")[0].strip() if ":" in arg else arg.strip().split(" ", 1)[0]
        if self.more is not None:
            return self.more(key, self)
        raise KeyError(key)
