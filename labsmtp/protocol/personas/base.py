"""The persona's shape: the reply keys every persona words, ``Persona``, the registry.

One module per program (``generic``, ``postfix``, ``exim``, ``sendmail``,
``opensmtpd``, ``clamsmtpd``, ``exchange``) holds that program's wording and
behaviour and registers it; ``labsmtp.protocol.personas`` imports them all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ...errors import LabValueError  # a ValueError: callers catching ValueError still work

if TYPE_CHECKING:
    from ..checks import Checks
    from ..grammar import Grammar
    from ..policy import Policy
    from ..relay import Relay
    from ..session import Session
    from ..setup import Setup

# Every situation the server can reply to; each persona must word all of them.
REPLY_KEYS = (
    "greeting",  # the 220 banner, without the code
    "helo_ok",
    "ehlo_ok",  # first line of the EHLO reply; keywords follow
    "helo_syntax",  # HELO with no argument
    "ehlo_syntax",
    "helo_invalid",  # reject_invalid_helo_hostname
    "helo_non_fqdn",  # reject_non_fqdn_helo_hostname
    "helo_unknown",  # reject_unknown_helo_hostname (no A/AAAA record)
    "need_helo",  # MAIL before HELO/EHLO with smtpd_helo_required
    "need_mail",  # RCPT outside a transaction
    "need_rcpt",  # DATA outside a transaction
    "no_valid_recipients",  # DATA in a transaction with no accepted RCPT
    "nested_mail",  # MAIL inside a transaction
    "bad_sequence",  # any other out-of-order command
    "need_ehlo_for_auth",
    "auth_in_transaction",
    "starttls_in_transaction",
    "unknown_command",
    "empty_line",
    "bad_bytes",  # a command line that is not ASCII / UTF-8
    "line_too_long",  # a command line over the limit (§4.5.3.1.4)
    "text_line_too_long",  # a message line over the limit (§4.5.3.1.6)
    "mail_ok",
    "mail_syntax",
    "mail_param_unknown",  # an ESMTP parameter the server did not offer (555)
    "rcpt_ok",
    "rcpt_syntax",
    "relay_denied",
    "too_many_recipients",
    "size_param_exceeded",  # MAIL ... SIZE=n above message_size_limit
    "data_go",
    "data_syntax",
    "data_ok",
    "data_too_big",
    "rset_ok",
    "rset_syntax",
    "noop_ok",
    "vrfy_ok",
    "vrfy_syntax",
    "expn",
    "help",
    "quit",
    "too_many_errors",  # 421 after the hard error limit (§3.8 allows 421 + close)
    "timeout",  # 421 before closing an idle connection (§4.5.3.2)
    "too_many_connections",  # 421 instead of 220 when full
    "too_many_from_client",  # 421 instead of 220: max_connections_per_client from {client}
    "shutdown",  # 421 when the lab server is stopped under a live session
    "starttls_not_offered",
    "starttls_go",
    "auth_not_offered",
    "starttls_syntax",  # STARTTLS with an argument (RFC 3207 §4: 501)
    "starttls_already",  # STARTTLS inside TLS
    "auth_challenge",  # 334 and a base64 challenge ({arg}); empty for PLAIN
    "auth_ok",  # 235 2.7.0 (RFC 4954 §6)
    "auth_failed",  # 535 5.7.8 bad user name or password
    "auth_required",  # 530 5.7.0: submission mode refuses MAIL before AUTH
    "auth_encryption_required",  # 538 5.7.11: AUTH outside TLS
    "auth_already",  # 503: a second AUTH (RFC 4954 §4)
    "auth_mechanism_unknown",  # 504 5.5.4 a mechanism the server did not offer
    "auth_cancelled",  # 501 5.0.0 after the client's "*"
    "auth_undecodable",  # 501 5.5.2 a response that is not base64
    "auth_syntax",  # AUTH without a mechanism
    "already_greeted",  # a second HELO/EHLO, under the "helo_once" sequence variant
    "need_helo_for_vrfy",  # VRFY before HELO, under the "vrfy_needs_helo" variant
    "noop_syntax",  # NOOP with an argument, for a persona that refuses one
    "too_many_unknown",  # the reply to the unknown command past unknown_command_limit
    # Replies the lab adds to a real server's own: its policies, its faults, its failures.
    "greylisted",  # a greylisting fault at RCPT: {addr}, {wait} seconds to go
    "client_unknown",  # strict identity policy: the client's address has no confirmed name
    "helo_mismatch",  # strict identity policy: the HELO name ({helo}) is not the client's
    "internal_error",  # 421: the lab itself failed (a bug); the session ends
    "fault_reply",  # a fault's reply with the lab's default text: {status} {text}
    "fault_reply_host",  # the same for replies that name the host (421; 220/554 greetings)
    "connection_refused",  # a connection the server's admission check refuses
    "access_denied",  # 503 to anything but QUIT after a 554 greeting (RFC 5321 §3.1)
    "user_unknown",  # local_recipient_maps: no such user in the server's own domain
    # BDAT (RFC 3030 CHUNKING), for personas whose program offers it.
    "bdat_ok",  # a chunk taken, more to come: {size} octets, {total} so far
    "bdat_last_ok",  # the last chunk taken and the message queued: {size}, {total}, {queue_id}
    "bdat_syntax",  # BDAT without a valid size (a 521 closes: the chunk cannot be skipped)
    "bdat_not_offered",  # BDAT where CHUNKING is not advertised (a 521 closes)
    "bdat_discarded",  # a chunk after a refused one, read and thrown away: {size}
    "bdat_too_big",  # the chunks would pass message_size_limit
    "bdat_empty",  # BDAT 0 without LAST, for a persona that refuses it
    "after_bdat",  # {verb} (MAIL, RCPT, DATA, ...) between chunks (RFC 3030 §3: 503)
    "binarymime_needs_bdat",  # DATA after MAIL ... BODY=BINARYMIME (RFC 3030 §3: 503)
)


@dataclass(frozen=True)
class Persona:
    """The identity and exact wording of one (real or generic) SMTP server."""

    name: str
    software: str
    about: str
    replies: Mapping[str, str]
    ehlo_keywords: tuple[str, ...]
    source: str = ""
    recorded: bool = True  # False: built from documentation, not from the real program
    # The stock program offers STARTTLS (Debian's Postfix and Exim do, with a snakeoil or
    # self-signed certificate): LabServer(persona=...) offers it too, with the lab CA's
    # certificate, unless tls=False.  "STARTTLS" in ehlo_keywords says where it goes.
    stock_tls: bool = False
    # How real servers differ in what they do, not only in what they say.  Each
    # field is consulted in exactly one place: the session (session.py) or the
    # grammar that reads command lines (grammar.py), named after it.
    requires_brackets: bool = True  # MAIL FROM:a@b (no <>) is a syntax error
    helo_required_default: bool = False
    sequence_variants: tuple[str, ...] = ()  # names from states.VARIANTS
    unknown_command_limit: int = 0  # close after this many unknown commands (Exim: 3); 0 = none
    keyword_is_part_of_verb: bool = False  # "MAIL" without "FROM:" is an unknown command
    unsupported_verbs: tuple[str, ...] = ()  # answered like unknown commands (OpenSMTPD: VRFY)
    no_argument_verbs: tuple[str, ...] = ("RSET", "DATA")  # refuse an argument (501/500)
    checks_size_param: bool = True  # MAIL ... SIZE=n above the limit gets 552 at once
    closes_after: tuple[str, ...] = ()  # reply keys after which the server hangs up
    closes_silently: tuple[str, ...] = ()  # "timeout", "shutdown": no 421, it just hangs up
    extensions_before: str = "ENHANCEDSTATUSCODES"  # where EHLO lists STARTTLS and AUTH
    # ESMTP extensions count as offered only once EHLO listed them (Exim: BDAT and
    # ESMTP parameters after HELO are refused); False: whatever the greeting (Postfix).
    extensions_need_ehlo: bool = False
    refuses_empty_chunk: bool = False  # "BDAT 0" without LAST gets bdat_empty (Postfix)
    backend_client_ip: str | None = None  # a proxy's server sees this address, not the client's
    date_format: str = "{d:%a, %d %b %Y %H:%M:%S} +0000"  # {date} in templates (UTC)
    queue_id_format: str = "###########"  # each "#" is one character of queue_id_alphabet
    queue_id_alphabet: str = "0123456789ABCDEF"
    # The lab's changes that configure the persona like the real server was configured
    # in its lab-config recording (tests/recordings/<program>-*.json; Exchange: its
    # documented defaults): Policy switches and the program's own settings.  Read it
    # through recorded_configuration() (LabServer.as_recorded, SessionPair.as_recorded).
    platform_policy: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # The program's own parameters that the lab models, under the program's own
    # names, with the values its stock (Debian) configuration has: Postfix's
    # smtpd_delay_reject = yes, Exim's helo_verify_hosts, Sendmail's PrivacyOptions...
    # LabServer(persona="postfix", smtpd_delay_reject=False) changes one; the
    # session reads them as Setup.settings.  The type of each default is the type
    # a value must have (bool, int, str, tuple of str).
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Stock values of the lab's shared Policy switches where the program's differ
    # from Policy's defaults (Postfix's), e.g. Exim's message_size_limit of 50 MB.
    policy_defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # The program's own names for shared Policy switches (Exim's smtp_accept_max is
    # max_connections): LabServer(persona="exim", smtp_accept_max=20) and
    # `serve --set smtp_accept_max=20` take them.
    policy_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Stock values of the limits (max_connections, max_connections_per_client, ...)
    # where the program's differ from Policy's; applied before policy_defaults.
    limit_defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # At max_connections the program does not answer 421 but leaves the new client
    # waiting, unanswered, until a session ends (Postfix: master's process limit).
    waits_when_full: bool = False
    # Trusted clients (mynetworks) are exempt from max_connections_per_client, as
    # Postfix's smtpd_client_event_limit_exceptions = $mynetworks; Exim's
    # smtp_accept_max_per_host applies to every host.
    per_client_limit_spares_trusted: bool = True
    # How this server reads command lines (verbs, paths, parameters); None: the
    # standard Grammar steered by the flags above.  A persona whose program parses
    # differently supplies its own (issue 11: one grammar per real program).
    grammar: Callable[[Persona, Setup | None], Grammar] | None = None
    # How the program's own settings and the lab's shared switches meet:
    # derive(settings, switches) gives (settings changes, Policy changes), e.g.
    # Sendmail's PrivacyOptions=needmailhelo is the lab's smtpd_helo_required.  A
    # switch the caller gave explicitly always wins over a derived one.
    derive: (
        Callable[
            [Mapping[str, Any], Mapping[str, Any]], tuple[Mapping[str, Any], Mapping[str, Any]]
        ]
        | None
    ) = None
    # The program's answers depend on DNS (reverse names, sender domains) and its
    # stock recordings' DNS was the lab zone (lab/dnszone.py DEFAULT_ZONE):
    # LabServer and the in-memory replay plug that zone in unless told otherwise.
    lab_dns: bool = False
    # Where the program applies its restrictions (HELO, relaying, its users); None:
    # the lab's own order (checks.Checks), Postfix's with smtpd_delay_reject = no.
    checks: Callable[[Persona, Setup | None], Checks] | None = None
    # A proxy in front of another server (clamsmtpd): it reads every line (relay.py).
    relay: Callable[[Session], Relay] | None = None
    # The names a list-valued setting may hold (Postfix's restriction names); a typo
    # gets a LabValueError naming them.
    setting_choices: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # After STARTTLS, MAIL needs a new EHLO (RFC 3207 §4.2); Postfix (smtpd_helo_required
    # = no) accepts MAIL at once.
    tls_needs_new_helo: bool = True
    # AUTH before HELO/EHLO where HELO is required gets the sequence error even when AUTH
    # is not offered at all (Postfix's smtpd_sasl_auth_cmd asks smtpd_helo_required first).
    auth_asks_helo_first: bool = False

    def configure(
        self, policy: Policy | None = None, **switches: Any
    ) -> tuple[Policy, Mapping[str, Any]]:
        """This program's stock configuration with the lab's ``switches`` on top:
        (the Policy, the program's own settings).  A switch is a Policy field or
        one of ``settings``; anything else is a LabValueError naming both lists."""
        from ..policy import Policy  # a leaf of protocol/, imported late: no cycle

        switches = self.canonical(switches)
        own = {k: v for k, v in switches.items() if k in self.settings}
        shared = {k: v for k, v in switches.items() if k not in self.settings}
        stock = {**self.limit_defaults, **self.policy_defaults}
        base = policy if policy is not None else Policy().with_(**stock)
        try:
            configured = base.with_(**shared) if shared else base
        except LabValueError as exc:
            if not self.settings and not self.policy_names:
                raise
            named = [", ".join(sorted(self.settings))] if self.settings else []
            if self.policy_names:
                named.append(f"its names for limits: {', '.join(sorted(self.policy_names))}")
            raise LabValueError(
                f"{exc}; and {self.name}'s own settings: {'; '.join(named)}"
            ) from None
        merged = dict(self.settings)
        for name, value in own.items():
            merged[name] = coerce_setting(name, value, self.settings[name])
            choices = self.setting_choices.get(name)
            wrong = [v for v in merged[name] if v not in choices] if choices else []
            if wrong:
                raise LabValueError(
                    f"{name}: {', '.join(map(repr, wrong))} unknown; the lab knows: "
                    + ", ".join(choices or ())
                )
        if self.derive is not None:
            settings_changes, policy_changes = self.derive(merged, switches)
            merged.update({k: v for k, v in settings_changes.items() if k not in own})
            # like policy_defaults: an explicit Policy object is taken as it is
            derived = {
                k: v for k, v in policy_changes.items() if k not in shared and policy is None
            }
            configured = configured.with_(**derived) if derived else configured
        return configured, MappingProxyType(merged)

    def canonical(self, switches: Mapping[str, Any]) -> dict[str, Any]:
        """``switches`` with the program's names for shared switches turned into the
        lab's (``smtp_accept_max`` -> ``max_connections``); OpenSMTPD-style names may
        be written with "-" or "_"."""
        out: dict[str, Any] = {}
        for name, value in switches.items():
            key = None  # a name the program's own settings have is that setting
            if name not in self.settings:
                key = self.policy_names.get(name) or self.policy_names.get(name.replace("_", "-"))
            target = key or name
            if target in out and out[target] != value:
                raise LabValueError(f"{name} and {target} are one setting: give it once")
            out[target] = value
        return out

    def parse_setting(self, name: str, text: str) -> tuple[str, Any]:
        """A setting given as text (``serve --set NAME=VALUE``): its lab name and its
        value, typed as the setting's stock value is (yes/no, a number, a list)."""
        from ..policy import Policy

        [(key, _)] = self.canonical({name: text}).items()
        if key in self.settings:
            return key, coerce_setting(key, text, self.settings[key])
        fields = Policy.__dataclass_fields__
        if key not in fields or key.startswith("_"):
            known = sorted(
                {*self.settings, *self.policy_names, *(f for f in fields if f[0] != "_")}
            )
            raise LabValueError(f"{self.name} has no setting {name!r}; known: {', '.join(known)}")
        default = getattr(Policy(), key)
        if key == "smtpd_helo_required":  # None: the persona's default
            default = False
        if isinstance(default, float):
            return key, _seconds(name, text)
        return key, coerce_setting(name, text, default)

    def setting_names(self) -> dict[str, str]:
        """The names this persona's program gives its settings, each with what it sets
        in the lab (for ``serve --help``): its own settings and its names for limits."""
        names = {n: "its own setting" for n in self.settings}
        names.update(
            {n: f"= {lab}" for n, lab in self.policy_names.items() if n not in self.settings}
        )
        return names

    def recorded_configuration(self) -> dict[str, Any]:
        """Every LabServer / SessionPair argument that makes this persona its program as
        configured in its lab-config recording: ``platform_policy``, and TLS as it was
        (every one of those recordings was made without STARTTLS)."""
        return {"tls": False, **self.platform_policy}

    def template(self, key: str) -> str:
        try:
            return self.replies[key]
        except KeyError:
            raise KeyError(f"persona {self.name!r} has no wording for {key!r}") from None

    def render(
        self, key: str, fields: Mapping[str, object] | None = None, **more: object
    ) -> list[str]:
        """The reply lines (without CRLF) for situation ``key``, filled from ``fields``."""
        text = self.template(key).format_map(_merge(fields, more))
        return _multiline(text.split("\n"))

    def ehlo(
        self, keywords: list[str], fields: Mapping[str, object] | None = None, **more: object
    ) -> list[str]:
        """The whole EHLO reply: the greeting line, then one keyword per line."""
        first = self.template("ehlo_ok").format_map(_merge(fields, more))
        return _multiline([first] + list(keywords))

    def new_queue_id(self, rng: random.Random) -> str:
        """A queue id shaped like this server's (Postfix: 11 hex digits), drawn from ``rng``."""
        alphabet = self.queue_id_alphabet
        return "".join(rng.choice(alphabet) if ch == "#" else ch for ch in self.queue_id_format)


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(name: str, text: str) -> float:
    """A time as Postfix and Exim write one: seconds, or a number and a unit (5m, 1h)."""
    text = text.strip().lower()
    unit = _TIME_UNITS.get(text[-1:], 0)
    try:
        return float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        raise LabValueError(f"{name} is a time such as 300, 300s or 5m, not {text!r}") from None


def coerce_setting(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``: Postfix-style yes/no for a bool, a whole
    number for an int, a list or a comma/space-separated string for a tuple; a
    default with a ``coerce(name, value)`` class method reads the value itself."""
    reader = getattr(type(default), "coerce", None)
    if reader is not None:
        return reader(name, value)
    return _coerce_plain(name, value, default)


def _coerce_plain(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
            return value.lower() in ("yes", "true")
        if isinstance(value, bool):
            return value
        raise LabValueError(f"{name} is yes or no (True or False), not {value!r}")
    if isinstance(default, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise LabValueError(f"{name} is a whole number, not {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v for v in value.replace(",", " ").split() if v)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise LabValueError(
            f"{name} is a list of names (or a comma-separated string), not {value!r}"
        )
    if isinstance(default, str) or default is None:
        if value is None or isinstance(value, str):
            return value
        raise LabValueError(f"{name} is a string, not {value!r}")
    return value


def _merge(fields: Mapping[str, object] | None, more: dict[str, object]) -> Mapping[str, object]:
    if fields is None:
        return more
    if more:
        merged = dict(fields) if not isinstance(fields, dict) else fields
        merged.update(more)
        return merged
    return fields


def _multiline(lines: list[str]) -> list[str]:
    """Give every line but the last a hyphen after the code (§4.2.1)."""
    if not lines:
        return lines
    if len(lines) == 1:  # most replies: the loop below, for one line
        ln = lines[0]
        return [f"{ln[:3]} {ln[4:] if len(ln) >= 4 else ln}"]
    code = lines[0][:3]
    out = []
    for i, ln in enumerate(lines):
        body = ln[4:] if ln[:3] == code and len(ln) >= 4 else ln
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{body}")
    return out


_REGISTRY: dict[str, Persona] = {}


def recorded_policy(
    helo_restrictions: tuple[str, ...], mydestination: tuple[str, ...] = ("lab.example.org",)
) -> Mapping[str, Any]:
    """The policy shared by every recording (tests/recordings/*.json "settings")."""
    return MappingProxyType(
        dict(
            smtpd_helo_required=True,
            smtpd_helo_restrictions=helo_restrictions,
            mydestination=mydestination,
            mynetworks=("127.0.0.1/32",),
            message_size_limit=1048576,
        )
    )


SYNTAX = ("reject_invalid_helo_hostname",)
FQDN = ("reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname")


def register(persona: Persona) -> Persona:
    """Add a persona to the registry (checks it words every situation)."""
    missing = [k for k in REPLY_KEYS if k not in persona.replies]
    if missing:
        raise LabValueError(f"persona {persona.name!r} has no wording for: {', '.join(missing)}")
    _REGISTRY[persona.name] = persona
    return persona


def get_persona(name: str | Persona) -> Persona:
    """The persona called ``name`` (see ``persona_names()``)."""
    if isinstance(name, Persona):
        return name
    if not isinstance(name, str):
        raise LabValueError(f"persona must be a name such as 'postfix', not {name!r}")
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise LabValueError(
            f"no persona called {name!r}; choose one of: {', '.join(persona_names())}"
        ) from None


def persona_names() -> list[str]:
    """The names of all personas the lab can play."""
    return sorted(_REGISTRY)
