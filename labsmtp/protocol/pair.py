"""A client and a server session joined in memory: whole dialogues, no socket.

After h11's ``ConnectionPair``: ``SessionPair`` plays the bytes a client
would send into a ``Session`` and reads back the replies the server would
write, in the same order, with the same words.  Nothing runs in a thread and
nothing waits, so a test can hold thousands of dialogues in a second.  The
client side follows the same state table as the server (``states.after_reply``),
as ``StepClient`` does over a socket.  STARTTLS is taken at its word: after
its 220 the session starts over as if a handshake had succeeded.

Faults are the lab's (``lab/faults.py``): a pair always runs the normal
behaviour, which is what the dialogue rules are.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from . import states
from .commands import CommandWriter
from .events import (
    Answer,
    ClientLine,
    Event,
    HangUp,
    MessageAccepted,
    StateChanged,
    TLSRequested,
    Turn,
)
from .lines import dot_stuff
from .personas import Persona, get_persona
from .policy import IdentityCheck, Policy
from .replies import Reply, reply_from_lines
from .session import Session, Setup
from .states import Command, State


class SessionPair(CommandWriter):
    """A client and the lab's server session, talking in memory."""

    def __init__(
        self,
        persona: str | Persona = "generic",
        *,
        policy: Policy | None = None,
        hostname: str = "mx.lab.example.org",
        client_ip: str = "127.0.0.1",
        mode: str = "mx",
        tls: bool | None = None,
        implicit_tls: bool = False,
        users: Mapping[str, str] | None = None,
        auth_require_tls: bool = True,
        identity: IdentityCheck | None = None,
        resolves: Callable[[str], bool] | None = None,
        reverse: Callable[[str], tuple[str | None, bool]] | None = None,
        seed: int = 0,
        **policy_switches: object,
    ) -> None:
        persona = get_persona(persona)
        policy, settings = persona.configure(policy, **policy_switches)
        if mode == "open-relay" and not policy.open_relay:
            policy = policy.with_(open_relay=True)
        rng = random.Random(seed)
        setup = Setup(
            persona,
            policy,
            hostname,
            mode,
            tls_offered=(bool(users) or persona.stock_tls) if tls is None else tls,
            users=dict(users or {}),
            auth_require_tls=auth_require_tls,
            identity=identity,
            resolves=resolves,
            reverse=reverse,  # the client's reverse name and FCrDNS (LabZone.reverse)
            queue_id=lambda: persona.new_queue_id(rng),
            settings=settings,
        )
        self.session = Session(setup, client_ip, tls=implicit_tls)
        self.state = states.opened()  # the client's view, from the same table
        self.tls = implicit_tls
        self.closed = False
        self.messages: list[MessageAccepted] = []
        self.events: list[Event] = []  # every event the server's session reported
        self.received: list[ClientLine] = []  # what the server read, as its transcript has it
        self.history: list[tuple[bytes, tuple[Reply, ...]]] = []
        session = self.session
        self.greeting = self._replies(session.respond(session.connect()))[0]
        self.history.append((b"", (self.greeting,)))
        self._follow(None, self.greeting)

    # --- bytes in, replies out ------------------------------------------------

    def send(self, data: bytes | str) -> list[Reply]:
        """Give the server these bytes; every reply it sends back, in order."""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if self.closed:
            raise ConnectionError("the server has closed the connection")
        self.session.receive(data)
        replies: list[Reply] = []
        while not self.closed:
            turn = self.session.next_turn()
            if turn is None:
                break
            replies += self._turn(turn)
        self.history.append((data, tuple(replies)))
        return replies

    def command(self, line: str | bytes, cmd: Command | None = None) -> Reply:
        """Send one command line; its one reply (AssertionError if there is not exactly one,
        an unasked 421 aside)."""
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        replies = self.send(data if data.endswith(b"\n") else data + b"\r\n")
        asked = [r for r in replies if r.code != 421] or replies[-1:]
        assert len(asked) == 1, f"{line!r} got {len(replies)} replies: {replies}"
        reply = asked[0]
        if cmd is None:
            cmd = _command_of(data)
        self._follow(cmd, reply)
        for unasked in replies[1:]:
            self._follow(None, unasked)  # a 421 closes (§3.8)
        return reply

    def _turn(self, turn: Turn) -> list[Reply]:
        self.received += turn.received
        replies = self._replies(list(turn.events))
        if turn.pending is not None:
            replies += self._replies(self.session.respond(turn.pending))
        return replies

    def _replies(self, events: list[Event]) -> list[Reply]:
        replies = []
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, Answer):
                raw = "".join(ln + "\r\n" for ln in ev.lines).encode("utf-8", "surrogateescape")
                replies.append(reply_from_lines(list(ev.lines), raw, ev.command))
            elif isinstance(ev, MessageAccepted):
                self.messages.append(ev)
            elif isinstance(ev, TLSRequested):
                self.session.tls_started()  # the handshake, taken as done
                self.tls = True
            elif isinstance(ev, HangUp):
                self.closed = True
        return replies

    def _follow(self, cmd: Command | None, reply: Reply) -> None:
        # helo_required=False: if the server let MAIL through before HELO, follow it.
        self.state = states.after_reply(self.state, cmd, reply.code, helo_required=False)

    # --- the commands (CommandWriter writes them, as for the step client) ------

    def send_message(self, message: str | bytes) -> Reply:
        return self.command(dot_stuff(message), Command.END_OF_DATA)

    def quit(self) -> Reply:
        return self.command("QUIT", Command.QUIT)

    def starttls(self) -> Reply:
        return self.command("STARTTLS", Command.STARTTLS)

    @property
    def server_state(self) -> State:
        """Where the server's session is."""
        return self.session.state

    def path(self) -> list[State]:
        """The server's path through the table so far (after the greeting)."""
        return [ev.state for ev in self.events if isinstance(ev, StateChanged)]


def _command_of(data: bytes) -> Command | None:
    verb = data.split(b" ", 1)[0].strip().decode("ascii", "replace").upper()
    try:
        return Command(verb)
    except ValueError:
        return None
