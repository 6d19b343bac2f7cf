"""How Exim 4.96 reads and answers an SMTP dialogue (smtp_in.c), for the exim persona.

``EximGrammar`` is the session's Grammar for this persona.  The session makes
one per connection, so it holds Exim's per-connection counters and flags; it
plays smtp_in.c's command loop through the session's hooks (grammar.py):

- ``read_command``: a 16,384-octet command buffer (SMTP_CMD_BUFFER_SIZE): a
  longer line is cut after 16,385 octets, that piece is an unrecognised
  command, and the rest of the line is read as more commands;
- ``screen`` (exim_commands.py): smtp_read_command and the head of each
  command: NUL, the command table (``mail from:`` is one word), the
  synchronisation check, ``smtp_accept_max_nonmail``, arguments where none
  belong, sequence errors and missing operands, counted by
  ``smtp_max_synprot_errors`` and ``smtp_max_unknown_commands``;
- ``respond`` (exim_commands.py): HELO/EHLO, MAIL, RCPT, VRFY and the end of
  the message, Exim's way; RSET, NOOP, QUIT, DATA's 354, STARTTLS and AUTH
  are the session's own, in Exim's words.

Synchronisation (smtp_in.c check_sync): Exim answers "554 SMTP synchronization
error" and hangs up when the client's next bytes are already in its input
buffer where they should not be.  The session knows exactly that: bytes it
has received and not read yet (``pending_input``), i.e. bytes the client sent
before it could have read the reply now due.  With PIPECONNECT offered to
every host (4.96's default), no command is checked when it is read until the
first DATA or BDAT; MAIL and RCPT are checked after their ACL while PIPELINING
has not been advertised (after HELO, or before any greeting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import auth
from ..events import Answer, ClientLine, Event, Greeted, Note
from ..grammar import Grammar
from ..lines import LineBuffer, TooLong
from ..states import Command
from . import exim_acl as acl
from . import exim_commands as cmds

if TYPE_CHECKING:
    from ..session import Session
    from ..setup import Setup
    from .base import Persona

CMD_BUFFER_SIZE = 16384  # smtp_in.c SMTP_CMD_BUFFER_SIZE
BIG_BUFFER_SIZE = 16384  # a reply that does not fit: "421 Unexpected error" (smtp_printf)


class EximGrammar(Grammar):
    """Exim 4.96's command reader and command loop, for one connection."""

    command_line_end = b"\n"

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        super().__init__(persona, setup)
        self.synprot_count = self.unknown = self.nonmail = 0
        self.free = set(cmds.FREE_ONCE)  # not counted as non-mail once per message
        self.auth_counts = False  # AUTH counts as non-mail after the first AUTH
        self.pipe_connect = True  # pipe_connect_acceptable: until the first DATA/BDAT
        self.sync_pipelining = False  # sync_cmd_limit is NON_SYNC_CMD_PIPELINING
        self.pipelining = self.tls_advertised = self.auth_advertised = False
        self.chunking = self.smtputf8 = False
        self.helo_seen = self.esmtp = False
        self.helo_name: str | None = None  # sender_helo_name (octets)
        self.looked_up = False  # a HELO check looked the client's name up
        self.was_rcpt = self.was_rej_mail = False
        self.last_was_rcpt = self.last_was_rej_mail = False
        self.rcpt_in_progress = False
        self.closedown: str | None = None  # smtp_closedown: only QUIT and RSET still work
        self.tls_seen = False
        self.strict_crlf: bool | None = None  # the message's first line ended with CRLF
        self.rcpt_response: str | None = None
        self.rcpt_same = True
        self.rcpt_count = 0
        self.message_size = -1
        self.prdr = False
        self.rset_only = False  # bdat_getc's repeat_until_rset: only RSET is served

    # --- state --------------------------------------------------------------------

    def reset(self) -> None:
        """smtp_reset: what MAIL, RSET, HELO/EHLO, STARTTLS or a new message forgets."""
        self.rcpt_response, self.rcpt_same = None, True
        self.rcpt_count, self.message_size, self.prdr = 0, -1, False

    def new_message(self) -> None:
        """smtp_setup_msg: the command loop starts again after a message."""
        self.reset()
        self.free = set(cmds.FREE_ONCE)
        self.was_rcpt = self.was_rej_mail = False

    def start_command(self, s: Session) -> None:
        """The top of Exim's command loop: remember what the last command was."""
        if s.tls and not self.tls_seen:  # a STARTTLS handshake: forget the greeting
            self.tls_seen = True
            self.helo_seen = self.esmtp = self.auth_advertised = self.pipelining = False
            self.sync_pipelining, self.helo_name, self.auth_counts = False, None, False
            self.free.add("ehlo")
        self.last_was_rcpt, self.last_was_rej_mail = self.was_rcpt, self.was_rej_mail
        self.was_rcpt = self.was_rej_mail = self.rcpt_in_progress = False

    def setting(self, s: Session, name: str) -> object:
        return s.setup.settings[name]

    def host_in(self, s: Session, name: str) -> bool:
        spec = self.setting(s, name)
        return isinstance(spec, str) and acl.host_in_list(spec, s.client_ip, self.host_name(s))

    def host_name(self, s: Session) -> str | None:
        """sender_host_name: the client's forward-confirmed reverse name, if host_lookup
        covers the client (or a HELO check looked it up)."""
        spec = self.setting(s, "host_lookup")
        if not self.looked_up and not (
            isinstance(spec, str) and acl.host_in_list(spec, s.client_ip)
        ):
            return None
        name, confirmed = s.setup.reverse_of(s.client_ip)
        return name if confirmed else None

    def helo_needed(self, s: Session) -> bool:
        """MAIL without HELO: hosts_require_helo (or helo_verify_hosts), or the lab's switch."""
        if s.policy.smtpd_helo_required is not None:
            return bool(s.policy.smtpd_helo_required)
        return self.host_in(s, "helo_verify_hosts") or self.host_in(s, "hosts_require_helo")

    def helo_verified(self, s: Session) -> bool:
        """smtp_verify_helo: a literal names the client's address, or the reverse name
        is the HELO name, or the HELO name's addresses include the client's."""
        helo = self.helo_name
        if helo is None:
            return False
        if helo.startswith("["):
            return helo[1:].startswith(s.client_ip)
        self.looked_up = True
        name = self.host_name(s)
        if name is not None and name.lower() == helo.lower():
            return True
        return s.client_ip in s.setup.addresses_of(cmds.text_of(helo))

    # --- reading ---------------------------------------------------------------

    def read_command(self, lines: LineBuffer) -> bytes | TooLong | None:
        return lines.piece(b"\n", CMD_BUFFER_SIZE)

    def read_text(self, lines: LineBuffer, limit: int | None = None) -> bytes | TooLong | None:
        # After the SMTP smuggling fix (CVE-2023-51766, in Debian's 4.96): when the
        # message's first line ended with CRLF only CRLF ends a line, and a dot before
        # a bare LF is text; otherwise LF ends lines and ".\n" the message.
        if self.strict_crlf is None:
            line = lines.line(b"\n")
            if isinstance(line, bytes):
                self.strict_crlf = line.endswith(b"\r\n")
            return line
        return lines.line(b"\r\n" if self.strict_crlf else b"\n")

    def final_dot(self, line: bytes) -> bool:
        return line == b".\r\n" or (line == b".\n" and not self.strict_crlf)

    def requires_helo(self, s: Session) -> bool | None:
        return self.helo_needed(s)

    def decode(self, line: bytes) -> str | None:
        return line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")

    def split(self, text: str) -> tuple[str, str]:
        raw = cmds.octets(text).rstrip(cmds.SPACE)
        name = cmds.match(raw)
        if name is None:
            return text.split(" ", 1)[0].upper(), ""
        return cmds.VERBS.get(name, name.upper()), cmds.text_of(cmds.argument(raw, name))

    def command(self, verb: str, argument: str) -> Command | None:
        try:
            return Command(verb)
        except ValueError:
            return None

    def screen(
        self, session: Session, line: bytes | TooLong, more: bool
    ) -> tuple[ClientLine, list[Event]] | None:
        return cmds.screen(self, session, line, more)

    def respond(
        self, session: Session, cmd: Command | None, arg: str, verb: str
    ) -> list[Event] | None:
        if cmd is None:  # the greeting: PIPECONNECT offered to this host, or input too early
            self.pipe_connect = self.host_in(session, "pipelining_connect_advertise_hosts")
            if not self.pipe_connect and session.pending_input and self.enforce_sync(session):
                return self.sync_failure(session, "CONNECT")
            return None
        return cmds.respond(self, session, cmd, arg, verb)

    def enforce_sync(self, s: Session) -> bool:
        return bool(self.setting(s, "smtp_enforce_sync"))

    # --- replies and Exim's counters -------------------------------------------------

    def synprot(
        self, s: Session, key: str, label: str | None, cmd: Command | None = None, **fields: object
    ) -> list[Event]:
        """synprot_error: the reply, counted; past smtp_max_synprot_errors a second
        line "Too many syntax or protocol errors" with the same code, and Exim hangs up."""
        self.synprot_count += 1
        over = self.synprot_count > self.limit(s, "smtp_max_synprot_errors")
        lines = list(s.answer(key, label, **fields).lines)
        code = int(lines[-1][:3])
        if over:
            last = s.answer("exim_too_many_errors", label, code=code).lines
            lines = [ln[:3] + "-" + ln[4:] for ln in lines] + list(last)
        events: list[Event] = [self.emit(s, lines, label), *s.advance(cmd, code)]
        return events + (s.hang_up() if over else [])

    def count_only(self, s: Session) -> list[Event]:
        """synprot_error without a reply of its own (NUL, a bad HELO name): counted,
        and past the limit Exim hangs up after the command's own reply."""
        self.synprot_count += 1
        return s.hang_up() if self.synprot_count > self.limit(s, "smtp_max_synprot_errors") else []

    def unknown_command(self, s: Session) -> list[Event]:
        """An unrecognised command: counted as a syntax error, and the one past
        smtp_max_unknown_commands gets "Too many unrecognized commands" and a hang-up."""
        self.unknown += 1
        if self.unknown > self.limit(s, "smtp_max_unknown_commands"):
            return [s.answer("too_many_unknown", None), *s.hang_up()]
        return self.synprot(s, "unknown_command", None)

    def too_many_nonmail(self, s: Session, name: str) -> bool:
        """smtp_accept_max_nonmail: too many commands that are not part of sending mail."""
        if cmds.COMMANDS[name][1] if name != "auth" else not self.auth_counts:
            return False
        if name in cmds.FREE_ONCE and name in self.free:
            return False
        if not self.host_in(s, "smtp_accept_max_nonmail_hosts"):
            return False
        self.nonmail += 1
        return self.nonmail > self.limit(s, "smtp_accept_max_nonmail")

    def sync_failure(self, s: Session, label: str | None) -> list[Event]:
        return [s.answer("exim_sync_error", label), *s.hang_up()]

    def limit(self, s: Session, name: str) -> int:
        value = self.setting(s, name)
        assert isinstance(value, int)
        return value

    def emit(self, s: Session, lines: list[str] | tuple[str, ...], label: str | None) -> Answer:
        """A reply as smtp_printf writes it: one that does not fit Exim's buffer becomes
        "421 Unexpected error" (smtp_closedown), after which only QUIT and RSET work."""
        if any(len(cmds.octets(ln)) + 2 >= BIG_BUFFER_SIZE for ln in lines):
            self.closedown = "Unexpected error"
            return s.answer("exim_closedown", label, message=self.closedown)
        if self.rcpt_in_progress:
            self.note_rcpt_response(lines[0])
        return Answer(tuple(lines), label)

    def note_rcpt_response(self, first: str) -> None:
        """The first thing an RCPT said: DATA quotes it when every RCPT said the same."""
        self.rcpt_in_progress = False
        if self.rcpt_response is None:
            self.rcpt_response = first
        elif self.rcpt_response != first:
            self.rcpt_same = False

    def ehlo_lines(self, s: Session, first: str) -> list[str]:
        """The EHLO reply: Exim's keywords, in Exim's order, as its settings say."""
        limit = s.policy.message_size_limit
        words = [f"SIZE {limit}" if limit > 0 else "SIZE"]
        if self.setting(s, "accept_8bitmime"):
            words.append("8BITMIME")
        self.pipelining = self.auth_advertised = self.tls_advertised = self.smtputf8 = False
        if self.host_in(s, "pipelining_advertise_hosts"):
            self.pipelining = self.sync_pipelining = True
            words += ["PIPELINING"] + (["PIPECONNECT"] if self.pipe_connect else [])
        if s.setup.users and (s.tls or not s.setup.auth_require_tls):
            self.auth_advertised = True
            words.append("AUTH " + " ".join(auth.MECHANISMS))
        if self.host_in(s, "chunking_advertise_hosts"):
            self.chunking = True
            words.append("CHUNKING")
        if s.setup.tls_offered and not s.tls:
            self.tls_advertised = True
            words.append("STARTTLS")
        if self.setting(s, "prdr_enable"):
            words.append("PRDR")
        if self.setting(s, "accept_8bitmime") and self.host_in(s, "smtputf8_advertise_hosts"):
            self.smtputf8 = True
            words.append("SMTPUTF8")
        words = [w for w in words if w.split(" ", 1)[0] not in s.hidden_keywords] + ["HELP"]
        return [first[:3] + "-" + first[4:]] + [f"250-{w}" for w in words[:-1]] + ["250 HELP"]

    def greeted(self, s: Session, verb: str, arg: str, lines: list[str]) -> list[Event]:
        """HELO/EHLO accepted: the session is greeted and the transaction reset."""
        s.helo, s.extended = arg, verb == "EHLO"
        self.helo_seen = True
        self.reset()
        events: list[Event] = [Greeted(arg, s.extended), Answer(tuple(lines), verb)]
        events += s.advance(Command(verb), 250)
        identity = s.setup.identity
        if identity is not None:
            note = identity.at_helo(arg, s.client_ip)
            if note:
                events.append(Note(f"{identity.name}: {note}"))
        return events


def grammar(persona: Persona, setup: Setup | None = None) -> Grammar:
    """Persona.grammar for exim: a fresh reader per connection."""
    return EximGrammar(persona, setup)
