"""The message part of a session: DATA's text, the final dot, BDAT chunks, storing.

After DATA's 354 (``_begin_message``) the session reads message text, not
commands: the grammar reads each line (its limits, its dot-unstuffing) until
the final dot (§4.1.1.4), which is a fault point like a command.  BDAT
(RFC 3030) reads a chunk whole before its fault point; the chunks add up
until the last one.  Either way the message is stored (``_store``) with the
trace fields this server writes (``accepted``: a Received: field in the
persona's format, §4.4) before its 250 goes out, so every message
acknowledged is in the mailbox.  A relay persona (clamsmtpd) stores what the
server behind it accepted through ``accepted`` too.
"""

from __future__ import annotations

import random

from . import states, trace
from .chunking import Chunk, longest_line
from .events import ClientLine, Event, MessageAccepted, Note, Pending, Turn
from .lines import MessageText, TooLong
from .session_core import SessionCore, code_of
from .states import Command, Stage, State


class MessagePart(SessionCore):
    """Message text and BDAT chunks: read, checked, stored with trace fields."""

    # --- DATA: text lines until the final dot (§4.1.1.4) -------------------------

    @property
    def _text_read_limit(self) -> int:
        if self.grammar.text_overflow_key is not None:
            return self._lines.limit  # a program that gives up on a long text line at once
        # A server that takes long text lines (Postfix) keeps them whole, up to the size limit.
        longest = min(self.policy.text_line_limit, self.policy.message_size_limit) + 2
        return max(self._lines.limit, longest)

    def _begin_message(self, before: State) -> None:
        """354 went out: message text follows, until the final dot (§4.1.1.4)."""
        # Only a sequence variant (clamsmtpd's "data_spooled_first") lets DATA through
        # without recipients: the table's own refusal then answers the final dot.
        self._dot_refusal = states.refused_after_dot(
            before, helo_required=self._helo_required, variants=self._variants
        )
        self._data_from = before
        self._message = self.grammar.message_text(
            self.policy.message_size_limit, self.policy.text_line_limit
        )

    def _text_turn(self) -> Turn | None:
        message = self._message
        assert message is not None
        seen: list[ClientLine] = []
        progressed = False
        while True:
            line = self.grammar.read_text(self._lines, self._text_read_limit)
            if line is None:
                return Turn(tuple(seen)) if progressed else None
            progressed = True
            if isinstance(line, TooLong) and self.grammar.text_overflow_key is not None:
                self._message = None  # the server gives up on the message at once
                seen.append(ClientLine(b"", None, f"a text line of {line.size} bytes (not shown)"))
                answer = self._answer(self.grammar.text_overflow_key, None)
                return Turn(tuple(seen), tuple(self._finish([answer])))
            if isinstance(line, bytes):
                line = self.grammar.text_bytes(line)
            if isinstance(line, bytes) and self.grammar.final_dot(line):
                seen.append(ClientLine(line, "."))
                return self._final_dot(tuple(seen), message)
            if isinstance(line, bytes) and (own := self.grammar.text_line(line)) is not None:
                if own.close:  # said at once, and the connection ends
                    seen.append(ClientLine(line, None, "message text"))
                    self._message = None
                    return Turn(tuple(seen), (*self._closing_reply(own.key), *self.hang_up()))
                message.refuse(own.key)
            if message.add(line):
                assert isinstance(line, bytes)
                seen.append(ClientLine(line, None, "message text"))

    def _final_dot(self, seen: tuple[ClientLine, ...], message: MessageText) -> Turn:
        self._message = None
        if self._pipelined():  # more was sent behind the final dot: nothing is stored
            return Turn(seen, tuple(self._finish([self._answer("pipelining", ".")])))
        events: list[Event] = []
        if message.hidden:
            events.append(
                Note(
                    f"{message.hidden} more lines of message text "
                    f"({message.hidden_bytes} bytes) not shown"
                )
            )
        if self._dot_refusal is not None:
            # The proxy's 354 came first; the server behind it refuses now and its
            # transaction is where it was.
            events.append(self._answer(self._dot_refusal, "."))
            entered_from = self._data_from
            events += self._move(states.after_final_dot(entered_from, ok=False, refused=True))
            self.errors += 1
            return Turn(seen, tuple(self._finish(events, count=False)))
        refused = self.checks.at_dot(self._session, message)
        if refused is not None:
            events.append(self._answer(refused.key, ".", arg=refused.arg))
            events += self._move(states.after_final_dot(self._data_from, ok=False))
            self._reset_transaction()
            return Turn(seen, tuple(self._finish(events)))
        self._content = message.content()
        return Turn(seen, tuple(events), Pending(Stage.DOT, Command.END_OF_DATA, ".", ""))

    # --- BDAT: a chunk read whole, then its reply (RFC 3030 §2) ------------------

    def _bdat_line(self, arg: str, verb: str) -> list[Event]:
        """A BDAT line: refused at once, or the chunk is read before anything is said."""
        # Both refusals leave the chunk unread: its bytes come as commands next, unless
        # the persona's reply is a 521 (Postfix), which closes (RFC 7504 §3).
        if not self.offers("CHUNKING"):
            return self._closing_reply("bdat_not_offered", verb)
        bdat = self.grammar.bdat(arg)
        if bdat is None:
            return self._closing_reply("bdat_syntax", verb)
        command = Command.BDAT_LAST if bdat.last else Command.BDAT
        self._chunk = Chunk(bdat, arg, keep=self._chunk_refusal(command, bdat.size) is None)
        return []

    def _chunk_turn(self) -> Turn | None:
        chunk = self._chunk
        assert chunk is not None
        if not chunk.feed(self._lines) and not chunk.complete:
            return None
        if not chunk.complete:
            return Turn(())  # part of the chunk: the idle timer starts over
        shown, hidden = chunk.lines(self._chunks.budget())
        self._chunks.shown += len(shown)
        seen = tuple(ClientLine(ln, None, "BDAT chunk") for ln in shown)
        notes: list[Event] = []
        if hidden:
            notes.append(Note(f"{hidden} more bytes of the BDAT chunk not shown"))
        command = Command.BDAT_LAST if chunk.command.last else Command.BDAT
        key = self._chunk_refusal(command, chunk.command.size)
        if key is None:
            self._content = bytes(chunk.data)
            self._chunk = None
            return Turn(seen, tuple(notes), Pending(Stage.BDAT, command, "BDAT", chunk.argument))
        self._chunk = None
        return Turn(seen, (*notes, *self._finish(self._chunk_refused(command, key, chunk))))

    def _chunk_refusal(self, command: Command, size: int) -> str | None:
        """The reply key refusing a chunk of ``size`` octets, or None to take it."""
        if size == 0 and command is Command.BDAT and self.persona.refuses_empty_chunk:
            return "bdat_empty"
        if self._chunks.failed and self.state is State.CHUNKING:
            return "bdat_discarded"
        key = states.refusal(
            self.state, command, helo_required=self._helo_required, variants=self._variants
        )
        if key is not None:
            return key
        if not self._chunks.fits(size, self.policy.message_size_limit):
            return "bdat_too_big"  # RFC 1870 with RFC 3030 §4: the limit spans the chunks
        return None

    def _chunk_refused(self, command: Command, key: str, chunk: Chunk) -> list[Event]:
        answer = self._answer(key, "BDAT", size=chunk.command.size, total=self._chunks.size)
        events: list[Event] = [answer]
        new = states.after_reply(
            self.state,
            command,
            code_of(answer),
            helo_required=self._helo_required,
            variants=self._variants,
        )
        events += self._move(new)
        if new is State.CHUNKING:
            self._chunks.failed = True  # RFC 3030 §2: the rest of the message is discarded
        elif command is Command.BDAT_LAST and new is not State.CLOSED:
            self._chunks.reset()
            if new is State.GREETED:
                self._reset_transaction()
        return events

    def _bdat(self, arg: str, verb: str) -> list[Event]:
        """A chunk that passed every check (and its fault point): take it, more to come."""
        self._chunks.add(self._content)
        size, total = len(self._content), self._chunks.size
        return self._reply(Command.BDAT, "bdat_ok", "BDAT", size=size, total=total)

    def _bdat_last(self, arg: str, verb: str) -> list[Event]:
        """The last chunk: the message is complete, and stored as a DATA message is."""
        self._chunks.add(self._content)
        size, total = len(self._content), self._chunks.size
        content = self._chunks.content()
        self._chunks.reset()
        binary = any(p.upper() == "BODY=BINARYMIME" for p in self.mail_options)
        if not binary and longest_line(content) > self.policy.text_line_limit:
            # §4.5.3.1.6 holds for BDAT too, unless the body is binary (RFC 3030 §3).
            events = self._reply(Command.BDAT_LAST, "text_line_too_long", "BDAT")
            self._reset_transaction()
            return events
        return self._store(content, Command.BDAT_LAST, "bdat_last_ok", size=size, total=total)

    # --- storing the message, with the trace fields of this server -------------------

    def _end_of_data(self, arg: str, verb: str) -> list[Event]:
        return self._store(self._content, Command.END_OF_DATA, "data_ok")

    def _store(self, content: bytes, cmd: Command, key: str, **fields: object) -> list[Event]:
        """Store the message ``content`` with its trace fields, then reply ``key`` (250)."""
        queue_id = self._new_queue_id()
        stored = self.accepted(
            queue_id, self.mail_from or "", tuple(self.rcpt_tos), content, self._last_rcpt
        )
        events: list[Event] = [stored]  # stored before its 250 goes out
        label = "." if cmd is Command.END_OF_DATA else "BDAT"
        events += self._reply(cmd, key, label, queue_id=queue_id, **fields)
        self._reset_transaction()
        return events

    def trace_facts(
        self,
        queue_id: str,
        sender: str,
        recipients: tuple[str, ...],
        last_rcpt: str | None = None,
    ) -> trace.TraceFacts:
        """What this server knows about a message it takes now (its Received: field)."""
        ptr, confirmed = self.setup.reverse_of(self.client_ip)
        return trace.TraceFacts(
            helo_verb=("EHLO" if self.extended else "HELO") if self.helo else None,
            helo_name=self.helo,
            client_ip=self.client_ip,
            client_ptr=ptr,
            client_ptr_confirmed=confirmed,
            server_name=self.setup.hostname,
            queue_id=queue_id,
            recipients=recipients,
            sender=sender,
            date=self.setup.clock(),
            tls=self.tls_info,
            auth_user=self.user,
            last_rcpt=last_rcpt,
        )

    def accepted(
        self,
        queue_id: str,
        sender: str,
        recipients: tuple[str, ...],
        content: bytes,
        last_rcpt: str | None = None,
        parameters: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] | None = None,
    ) -> MessageAccepted:
        """The message this session's server takes, stamped with its trace fields
        (a relay calls it for what the server behind it accepted, with the ESMTP
        ``parameters`` of MAIL and of each RCPT it passed on)."""
        facts = self.trace_facts(queue_id, sender, recipients, last_rcpt)
        now, ptr, confirmed = facts.date, facts.client_ptr, facts.client_ptr_confirmed
        # RFC 5321 §4.4: a Received: field on top, in the persona's own format; the lab's
        # mailbox is final delivery, so Return-Path: (and the program's other delivery
        # fields) too.
        stamped = trace.stamp(content, trace.trace(facts, self.persona.name))
        return MessageAccepted(
            queue_id=queue_id,
            mail_from=sender,
            rcpt_tos=recipients,
            content=stamped,
            helo=self.helo,
            client_ip=self.client_ip,
            client_name=ptr if confirmed else None,
            server_name=self.setup.hostname,
            protocol=self._protocol_keyword(),
            received=now,
            sent=content,
            mail_parameters=parameters[0] if parameters else tuple(self.mail_options),
            rcpt_parameters=parameters[1] if parameters else tuple(self._rcpt_parameters),
        )

    def _protocol_keyword(self) -> str:
        """RFC 3848's WITH keyword for a Received: field: SMTP, ESMTP, ESMTPS, ESMTPSA."""
        if not self.extended:
            return "SMTP"
        return "ESMTP" + ("S" if self.tls else "") + ("A" if self.user else "")

    def _new_queue_id(self) -> str:
        if self.setup.queue_id is not None:
            return self.setup.queue_id()
        if self._rng is None:
            self._rng = random.Random()
        return self.persona.new_queue_id(self._rng)
