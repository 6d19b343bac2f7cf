"""Exim's access control, as far as the lab models it: host lists, a HELO ACL, Debian's ACLs.

- ``host_in_list``: an Exim host list (``*``, addresses, networks, ``!``
  negation, names matched against the client's verified reverse name),
  colon-separated with ``::`` for a literal colon, or ``<;`` for another
  separator, as in Exim's configuration.
- ``HeloAcl``: an ACL for ``acl_smtp_helo`` written as in Exim's
  configuration (``deny message = ... condition = ${if match{$sender_helo_name}{\\N\\.\\N}{no}{yes}}``).
  The verbs and the conditions a HELO ACL commonly uses are modelled; anything
  else is refused when the server is configured, with the list of what is known.
- ``debian_rcpt``: Debian's ``acl_check_rcpt`` (exim4-config's exim4.conf.template),
  in the order it is written there.
- ``header_syntax``: ``verify = header_syntax`` of Debian's ``acl_check_data``.

Source: Exim 4.96 (acl.c, verify.c, match.c) and tests/recordings/stock/exim.conf.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ...errors import LabValueError
from .exim_parse import Group, find_address_end, parse_extract_address

# /etc/aliases and /etc/passwd of a fresh Debian 12 with exim4 (base-passwd's
# accounts and the Debian-exim user): the local parts that verify = recipient finds.
DEBIAN_ALIASES = frozenset(
    "mailer-daemon postmaster nobody hostmaster usenet news webmaster www ftp abuse noc "
    "security".split()
)
DEBIAN_ACCOUNTS = frozenset(
    "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc "
    "_apt nobody debian-exim".split()
)


def split_list(spec: str) -> list[str]:
    """An Exim list: items separated by ':' ('::' is a colon), or by X after '<X'."""
    spec = spec.strip()
    sep = ":"
    if spec.startswith("<") and len(spec) > 1 and not spec[1].isspace():
        sep, spec = spec[1], spec[2:]
    items, cur, i = [], "", 0
    while i < len(spec):
        c = spec[i]
        if c == sep:
            if spec[i + 1 : i + 2] == sep:
                cur, i = cur + sep, i + 2
                continue
            items.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    items.append(cur.strip())
    return items if spec.strip() or len(items) > 1 else []


def host_in_list(spec: str, ip: str, name: str | None = None) -> bool:
    """True if the client (address ``ip``, verified reverse name ``name``) matches ``spec``."""
    for item in split_list(spec):
        negated = item.startswith("!")
        item = item[1:].strip() if negated else item
        if _host_item(item, ip, name):
            return not negated
    return False


def _host_item(item: str, ip: str, name: str | None) -> bool:
    if item == "*":
        return True
    if not item:  # the empty item matches only a client without an address (local input)
        return False
    if item == "@[]":  # the server's own interface addresses: loopback in the lab
        return ip in ("127.0.0.1", "::1")
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(item, strict=False)
    except ValueError:
        pass
    if name is None:
        return False
    if item.startswith("*"):
        return name.lower().endswith(item[1:].lower())
    return name.lower() == item.lower()


def check_host_list(setting: str, value: object) -> None:
    """Refuse a host list the lab cannot read, naming what it can."""
    if not isinstance(value, str):
        raise LabValueError(
            f"{setting} is an Exim host list such as '*' or '127.0.0.1 : 192.0.2.0/24'"
        )


# --- a HELO ACL --------------------------------------------------------------

VERBS = ("accept", "deny", "require", "warn", "drop", "defer")
_CONDITIONS = ("condition", "hosts", "verify")
_MODIFIERS = ("message", "log_message", "logwrite", "control", "delay", "set", "add_header")


@dataclass
class Statement:
    verb: str
    conditions: list[tuple[bool, str, str]] = field(default_factory=list)  # (negated, name, value)
    message: str | None = None


@dataclass(frozen=True)
class Facts:
    """What an ACL condition may ask about the client (Exim's variables)."""

    helo: str | None  # $sender_helo_name
    ip: str  # $sender_host_address
    host_name: str | None  # $sender_host_name (verified reverse name)
    primary: str  # $primary_hostname
    helo_verified: Callable[[], bool]  # verify = helo


@dataclass(frozen=True)
class Verdict:
    """An ACL's answer: accepted, or refused with a code, a message, and whether to hang up."""

    ok: bool
    code: int = 550
    message: str = "Administrative prohibition"
    drop: bool = False


class HeloAcl:
    """An Exim ACL as written in the configuration, for acl_smtp_helo."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.statements = _parse_acl(text)

    def check(self, facts: Facts) -> Verdict:
        for st in self.statements:
            met = all(_condition(n, name, value, facts) for n, name, value in st.conditions)
            message = _expand(st.message, facts) if st.message is not None else None
            if st.verb == "accept" and met:
                return Verdict(True)
            if st.verb in ("deny", "drop") and met:
                return _refusal(550, message, drop=st.verb == "drop")
            if st.verb == "defer" and met:
                return _refusal(
                    451, message if message else "Temporary local problem - please try later"
                )
            if st.verb == "require" and not met:
                return _refusal(550, message)
        return _refusal(550, None)  # an ACL that ends without a verdict denies


def _refusal(code: int, message: str | None, drop: bool = False) -> Verdict:
    """smtp_message_code: a message may start with its own code (same first digit)."""
    if message is None:
        return Verdict(False, code, "Administrative prohibition", drop)
    m = re.match(r"^([1-5]\d\d)\s+(.*)$", message, re.S)
    if m and m.group(1)[0] == str(code)[0]:
        code, message = int(m.group(1)), m.group(2)
    return Verdict(False, code, message, drop)


def _parse_acl(text: str) -> list[Statement]:
    text = re.sub(r"\\\n\s*", "", text)  # continuation lines
    statements: list[Statement] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)[0]
        if word in VERBS:
            statements.append(Statement(word))
            line = line[len(word) :].strip()
            if not line:
                continue
        if not statements:
            raise LabValueError(
                f"acl_smtp_helo: an ACL starts with a verb ({', '.join(VERBS)}), not {line!r}"
            )
        _add_item(statements[-1], line)
    if not statements:
        raise LabValueError("acl_smtp_helo: empty ACL; write e.g. 'deny hosts = 127.0.0.1'")
    return statements


def _add_item(st: Statement, line: str) -> None:
    m = re.match(r"^(!?)\s*([a-z_]+)\s*=\s*(.*)$", line, re.S)
    if not m:
        raise LabValueError(f"acl_smtp_helo: {line!r} is not 'name = value'")
    negated, name, value = m.group(1) == "!", m.group(2), m.group(3).strip()
    if name == "message":
        st.message = value
    elif name in _CONDITIONS:
        if name == "verify" and value != "helo":
            raise LabValueError(f"acl_smtp_helo: the lab knows 'verify = helo', not {value!r}")
        st.conditions.append((negated, name, value))
    elif name not in _MODIFIERS:
        known = ", ".join(_CONDITIONS + _MODIFIERS)
        raise LabValueError(f"acl_smtp_helo: the lab does not model {name!r}; it knows {known}")


def _condition(negated: bool, name: str, value: str, f: Facts) -> bool:
    if name == "hosts":
        result = host_in_list(value, f.ip, f.host_name)
    elif name == "verify":
        result = f.helo_verified()
    else:
        result = _truthy(_expand(value, f))
    return result != negated


def _truthy(s: str) -> bool:
    s = s.strip().lower()
    if s in ("", "no", "false", "0"):
        return False
    if s in ("yes", "true") or s.isdigit():
        return True
    raise LabValueError(f"acl_smtp_helo: a condition must expand to yes or no, not {s!r}")


_VAR = re.compile(r"\$(?:\{([a-z_]+)\}|([a-z_]+))")


def _variable(name: str, f: Facts) -> str:
    values = {
        "sender_helo_name": f.helo or "",
        "sender_host_address": f.ip,
        "sender_host_name": f.host_name or "",
        "primary_hostname": f.primary,
    }
    if name not in values:
        raise LabValueError(f"the lab's ACL knows ${', $'.join(values)}, not ${name}")
    return values[name]


def _expand(s: str, f: Facts) -> str:
    """The part of Exim's string expansion a HELO ACL needs: $variables and
    ${if match|eq|eqi{..}{..} / def:var {yes}{no}}, with \\N...\\N literals."""
    out, i = "", 0
    while i < len(s):
        if s.startswith("${if ", i) or s.startswith("${if\t", i):
            end = _matching(s, i + 1)
            out += _if(s[i + 4 : end].strip(), f)
            i = end + 1
        elif s.startswith("\\N", i):
            j = s.find("\\N", i + 2)
            j = len(s) if j < 0 else j
            out, i = out + s[i + 2 : j], j + 2
        elif s[i] == "$":
            m = _VAR.match(s, i)
            if not m:
                raise LabValueError(f"cannot expand {s[i:]!r}")
            out, i = out + _variable(m.group(1) or m.group(2), f), m.end()
        else:
            out, i = out + s[i], i + 1
    return out


def _matching(s: str, i: int) -> int:
    """The index of the '}' closing the '{' at ``i`` (\\N...\\N literal)."""
    depth = 0
    while i < len(s):
        if s.startswith("\\N", i):
            j = s.find("\\N", i + 2)
            i = len(s) if j < 0 else j + 2
            continue
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise LabValueError(f"unbalanced braces in {s!r}")


def _args(s: str, n: int) -> tuple[list[str], str]:
    """The first ``n`` {arguments} of ``s`` and the rest."""
    out = []
    for _ in range(n):
        s = s.lstrip()
        if not s.startswith("{"):
            raise LabValueError(f"expected '{{' in {s!r}")
        end = _matching(s, 0)
        out.append(s[1:end])
        s = s[end + 1 :]
    return out, s


def _if(body: str, f: Facts) -> str:
    negated = body.startswith("!")
    body = body[1:].lstrip() if negated else body
    m = re.match(r"^(match|eq|eqi|def:)", body)
    if not m:
        raise LabValueError(f"the lab's ${{if}} knows match, eq, eqi and def:, not {body[:20]!r}")
    op = m.group(1)
    rest = body[len(op) :]
    if op == "def:":
        var = re.match(r"^([a-z_]+)", rest)
        if not var:
            raise LabValueError(f"def: needs a variable name: {body!r}")
        result, rest = bool(_variable(var.group(1), f)), rest[var.end() :]
    else:
        (a, b), rest = _args(rest, 2)
        a, b = _expand(a, f), _expand(b, f)
        if op == "match":
            result = re.search(b, a) is not None
        else:
            result = a == b if op == "eq" else a.lower() == b.lower()
    (yes, no), _ = _args(rest, 2) if rest.strip() else (["true", ""], "")
    return _expand(yes if result != negated else no, f)


# --- Debian's acl_check_rcpt -------------------------------------------------

_LOCAL_RESTRICTED = re.compile(r"^[.]|[@%!/|`#&?]")
_REMOTE_RESTRICTED = re.compile(r"^[./|]|[@%!`#&?]|/\.\./")


def split_address(address: str) -> tuple[str, str]:
    """deliver_split_address: (local part without quoting, lower case; domain, lower case)."""
    local, _, domain = address.rpartition("@")
    out, i = "", 0
    while i < len(local):
        c = local[i]
        if c == '"':
            i += 1
            continue
        if c == "\\" and i + 1 < len(local):
            i += 1
            c = local[i]
        out, i = out + c, i + 1
    return out.lower(), domain.lower()


@dataclass(frozen=True)
class RcptFacts:
    """What Debian's rcpt ACL looks at, for one RCPT."""

    address: str
    is_local: bool  # domains = +local_domains
    relay_host: bool  # hosts = +relay_from_hosts
    authenticated: bool
    open_relay: bool  # the lab's deliberately misconfigured mode (relay_to_domains = *)
    known: Callable[[str], bool]  # verify = recipient, for a local domain
    rcpt_count: int  # $rcpt_count: RCPT commands in this transaction, this one included
    recipients_count: int  # $recipients_count: accepted so far


def debian_rcpt(f: RcptFacts) -> Verdict:
    """exim4.conf.template's acl_check_rcpt, statement by statement."""
    local_part, _ = split_address(f.address)
    restricted = _LOCAL_RESTRICTED if f.is_local else _REMOTE_RESTRICTED
    if restricted.search(local_part):
        return Verdict(False, 550, "restricted characters in address")
    if f.is_local and local_part == "postmaster":
        return Verdict(True)
    if f.rcpt_count > 10 and f.recipients_count < f.rcpt_count // 2:
        return Verdict(False, 550, "Rejected for too many bad recipients")
    if f.relay_host or f.authenticated:
        return Verdict(True)
    if not (f.is_local or f.open_relay):
        return Verdict(False, 550, "relay not permitted")
    if f.is_local and not f.known(f.address):
        return Verdict(False, 550, "Unrouteable address")
    return Verdict(True)


def debian_known(address: str) -> bool:
    """verify = recipient in a local domain of a fresh Debian: an alias or an account."""
    local_part, _ = split_address(address)
    return local_part in DEBIAN_ALIASES or local_part in DEBIAN_ACCOUNTS


# --- Debian's acl_check_data: verify = header_syntax -------------------------

_ADDRESS_HEADERS = ("from", "reply-to", "sender", "to", "cc", "bcc")


def header_syntax(headers: list[str]) -> str | None:
    """verify_check_headers: the first address header that does not parse, as Exim
    logs it (None: all parse).  ``headers`` are unfolded header fields."""
    for h in headers:
        name, colon, value = h.partition(":")
        if not colon or name.strip().lower() not in _ADDRESS_HEADERS:
            continue
        error = _header_addresses(value.lstrip(" \t\r\n"))
        if error:
            return f'{error}: failing address in "{name.rstrip()}:" header'
    return None


def _header_addresses(s: str) -> str | None:
    group = Group(allow=True)
    i = 0
    while i < len(s):
        end = find_address_end(s, i)
        got = parse_extract_address(s[i:end], allow_null=False, group=group)
        if got.address is not None:
            error = "" if got.domain else "unqualified address not permitted"
        else:
            error = got.error
        if error and error != "empty address":
            return error
        i = end + (1 if end < len(s) else 0)
        while i < len(s) and s[i] in " \t\r\n\v\f":
            i += 1
    return None
