"""OpenSMTPD's built-in filters for HELO and EHLO, written as in smtpd.conf(5).

OpenSMTPD has no HELO checks of its own beyond the syntax of the name; since 6.6
a site adds them with built-in filters (lka_filter.c), one condition and one
action each, chained on the listener::

    table helo_bare { "^[^.]*$" }
    filter "helo_fqdn" phase helo match helo regex <helo_bare> reject "550 5.7.1 HELO name must be a fully-qualified domain name"
    filter "ehlo_fqdn" phase ehlo match helo regex <helo_bare> reject "550 5.7.1 EHLO name must be a fully-qualified domain name"
    filter "fqdn" chain { "helo_fqdn", "ehlo_fqdn" }
    listen on localhost filter "fqdn"

The lab reads exactly these lines (the ``filters`` setting of the opensmtpd
persona: one string of lines, or a list of lines).  Without a ``listen ...
filter`` line every ``phase`` filter given applies, in order.  Phases: ``helo``
(the HELO command) and ``ehlo``.  Conditions, each negated with ``!``:
``fcrdns``, ``rdns``, ``rdns <table>``, ``rdns regex <table>``, ``src <table>``,
``src regex <table>``, ``helo <table>``, ``helo regex <table>``.  A table is
``<name>`` (a ``table name { ... }`` line), ``{ "a", "b" }`` or one string.
Actions: ``reject "CODE text"`` (the session stays unidentified; a 421 also
disconnects), ``disconnect "CODE text"``, ``rewrite "name"`` (the name is
checked and used instead), ``junk``, ``bypass`` (both let the command
through) and ``report "text"`` (goes on to the next filter).  Matching is
lka_filter.c's: names are compared in lower case, a domain table entry may
hold ``*`` wildcards, a regex is POSIX extended (``(?i)`` ignores case).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...errors import LabValueError

PHASES = ("helo", "ehlo")
_OTHER_PHASES = ("connect", "auth", "mail-from", "rcpt-to", "data", "commit")
_SUBJECTS = ("fcrdns", "rdns", "src", "helo")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|<[^<>\s]*>|[{},!]|[^\s{},!"<]+')
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r" \t\n\r\f\v",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": r"!-/:-@\[-`{-~",
}
_HELP = (
    'write filters as in smtpd.conf, e.g. filter "helo_fqdn" phase helo match helo regex '
    '"^[^.]*$" reject "550 5.7.1 HELO name must be a fully-qualified domain name"'
)


@dataclass(frozen=True)
class Condition:
    """``match [!]subject [regex] [table]``."""

    subject: str  # fcrdns, rdns, src, helo
    negated: bool = False
    regex: bool = False
    table: tuple[str, ...] = ()  # empty for fcrdns and a bare rdns

    def matches(self, helo: str, client_ip: str, rdns: str | None, fcrdns: bool) -> bool:
        if self.subject == "fcrdns":
            hit = fcrdns
        elif self.subject == "rdns" and not self.table:
            hit = rdns is not None
        else:
            key = {"rdns": rdns or "<unknown>", "src": client_ip, "helo": helo}[self.subject]
            hit = any(self._entry(key.lower(), entry) for entry in self.table)
        return hit != self.negated

    def _entry(self, key: str, entry: str) -> bool:
        if self.regex:
            return _regex(entry).search(key) is not None
        if self.subject == "src":
            return _netaddr_match(key, entry)
        return _hostname_match(key, entry)


@dataclass(frozen=True)
class Filter:
    """One ``filter "name" phase P match CONDITION ACTION`` line."""

    name: str
    phase: str
    condition: Condition
    action: str  # reject, disconnect, rewrite, report, junk, bypass
    text: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the filters made of one HELO/EHLO: a reply (``key`` and its ``text``) or
    the name to go on with."""

    key: str | None
    text: str
    name: str


class Filters:
    """The built-in filters a session runs at HELO and EHLO, read from smtpd.conf lines."""

    __slots__ = ("chain", "lines")

    def __init__(self, lines: Sequence[str] = ()) -> None:
        self.lines = tuple(
            ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")
        )
        self.chain: tuple[Filter, ...] = _read(self.lines)

    @classmethod
    def coerce(cls, name: str, value: object) -> Filters:
        """A setting's value: smtpd.conf lines as one string or a list of strings."""
        if isinstance(value, Filters):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(value.splitlines())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return cls([ln for v in value for ln in v.splitlines()])
        raise LabValueError(f"{name} is smtpd.conf lines (a string or a list of strings); {_HELP}")

    def at_helo(
        self, verb: str, name: str, client_ip: str, rdns: str | None, fcrdns: bool
    ) -> Verdict:
        """Run the ``phase helo`` (or ``ehlo``) filters over the name the client gave."""
        for f in self.chain:
            if f.phase != verb.lower() or not f.condition.matches(name, client_ip, rdns, fcrdns):
                continue
            if f.action == "report":
                continue
            if f.action in ("junk", "bypass"):
                break
            if f.action == "rewrite":
                return Verdict(None, "", f.text)
            return _reply(f)
        return Verdict(None, "", name)

    def __bool__(self) -> bool:
        return bool(self.chain)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filters) and other.lines == self.lines

    def __hash__(self) -> int:
        return hash(self.lines)

    def __repr__(self) -> str:
        return f"Filters({list(self.lines)!r})" if self.lines else "Filters()"


def _reply(f: Filter) -> Verdict:
    text = f.text
    # smtp_session.c: a reply that is not "4xx text" or "5xx text" becomes a 421.
    if len(text) < 5 or not re.match(r"[45][0-9][0-9] ", text):
        text = "421 Internal server error"
    closes = f.action == "disconnect" or text.startswith("421")
    return Verdict("filter_disconnect" if closes else "filter_reject", text, "")


# --- reading smtpd.conf lines -----------------------------------------------------------


def _read(lines: Iterable[str]) -> tuple[Filter, ...]:
    tables: dict[str, tuple[str, ...]] = {}
    filters: dict[str, Filter] = {}
    chains: dict[str, tuple[str, ...]] = {}
    listen: str | None = None
    for line in lines:
        words = _TOKEN.findall(line)
        if not words:
            continue
        if words[0] == "table":
            name, values = _table_line(line, words)
            tables[name] = values
        elif words[0] == "filter" and len(words) > 2 and words[2] == "chain":
            chains[_unquote(words[1])] = _values(words[3:], line)
        elif words[0] == "filter":
            f = _filter_line(line, words, tables)
            filters[f.name] = f
        elif words[0] == "listen":
            listen = _listen_filter(line, words)
        else:
            raise LabValueError(f"the lab reads table, filter and listen lines, not {line!r}")
    if listen is None:
        return tuple(filters.values())
    if listen in chains:
        return tuple(_named(filters, n, line=f"chain {listen!r}") for n in chains[listen])
    return (_named(filters, listen, line="listen on"),)


def _named(filters: dict[str, Filter], name: str, line: str) -> Filter:
    if name not in filters:
        raise LabValueError(
            f"{line} names no filter called {name!r}; defined: {', '.join(filters)}"
        )
    return filters[name]


def _table_line(line: str, words: list[str]) -> tuple[str, tuple[str, ...]]:
    if len(words) < 3 or words[2] != "{":
        raise LabValueError(
            f'the lab reads inline tables only, as table name {{ "a", "b" }}: {line!r}'
        )
    return _unquote(words[1]), _values(words[2:], line)


def _values(words: list[str], line: str) -> tuple[str, ...]:
    if not words or words[0] != "{" or words[-1] != "}":
        raise LabValueError(f"a list goes between {{ and }}: {line!r}")
    return tuple(_unquote(w) for w in words[1:-1] if w != ",")


def _listen_filter(line: str, words: list[str]) -> str:
    if "filter" not in words or words.index("filter") + 1 >= len(words):
        raise LabValueError(
            f'a listen line names its filter: listen on localhost filter "name": {line!r}'
        )
    return _unquote(words[words.index("filter") + 1])


def _filter_line(line: str, words: list[str], tables: dict[str, tuple[str, ...]]) -> Filter:
    if len(words) < 6 or words[2] != "phase" or words[4] != "match":
        raise LabValueError(f"not a built-in filter line: {line!r}; {_HELP}")
    phase = words[3]
    if phase in _OTHER_PHASES:
        raise LabValueError(f"the lab models filters at phase helo and ehlo, not {phase}: {line!r}")
    if phase not in PHASES:
        raise LabValueError(f"unknown filter phase {phase!r} (helo or ehlo): {line!r}")
    rest = words[5:]
    condition, rest = _condition(rest, tables, line)
    action, text = _action(rest, line)
    return Filter(_unquote(words[1]), phase, condition, action, text)


def _condition(
    words: list[str], tables: dict[str, tuple[str, ...]], line: str
) -> tuple[Condition, list[str]]:
    negated = bool(words) and words[0] == "!"
    if negated:
        words = words[1:]
    if words and words[0].startswith("!"):
        negated, words = True, [words[0][1:], *words[1:]]
    if not words or words[0] not in _SUBJECTS:
        raise LabValueError(f"a condition is one of {', '.join(_SUBJECTS)}: {line!r}")
    subject, words = words[0], words[1:]
    regex = bool(words) and words[0] == "regex"
    if regex:
        words = words[1:]
    if subject == "fcrdns" or (subject == "rdns" and not regex and not _is_table(words)):
        return Condition(subject, negated), words
    table, words = _table(words, tables, line)
    if regex:
        for pattern in table:
            _regex(pattern)  # a pattern Python cannot read is said now, not ignored later
    return Condition(subject, negated, regex, table), words


def _is_table(words: list[str]) -> bool:
    return bool(words) and (words[0] == "{" or words[0].startswith(("<", '"')))


def _table(
    words: list[str], tables: dict[str, tuple[str, ...]], line: str
) -> tuple[tuple[str, ...], list[str]]:
    if not words:
        raise LabValueError(f"the condition needs a table: {line!r}")
    first = words[0]
    if first == "{":
        end = words.index("}") if "}" in words else len(words)
        return _values(words[: end + 1], line), words[end + 1 :]
    if first.startswith("<") and first.endswith(">"):
        name = first[1:-1]
        if name not in tables:
            raise LabValueError(f"no such table: {name} (define it first: table {name} {{ ... }})")
        return tables[name], words[1:]
    return (_unquote(first),), words[1:]


def _action(words: list[str], line: str) -> tuple[str, str]:
    if words and words[0] in ("junk", "bypass") and len(words) == 1:
        return words[0], ""
    if len(words) == 2 and words[0] in ("reject", "disconnect", "rewrite", "report"):
        return words[0], _unquote(words[1])
    raise LabValueError(
        f'a filter ends with reject "...", disconnect "...", rewrite "...", '
        f'report "...", junk or bypass: {line!r}'
    )


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return re.sub(r"\\(.)", r"\1", word[1:-1])
    return word


# --- lka_filter.c's matching ------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    """A POSIX extended regex (table.c table_regex_match) as a Python pattern."""
    flags = 0
    if pattern.startswith("(?i)"):
        pattern, flags = pattern[4:], re.IGNORECASE
    for posix, chars in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, chars)
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise LabValueError(
            f"not a regular expression the lab can read: {pattern!r} ({exc})"
        ) from None


def _hostname_match(name: str, pattern: str) -> bool:
    """util.c hostname_match(): case-insensitive, ``*`` skips up to the next pattern character."""
    i = j = 0
    name, pattern = name.lower(), pattern.lower()
    while j < len(pattern) and i < len(name):
        if pattern[j] == "*":
            while j < len(pattern) and pattern[j] == "*":
                j += 1
            nxt = pattern[j] if j < len(pattern) else ""
            while i < len(name) and name[i] != nxt:
                i += 1
            continue
        if pattern[j] != name[i]:
            return False
        i, j = i + 1, j + 1
    return i == len(name) and j == len(pattern)


def _netaddr_match(address: str, entry: str) -> bool:
    """table.c table_netaddr_match(): the same text, or inside the network."""
    if address.lower() == entry.lower():
        return True
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
