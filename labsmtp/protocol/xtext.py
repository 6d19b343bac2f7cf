"""RFC 3461 §4's xtext, the encoding of DSN's ENVID and ORCPT values: "+" and two
hex digits stand for one character.  The lab's mailbox decodes it; Postfix's
grammar also checks it, as its xtext_unquote() does."""

from __future__ import annotations

_HEX = frozenset("0123456789ABCDEFabcdef")


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in _HEX for c in text)


def xtext_ok(value: str) -> bool:
    """True if every "+" is followed by two hex digits."""
    return all(_is_hex(part[:2]) for part in value.split("+")[1:])


def xtext_decode(value: str) -> str:
    """``value`` decoded; a "+" without two hex digits after it is kept as it is."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "+" and _is_hex(value[i + 1 : i + 3]):
            out.append(chr(int(value[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(value[i])
            i += 1
    return "".join(out)
