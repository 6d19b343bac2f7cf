"""A persona whose program is a proxy: it relays the dialogue to a server behind it.

clamsmtpd (a virus-scanning SMTP proxy) answers a few things itself and passes
every other line to the server behind it, whose replies it passes back, one
line at a time, in its own order.  Such a program cannot be a set of wordings
over the lab's one-command-one-reply session: its replies shift when a client
pipelines, it swallows commands as message text, it stops answering while its
server waits.  A ``Relay`` (``Persona.relay``) takes over the session's reading:
``Session.next_turn`` hands it every line, and it drives a second ``Session``
for the server behind it, in memory, as the real proxy drives its socket.

A relay moves its session only through ``Session.move`` (the state of the server
behind it, or DATA while it collects a message) and stores what that server
accepted through ``Session.accepted``.  It offers no fault points: the lab's
faults act on the replies of servers that answer for themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Event, Turn
    from .session import Session


class Relay:
    """The proxy's side of one connection; a persona supplies a subclass."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def collecting(self) -> bool:
        """True while message text is being read (the client's EOF loses it)."""
        return False

    def greeting(self) -> list[Event]:
        """What the proxy says when the client connects."""
        raise NotImplementedError

    def next_turn(self) -> Turn | None:
        """What the next line(s) the client sent make; None until more arrive."""
        raise NotImplementedError
