"""The AUTH exchange of a session (RFC 4954): the command, then the client's responses.

``AUTH`` checks what RFC 4954 asks before an exchange starts (EHLO first,
TLS where the lab requires it, not twice), then each line the client sends
is one response to the mechanism's challenge (``auth.py`` decodes and
checks them) until the exchange succeeds, fails or is cancelled with
``*``.  A grammar may start an exchange of its own (``Refusal.exchange``);
its lines are read here the same way.  While an exchange is open the
session reads AUTH responses, not commands (``Session.next_turn``).
"""

from __future__ import annotations

from . import auth
from .events import Authenticated, AuthFailed, ClientLine, Event, Turn
from .lines import TooLong
from .session_core import SessionCore
from .states import Command, State


class AuthPart(SessionCore):
    """The AUTH command and the exchange it starts."""

    def _auth_turn(self, line: bytes | TooLong) -> Turn:
        if isinstance(line, TooLong):
            seen = ClientLine(b"", None, f"a command line of {line.size} bytes (not shown)")
            return self._said(seen, self._auth_step(auth.Undecodable()))
        # Base64 of a password: recorded on purpose, so a lesson can decode it.
        seen = ClientLine(line, "AUTH", "AUTH response")
        return self._said(seen, self._auth_step(line.rstrip(b"\r\n").decode("ascii", "replace")))

    def _auth_command(self, arg: str, verb: str) -> list[Event]:
        if not self.extended:
            return self._reply(Command.AUTH, "need_ehlo_for_auth", "AUTH")  # RFC 4954 §4
        if not self.tls and self.setup.auth_require_tls:
            return self._reply(Command.AUTH, "auth_encryption_required", "AUTH")
        if self.user is not None:
            return self._reply(Command.AUTH, "auth_already", "AUTH")
        mechanism, _, initial = arg.partition(" ")
        mechanism, initial = mechanism.upper(), initial.strip()
        if not mechanism:
            return self._reply(Command.AUTH, "auth_syntax", "AUTH")
        if mechanism not in auth.MECHANISMS:
            return self._reply(Command.AUTH, "auth_mechanism_unknown", "AUTH")
        self._auth = auth.Exchange(mechanism)
        return self._auth_step(initial or None)

    def _auth_step(self, response: str | None | auth.Undecodable) -> list[Event]:
        """One client response in the AUTH exchange (None: ask for the first one)."""
        ex = self._auth
        assert ex is not None
        try:
            if isinstance(response, auth.Undecodable):
                raise response
            got = ex.respond(response)
        except auth.Cancelled:
            self._auth = None
            return self._reply(Command.AUTH, "auth_cancelled", "AUTH")
        except auth.Undecodable:
            self._auth = None
            shown = response if isinstance(response, str) else ""
            return self._reply(Command.AUTH, "auth_undecodable", "AUTH", arg=shown)
        if isinstance(got, str):
            return [self._answer("auth_challenge", "AUTH", arg=got)]
        self._auth = None
        authzid, user, password = got
        if not auth.credentials_ok(self.setup.users, user, password, authzid):
            failed = AuthFailed(user, ex.mechanism)
            return [failed, *self._reply(Command.AUTH, "auth_failed", "AUTH")]
        self.user = user
        return [Authenticated(user, ex.mechanism), *self._reply(Command.AUTH, "auth_ok", "AUTH")]

    @property
    def _auth_waits_for_helo(self) -> bool:
        """AUTH is refused for want of HELO before anything else is asked (the persona's
        order; the state table words it: need_ehlo_for_auth)."""
        helo_first = self.persona.auth_asks_helo_first and self._helo_required
        return helo_first and self.state is State.CONNECTED
