"""Exim 4.96's readers of what a client types: addresses, ESMTP options, HELO names.

Exim does not use a grammar of RFC 5321 paths.  Its ``parse_extract_address``
(src/src/parse.c) reads an RFC 822 *mailbox*: an optional phrase, comments in
parentheses, quoted local parts, a source route it throws away, angle
brackets that may be left out, and it stops at the first character it cannot
place, naming it in the error ("malformed address: X may not follow Y").  The
MAIL/RCPT handlers of smtp_in.c first take ESMTP options off the *end* of the
argument (``extract_option``); whatever they leave is the mailbox.  HELO
names go through ``check_helo``.  Each function here follows those rules
(learned from the source and checked against tests/recordings/generated/exim.json),
on text where one character is one octet (latin-1), because Exim counts octets:
"%.32s" in an error is 32 octets.

Nothing here does I/O; the texts are Exim's own.
"""

from __future__ import annotations

from dataclasses import dataclass

EMAILADDR_MAX = 256  # exim.h EXIM_EMAILADDR_MAX: RFC 5321's limit on a path
_SPECIALS = ' ()<>@,;:\\".[]\x7f'
_SPACE = " \t\n\v\f\r"  # C isspace() in the C locale
_HEX = "0123456789abcdefABCDEF"


def _special(c: str) -> bool:
    """mac_iscntrl_or_special: controls, the end of the string, and RFC 822 specials."""
    return c == "" or ord(c) < 32 or c in _SPECIALS


def _alnum(c: str) -> bool:
    return c != "" and c.isascii() and c.isalnum()  # C isalnum(): ASCII only


@dataclass(frozen=True)
class Extracted:
    """What parse_extract_address made of a mailbox: the address, or an error text."""

    address: str | None  # None: see error
    error: str = ""
    domain: int = 0  # offset of the domain in address (after the @); 0: no domain


@dataclass
class Group:
    """RFC 822 group syntax state across the addresses of one header (Exim's
    parse_allow_group / parse_found_group)."""

    allow: bool = True
    found: bool = False


class _Reader:
    """One run of Exim's address reader over ``s`` (its globals, made local)."""

    def __init__(self, s: str, group: Group | None) -> None:
        self.s = s
        self.last_comment = 0  # last_comment_position
        self.group = group if group is not None else Group(allow=False)
        self.stop = 0  # where the reader stopped on an error

    def fail(self, i: int, error: str) -> Extracted:
        self.stop = i
        return Extracted(None, error)

    def at(self, i: int) -> str:
        return self.s[i] if i < len(self.s) else ""

    def skip_comment(self, i: int) -> int:
        """Spaces and (nested (comments)) are skipped."""
        self.last_comment = i
        while self.at(i):
            while self.at(i) and self.at(i) in _SPACE:
                i += 1
            if self.at(i) != "(":
                break
            level = 1
            while True:
                i += 1
                c = self.at(i)
                if not c:
                    break
                if c == "(":
                    level += 1
                elif c == ")":
                    level -= 1
                    if level <= 0:
                        i += 1
                        break
                elif c == "\\" and self.at(i + 1):
                    i += 1
        return i

    def domain(self, i: int, msg_id_literals: bool) -> tuple[int, str, str]:
        """read_domain: (position, domain or "", error)."""
        i = self.skip_comment(i)
        if self.at(i) == "[":
            return self._literal(i, msg_id_literals)
        out = ""
        while True:
            before = len(out)
            if self.at(i) != "-":  # a label may not start with a hyphen
                while _alnum(self.at(i)) or self.at(i) == "-":
                    out += self.s[i]
                    i += 1
            i = self.skip_comment(i)
            if len(out) == before:  # an empty label (strip_trailing_dot is off)
                return i, "", "domain missing or malformed"
            if self.at(i) != ".":
                return i, out, ""
            out += "."
            i = self.skip_comment(i + 1)

    def _literal(self, i: int, msg_id_literals: bool) -> tuple[int, str, str]:
        out, i = "[", i + 1
        if self.s[i : i + 5].lower() in ("ipv6:", "ipv4:"):
            out, i = out + self.s[i : i + 5], i + 5
        while True:
            c = self.at(i)
            if msg_id_literals:
                ok = c != "" and (33 <= ord(c) <= 90 or 94 <= ord(c) <= 126)
            else:
                ok = c != "" and (c in ".:" or c in _HEX)
            if not ok:
                break
            out, i = out + c, i + 1
        error = ""
        if self.at(i) == "]":
            out, i = out + "]", i + 1
        else:
            error, out = "malformed domain literal", ""
        if not msg_id_literals:  # allow_domain_literals is off (Exim's default)
            error, out = "domain literals not allowed", ""
        return self.skip_comment(i), out, error

    def local_part(self, i: int, allow_null: bool) -> tuple[int, str, str]:
        """read_local_part: dot-separated words, quoted or atoms with quoted pairs."""
        out = ""
        while True:
            before = len(out)
            i = self.skip_comment(i)
            if self.at(i) == '"':
                i, word, closed = self._quoted(i)
                out += word
                if not closed:
                    return i, out, "unmatched doublequote in local part"
            else:
                while not _special(self.at(i)) or self.at(i) == "\\":
                    c = self.s[i]
                    out, i = out + c, i + 1
                    if c == "\\" and self.at(i):
                        out, i = out + self.s[i], i + 1
            i = self.skip_comment(i)
            if len(out) == before and self.at(i) != ".":
                error = "missing or malformed local part" if not out and not allow_null else ""
                return i, out, error
            if self.at(i) != ".":
                return i, out, ""
            while self.at(i) == ".":  # several dots count as one (a common extension)
                out, i = out + ".", i + 1

    def _quoted(self, i: int) -> tuple[int, str, bool]:
        out, i = '"', i + 1
        while True:
            c = self.at(i)
            if c in ("", '"'):
                break
            out += c
            if c == "\\" and self.at(i + 1):
                i += 1
                out += self.s[i]
            i += 1
        if c == '"':
            return i + 1, out + '"', True
        return i, out, False

    def route(self, i: int) -> tuple[int, str]:
        """read_route: @domain,@domain: (accepted, then thrown away)."""
        commas = False
        while self.at(i) == "@":
            i, dom, error = self.domain(i + 1, False)
            if not dom:
                return i, error
            if self.at(i) != ",":
                break
            commas = True
            i = self.skip_comment(i + 1)
        error = ""
        if self.at(i) == ":":
            i += 1
        else:
            error = "colon expected after route list" if commas else "no local part"
        return self.skip_comment(i), error

    def addr_spec(self, i: int, term: str) -> tuple[int, str, int, str]:
        """read_addr_spec: (position, address, domain offset or 0, error)."""
        i, lp, error = self.local_part(i, False)
        if error or self.at(i) == term:
            return i, lp, 0, error
        if self.at(i) != "@":
            return i, lp, 0, f'"@" or "." expected after "{lp}"'
        i, dom, error = self.domain(i + 1, False)
        return i, lp + "@" + dom, len(lp) + 1, error


def parse_extract_address(mailbox: str, allow_null: bool, group: Group | None = None) -> Extracted:
    """Exim's parse_extract_address: the operative address of an RFC 822 mailbox
    (``group``: the group state of a header's address list; None outside headers)."""
    r = _Reader(mailbox, group)
    result = _extract(r, mailbox, allow_null)
    if result.address is None and r.group.found and r.at(r.stop) == ";":
        r.group.found, r.group.allow = False, True
    return result


def _extract(r: _Reader, mailbox: str, allow_null: bool) -> Extracted:
    i = start = r.skip_comment(0)
    i, t, error = r.local_part(i, True)
    if error:
        return r.fail(i, error)
    while r.at(i) not in ("@", "<"):
        if r.at(i) in ("", ";"):  # a bare local part
            if not t:
                return r.fail(i, "empty address")
            return _finish(r, i, start, r.last_comment, t, 0)
        i, error = _phrase(r, i)  # a phrase before <route-addr> (or a group's colon)
        if error:
            return r.fail(i, error)
        if r.at(i) != ":":
            break
        r.group.found, r.group.allow = True, False
        i = start = r.skip_comment(i + 1)
        i, t, error = r.local_part(i, True)
        if error:
            return r.fail(i, error)
    if r.at(i) == "<":
        return _route_addr(r, i + 1, allow_null)
    if not t:  # @route:local@domain without angle brackets
        return _bare_route(r, i, start)
    # local@domain; here Exim reads the domain allowing message-id style literals.
    i, dom, error = r.domain(i + 1, True)
    if not dom:
        return r.fail(i, error)
    return _finish(r, i, start, r.last_comment, t + "@" + dom, len(t) + 1)


def _bare_route(r: _Reader, i: int, start: int) -> Extracted:
    i, error = r.route(i)
    if error:
        return r.fail(i, error)
    i, t, domain, error = r.addr_spec(i, "")
    if error:
        return r.fail(i, error)
    if not domain:
        return r.fail(i, "domain missing in source-routed address")
    return _finish(r, i, start, r.last_comment, t, domain)


def _phrase(r: _Reader, i: int) -> tuple[int, str]:
    """Words up to '<' (or ':' where groups are allowed); an error if a word is missing."""
    while r.at(i) != "<" and not (r.group.allow and r.at(i) == ":"):
        i, _, error = r.local_part(i, False)
        if error:
            return i, f'{error} (expected word or "<")'
    return i, ""


def _route_addr(r: _Reader, i: int, allow_null: bool) -> Extracted:
    """<[@route,...:]local@domain> from just after the '<' (or <> where allowed)."""
    start = i
    i = r.skip_comment(i)
    routed = r.at(i) == "@"
    if routed:
        i, error = r.route(i)
        if error:
            return r.fail(i, error)
    domain, t = 0, ""
    if not (allow_null and not routed and r.at(i) == ">"):
        i, t, domain, error = r.addr_spec(i, ">")
        if error:
            return r.fail(i, error)
        if routed and not domain:
            return r.fail(i, "domain missing in source-routed address")
    end = i
    if r.at(i) != ">":
        if r.at(i) == "":
            return r.fail(i + 1, "'>' missing at end of address")
        return r.fail(i + 1, _may_not_follow(r.s, i))
    return _finish(r, r.skip_comment(i + 1), start, end, t, domain)


def _may_not_follow(s: str, i: int) -> str:
    return f"malformed address: {s[i : i + 32]} may not follow {s[:i]}"


def _finish(r: _Reader, i: int, start: int, end: int, address: str, domain: int) -> Extracted:
    if r.at(i):
        if not (r.group.found and r.at(i) == ";"):
            return r.fail(i, _may_not_follow(r.s, i))
        r.group.found, r.group.allow = False, True
    while end > 0 and r.s[end - 1] in _SPACE:
        end -= 1
    if end - start > EMAILADDR_MAX:
        return Extracted(None, f"address is ridiculously long: {address[:64]}...")
    return Extracted(address, "", domain)


def find_address_end(s: str, i: int) -> int:
    """parse_find_address_end: where one address of a header's comma-separated list ends."""
    routing = s[i : i + 1] == "@"
    no_term = 1 if routing else 0
    n = len(s)
    while i < n and (s[i] != "," or no_term > 0):
        c = s[i]
        if c == "\\" and i + 1 < n:
            i += 2
        elif c in '"(':
            i = _skip_quoted(s, i)
        else:
            if c == "<":
                routing = s[i + 1 : i + 2] == "@"
                no_term = 2 if routing else 1
            elif c == ">" or (routing and c == ":"):
                no_term -= 1
            i += 1
    return i


def _skip_quoted(s: str, i: int) -> int:
    """Past a quoted string (from its '"') or a nested comment (from its '(')."""
    close, level = ('"', 0) if s[i] == '"' else (")", 1)
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            i += 2
            continue
        if c == "(" and close == ")":
            level += 1
        elif c == close:
            level -= 1
            if level <= 0:
                return i + 1
        i += 1
    return i


@dataclass(frozen=True)
class Option:
    """One ESMTP option taken off the end of a MAIL/RCPT argument."""

    rest: str  # the argument without it (and without the white space before it)
    name: str
    value: str  # a bare word comes back as both name and value
    bare: bool  # no '=': Exim's name and value pointers are the same

    def restored(self, mail: bool) -> str:
        """The argument as Exim puts it back when the option is not one it takes:
        MAIL writes the name's terminator last (a space), RCPT the value's (an '=',
        which lands before a bare word)."""
        if self.bare:
            return f"{self.rest}{' ' if mail else '='}{self.name}"
        return f"{self.rest} {self.name}={self.value}"


def extract_option(data: str) -> Option | None:
    """smtp_in.c extract_option: the last ``NAME=value`` (or bare word) of a MAIL/RCPT
    argument; None when there is none.

    Exim reads options from the end; a NAME is letters only and must follow white
    space, else nothing is taken off and the address parser sees it all.
    """
    v = len(data.rstrip(_SPACE)) - 1
    if v <= 0:
        return None
    data = data[: v + 1]
    while v > 0 and data[v] != "=" and data[v] not in _SPACE:
        if data[v] == '"':  # do not stop at a space inside a quoted local part
            v -= 1
            while v > 0 and data[v] != '"':
                v -= 1
            if v <= 0:
                return None
        v -= 1
    if v <= 0:
        return None
    if data[v] == "=":
        n = v
        while n > 0 and data[n - 1].isascii() and data[n - 1].isalpha():
            n -= 1
        if n <= 0 or data[n - 1] not in _SPACE:
            return None
        return Option(data[: n - 1], data[n:v], data[v + 1 :], False)
    word = data[v + 1 :]
    return Option(data[:v], word, word, True)


def is_ip_address(s: str) -> int:
    """string_is_ip_address without a mask: 4, 6, or 0 if ``s`` is not an address."""
    if ":" in s:
        return 6 if _ipv6(s) else 0
    return 4 if _ipv4(s) else 0


def _ipv4(s: str) -> bool:
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        digits = p.lstrip(" \t\n\v\f\r")  # strtol skips leading white space and a sign
        if digits[:1] in "+-" and digits:
            digits = digits[1:]
        if not 1 <= len(p) <= 3 or not digits.isdigit() or int(digits) > 255:
            return False
    return True


def _ipv6(s: str) -> bool:
    i, n, double = 0, len(s), False
    if s.startswith(":"):
        if s[1:2] != ":":
            return False
        i = 1
    for count in range(8):
        if i >= n or s[i] in "%/":
            return double
        if s[i] == ":":
            if double:
                return False
            double, i = True, i + 1
            continue
        rest = s[i:]
        if ":" not in rest and "." in rest:  # a trailing IPv4 address
            return (count == 6 if not double else count <= 6) and _ipv4(rest)
        i = _hex_group(s, i)
        if i < 0:
            return False
    return i >= n or s[i] == "%"


def _hex_group(s: str, i: int) -> int:
    """Past one to four hex digits and a following colon (-1: none, or a colon at the end)."""
    j = i
    while j < len(s) and j - i < 4 and s[j] in _HEX:
        j += 1
    if j == i:
        return -1
    if j < len(s) and s[j] == ":":
        j += 1
        if j >= len(s):
            return -1
    return j


def check_helo(arg: str, allow_chars: str = "", accept_junk: bool = False) -> bool:
    """check_helo: a name of letters, digits, dots and hyphens (and ``helo_allow_chars``),
    or an address literal ([192.0.2.1], [IPv6:...], [IPv4:...])."""
    if accept_junk:
        return True
    if arg.startswith("["):
        if not arg.endswith("]"):
            return False
        inner = arg[1:-1]
        tag = inner[:5].lower()
        if tag == "ipv6:":
            return is_ip_address(inner[5:]) == 6
        if tag == "ipv4:":
            return is_ip_address(inner[5:]) == 4
        return is_ip_address(inner) != 0
    return bool(arg) and all(_alnum(c) or c in ".-" or c in allow_chars for c in arg)
