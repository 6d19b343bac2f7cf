"""Where a server applies its restrictions: at connect, at HELO, at RCPT, at VRFY, at the dot.

RFC 5321 fixes the dialogue; *when* a server says no is its own business.
Postfix, for one, keeps every client and HELO restriction until RCPT TO by
default (``smtpd_delay_reject = yes``), then answers each RCPT with the HELO
verdict.  The session (``session.py``) asks its ``Checks`` at each of these
points; the answers are reply keys (``grammar.Refusal``), never wording.

``Checks`` is the lab's own order, which is also Postfix's with
``smtpd_delay_reject = no``: HELO restrictions at HELO, then at RCPT the
recipient limit, relaying (``Policy.may_deliver``) and the server's own users
(``Setup.recipients``).  A persona whose program decides elsewhere or
otherwise names a subclass in ``Persona.checks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .grammar import Refusal

if TYPE_CHECKING:
    from .lines import MessageText
    from .personas import Persona
    from .session import Session
    from .setup import Setup


class Checks:
    """The lab's restrictions, applied where the lab has always applied them."""

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        self.persona = persona
        self.setup = setup  # the server's settings (None: checks on their own, in tests)
        self.settings: Mapping[str, Any] = setup.settings if setup else MappingProxyType({})

    def at_connect(self, session: Session) -> Refusal | None:
        """A refusal instead of the 220 greeting (a 554 leaves the session refused, §3.1)."""
        return None

    def at_helo(self, session: Session, name: str) -> Refusal | None:
        """The refusal of HELO/EHLO ``name`` now (smtpd_helo_restrictions), or None."""
        key = session.policy.helo_verdict(name, resolves=session.setup.resolves)
        return Refusal(key, name) if key else None

    def at_rcpt(self, session: Session, address: str) -> Refusal | None:
        """The refusal of a recipient whose syntax and parameters passed, or None."""
        if len(session.rcpt_tos) >= session.policy.max_recipients:
            return Refusal("too_many_recipients")
        # A proxy without XCLIENT (clamsmtpd) makes its server see the proxy's address.
        client_ip = self.persona.backend_client_ip or session.client_ip
        # Postfix's permit_sasl_authenticated: an authenticated client may relay.
        may = session.user is not None or session.policy.may_deliver(
            address, client_ip, session.setup.hostname
        )
        if not may:
            return Refusal("relay_denied")
        known = session.setup.recipients
        if known is not None and not known.knows(address):
            return Refusal("user_unknown")
        return None

    def at_dot(self, session: Session, message: MessageText) -> Refusal | None:
        """The refusal of a message whose final dot has come, or None to store it: too big
        (message_size_limit, RFC 1870) or a line too long (§4.5.3.1.6)."""
        return Refusal(message.refusal) if message.refusal is not None else None

    def vrfy(self, session: Session, argument: str) -> Refusal:
        """The reply to ``VRFY argument``: vrfy_ok (252: §3.5.3) unless it is refused."""
        if not argument:
            return Refusal("vrfy_syntax")
        return Refusal("vrfy_ok", argument.strip("<>"))


def checks_of(persona: Persona, setup: Setup | None = None) -> Checks:
    """The checks ``persona``'s program applies on the server ``setup`` describes."""
    make = persona.checks if persona.checks is not None else Checks
    return make(persona, setup)
