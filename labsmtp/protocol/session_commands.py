"""A session's command lines: read, refused before a fault point, or answered.

``_command_turn`` turns one line into what the server makes of it: the
grammar's own answer (its reader, its limits), a refusal before any fault
point (``_refusal``: unknown verbs, the sequence checks of ``states.py``,
what is not offered), BDAT's chunk to read (``message.py``), or a
``Pending`` command.  A pending command's normal answer is one method per
command, as aiosmtpd's ``smtp_VERB`` (``_HANDLERS``); each asks the
persona's ``Grammar`` first (paths, parameters, its own refusals: ``_own``)
and the ``Checks`` (Postfix's restrictions and the like), then replies.
"""

from __future__ import annotations

from collections.abc import Callable

from . import states
from .events import Answer, ClientLine, Event, Greeted, Note, Pending, TLSRequested, Turn
from .grammar import CommandLine, Path, Refusal
from .lines import TooLong
from .message import MessagePart
from .session_auth import AuthPart
from .session_core import code_of
from .states import Command, Stage, State


def _echo(path: Path) -> str:
    """How a reply names the path's address ({addr})."""
    return path.address if path.echo is None else path.echo


# The stage each command reaches (a fault point).
_STAGES: dict[Command, Stage] = {cmd: Stage.of(cmd) or Stage.HELO for cmd in Command}


class CommandPart(AuthPart, MessagePart):
    """Command lines and the normal answer to each command."""

    # --- reading command lines ---------------------------------------------------

    def _command_turn(self, got: bytes | TooLong) -> Turn:
        own = self.grammar.screen(self._session, got, more=bool(self._lines))
        if own is not None:  # the program's own answer to this line (its reader, its limits)
            seen, events = own
            return self._said(seen, events)
        line = self.grammar.keep(got)  # what the server reads of it (Postfix: its head)
        if isinstance(got, TooLong):
            seen = ClientLine(b"", None, f"a command line of {got.size} bytes (not shown)")
        if isinstance(line, TooLong):
            return self._said(seen, self._line_reply(self.grammar.overflow_key, None))
        read = self.grammar.read(line)
        verb = read.verb if read is not None else ""
        self._line = read.text if read is not None else ""
        if not isinstance(got, TooLong):
            seen = ClientLine(line, verb or None)
        if self._pipelined():
            return self._said(seen, [self._answer("pipelining", verb or None)])
        if read is None:
            return self._said(seen, [self._answer("bad_bytes", None)])
        if not read.text.strip() or not (read.verb or read.arg):
            return self._said(seen, self._unknown("empty_line", None))
        if self.grammar.too_long(line, read.text, verb, self.policy):
            return self._said(seen, self._line_reply("line_too_long", verb))
        cmd = self.grammar.command(verb, read.arg)
        if cmd is Command.BDAT:
            return self._said(seen, self._bdat_line(read.arg, verb))
        refused = self._refusal(cmd, read)
        if refused is not None:
            return self._said(seen, refused)
        assert cmd is not None
        return Turn((seen,), pending=Pending(_STAGES[cmd], cmd, verb, read.arg))

    def _refusal(self, cmd: Command | None, line: CommandLine) -> list[Event] | None:
        """The answer to a command refused before any fault point, or None to go on."""
        arg, verb = line.arg, line.verb
        own = self.grammar.before(cmd, line, self._view_for("before"))
        if own is not None:
            return self._own(own, verb, cmd)
        if cmd is None:
            return self._unknown_verb(verb, line.text)
        if self.state is State.REFUSED and cmd is not Command.QUIT:
            return [self._answer("access_denied", verb)]  # §3.1: only QUIT after a 554
        if cmd in (Command.EXPN, Command.HELP):
            return [self._answer(cmd.value.lower(), verb, arg=arg)]
        if cmd is Command.STARTTLS and not self.setup.tls_offered:
            return [self._answer("starttls_not_offered", verb)]
        if cmd is Command.AUTH and not self.setup.users and not self._auth_waits_for_helo:
            return [self._answer("auth_not_offered", verb)]
        key = states.refusal(
            self.state, cmd, helo_required=self._helo_required, variants=self._variants
        )
        return [self._answer(key, verb)] if key is not None else None

    def _unknown_verb(self, verb: str, text: str) -> list[Event]:
        """A line whose verb the lab's table does not know: the program's own answer."""
        refused = self.grammar.unknown_verb(verb, text, self._session)
        answer = self._answer(refused.key, verb, arg=refused.arg)
        if refused.close:  # Postfix's "I can break rules, too": the session ends here
            return [answer, *self.hang_up()]
        if self.state is State.REFUSED:
            return [self._answer("access_denied", verb)]
        if refused.key != "unknown_command":  # a command of the program's own (ETRN)
            return [answer]
        return self._unknown("unknown_command", verb)

    def _line_reply(self, key: str, verb: str | None) -> list[Event]:
        """The reply to a line that is no command (too long): a 421 closes (§3.8)."""
        answer = self._answer(key, verb)
        return [answer, *self._advance(None, code_of(answer))]

    def _unknown(self, key: str, verb: str | None, **fields: object) -> list[Event]:
        """An unknown command; past the persona's unknown_command_limit, the last word and close."""
        self.unknown += 1
        limit = self.persona.unknown_command_limit
        if limit and self.unknown > limit:
            return [self._answer("too_many_unknown", verb), *self.hang_up()]
        return [self._answer(key, verb, **fields)]

    def _own(self, own: Refusal, label: str | None, cmd: Command | None) -> list[Event]:
        """A grammar's own answer (``Grammar.before``): counted, closing, or an AUTH exchange."""
        fields = {"arg": own.arg, **own.fields}
        if own.count:
            return self._unknown(own.key, label, **fields)
        if own.exchange is not None:  # its challenge (334) is the answer
            self._auth = own.exchange
            return self._auth_step(own.arg or None)
        answer = self._answer(own.key, label, **fields)
        events: list[Event] = [answer, *self._advance(cmd, code_of(answer))]
        return [*events, *self.hang_up()] if own.close else events

    # --- one method per command (aiosmtpd's smtp_VERB) -------------------------

    def _helo(self, arg: str, verb: str) -> list[Event]:
        cmd = Command(verb)
        own = self.grammar.helo(verb, arg, self._view_for("helo"))
        if isinstance(own, Refusal):
            return self._own(own, verb, cmd)
        name = own
        refused = self.checks.at_helo(self._session, name)
        if refused is not None:
            return self._reply(cmd, refused.key, verb, arg=refused.arg)
        self.helo, self.extended = name, verb == "EHLO"
        events: list[Event] = [Greeted(name, self.extended)]
        if verb == "HELO":
            # §4.1.1.1: a server MUST NOT send the extended (multi-line) reply to HELO.
            events += self._reply(cmd, "helo_ok", verb, arg=name)
        else:
            lines = self.persona.ehlo(self.ehlo_keywords(), self._fields({"arg": name}))
            events += [Answer(tuple(lines), verb), *self._advance(cmd, 250)]
        identity = self.setup.identity
        if identity is not None:
            note = identity.at_helo(name, self.client_ip)
            if note:
                events.append(Note(f"{identity.name}: {note}"))
        return events

    def _mail(self, arg: str, verb: str) -> list[Event]:
        if self.setup.mode == "submission" and self.user is None:
            # RFC 6409 §4.3 / RFC 4954 §6: a submission server wants to know who you are.
            return self._reply(Command.MAIL, "auth_required", "MAIL")
        view = self._view_for("parse_path", "path_parameters")  # one for both hooks
        path = self.grammar.parse_path(Command.MAIL, arg, view)
        if isinstance(path, Refusal):
            return self._own(path, "MAIL", Command.MAIL)
        refused = self.grammar.path_parameters(Command.MAIL, path, view)
        if refused is not None:
            return self._own(refused, "MAIL", Command.MAIL)
        self.mail_from, self.mail_options = path.address, list(path.parameters)
        return self._reply(Command.MAIL, "mail_ok", "MAIL", addr=_echo(path))

    def _rcpt(self, arg: str, verb: str) -> list[Event]:
        identity = self.setup.identity
        if identity is not None:
            key = identity.at_rcpt(self.helo or "", self.client_ip)
            if key is not None:
                note = Note(f"{identity.name}: refused at RCPT")
                return [note, *self._reply(Command.RCPT, key, "RCPT", helo=self.helo or "")]
        view = self._view_for("parse_path", "path_parameters")  # one for both hooks
        path = self.grammar.parse_path(Command.RCPT, arg, view)
        if isinstance(path, Refusal):
            return self._own(path, "RCPT", Command.RCPT)
        self._last_rcpt = path.address  # OpenSMTPD's Received: names the last RCPT given
        refused = self.grammar.path_parameters(Command.RCPT, path, view)
        if refused is not None:
            return self._own(refused, "RCPT", Command.RCPT)
        standard = self.checks.at_rcpt(self._session, path.address)
        if standard is not None and standard.key == "too_many_recipients":
            return self._reply(Command.RCPT, standard.key, "RCPT")  # counted before all else
        own = self.grammar.recipient(path, standard, self._view_for("recipient"))
        if own is not None and own.key != "rcpt_ok":
            return self._own(own, "RCPT", Command.RCPT)
        self.rcpt_tos.append(path.address)
        self.rcpt_options.extend(path.parameters)
        self._rcpt_parameters.append(tuple(path.parameters))
        fields = {"addr": _echo(path), **(own.fields if own is not None else {})}
        return self._reply(Command.RCPT, "rcpt_ok", "RCPT", **fields)

    def _data(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.argument_refusal(Command.DATA, arg, self._view_for("argument_refusal"))
        if own is not None:
            return self._own(own, "DATA", Command.DATA)
        if any(p.upper() == "BODY=BINARYMIME" for p in self.mail_options):
            return self._reply(Command.DATA, "binarymime_needs_bdat", "DATA")  # RFC 3030 §3
        before = self.state
        events = self._reply(Command.DATA, "data_go", "DATA")
        self._begin_message(before)
        return events

    def _rset(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.argument_refusal(Command.RSET, arg, self._view_for("argument_refusal"))
        if own is not None:
            return self._own(own, "RSET", Command.RSET)
        self._reset_transaction()
        return self._reply(Command.RSET, "rset_ok", "RSET")

    def _noop(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.argument_refusal(Command.NOOP, arg, self._view_for("argument_refusal"))
        if own is not None:  # §4.1.1.9 says ignore the argument; some servers refuse it
            return self._own(own, "NOOP", Command.NOOP)
        return self._reply(Command.NOOP, "noop_ok", "NOOP")

    def _vrfy(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.vrfy(arg, self._view_for("vrfy"))
        if own is not None:
            return self._own(own, "VRFY", Command.VRFY)
        said = self.checks.vrfy(self._session, arg)
        return self._reply(Command.VRFY, said.key, "VRFY", arg=said.arg, addr=said.arg)

    def _quit(self, arg: str, verb: str) -> list[Event]:
        return self._reply(Command.QUIT, "quit", "QUIT")  # the table moves the session to CLOSED

    def _starttls(self, arg: str, verb: str) -> list[Event]:
        if arg:
            return self._reply(Command.STARTTLS, "starttls_syntax", "STARTTLS")
        if self.tls:
            return self._reply(Command.STARTTLS, "starttls_already", "STARTTLS")
        self._tls_pending = True  # nothing more is read until the handshake is done
        # Plaintext pipelined after STARTTLS is not trusted (RFC 3207 §4.2, §6): it is
        # dropped now, before the handshake, so nothing sent inside TLS is lost.
        self._lines.clear()
        return [*self._reply(Command.STARTTLS, "starttls_go", "STARTTLS"), TLSRequested()]

    _HANDLERS: dict[Command, Callable[[CommandPart, str, str], list[Event]]] = {
        Command.HELO: _helo,
        Command.EHLO: _helo,
        Command.MAIL: _mail,
        Command.RCPT: _rcpt,
        Command.DATA: _data,
        Command.END_OF_DATA: MessagePart._end_of_data,
        Command.BDAT: MessagePart._bdat,
        Command.BDAT_LAST: MessagePart._bdat_last,
        Command.RSET: _rset,
        Command.NOOP: _noop,
        Command.VRFY: _vrfy,
        Command.QUIT: _quit,
        Command.STARTTLS: _starttls,
        Command.AUTH: AuthPart._auth_command,
    }
