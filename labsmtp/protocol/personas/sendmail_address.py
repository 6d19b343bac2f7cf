"""How Sendmail 8.17 reads an address in MAIL FROM and RCPT TO (its parser, as a model).

Sendmail cuts the argument into tokens (``prescan``: operators, atoms, quoted
strings, comments dropped, angle brackets counted), then rewrites the token
list with its configuration's rulesets: "canonify" (ruleset 3: strip group
syntax and the outer angle brackets, drop a source route, focus on the last
``@``) and "parse" (ruleset 0: refuse malformed host parts, find the mailer).
This module follows what Debian's sendmail.cf does with those rulesets
(cf/m4/proto.m4 with the features of Debian's sendmail.mc), step by step, so
that the persona refuses exactly what a stock Sendmail refuses, with its
texts.  It is a model, not an interpreter: only the rules an SMTP client can
reach are here.

Errors carry Sendmail's reply code, enhanced code and text, and which form of
the address the reply names (``echo``): the whole argument while prescan
reads it, the address as typed (up to its delimiter) afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

MAXNAME = 256  # longest token (conf.h)
MAXATOM = 1000  # most tokens in one address
BUFFER = MAXNAME + MAXATOM  # prescan's buffer (PSBUFSIZE)
OPERATORS = frozenset(".:%@!^/[]+<>,;")  # Debian's OperatorChars plus the delimiters
SPACES = frozenset(" \t\n\r\v\f()")  # '(' and ')' delimit comments
ROUTE_CHARS = frozenset("@%!")  # class O: characters that route an address onward


class AddressError(Exception):
    """An address Sendmail refuses: reply code, enhanced code, text, and the echo."""

    def __init__(self, code: str, enhanced: str, text: str, echo: str | None = None) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code, self.enhanced, self.text, self.echo = code, enhanced, text, echo


@dataclass(frozen=True)
class Address:
    """An address as Sendmail resolved it."""

    typed: str  # the address as typed, up to its delimiter (what replies echo)
    rest: str  # what follows the delimiter: the ESMTP parameters
    local: list[str]  # the local part's tokens ([] for <>)
    domain: str | None  # the host part (None: no domain), lower case kept as typed
    mailer: str  # "local", "smtp", "prog", "file", "include" or "null" (<>)
    user: str  # the local user (local mailer) or user@domain

    @property
    def external(self) -> str:
        """The address in external form ($f for a sender): local@domain, as canonified."""
        local = "".join(self.local)
        return f"{local}@{self.domain}" if self.domain else local


# --- prescan: tokens ------------------------------------------------------------

_OPR, _ATM, _QST, _SPC = "opr", "atm", "qst", "spc"
# (old state, character type) -> (new state, drop the character, end the token)
_MOVES: dict[tuple[str, str], tuple[str, bool, bool]] = {}
for _old in (_OPR, _ATM, _SPC):
    for _new in (_OPR, _ATM, _QST):
        # leaving an operator always ends its token; an atom ends at anything new
        _MOVES[(_old, _new)] = (_new, False, _old == _OPR or (_old == _ATM and _new != _ATM))
    _MOVES[(_old, _SPC)] = (_SPC, True, _old != _SPC)
_MOVES[(_SPC, _SPC)] = (_SPC, True, False)
for _type in (_OPR, _ATM, _SPC):
    _MOVES[(_QST, _type)] = (_QST, False, False)  # anything goes inside quotes
_MOVES[(_QST, _QST)] = (_OPR, False, False)  # the closing quote ends it after itself


def _kind(c: str) -> str:
    if c == '"':
        return _QST
    if c in SPACES:
        return _SPC
    return _OPR if c in OPERATORS else _ATM


class _Scanner:
    """prescan(): one pass over the characters, as Sendmail's state machine reads them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        self.used = 0  # bytes of Sendmail's token buffer used (each token + its NUL)
        self.angles = self.comments = 0
        self.state = _ATM

    def fail(self, code: str, enhanced: str, text: str, echo: str | None = None) -> AddressError:
        return AddressError(code, enhanced, text, self.text if echo is None else echo)

    def store(self, token: list[str], c: str) -> None:
        if self.used + 1 >= BUFFER - 5:
            # Sendmail cuts the address to MAXNAME before it names it in the reply
            raise self.fail("553", "5.1.1", "Address too long", self.text[:MAXNAME])
        token.append(c)
        self.used += 1

    def end(self, token: list[str]) -> None:
        if not token:
            return
        if self.used + 1 >= BUFFER - 5:
            raise self.fail("553", "5.1.1", "Address too long", self.text[:MAXNAME])
        self.used += 1
        if len(self.tokens) >= MAXATOM:
            raise self.fail("553", "5.1.0", "prescan: too many tokens")
        if len(token) > MAXNAME:
            raise self.fail("553", "5.1.0", "prescan: token too long")
        self.tokens.append("".join(token))

    def run(self, delim: str) -> int:
        """Read tokens up to ``delim`` outside brackets, quotes and comments; where it is."""
        text, pos = self.text, 0
        ahead = ""  # a character read but not yet stored: it starts the next token
        escaped = done = False
        while True:  # one token per round
            token: list[str] = []
            while True:
                if ahead and not escaped:
                    self.store(token, ahead)
                if pos >= len(text):
                    pos, ahead, done = pos + 1, "", True
                    self._unbalanced()
                    break
                ahead = text[pos]
                pos += 1
                if ahead == delim and self.comments <= 0 and self.state != _QST:
                    if self.angles <= 0:
                        break
                if escaped:  # the character after a backslash is taken as it is
                    escaped = False
                    kept = self._escaped(token, ahead)
                    if kept is not None:
                        ahead = kept
                        continue
                ahead, stop = self._char(ahead, delim)
                if ahead == "\\":
                    escaped = True
                if stop:
                    break
            self.end(token)
            if done or (ahead == delim and self.angles <= 0 and self.state != _QST):
                return pos - 1

    def _escaped(self, token: list[str], c: str) -> str | None:
        """A character after a backslash: dropped in a comment, else kept with its
        backslash (None: a "\\!" outside quotes, read as a plain "!")."""
        if self.comments > 0:
            return ""
        if c != "!" or self.state == _QST:
            self.store(token, "\\")
            return c
        return None

    def _char(self, c: str, delim: str) -> tuple[str, bool]:
        """One character's effect: (the character as kept, "" if dropped; whether the
        token ends here)."""
        if c == "\\" or self.state == _QST:
            pass
        elif c == "(":
            self.comments += 1
            return "", False
        elif c == ")":
            if self.comments <= 0:
                raise self.fail("553", "5.0.0", "Unbalanced ')'")
            self.comments -= 1
        elif self.comments > 0:
            return "", False
        elif c == "<":
            self.angles += 1
        elif c == ">":
            if self.angles <= 0:
                raise self.fail("553", "5.0.0", "Unbalanced '>'")
            self.angles -= 1
        elif delim == " " and c in " \t\n\r\v\f":
            c = " "
        if c == delim and self.angles <= 0 and self.state != _QST:
            return c, True
        new, drop, stop = _MOVES[(self.state, _kind(c))]
        self.state = new
        return ("" if drop else c), stop

    def _unbalanced(self) -> None:
        if self.state == _QST:
            raise self.fail("553", "5.0.0", "Unbalanced '\"'")
        if self.comments > 0:
            raise self.fail("553", "5.0.0", "Unbalanced '('")
        if self.angles > 0:
            raise self.fail("553", "5.0.0", "Unbalanced '<'")


def prescan(text: str, delim: str = " ") -> tuple[list[str], int]:
    """Sendmail's tokens of the address at the start of ``text``, and where it ends."""
    scanner = _Scanner(text)
    end = scanner.run(delim)
    return scanner.tokens, end


# --- canonify (ruleset 3) ----------------------------------------------------------

Focus = tuple[list[str], list[str] | None]  # (local part, host part or None): "local<@host>"


def _find(tokens: list[str], token: str, start: int = 0) -> int:
    try:
        return tokens.index(token, start)
    except ValueError:
        return -1


_MARK = ["<", "@", ">"]  # the shape Sendmail marks a workspace with, and <> becomes


def _strip_group(ws: list[str]) -> list[str]:
    """Group syntax ("team: a@b;") outside angle brackets, trailing semicolons."""
    keep_colons = (
        any(t == "<" and ">" in ws[i + 1 :] for i, t in enumerate(ws))
        or ws[0] == "@"
        or any(ws[i : i + 2] == ["[", "IPv6"] for i in range(len(ws)))
        or any(ws[i : i + 2] == [":", ":"] for i in range(len(ws)))
        or [t.lower() for t in ws[:3]] == [":", "include", ":"]
    )
    if not keep_colons:
        ws = [*ws, *_MARK]
    elif ws[-1] == "]" and 0 <= _find(ws, ":") < _find(ws, "["):
        ws = [*ws, *_MARK]  # "x:[host]" is group syntax after all
    if ws[-3:] == _MARK:
        colon = _find(ws[:-3], ":")
        ws = ws[colon + 1 : -3] if colon >= 0 else ws[:-3]
    while ws and ws[-1] == ";":
        ws = ws[:-1]
    return ws


def _innermost(ws: list[str]) -> list[str]:
    """The innermost <...> (RFC 733 heuristic): strip what is left and right of it."""
    ws = ["<", *ws, ">"]
    while (i := _find(ws, "<", 1)) > 0:
        ws = ["<", *ws[i + 1 :]]
    j = _find(ws, ">", 1)
    if 0 < j < len(ws) - 1:
        ws = ws[: j + 1]
    return ws[1:-1]


def _drop_route(ws: list[str]) -> list[str]:
    """<@a,@b:user@d> is user@d (RFC 5321 §4.1.2 lets a server ignore the route)."""
    while ws[:1] == ["@"] and 2 <= (k := _find(ws, ",", 2)) < len(ws) - 1:
        ws = ws[k + 1 :]
    if ws[:2] == ["@", "["] and (k := _find(ws, "]")) > 0 and ws[k + 1 : k + 2] == [":"]:
        if k + 2 < len(ws):
            ws = ws[k + 2 :]
    while ws[:1] == ["@"] and 2 <= (k := _find(ws, ":", 2)) < len(ws) - 1:
        ws = ws[k + 1 :]
    return ws


def _focus_last_at(ws: list[str]) -> Focus | None:
    """local@host with something on both sides of an @: the host after the last such @."""
    at = next((i for i, t in enumerate(ws) if t == "@" and 0 < i < len(ws) - 1), -1)
    if at < 0:
        return None
    local, host = ws[:at], ws[at + 1 :]
    while 0 <= (k := _find(host, "@")) < len(host) - 1:
        local, host = [*local, "@", *host[:k]], host[k + 1 :]
    return local, host


def _uucp(ws: list[str]) -> Focus | None:
    """host!user (Debian's sendmail.cf keeps UUCP syntax): user at host(.UUCP)."""
    k = _find(ws, "!")
    if k <= 0 or k == len(ws) - 1:
        return None
    if k == 1:
        return ws[2:], [ws[0], ".", "UUCP"]
    for i in range(1, len(ws) - 3):
        if ws[i] == "." and ws[i + 2] == "!":
            return ws[i + 3 :], ws[: i + 2]
    return ws[k + 1 :], [*ws[:k], ".", "UUCP"]


def _percent(ws: list[str]) -> list[str]:
    """user%host (the percent hack): the rightmost % becomes the @."""
    if "%" not in ws:
        return ws
    ws = ["@" if t == "%" else t for t in ws]
    while ws.count("@") > 1:
        ws[ws.index("@")] = "%"
    return ws


def canonify(tokens: list[str]) -> Focus | None:
    """Sendmail's "canonify": the local part and the host part of an address; None
    for the null path (<>, and a lone @, which Sendmail reads the same way)."""
    if not tokens:
        return None
    ws = _strip_group(list(tokens))
    while len(ws) >= 3 and ws[-2:] == [";", ">"] and "<" in ws:
        ws = [*ws[:-2], ">"]
    if not ws or (k := _find(ws, "<")) >= 0 and ws[-3:] == [":", ";", ">"] and k < len(ws) - 3:
        raise AddressError("553", "5.1.3", "List:; syntax illegal for recipient addresses")
    ws = _innermost(ws)
    if not ws:
        return None
    ws = _drop_route(ws)
    found = _focus_last_at(ws) or _uucp(ws)
    if found is not None:
        return found
    ws = _percent(ws)
    if "@" in ws:
        k = ws.index("@")
        if k == 0 and len(ws) == 1:
            return None  # "<@>" is how Sendmail writes the null path itself
        return ws[:k], ws[k + 1 :]
    return ws, None


# --- parse (ruleset 0) ------------------------------------------------------------


def _error(enhanced: str, text: str) -> AddressError:
    return AddressError("553", enhanced, text)


def check_host(local: list[str], host: list[str]) -> list[str]:
    """Parse0's refusals of a malformed address; the local part it goes on with."""
    if local == ["@"]:
        local = []  # "@@host" bogosity: one @ too many
    if not host:
        raise _error("5.1.3", "Hostname required")
    if not local:
        raise _error("5.1.3", "User address required")
    if host[0] == "[" and "]" in host:
        rest = host[host.index("]") + 1 :]
        if rest and rest[0] not in (":", ","):
            raise _error("5.1.2", "Invalid address")
    elif ":" in host:
        raise _error("5.1.3", "Colon illegal in host name part")
    if host[0] == "." or any(a == b == "." for a, b in zip(host, host[1:], strict=False)):
        raise _error("5.1.2", "Invalid host name")
    if host[-1] == "@":
        raise _error("5.1.2", "Invalid route address")
    if "@" in local:
        raise _error("5.1.3", "Invalid route address")
    whole = [*local, "<", "@", *host, ">"]
    if any(a == "," and b not in ROUTE_CHARS for a, b in zip(whole, whole[1:], strict=False)):
        raise _error("5.1.3", "Invalid route address")
    return local


def dequote(token: str) -> str:
    """A quoted local part as the user name it is ("POSTMASTER" is POSTMASTER)."""
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        return token[1:-1].replace('\\"', '"')
    return token
