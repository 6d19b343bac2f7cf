"""How Postfix 3.7 reads a command line and an address: a model of its rules, in Python.

Learned from Postfix's documented behaviour and its public source (smtpd_token.c,
tok822_parse.c, extract_addr() in smtpd.c, trivial-rewrite's resolve.c,
valid_hostname.c), and checked against the recordings of the real program
(tests/recordings/generated/postfix.json).  Nothing here knows the lab's wording:
``postfix_grammar.py`` and ``postfix_checks.py`` turn these answers into reply keys.

- ``smtpd_tokens``: the command tokenizer.  White space separates words, but
  ``<...>`` and ``"..."`` hold theirs (nesting, backslash escapes), and "FROM:" /
  "TO:" end a word at their colon.  An unclosed ``<`` or ``"`` marks the word bad.
- ``is_header``: "a line that looks like a message header" (``Name:``): Postfix
  hangs up on it, as on ``smtpd_forbidden_commands``.
- ``parse_822`` and ``extract``: the RFC 822 address parser Postfix uses for
  envelope addresses (one parser for headers and envelopes, so it is lenient:
  quoting, comments, source routes, phrases before ``<...>``), and what
  ``extract_addr()`` makes of it: how many addresses the word holds, and the
  address in Postfix's internal (unquoted) form.
- ``resolve``: trivial-rewrite's view of an address: local or remote, routed
  (``%``, ``!``), and whether its domain is a valid host name or address literal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

SPACE = " \t\n\r\f\v"  # ISSPACE()
SPECIALS = '()<>@,;:\\".[]'  # LEX_822_SPECIALS
OPERATORS = "|%!" + SPECIALS  # tok822's single-character operators (\ aside)
MAILER_DAEMON = "MAILER-DAEMON"  # empty_address_recipient: where <""@domain> goes


# --- the SMTP command tokenizer ----------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """One word of a command line, as smtpd_token() splits it."""

    text: str
    bad: bool = False  # an unclosed <...> or "..."
    end: int = 0  # where the word ends in the line


def _quoted(line: str, at: int, out: list[str], last: str) -> tuple[int, bool]:
    """Copy a <...> or "..." group starting after its opener; (next index, closed?)."""
    stack = [last]
    while at < len(line):
        c = line[at]
        at += 1
        out.append(c)
        if c == "\\":
            if at >= len(line):
                break
            out.append(line[at])
            at += 1
        elif c == stack[-1]:
            if len(stack) == 1:
                return at, True
            stack.pop()
        elif c == '"':
            stack.append('"')  # a quoted string inside <...> wins
        elif c == "<" and stack[-1] == ">":
            stack.append(">")
    return at, False


def smtpd_tokens(line: str) -> list[Word]:
    """The words of a command line, as Postfix's smtpd splits them."""
    words: list[Word] = []
    at = 0
    while True:
        out: list[str] = []
        bad = False
        while at < len(line):
            c = line[at]
            at += 1
            if c in SPACE:
                while at < len(line) and line[at] in SPACE:
                    at += 1
                if out:
                    break
            elif c in '<"':
                out.append(c)
                at, closed = _quoted(line, at, out, ">" if c == "<" else '"')
                bad = bad or not closed
            elif c == ":":
                out.append(c)
                if "".join(out).lower() in ("to:", "from:"):
                    break
            else:
                if c == "\\":
                    out.append(c)
                    if at >= len(line):
                        break
                    c = line[at]
                    at += 1
                out.append(c)
        if not out:
            return words
        words.append(Word("".join(out), bad, at))


def is_header(word: str) -> bool:
    """True for 'Name:' (printable ASCII, optional blanks before the colon): a header line."""
    seen = False
    blank = False
    for c in word:
        if c == ":":
            return seen
        if c in " \t":
            if not seen:
                return False
            blank = True
            continue
        if ord(c) > 126 or ord(c) < 33 or blank:
            return False
        seen = True
    return False


# --- the RFC 822 address parser (tok822) ---------------------------------------------------

ATOM, QSTRING, DOMLIT, COMMENT, ADDR = "atom", "qstring", "domlit", "comment", "addr"


@dataclass
class Tok:
    """One RFC 822 token; an operator's kind is its character.  ADDR groups tokens."""

    kind: str
    text: str = ""
    parts: list[Tok] = field(default_factory=list)


def _collect(s: str, at: int, stop: Callable[[str], bool]) -> tuple[str, int]:
    out = []
    while at < len(s):
        c = s[at]
        if c == "\\":
            at += 1
            if at >= len(s):
                break
            c = s[at]
        elif stop(c):
            break
        out.append(" " if c in " \t\r\n" else c)
        at += 1
    return "".join(out), at


def _comment(s: str, at: int) -> tuple[str, int]:
    out, level = ["("], 1
    while at < len(s):
        c = s[at]
        out.append(c)
        at += 1
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
            if level == 0:
                break
        elif c == "\\" and at < len(s):
            out.append(s[at])
            at += 1
    return "".join(out), at


def scan_822(s: str) -> list[Tok]:
    """tok822_scan(): atoms, quoted strings, [domain literals], (comments), operators."""
    toks: list[Tok] = []
    at = 0
    while at < len(s):
        c = s[at]
        at += 1
        if c in " \t\r\n":
            continue
        if c == "(":
            text, at = _comment(s, at)
            toks.append(Tok(COMMENT, text))
        elif c in '["':
            text, at = _collect(
                s, at, (lambda ch: ch == "]") if c == "[" else (lambda ch: ch == '"')
            )
            at += at < len(s)  # skip the closing bracket or quote
            toks.append(Tok(DOMLIT if c == "[" else QSTRING, text))
        elif c != "\\" and c in OPERATORS:
            toks.append(Tok(c))
        else:
            text, at = _collect(s, at - 1, lambda ch: ch in " \t\r\n" or ch in OPERATORS)
            quoted = any(
                ch == " " or ord(ch) < 32 or ord(ch) == 127 or ch in OPERATORS for ch in text
            )
            toks.append(Tok(QSTRING if quoted else ATOM, text))
    return toks


_WORDS = (ATOM, QSTRING, DOMLIT)


def _group(items: list[Tok], left: int, right: int, comma: bool) -> None:
    """Gather the tokens strictly between ``left`` and ``right`` into one address."""
    if right - left > 1:
        grouped = Tok(ADDR, parts=items[left + 1 : right])
        items[left + 1 : right] = [Tok(","), grouped] if comma else [grouped]


def parse_822(s: str) -> list[Tok]:
    """tok822_parse(): the tokens of an address list, each address grouped as ADDR.

    Right to left, as Postfix does: ``<...>`` is a route address (the phrase before
    it stays outside), a comma or two adjacent words end an address.
    """
    items = [Tok("^"), *scan_822(s), Tok("$")]
    right = len(items) - 1
    tp = right - 1
    word_ok = True
    while tp > 0:
        t = items[tp]
        if t.kind == COMMENT:  # comments move out of the address, to its right
            comment = items.pop(tp)
            right -= 1
            items.insert(right, comment)
        elif t.kind == ">":
            _group(items, tp, right, comma=True)
            close = tp
            while tp > 0 and items[tp].kind != "<":
                tp -= 1
            _group(items, tp, close, comma=False)
            while tp > 0 and items[tp].kind not in ">;,:":
                tp -= 1
            right, word_ok = tp, True
            continue
        elif t.kind in _WORDS:
            if not word_ok:
                _group(items, tp, right, comma=True)
                right = tp + 1  # the comma just inserted
            word_ok = False
        elif t.kind == ",":
            _group(items, tp, right, comma=False)
            right, word_ok = tp, True
        else:
            word_ok = True
        tp -= 1
    _group(items, 0, right, comma=False)
    return items[1:-1]


def internalize(toks: list[Tok]) -> str:
    """tok822_internalize() of an address's tokens: no quotes, no spaces between them."""
    out = []
    for t in toks:
        if t.kind == ADDR:
            out.append(internalize(t.parts))
        elif t.kind == DOMLIT:
            out.append(f"[{t.text}]")
        elif t.kind in (ATOM, QSTRING, COMMENT):
            out.append(t.text)
        else:
            out.append(t.kind)
    return "".join(out)


@dataclass(frozen=True)
class Extracted:
    """What extract_addr() finds in an address word."""

    address: str  # internal form; "" when no address
    addresses: int  # how many address forms the word holds (more than one is an error)
    other: int  # tokens that are neither an address nor brackets (strict mode refuses them)


def extract(word: str) -> Extracted:
    """extract_addr(): strip one pair of <>, a source route, then parse what is left."""
    text = word[1:-1] if len(word) >= 2 and word[0] == "<" and word[-1] == ">" else word
    if text.startswith("@") and ":" in text:
        text = text.split(":", 1)[1]  # the deprecated route form @a,@b:user@domain
    items = parse_822(text)
    addrs = [t for t in items if t.kind == ADDR]
    other = sum(1 for t in items if t.kind not in (ADDR, "<", ">"))
    address = internalize(addrs[-1].parts) if addrs else ""
    return Extracted(address, len(addrs), other)


# --- host names and address literals ------------------------------------------------------


def valid_hostname(name: str) -> bool:
    """valid_hostname(): labels of letters, digits, '-' and '_', not all numeric."""
    if not name or len(name) > 255:
        return False
    numeric = True
    for label in name.split("."):
        if not label or len(label) > 63:
            return False
        if label[0] == "-" or label[-1] == "-":
            return False
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in label):
            return False
        numeric = numeric and label.isdigit()
    return not numeric


def valid_ipv4(addr: str) -> bool:
    """valid_ipv4_hostaddr(): four decimal octets up to 255; 0.x.y.z only as 0.0.0.0."""
    parts = addr.split(".")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() and int(p) <= 255 for p in parts):
        return False
    return not (int(parts[0]) == 0 and addr.strip("0."))


def valid_hostaddr(addr: str) -> bool:
    """valid_hostaddr(): an IPv4 address, or an IPv6 one (it has a colon)."""
    if ":" in addr:
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            return False
        return True
    return valid_ipv4(addr)


def valid_mailhost_addr(addr: str) -> bool:
    """The inside of an address literal: IPv4, or 'IPv6:' and an IPv6 address."""
    if addr[:5].lower() == "ipv6:":
        return ":" in addr[5:] and valid_hostaddr(addr[5:])
    return valid_ipv4(addr)


def valid_literal(domain: str) -> bool:
    """valid_mailhost_literal(): '[' address ']' and nothing after it."""
    return (
        domain.startswith("[")
        and domain.endswith("]")
        and "]" not in domain[:-1]
        and valid_mailhost_addr(domain[1:-1])
    )


def valid_domain(domain: str, smtputf8: bool) -> bool:
    """A domain trivial-rewrite accepts: a host name (IDNA with SMTPUTF8) or a literal."""
    if domain.startswith("["):
        return valid_literal(domain)
    if not domain.isascii():
        if not smtputf8:
            return False
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    return valid_hostname(domain)


# --- trivial-rewrite's resolve -------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """Where trivial-rewrite sends an address."""

    address: str  # the final address, user@domain
    local: bool  # its domain is one of the server's own (mydestination, own literal)
    routed: bool  # its local part still holds @, ! or % (a source route)
    error: bool  # its domain is not a valid host name or address literal


def _strip_dot(domain: str) -> str:
    return domain[:-1] if len(domain) > 1 and domain.endswith(".") and domain[-2] != "." else domain


def resolve(
    address: str, is_local: Callable[[str], bool], myhostname: str, smtputf8: bool = False
) -> Resolved:
    """Resolve ``address`` (internal form) as trivial-rewrite does.

    A local domain is stripped and the rest looked at again: a remaining '@', a
    bang path (``host!user``: swap_bangpath) or a percent route (``user%host``:
    allow_percent_hack) gives a new domain.  An empty local part becomes
    MAILER-DAEMON, an address without a domain gets ``myhostname``.
    """
    local_part, at, domain = address.rpartition("@")
    rest: str | None = domain if at else None
    user = local_part if at else address
    saved: str | None = None
    for _ in range(len(address) + 100):
        if rest is not None:
            rest = _strip_dot(rest)
            if not rest or not is_local(rest):
                break
            saved, rest = rest, None
        if "@" in user:
            user, _, rest = user.rpartition("@")
        elif "!" in user:
            rest, _, user = user.partition("!")
        elif "%" in user:
            user, _, rest = user.rpartition("%")
        else:
            user = user or MAILER_DAEMON
            break
    final_domain = rest if rest is not None else (saved or myhostname)
    local = rest is None or (bool(rest) and is_local(rest))
    return Resolved(
        f"{user}@{final_domain}",
        local,
        any(c in user for c in "@!%"),
        not final_domain or not valid_domain(final_domain, smtputf8),
    )
