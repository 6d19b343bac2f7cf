"""SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, socket-free.

Both mechanisms send the password merely base64-encoded - readable by anyone
on the path - which is why the lab offers AUTH only inside TLS (RFC 4954 §4:
"538 5.7.11 Encryption required") and why the transcript shows the encoded
lines: decoding one is a two-line exercise.

The server asks this module three things: which mechanisms exist, how to read
a client response (base64 or the "*" that cancels, §4), and whether a user
and password match the lab's users.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from ..errors import LabValueError

MECHANISMS = ("PLAIN", "LOGIN")  # the order EHLO lists them in
# LOGIN's two server challenges, base64 of "Username:" and "Password:".
LOGIN_USERNAME = base64.b64encode(b"Username:").decode()
LOGIN_PASSWORD = base64.b64encode(b"Password:").decode()


class Cancelled(Exception):
    """The client answered a 334 challenge with "*" (RFC 4954 §4)."""


class Undecodable(Exception):
    """A client response that is not valid base64 (or not the expected shape)."""


def decode_response(line: str) -> bytes:
    """The bytes a client's base64 response carries; raises Cancelled or Undecodable."""
    line = line.strip()
    if line == "*":
        raise Cancelled()
    if line == "=":  # RFC 4954 §4: "=" is an empty initial response
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise Undecodable() from None


def parse_plain(data: bytes) -> tuple[str, str, str]:
    """Split a PLAIN response (RFC 4616 §2): authzid NUL authcid NUL passwd."""
    parts = data.split(b"\x00")
    if len(parts) != 3:
        raise Undecodable()
    try:
        authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise Undecodable() from None
    return authzid, authcid, passwd


def check_users(users) -> dict[str, str]:
    """Validate a learner's ``users=`` argument: a dict of user name -> password."""
    if users is None:
        return {}
    if not isinstance(users, Mapping):
        raise LabValueError(
            f"users must be a dict of user name to password, such as "
            f"{{'alice': 'wonderland'}}, not {type(users).__name__}"
        )
    out = {}
    for name, password in users.items():
        if not isinstance(name, str) or not name or "\x00" in name:
            raise LabValueError(f"a user name must be a non-empty string, not {name!r}")
        if not isinstance(password, str) or "\x00" in password:
            raise LabValueError(f"the password of {name!r} must be a string, not {password!r}")
        out[name] = password
    return out


def credentials_ok(users: Mapping[str, str], user: str, password: str, authzid: str = "") -> bool:
    """True if ``user`` exists and ``password`` is theirs (authzid empty or the same user)."""
    if authzid and authzid != user:
        return False  # acting as someone else (RFC 4616 authzid) is not allowed in the lab
    expected = users.get(user)
    if expected is None:
        return False
    return hmac.compare_digest(expected.encode(), password.encode())


def plain_response(user: str, password: str, authzid: str = "") -> str:
    """The base64 PLAIN response a client sends for ``user`` and ``password``."""
    return base64.b64encode(f"{authzid}\x00{user}\x00{password}".encode()).decode()


def b64(text: str) -> str:
    """``text`` in base64, as LOGIN sends user name and password."""
    return base64.b64encode(text.encode()).decode()
