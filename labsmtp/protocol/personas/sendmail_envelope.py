"""Sendmail 8.17's envelope: MAIL and RCPT arguments, their ESMTP parameters, the
checks a stock Debian sendmail.cf makes at RCPT, and VRFY/EXPN lookups.

Everything here is decided as srvrsmtp.c and Debian's rulesets decide it, in
the same order (see ``sendmail_address`` for the address parser):

- MAIL: "FROM:" (skipword), the address, the ESMTP parameters, the size limit.
  The sender is not checked yet: Debian's FEATURE(delay_checks) moves that to RCPT.
- RCPT: the recipient limit, "TO:", the address, the parameters, then
  check_rcpt: local or relayable recipient, the spam-friend exemption
  (postmaster, abuse, spam of a local domain), the sender (its domain must exist
  in DNS), then the local user (aliases and /etc/passwd).

A ``Problem`` is Sendmail's reply (code, enhanced code, text) and the address
the reply names, if any ("<a@b>... Recipient ok" style).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .sendmail_address import (
    MAXNAME,
    OPERATORS,
    ROUTE_CHARS,
    AddressError,
    canonify,
    check_host,
    dequote,
    prescan,
)

BLANK_SUB = "."  # O BlankSub=. (cf/m4/proto.m4's default confBLANK_SUB)
MAXSHORTSTR = 203  # how much of a long string Sendmail shows (head...tail)

# A fresh Debian 12: base-passwd's accounts (name: full name from the GECOS field),
# and the two sendmail's postinst adds.
PASSWD: Mapping[str, str] = {
    "root": "root",
    "daemon": "daemon",
    "bin": "bin",
    "sys": "sys",
    "sync": "sync",
    "games": "games",
    "man": "man",
    "lp": "lp",
    "mail": "mail",
    "news": "news",
    "uucp": "uucp",
    "proxy": "proxy",
    "www-data": "www-data",
    "backup": "backup",
    "list": "Mailing List Manager",
    "irc": "ircd",
    "_apt": "",
    "nobody": "nobody",
    "smmta": "Mail Transfer Agent",
    "smmsp": "Mail Submission Program",
}
# /etc/aliases as the lab set it up (sendmail's postinst writes an empty one).
ALIASES: Mapping[str, tuple[str, ...]] = {"postmaster": ("root",)}
# Debian's access file: "Spam:postmaster@ FRIEND" etc. exempt these local users from
# the sender checks (delay_checks, friend); "reject@ REJECT" refuses that sender.
SPAM_FRIENDS = frozenset({"postmaster", "abuse", "spam"})
REJECTED_SENDERS = frozenset({"reject"})


@dataclass(frozen=True)
class Problem:
    """A reply Sendmail gives instead of going on: code, enhanced code, text, echo."""

    code: str
    enhanced: str
    text: str
    echo: str | None = None  # the address the reply names ("<echo>... text"), if any

    def line(self) -> str:
        """The reply line: Sendmail names the address for 250/252/450/550/553 only."""
        named = bool(self.echo) and self.code in _NAMING_CODES
        prefix = f"{shorten(self.echo or '')}... " if named else ""
        return f"{self.code} {self.enhanced} {prefix}{self.text}"


_NAMING_CODES = frozenset({"250", "252", "450", "550", "553"})


def shorten(text: str, limit: int = MAXSHORTSTR) -> str:
    """Sendmail's shortenstring(): a long string as its head, "...", and its tail."""
    if len(text) < limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]}...{text[-half:]}"


def seven_bit(text: str) -> str:
    """Sendmail clears the 8th bit of every byte it writes in a reply."""
    return "".join(chr(b & 0x7F) for b in text.encode("latin-1", "replace"))


def skipword(argument: str, word: str) -> str | Problem:
    """What follows "FROM:" / "TO:" (any case, spaces around the colon), or the 501."""
    text = argument.lstrip()
    end = 0
    while end < len(text) and text[end] != ":" and not text[end].isspace():
        end += 1
    keyword, rest = text[:end], text[end:].lstrip()
    problem = Problem("501", "5.5.2", f'Syntax error in parameters scanning "{shorten(keyword)}"')
    if not rest.startswith(":"):
        return problem
    rest = rest[1:].lstrip()
    if not rest or keyword.lower() != word:
        return problem
    return rest


@dataclass(frozen=True)
class Envelope:
    """One MAIL or RCPT argument as Sendmail read it."""

    typed: str  # the address as typed (to its delimiter): what replies name
    local: str  # the local part, tokens joined ("" for <>), as canonify leaves it
    domain: str | None  # the host part (None: none; "" for <>)
    parameters: tuple[tuple[str, str | None], ...]  # (keyword, value or None)
    # Where it goes once "parse" has rerouted it: user%host@here is user at host,
    # "foo"@here is foo.  None: as local/domain.
    routed: tuple[str, str | None] | None = None

    @property
    def user(self) -> str:
        """The local part the address is delivered to."""
        return self.routed[0] if self.routed is not None else self.local

    @property
    def host(self) -> str | None:
        """The host part the address is delivered to (None: a local user)."""
        return self.routed[1] if self.routed is not None else self.domain

    @property
    def address_routed(self) -> str:
        """Where it goes, as user@host (the user alone for a local user)."""
        return f"{self.user}@{self.host}" if self.host else self.user

    @property
    def null(self) -> bool:
        return self.domain == ""

    @property
    def address(self) -> str:
        """The address in external form (Sendmail's $f for a sender)."""
        if self.null:
            return ""
        return f"{self.local}@{self.domain}" if self.domain else self.local


def read_address(
    text: str, is_rcpt: bool, delim: str = " ", here: frozenset[str] = frozenset()
) -> Envelope | Problem:
    """parseaddr(): the address at the start of ``text`` (up to ``delim``), canonified;
    ``here`` are this host's names (class w), lower case."""
    try:
        tokens, end = prescan(text, delim)
    except AddressError as err:
        return Problem(err.code, err.enhanced, err.text, seven_bit(err.echo or text))
    typed, rest = text[:end], text[end + 1 :]
    problem = _invalid(typed, text, is_rcpt)
    if problem is not None:
        return problem
    if not tokens:  # nothing but a comment: Sendmail has no address to go on with
        return Problem("501", "5.0.0", "Missing recipient") if is_rcpt else Problem("", "", "")
    echo = seven_bit(typed)
    try:
        focus = canonify(tokens)
        if focus is None:
            return Envelope(echo, "", "", esmtp_parameters(rest))
        local, host = focus
        if host is not None:
            local = check_host(local, host)
        routed = _route_here(local, host, here)
    except AddressError as err:
        return Problem(err.code, err.enhanced, err.text, echo)
    if (problem := _nonprintable(*routed, here, is_rcpt)) is not None:
        return problem
    domain = "".join(host) if host is not None else None
    return Envelope(echo, cataddr(local), domain, esmtp_parameters(rest), routed)


def cataddr(tokens: list[str]) -> str:
    """cataddr(): the tokens as one string, with BlankSub ('.' in sendmail.cf) between
    two adjacent atoms: <post master@here> is the user post.master, not postmaster."""
    out, atom_before = [], False
    for token in tokens:
        atom = bool(token) and token[0] not in OPERATORS and token[0] != '"'
        if atom and atom_before:
            out.append(BLANK_SUB)
        out.append(token)
        atom_before = atom
    return "".join(out)


def _route_here(
    local: list[str], host: list[str] | None, here: frozenset[str]
) -> tuple[str, str | None]:
    """What "parse" (ruleset 0) does with a local address: a local part that routes on
    (user%host, host!user) is read again; a quoted one is dequoted; empty is refused."""
    for _ in range(8):  # each round strips one host of ours
        domain = "".join(host).lower().rstrip(".") if host is not None else None
        if domain is not None and domain not in here:
            break
        if any(t in ROUTE_CHARS for t in local):
            again = canonify(local)
            if again is None:
                break
            local, host = again
            if host is not None:
                local = check_host(local, host)
            continue
        if len(local) == 1:
            local = [dequote(local[0])]
        if local in ([], [""]):
            raise AddressError("553", "5.1.3", "User address required")
        break
    return cataddr(local), ("".join(host) if host is not None else None)


def _nonprintable(
    user: str, host: str | None, here: frozenset[str], is_rcpt: bool
) -> Problem | None:
    """A control character in the resolved user (the local part, dequoted, for a local
    address; user@host for another) is a syntax error naming that user, each control
    character shown as '?' (BAD_CHAR_REPLACEMENT).  8-bit characters pass (only the
    C1 range is refused, by invalidaddr)."""
    local = host is None or host.lower().rstrip(".") in here
    target = user if local else f"{user}@{host}"
    if not any(c < " " or c == "\x7f" for c in target):
        return None
    shown = seven_bit("".join("?" if c < " " or c == "\x7f" else c for c in target))
    enhanced = "5.1.3" if is_rcpt else "5.1.7"
    return Problem(
        "501", enhanced, f'Syntax error in mailbox address "{shown}" (non-printable character)'
    )


def _invalid(typed: str, whole: str, is_rcpt: bool) -> Problem | None:
    """invalidaddr(): control-range 8-bit bytes, or more than 255 characters."""
    if len(typed) > MAXNAME - 1:
        text = f'Address "{seven_bit(typed[: MAXNAME - 1])}" too long ({MAXNAME - 1} bytes max)'
        return Problem("553", "5.1.0", text, seven_bit(whole))
    if any("\x80" <= c <= "\x9f" for c in typed):
        enhanced = "5.1.3" if is_rcpt else "5.1.7"
        return Problem("501", enhanced, f'8-bit character in mailbox address "{seven_bit(typed)}"')
    return None


def esmtp_parameters(text: str) -> tuple[tuple[str, str | None], ...]:
    """parse_esmtp_args(): KEYWORD[=value] items; a keyword is letters, digits and
    '-', a value runs to a space, a control character or '='."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return tuple(out)
        start = i
        while i < n and (text[i].isascii() and text[i].isalnum() or text[i] == "-"):
            i += 1
        key, value = text[start:i], None
        if i < n and text[i] == "=":
            i += 1
            vstart = i
            while i < n and text[i] != " " and not _cntrl(text[i]) and text[i] != "=":
                i += 1
            value = text[vstart:i]
        i += 1  # the character that ended it is dropped
        out.append((key, value))


def _cntrl(c: str) -> bool:
    return c < " " or c == "\x7f"


def xtext_ok(value: str) -> bool:
    """RFC 3461 xtext: printable ASCII but '=', and '+' only before two hex digits."""
    i = 0
    while i < len(value):
        c = value[i]
        if c == "+":
            pair = value[i + 1 : i + 3]
            if len(pair) < 2 or not all(ch in "0123456789abcdefABCDEF" for ch in pair):
                return False
            i += 3
            continue
        if c < "!" or c > "~" or c == "=":
            return False
        i += 1
    return True


def strtol(value: str) -> int | None:
    """C's strtol(value, NULL, 10) on a 64-bit long; None when it overflows."""
    text = value.lstrip(" \t\n\r\v\f")
    sign, digits = 1, ""
    if text[:1] in ("+", "-"):
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    for c in text:
        if not c.isdigit() or not c.isascii():
            break
        digits += c
    number = sign * int(digits) if digits else 0
    if not -(2**63) <= number <= 2**63 - 1:
        return None
    return number


def mail_parameters(
    params: tuple[tuple[str, str | None], ...], dsn: bool, max_size: int
) -> Problem | None:
    """mail_esmtp_args() for each parameter, then the size limit."""
    size, seen = 0, set[str]()
    for key, value in params:
        name = key.lower()
        if name == "size":
            if value is None:
                return Problem("501", "5.5.2", "SIZE requires a value")
            number = strtol(value)
            if number is None:
                return Problem("552", "5.2.3", "Message size exceeds maximum value")
            if number < 0:
                return Problem("552", "5.2.3", "Message size invalid")
            size = number
        elif name in ("body", "envid", "ret", "auth", "by"):
            problem = _mail_parameter(name, value, dsn, seen)
            if problem is not None:
                return problem
        else:
            return Problem("555", "5.5.4", f"{seven_bit(key)} parameter unrecognized")
    if max_size > 0 and size > max_size:
        return Problem(
            "552", "5.2.3", f"Message size exceeds fixed maximum message size ({max_size})"
        )
    return None


def _mail_parameter(name: str, value: str | None, dsn: bool, seen: set[str]) -> Problem | None:
    upper = name.upper()
    if name in ("envid", "ret") and not dsn:
        return Problem("504", "5.7.0", f"Sorry, {upper} not supported, we do not allow DSN")
    if value is None:
        return Problem(
            "501", "5.5.2", f"{upper}{'=' if name in ('auth', 'by') else ''} requires a value"
        )
    if name == "body":
        if value.lower() not in ("8bitmime", "7bit"):
            return Problem("501", "5.5.4", f"Unknown BODY type {seven_bit(value)}")
        return None
    if name in seen:
        return Problem("501", "5.5.0", f"Duplicate {upper} parameter")
    seen.add(name)
    if name == "envid" and not xtext_ok(value):
        return Problem("501", "5.5.4", "Syntax error in ENVID parameter value")
    if name == "ret" and value.lower() not in ("hdrs", "full"):
        return Problem("501", "5.5.2", f'Bad argument "{seven_bit(value)}" to RET')
    if name == "auth" and not xtext_ok(value):
        return Problem("501", "5.5.4", "Syntax error in AUTH parameter value")
    if name == "by":
        return _deliver_by(value)
    return None


def _deliver_by(value: str) -> Problem | None:
    """BY=<seconds>;<mode>[T] (RFC 2852)."""
    digits = value.lstrip()
    number = strtol(digits)
    if number is None or not -999999999 <= number <= 999999999:
        return Problem("501", "5.5.2", f"BY={seven_bit(value)} out of range")
    sign = 1 if digits[:1] in "+-" else 0
    body = digits[sign:]
    cut = sign + len(body) - len(body.lstrip("0123456789"))
    rest = digits[cut:]
    if not rest.startswith(";"):
        return Problem("501", "5.5.2", "BY= missing ';'")
    mode = rest[1:].lstrip()[:1].lower()
    if mode == "r" and number <= 0:
        return Problem("501", "5.5.4", "mode R requires BY time > 0")
    if mode not in ("n", "r"):
        return Problem("501", "5.5.2", f"illegal by-mode '{_printable(mode)}'")
    trace = rest[1:].lstrip()[1:].lstrip()[:1].lower()
    if trace not in ("t", ""):
        return Problem("501", "5.5.2", f"illegal by-trace '{_printable(trace)}'")
    return None


def _printable(c: str) -> str:
    return c if c and " " <= c <= "~" else "?"


def rcpt_parameters(params: tuple[tuple[str, str | None], ...], dsn: bool) -> Problem | None:
    """rcpt_esmtp_args(): NOTIFY and ORCPT (RFC 3461), nothing else."""
    orcpt = False
    for key, value in params:
        name = key.lower()
        if name not in ("notify", "orcpt"):
            return Problem("555", "5.5.4", f"{seven_bit(key)} parameter unrecognized")
        if not dsn:
            return Problem(
                "504", "5.7.0", f"Sorry, {name.upper()} not supported, we do not allow DSN"
            )
        if value is None:
            return Problem("501", "5.5.2", f"{name.upper()} requires a value")
        if name == "notify" and value.lower() != "never":
            for item in value.split(","):
                if item.lower() not in ("success", "failure", "delay"):
                    return Problem("501", "5.5.4", f'Bad argument "{seven_bit(item)}"  to NOTIFY')
        if name == "orcpt":
            if orcpt:
                return Problem("501", "5.5.0", "Duplicate ORCPT parameter")
            orcpt = True
            kind, semi, addr = value.partition(";")
            if not semi or not _atom(kind) or not xtext_ok(addr):
                return Problem("501", "5.5.4", "Syntax error in ORCPT parameter value")
    return None


def _atom(text: str) -> bool:
    return bool(text) and all("!" <= c <= "~" and c not in '()<>@,;:\\.[]"' for c in text)


# --- who is local, who may relay, whose sender domain exists ------------------------


@dataclass(frozen=True)
class Site:
    """What the checks need to know of the server and the client."""

    local_names: frozenset[str]  # class w, lower case
    hostname: str  # $j
    client_name: str  # ${client_name}: the PTR name, or [address]
    client_resolve: str  # OK, FORGED or FAIL
    relay_ok: bool  # the client may relay (Connect: RELAY, mynetworks)
    domain_exists: Callable[[str], bool] | None  # DNS for sender domains; None: no DNS

    def is_local(self, domain: str | None) -> bool:
        return domain is None or domain.lower().rstrip(".") in self.local_names


def user_of(env: Envelope) -> str:
    """The local user an address delivers to: lower case, +detail dropped."""
    user = env.user.lower()
    return user.split("+", 1)[0] if "+" in user else user


def relay_problem(site: Site) -> Problem:
    """Relaying denied, with Sendmail's reason when the client's name is doubtful."""
    why = {
        "FORGED": f". IP name possibly forged {site.client_name}",
        "FAIL": f". IP name lookup failed {site.client_name}",
    }.get(site.client_resolve, "")
    return Problem("550", "5.7.1", f"Relaying denied{why}")


def names_this_host(typed: str, domain: str) -> bool:
    """Does the sender, as typed, end in @localhost, @[127.0.0.1], @[IPv6:::1] or
    @localhost.<our domain>?  Such a sender is only believed from a local client."""
    try:
        tokens, _ = prescan(typed)
    except AddressError:
        return False
    if tokens[:1] == ["<"] and tokens[-1:] == [">"]:
        tokens = tokens[1:-1]
    text = "".join(tokens).lower()
    endings = ("@localhost", "@[127.0.0.1]", "@[ipv6:0:0:0:0:0:0:0:1]", "@[ipv6:::1]")
    return text.endswith((*endings, f"@localhost.{domain.lower()}", "@localhost.uucp"))


def typed_null(typed: str) -> bool:
    """Is the address, as check_rcpt's rules see its tokens, literally <> (or nothing)?"""
    try:
        tokens, _ = prescan(typed)
    except AddressError:
        return False
    return tokens in ([], ["<", ">"])


def sender_problem(sender: Envelope | None, site: Site) -> Problem | None:
    """checkmail: the sender, as check_rcpt asks about it in delay_checks mode."""
    if sender is None or sender.null:
        return None
    domain_of_host = site.hostname.partition(".")[2]
    if names_this_host(sender.typed, domain_of_host):
        if site.client_name.lower() not in site.local_names:
            return Problem("553", "5.5.4", "Real domain name required for sender address")
    if user_of(sender) in REJECTED_SENDERS:
        return Problem("550", "5.7.1", "Access denied")
    named = seven_bit(strip_quotes(sender.address))  # the rulesets' texts lose their quotes
    if sender.host is None:
        return Problem("553", "5.5.4", f"Domain name required for sender address {named}")
    domain = sender.host.rstrip(".").lower()
    # this host's own names need no DNS: Sendmail rewrites them to $j first
    if domain in (site.hostname.lower(), "localhost", f"localhost.{domain_of_host}", "[127.0.0.1]"):
        return None
    if site.domain_exists is None:
        return None
    exists = _valid_literal(domain) if domain.startswith("[") else site.domain_exists(domain)
    if not exists:
        return Problem("553", "5.1.8", f"Domain of sender address {named} does not exist")
    return None


def _valid_literal(domain: str) -> bool:
    """An address literal resolves to itself, if it is an address."""
    inner = domain[1:-1] if domain.endswith("]") else domain[1:]
    if inner.startswith("ipv6:"):
        inner = inner[5:]
    try:
        ipaddress.ip_address(inner)
    except ValueError:
        return False
    return True


def strip_quotes(text: str) -> str:
    """stripquotes(): double quotes go, a backslash keeps the character after it."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c != '"':
            out.append(c)
        i += 1
    return "".join(out)


def local_problem(env: Envelope) -> Problem | None:
    """recipient() for the local mailer: programs, files, includes, unknown users."""
    raw = env.user[1:] if env.user.startswith('"') else env.user
    if raw.startswith("|"):
        return Problem("550", "5.7.1", "Cannot mail directly to programs", env.typed)
    if raw.startswith("/"):
        return Problem("550", "5.7.1", "Cannot mail directly to files", env.typed)
    if raw.lower().startswith(":include:"):
        return Problem("550", "5.7.1", "Cannot mail directly to :include:s", env.typed)
    user = user_of(env)
    if user not in ALIASES and user not in PASSWD:
        return Problem("550", "5.1.1", "User unknown", env.typed)
    return None


def sender_mailer_problem(env: Envelope, local: bool) -> Problem | None:
    """A sender the local mailer would hand to a program or a file is refused."""
    if env.null or not env.user or not local:
        return None
    raw = env.user[1:] if env.user.startswith('"') else env.user
    if raw.startswith(("|", "/")) or raw.lower().startswith(":include:"):
        return Problem("553", "5.1.7", "Invalid sender address", env.typed)
    return None


def verify(env: Envelope, expand: bool, hostname: str, site: Site) -> list[str]:
    """VRFY/EXPN: one reply line per address ("250 2.1.5 root <root@host>")."""
    if env.null:  # <> is <@> to the rulesets: the local mailer, and no such user
        return [Problem("550", "5.1.1", "User unknown", env.typed).line()]
    if not site.is_local(env.host):
        return [f"252 2.1.5 <{env.address}>"] if not expand else [f"250 2.1.5 <{env.address}>"]
    problem = local_problem(env)
    if problem is not None:
        return [problem.line()]
    user = user_of(env)
    names = ALIASES.get(user, (user,)) if expand else (user,)
    lines = []
    for name in names:
        full = PASSWD.get(name, "") if name not in ALIASES or expand else ""
        lines.append(f"250 2.1.5 {f'{full} ' if full else ''}<{name}@{hostname}>")
    return lines
