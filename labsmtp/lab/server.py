"""The lab's SMTP server: aiosmtpd's threaded Controller, our dialogue rules.

Theory of operation.  ``LabServer`` owns one aiosmtpd ``Controller`` per
start (a stopped Controller cannot start again: its loop is closed).  The
Controller runs an asyncio loop on a daemon thread; each connection gets a
``_LabSMTP`` protocol object.  ``_LabSMTP`` keeps aiosmtpd's plumbing (the
stream reader, the session and envelope objects, the handler hooks) but
replaces its command loop: every command is checked against the state table
(``states.py``), answered in the persona's words (``personas.py``) under the
server's ``Policy``, and both directions are written to the ``Transcript``.
Accepted messages go to the ``Mailbox`` through the handler's
``handle_DATA`` hook, before the 250 is sent, so a 250 always means stored.

Traps from ``shared/reference/aiosmtpd-notes.md`` handled here: port 0 (read
the bound port before the self-test), ``::1`` (always bind an explicit
host), slow ``getfqdn`` (always pass a server name), restart after stop (new
Controller), a taken port (checked first, fails at once), the self-test
connection (kept out of the transcript), the ``mail.log`` logger (silenced),
idle timeout (421 4.4.2 before closing, §4.5.3.2).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import atexit
import datetime
import errno
import ipaddress
import logging
import random
import socket
import threading
import time
import warnings
import weakref
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from ..errors import LabValueError, PortInUseError
from ..protocol import auth as _auth
from ..protocol import states
from ..protocol.personas import Persona, get_persona
from ..protocol.policy import MODE_ABOUT, Policy, check_mode
from ..protocol.replies import Reply, reply_from_lines
from ..protocol.states import Command, State
from .faults import FaultEngine
from .mailbox import Mailbox, StoredMessage
from .transcript import CLIENT, EVENT, SERVER, Line, SessionInfo, Transcript

# aiosmtpd logs every connection; in a notebook those lines (and tracebacks)
# would land in whichever cell runs next.  The transcript is the record.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
logging.getLogger("mail.log").propagate = False

DEFAULT_HOSTNAME = "mx.lab.example.org"
_REVERSE_NAMES = {"127.0.0.1": "localhost", "::1": "localhost"}  # {peer}: what a PTR lookup says
_READ_LIMIT = 16384  # stream buffer (fits RFC 4954's 12,288-octet AUTH lines); longer are refused
_AUTH_LINE_LIMIT = 12288  # RFC 4954 §4: AUTH lines may be this long, whatever the command limit
_DATA_LINES_KEPT = 200  # message lines recorded per message; the rest summarised
_ESMTP_PARAMS = {
    "MAIL": {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"},
    "RCPT": {"NOTIFY", "ORCPT"},
}

_registry: dict[str, LabServer] = {}
_registry_lock = threading.Lock()


def stop_all() -> int:
    """Stop every lab server this kernel started; returns how many were running."""
    with _registry_lock:
        servers = list(_registry.values())
    for s in servers:
        s.stop()
    return len(servers)


def running_servers() -> list[LabServer]:
    """The lab servers running in this process."""
    with _registry_lock:
        return list(_registry.values())


atexit.register(stop_all)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check_port(host: str, port: int) -> None:
    """Fail at once, with advice, if ``port`` is taken (asyncio would wait 5 s)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
        s.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use by another program or server. "
                f"Leave out port= to let the lab pick a free one, choose another port, "
                f"or stop the other server (labsmtp.stop_all() stops every lab server "
                f"in this notebook)."
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PortInUseError(
                f"not allowed to listen on port {port} (ports below 1024 need root). "
                f"Use a port such as 2525, or leave out port= to let the lab pick one."
            ) from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    finally:
        s.close()


class _Handler:
    """aiosmtpd-style handler: ``handle_DATA`` stores the message (the only hook we need)."""

    def __init__(self, lab: LabServer):
        self.lab = lab

    async def handle_DATA(self, server, session, envelope) -> str:
        lab = self.lab
        qid = lab._next_queue_id()
        lab.mailbox.add(
            StoredMessage(
                queue_id=qid,
                helo=session.host_name,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                client=session.peer[0] if session.peer else "",
                content=envelope.original_content or b"",
                session=server._sid,
            )
        )
        return qid


class _Controller(Controller):
    """aiosmtpd's Controller, taught port 0 and to tell its self-test apart."""

    def __init__(self, lab: LabServer, **kw):
        self.lab = lab
        super().__init__(_Handler(lab), **kw)

    def factory(self):
        return _LabSMTP(self.lab, self.handler, loop=self.loop, **self.SMTP_kwargs)

    def _trigger_server(self):
        # Read the real port (port=0 asks the kernel for one) before the self-test,
        # which otherwise connects to port 0 and fails (aiosmtpd #388, #276).
        self.port = self.server.sockets[0].getsockname()[1]
        probe = socket.socket(socket.AF_INET6 if ":" in self.hostname else socket.AF_INET)
        probe.settimeout(1.0)
        try:
            probe.bind((self.hostname, 0))
            self.lab._probe_peers.add(probe.getsockname()[:2])
            probe.connect((self.hostname, self.port))
            probe.recv(1024)
        finally:
            probe.close()


@dataclass
class _Session:
    """The lab's per-connection state, beside aiosmtpd's Session and Envelope."""

    state: State = State.CONNECTED
    errors: int = 0
    unknown: int = 0  # unknown commands so far (Persona.unknown_command_limit)
    tls_restarted: bool = False  # STARTTLS done: a fresh EHLO is needed before MAIL


class _Fields(dict):
    """Template values computed on first use (str.format_map asks only for what it needs)."""

    def __init__(self, proto, extra: dict):
        super().__init__(extra)
        self.proto = proto

    def __missing__(self, key):
        value = self[key] = self.proto._field(key)
        return value


class _LabSMTP(SMTP):
    """One connection: aiosmtpd's plumbing, the lab's dialogue rules."""

    line_length_limit = _READ_LIMIT  # the StreamReader's buffer limit

    def __init__(self, lab: LabServer, handler, *, loop, hostname: str, timeout: float, **_unused):
        # aiosmtpd's SMTP.__init__ walks every method of the protocol and the handler
        # (inspect.getmembers, dir) on each connection to find AUTH mechanisms and
        # smtp_VERB methods; the lab dispatches and authenticates itself, so that
        # work (a fifth of the server's time per message) is skipped.  These are
        # the attributes aiosmtpd 1.4.6's connection_made / connection_lost /
        # eof_received / _timeout_cb read.
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.__ident__ = "labsmtp"
        self.event_handler = handler
        self.hostname = hostname
        self.data_size_limit, self.enable_SMTPUTF8, self._decode_data = None, True, False
        self.tls_context, self.require_starttls = None, False
        self._timeout_duration, self._timeout_handle = timeout, None
        self._tls_handshake_okay, self._tls_protocol, self._original_transport = True, None, None
        self.session = self.envelope = self.transport = self._handler_coroutine = None
        self._auth_require_tls, self._auth_required, self._proxy_timeout = True, False, None
        self._authenticator = self._auth_callback = None
        self._auth_methods, self._smtp_methods, self._ehlo_hook_ver = {}, {}, None
        self._handle_hooks = {"DATA": handler.handle_DATA}
        self._enforce_call_limit = False
        self.lab = lab
        self.persona: Persona = lab.persona
        self.policy: Policy = lab.policy
        self.lab_session = _Session()
        self._sid = 0
        self._client = ""
        self._probe = False
        self._info: SessionInfo | None = None
        self._closing = False
        self._line = ""  # the command being answered: {line}, {verb}, {word}, {keyword}

    # --- connection edges ------------------------------------------------

    def connection_made(self, transport):
        peer = transport.get_extra_info("peername")
        self._probe = self.transport is None and peer[:2] in self.lab._probe_peers
        if self._probe:
            self.lab._probe_peers.discard(peer[:2])
        super().connection_made(transport)
        if self.session.ssl is None and transport.get_extra_info("ssl_object") is not None:
            # Implicit TLS (RFC 8314 §3): the handshake came before the first SMTP byte.
            self.session.ssl = {
                k: transport.get_extra_info(k)
                for k in ("sslcontext", "peercert", "cipher", "ssl_object")
            }
        if self._probe or self._info is not None:
            return
        self._sid = self.lab._new_session_id()
        self._client = f"{peer[0]}:{peer[1]}"
        self._info = SessionInfo(
            self._sid, self._client, time.time(), states=[State.CONNECTED.value]
        )
        self.lab.transcript.open_session(self._info)
        self.lab._active.add(self)
        self._event(f"connection from {self._client}")
        if self.session.ssl is not None:
            self._event(f"implicit TLS (RFC 8314): {self._tls_summary()}")
        if self.lab.mode == "open-relay":
            self._event(
                "WARNING: this lab server is a deliberately misconfigured OPEN RELAY: "
                "it accepts mail for any domain from anyone"
            )

    def connection_lost(self, error):
        if not self._probe and self._info is not None and self._info.ended is None:
            self._info.ended = time.time()
            self.lab._active.discard(self)
            why = (
                "client closed the connection"
                if not self._closing
                else "server closed the connection"
            )
            self._event(why)
            self._set_state(State.CLOSED)
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels and re-creates a timer for every line; one timer per
        # session that re-arms itself when it fires early costs far less.
        self._last_active = self.loop.time()
        if self._timeout_handle is None or self._timeout_handle.cancelled():
            self._timeout_handle = self.loop.call_later(
                duration or self._timeout_duration, self._timeout_cb
            )

    def _timeout_cb(self):
        idle = self.loop.time() - self._last_active
        if idle < self._timeout_duration and self.transport is not None:
            self._timeout_handle = self.loop.call_later(
                self._timeout_duration - idle, self._timeout_cb
            )
            return
        # aiosmtpd closes silently; RFC 5321 §3.8 / §4.5.3.2 expect 421 first.
        if self.transport is not None and not self._probe:
            self._write_reply(self.persona.render("timeout", self._fields()), None)
        self._close()

    def _close(self):
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    # --- writing and recording -------------------------------------------

    def _fields(self, **extra) -> _Fields:
        """The values a reply template may use; each is computed only if the template asks."""
        return _Fields(self, extra)

    def _field(self, key: str):
        client = self._client.rsplit(":", 1)[0]
        verb, _, arg = self._line.partition(" ")
        if key == "hostname":
            return self.hostname
        if key == "client":
            return client
        if key == "peer":
            name = _REVERSE_NAMES.get(client)  # the lab's reverse DNS: only /etc/hosts' localhost
            return f"{name} [{client}]" if name else f"[{client}]"
        if key == "date":
            return self.persona.date_format.format(d=datetime.datetime.now(datetime.timezone.utc))
        if key == "limit":
            return self.policy.message_size_limit
        if key == "line":
            return self._line
        if key == "verb":
            return verb.upper()
        if key == "word":
            return arg.strip().split(" ", 1)[0]
        if key == "keyword":
            return arg.partition(":")[0].strip() if ":" in arg else arg.strip().split(" ", 1)[0]
        raise KeyError(key)

    def _event(self, note: str) -> None:
        self._record(Line(self._sid, time.time(), EVENT, b"", self._client, note=note))

    def _record(self, line: Line) -> None:
        self.lab.transcript.add(line)
        for cb in self.lab._listeners:
            try:
                cb(line)
            except Exception:  # a broken printer must not break the server
                pass

    def _write_reply(
        self, lines: list[str], command: str | None, injected: str | None = None
    ) -> Reply:
        raw = "".join(ln + "\r\n" for ln in lines).encode("utf-8", "surrogateescape")
        reply = reply_from_lines(lines, raw, command, injected)
        # Record before writing: a client that has read a reply finds it in the transcript.
        self._record(
            Line(
                self._sid,
                time.time(),
                SERVER,
                raw,
                self._client,
                command=command,
                reply=reply,
                tls=self.session.ssl is not None if self.session else False,
                injected=injected,
            )
        )
        if self.transport is not None and not self.transport.is_closing():
            self.lab.faults.write(self, raw)  # the fault engine may slow the link
        return reply

    async def _reply(self, key: str, command: str | None, **fields) -> Reply:
        reply = self._write_reply(self.persona.render(key, self._fields(**fields)), command)
        if self._writer is not None and self.transport is not None:
            try:
                await self._writer.drain()
            except ConnectionError:
                pass
        return reply

    def _set_state(self, state: State) -> None:
        if state is not self.lab_session.state:
            self.lab_session.state = state
            if self._info is not None:
                self._info.states.append(state.value)

    # --- the command loop (replaces aiosmtpd's _handle_client) ----------

    async def _handle_client(self) -> None:
        if self._probe:
            # aiosmtpd's start-up self-test: greet it, record nothing, and close our
            # side too (otherwise the transport lingers until garbage collection).
            self.transport.write(f"220 {self.hostname} ESMTP\r\n".encode())
            self._close()
            return
        try:
            await self._dialogue()
        except asyncio.CancelledError:
            # aiosmtpd cancels us at EOF (eof_received); close our half too, or the
            # socket would linger half-open until the server stops.
            self._close()
            raise
        except ConnectionError:
            pass
        except Exception as exc:  # never a silent hang-up, never a traceback in a cell
            self.lab._internal_errors.append(repr(exc))
            self._write_reply(
                [f"421 4.3.0 {self.hostname} Internal error, closing connection"], None
            )
            self._close()

    async def _dialogue(self) -> None:
        lab, ls = self.lab, self.lab_session
        if len(lab._active) > self.policy.max_connections:
            await self._reply("too_many_connections", "CONNECT")
            self._close()
            return
        await self.lab.faults.run(self, "connect", lambda: self._reply("greeting", "CONNECT"))
        while self.transport is not None and not self.transport.is_closing():
            if ls.errors >= self.policy.hard_error_limit:
                await self._reply("too_many_errors", None)
                self._close()
                return
            raw = await self._read_line()
            if raw is None:
                return
            reply = await self._command(raw)
            if reply is not None and reply.klass in ("4xx", "5xx") and reply.code != 421:
                ls.errors += 1
            if ls.state is State.CLOSED:
                self._close()
                return

    async def _read_line(self) -> bytes | None:
        """One command line (bare LF tolerated, as Postfix does); None at EOF."""
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            if e.partial:
                self._record(
                    Line(
                        self._sid,
                        time.time(),
                        CLIENT,
                        e.partial,
                        self._client,
                        note="incomplete line before the connection closed",
                    )
                )
            return None
        except asyncio.LimitOverrunError as e:
            await self._reader.read(e.consumed)
            size = e.consumed
            while True:
                try:
                    rest = await self._reader.readuntil(b"\n")
                    size += len(rest)
                    break
                except asyncio.LimitOverrunError as e2:
                    await self._reader.read(e2.consumed)
                    size += e2.consumed
            self._record(
                Line(
                    self._sid,
                    time.time(),
                    CLIENT,
                    b"",
                    self._client,
                    note=f"a command line of {size} bytes (not shown)",
                )
            )
            return b"\x00TOO-LONG"
        self._reset_timeout()
        return line

    async def _command(self, raw: bytes) -> Reply | None:
        ls = self.lab_session
        if raw == b"\x00TOO-LONG":
            return await self._reply("line_too_long", None)
        text_line = raw.rstrip(b"\r\n")
        try:
            line = text_line.decode("utf-8")
        except UnicodeDecodeError:
            line = None
        verb = (line or "").split(" ", 1)[0].upper()
        self._line = line or ""
        self._record(
            Line(
                self._sid,
                time.time(),
                CLIENT,
                raw,
                self._client,
                command=verb or None,
                tls=self.session.ssl is not None,
            )
        )
        if line is None:
            return await self._reply("bad_bytes", None)
        if not line.strip():
            return await self._unknown("empty_line", None)
        limit = self.policy.command_line_limit
        if verb == "AUTH":
            limit = max(limit, _AUTH_LINE_LIMIT)
        if len(raw if raw.endswith(b"\r\n") else raw + b"\r") > limit:
            return await self._reply("line_too_long", verb)
        arg = line[len(verb) :].strip()
        try:
            cmd = Command(verb)
        except ValueError:
            cmd = None
        persona = self.persona
        if persona.keyword_is_part_of_verb and cmd in (Command.MAIL, Command.RCPT):
            # Exim and OpenSMTPD parse "MAIL FROM:" / "RCPT TO:" as the verb itself.
            if not arg.upper().startswith("FROM:" if cmd is Command.MAIL else "TO:"):
                cmd = None
        if cmd is None or cmd is Command.END_OF_DATA or verb in persona.unsupported_verbs:
            return await self._unknown("unknown_command", verb)
        if cmd in (Command.EXPN, Command.HELP):
            return await self._reply(cmd.value.lower(), verb, arg=arg)
        if cmd is Command.STARTTLS and not self.lab._tls_offered():
            return await self._reply("starttls_not_offered", verb)
        if cmd is Command.AUTH and not self.lab._auth_offered():
            return await self._reply("auth_not_offered", verb)
        # After STARTTLS the client MUST send EHLO again (RFC 3207 §4.2), whatever the
        # persona's leniency about MAIL before HELO on a fresh connection.
        helo_required = self.lab._helo_required() or self.lab_session.tls_restarted
        variants = persona.sequence_variants  # the persona's departures from the table
        key = states.refusal(ls.state, cmd, helo_required=helo_required, variants=variants)
        if key is not None:
            return await self._reply(key, verb)
        handler = getattr(self, f"_lab_{cmd.name}")
        reply = await self.lab.faults.run(self, cmd, lambda: handler(arg), arg)
        if reply is None:  # handled its own state (DATA)
            return None
        self._set_state(
            states.next_state(
                ls.state, cmd, ok=reply.ok, helo_required=helo_required, variants=variants
            )
        )
        if cmd in (Command.HELO, Command.EHLO, Command.RSET) and reply.ok:
            self._set_rset_state()  # §4.1.4: HELO/EHLO clear the transaction like RSET
        return reply

    async def _unknown(self, key: str, verb: str | None) -> Reply:
        """An unknown command; past the persona's unknown_command_limit, the last word and close."""
        ls, limit = self.lab_session, self.persona.unknown_command_limit
        ls.unknown += 1
        if limit and ls.unknown > limit:
            reply = await self._reply("too_many_unknown", verb)
            self._close()
            return reply
        return await self._reply(key, verb)

    def _refuses_argument(self, verb: str, arg: str) -> bool:
        return bool(arg) and verb in self.persona.no_argument_verbs

    # --- one method per command (aiosmtpd's smtp_VERB, renamed) ------------

    async def _helo(self, arg: str, verb: str) -> Reply:
        key_syntax = "helo_syntax" if verb == "HELO" else "ehlo_syntax"
        if not arg or " " in arg.strip():
            return await self._reply(key_syntax, verb)
        verdict = self.policy.helo_verdict(arg, resolves=self.lab._resolver)
        if verdict:
            return await self._reply(verdict, verb, arg=arg)
        self.session.host_name = arg
        self.session.extended_smtp = verb == "EHLO"
        if self._info is not None:
            self._info.helo = arg
        if verb == "HELO":
            # §4.1.1.1: a server MUST NOT send the extended (multi-line) reply to HELO.
            return await self._reply("helo_ok", verb, arg=arg)
        keywords = self.lab.faults.keywords(self, self._ehlo_keywords())  # noext faults
        lines = self.persona.ehlo(keywords, self._fields(arg=arg))
        reply = self._write_reply(lines, verb)
        await self._writer.drain()
        return reply

    async def _lab_HELO(self, arg):
        return await self._helo(arg, "HELO")

    async def _lab_EHLO(self, arg):
        return await self._helo(arg, "EHLO")

    def _parse_path(self, arg: str, keyword: str) -> tuple[str, list[str]] | None:
        """Split 'FROM:<a@b> SIZE=10' into ('a@b', ['SIZE=10']); None if malformed."""
        if arg[: len(keyword)].upper() != keyword:
            return None
        rest = arg[len(keyword) :].strip()
        if not rest:
            return None
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                return None
            addr, params = rest[1:end], rest[end + 1 :].split()
        elif self.persona.requires_brackets:
            return None
        else:
            addr, *params = rest.split()
        if any(c in addr for c in " <>") or addr.count("@") > 1:
            return None
        if "@" in addr:
            local, _, domain = addr.partition("@")
            if not local or not domain:
                return None
        if ":" in addr and addr.startswith("@"):  # source route (§4.1.2): drop it
            addr = addr.split(":", 1)[1]
        return addr, params

    async def _lab_MAIL(self, arg):
        if self.lab.mode == "submission" and not self.session.authenticated:
            # RFC 6409 §4.3 / RFC 4954 §6: a submission server wants to know who you are.
            return await self._reply("auth_required", "MAIL")
        parsed = self._parse_path(arg, "FROM:")
        if parsed is None:
            return await self._reply("mail_syntax", "MAIL")
        addr, params = parsed
        for p in params:
            name, _, value = p.partition("=")
            if name.upper() not in _ESMTP_PARAMS["MAIL"]:
                return await self._reply("mail_param_unknown", "MAIL", arg=name)
            if name.upper() == "SIZE":
                if not value.isdigit():
                    return await self._reply("mail_syntax", "MAIL")
                if int(value) > self.policy.message_size_limit and self.persona.checks_size_param:
                    return await self._reply("size_param_exceeded", "MAIL")
        self.envelope.mail_from = addr
        self.envelope.mail_options = params
        return await self._reply("mail_ok", "MAIL", addr=addr)

    async def _lab_RCPT(self, arg):
        parsed = self._parse_path(arg, "TO:")
        if parsed is None or not parsed[0]:
            return await self._reply("rcpt_syntax", "RCPT")
        addr, params = parsed
        for p in params:
            if p.partition("=")[0].upper() not in _ESMTP_PARAMS["RCPT"]:
                return await self._reply("mail_param_unknown", "RCPT", arg=p.partition("=")[0])
        if len(self.envelope.rcpt_tos) >= self.policy.max_recipients:
            return await self._reply("too_many_recipients", "RCPT")
        # A proxy without XCLIENT (clamsmtpd) makes its server see the proxy's address.
        client_ip = self.persona.backend_client_ip or self._client.rsplit(":", 1)[0]
        # Postfix's permit_sasl_authenticated: an authenticated client may relay.
        if not self.session.authenticated and not self.policy.may_deliver(
            addr, client_ip, self.hostname
        ):
            return await self._reply("relay_denied", "RCPT", addr=addr)
        self.envelope.rcpt_tos.append(addr)
        self.envelope.rcpt_options.extend(params)
        return await self._reply("rcpt_ok", "RCPT", addr=addr)

    async def _lab_DATA(self, arg):
        if self._refuses_argument("DATA", arg):
            return await self._reply("data_syntax", "DATA")
        before = self.lab_session.state
        # Only a sequence variant (clamsmtpd's "data_spooled_first") lets DATA through
        # without recipients: the table's own refusal then answers the final dot.
        refuse = None if before is State.RCPT else states.refusal(before, Command.DATA)
        await self._reply("data_go", "DATA")
        self._set_state(State.DATA)
        final = await self._receive_message(refuse=refuse)
        if final is not None and refuse is not None:
            self._set_state(before)  # the server behind the proxy never left its state
            self.lab_session.errors += 1
        elif final is not None:
            self._set_state(states.next_state(State.DATA, Command.END_OF_DATA, ok=final.ok))
            self._set_post_data_state()
            if final.klass in ("4xx", "5xx"):
                self.lab_session.errors += 1
        return None

    async def _receive_message(self, refuse: str | None = None) -> Reply | None:
        """Read message text up to <CRLF>.<CRLF> (§4.1.1.4) and answer it once.

        ``refuse``: a reply key that answers the final dot instead of storing the message.
        """
        limit, line_limit = self.policy.message_size_limit, self.policy.text_line_limit
        kept: list[bytes] = []
        size, too_big, too_long, shown, hidden, hidden_bytes = 0, False, False, 0, 0, 0
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError:
                self._event("connection lost in the middle of the message; nothing stored")
                return None
            except asyncio.LimitOverrunError as e:
                chunk = await self._reader.read(e.consumed)
                too_long, size = True, size + len(chunk)
                kept.clear()
                continue
            self._reset_timeout()
            if line == b".\r\n":
                self._record(
                    Line(
                        self._sid,
                        time.time(),
                        CLIENT,
                        line,
                        self._client,
                        command=".",
                        tls=self.session.ssl is not None,
                    )
                )
                break
            if shown < _DATA_LINES_KEPT:
                shown += 1
                self._record(
                    Line(
                        self._sid,
                        time.time(),
                        CLIENT,
                        line,
                        self._client,
                        note="message text",
                        tls=self.session.ssl is not None,
                    )
                )
            else:
                hidden, hidden_bytes = hidden + 1, hidden_bytes + len(line)
            size += len(line)
            stuffed = line.startswith(b".")  # §4.5.3.1.6: the stuffed dot does not count
            if len(line) - stuffed > line_limit and self.persona.extras.get(
                "rejects_long_text_lines", True
            ):
                too_long = True
            if size > limit:
                too_big = True
            if too_big or too_long:
                kept.clear()
                continue
            kept.append(line[1:] if line.startswith(b".") else line)  # §4.5.2 un-stuffing
        if hidden:
            self._event(f"{hidden} more lines of message text ({hidden_bytes} bytes) not shown")
        if refuse is not None:
            return await self._reply(refuse, ".")
        if too_big:
            return await self._reply("data_too_big", ".")
        if too_long:
            return await self._reply("text_line_too_long", ".")
        self.envelope.original_content = b"".join(kept)
        self.envelope.content = self.envelope.original_content

        async def store() -> Reply:
            qid = await self._call_handler_hook("DATA")
            if self._info is not None:
                self._info.messages += 1
            return await self._reply("data_ok", ".", queue_id=qid)

        return await self.lab.faults.run(self, Command.END_OF_DATA, store)

    async def _lab_RSET(self, arg):
        if self._refuses_argument("RSET", arg):
            return await self._reply("rset_syntax", "RSET")
        self._set_rset_state()
        return await self._reply("rset_ok", "RSET")

    async def _lab_NOOP(self, arg):
        if self._refuses_argument("NOOP", arg):  # §4.1.1.9 says ignore it; OpenSMTPD refuses
            return await self._reply("noop_syntax", "NOOP")
        return await self._reply("noop_ok", "NOOP")  # §4.1.1.9: an argument is ignored

    async def _lab_VRFY(self, arg):
        if not arg:
            return await self._reply("vrfy_syntax", "VRFY")
        return await self._reply("vrfy_ok", "VRFY", arg=arg.strip("<>"))

    async def _lab_EXPN(self, arg):
        return await self._reply("expn", "EXPN")

    async def _lab_HELP(self, arg):
        return await self._reply("help", "HELP")

    async def _lab_QUIT(self, arg):
        return await self._reply("quit", "QUIT")  # the table moves the session to CLOSED

    # --- STARTTLS (RFC 3207) and AUTH (RFC 4954) ---------------------------

    def _ehlo_keywords(self) -> list[str]:
        """The EHLO keywords for this session: STARTTLS before TLS, AUTH inside it."""
        words = self.lab._ehlo_keywords()
        extra = []
        if self.lab._tls_offered() and self.session.ssl is None:
            extra.append("STARTTLS")
        if self.lab._auth_offered() and (
            self.session.ssl is not None or not self.lab.auth_require_tls
        ):
            extra.append("AUTH " + " ".join(_auth.MECHANISMS))
        # Where Postfix puts them: before ENHANCEDSTATUSCODES (or at the end).
        at = next((i for i, w in enumerate(words) if w == "ENHANCEDSTATUSCODES"), len(words))
        return words[:at] + extra + words[at:]

    def _tls_summary(self) -> str:
        ssl_object = (self.session.ssl or {}).get("ssl_object")
        if ssl_object is None:
            return "TLS"
        cipher = ssl_object.cipher()
        return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()

    async def _lab_STARTTLS(self, arg):
        if arg:
            return await self._reply("starttls_syntax", "STARTTLS")
        if self.session.ssl is not None:
            return await self._reply("starttls_already", "STARTTLS")
        reply = await self._reply("starttls_go", "STARTTLS")
        # The transport swap of aiosmtpd's smtp_STARTTLS: the socket's bytes now go
        # through an SSLProtocol, and our protocol talks to its app transport.
        # When the handshake completes, SSLProtocol calls connection_made() again,
        # where aiosmtpd starts a fresh Session and drops any plaintext that was
        # pipelined after STARTTLS (RFC 3207 §4.2, §6: the injection attack).
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop, self, self.lab._server_tls_context(), waiter, server_side=True
        )
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A client that rejects our certificate aborts the handshake; that is a
            # lesson, not a server error.  SSLProtocol never told our protocol it
            # was connected, so it will not tell us the connection is gone: do it.
            self._event(f"TLS handshake failed: {exc}")
            self._closing = True
            self.loop.call_soon(self._tls_gone)
            return reply
        self._event(f"TLS started: {self._tls_summary()}; the session starts over (RFC 3207 §4.2)")
        self.lab_session.tls_restarted = True
        return reply

    def _tls_gone(self) -> None:
        if self._original_transport is not None:
            self._original_transport.close()
        if self._info is not None and self._info.ended is None:
            self.connection_lost(None)

    async def _auth_response(self, initial: str, challenge: str) -> bytes | None:
        """The client's decoded answer: the initial response, or one 334 round trip."""
        if initial:
            return _auth.decode_response(initial)
        await self._reply("auth_challenge", "AUTH", arg=challenge)
        raw = await self._read_line()
        if raw is None:
            return None
        if raw == b"\x00TOO-LONG":
            raise _auth.Undecodable()
        # Base64 of a password: recorded on purpose, so a lesson can decode it.
        self._record(
            Line(
                self._sid,
                time.time(),
                CLIENT,
                raw,
                self._client,
                command="AUTH",
                tls=self.session.ssl is not None,
                note="AUTH response",
            )
        )
        return _auth.decode_response(raw.rstrip(b"\r\n").decode("ascii", "replace"))

    async def _lab_AUTH(self, arg):
        lab, session = self.lab, self.session
        if not session.extended_smtp:
            return await self._reply("need_ehlo_for_auth", "AUTH")  # RFC 4954 §4: EHLO first
        if session.ssl is None and lab.auth_require_tls:
            return await self._reply("auth_encryption_required", "AUTH")
        if session.authenticated:
            return await self._reply("auth_already", "AUTH")
        mechanism, _, initial = arg.partition(" ")
        mechanism, initial = mechanism.upper(), initial.strip()
        if not mechanism:
            return await self._reply("auth_syntax", "AUTH")
        if mechanism not in _auth.MECHANISMS:
            return await self._reply("auth_mechanism_unknown", "AUTH")
        try:
            if mechanism == "PLAIN":
                data = await self._auth_response(initial, "")
                if data is None:
                    return None
                authzid, user, password = _auth.parse_plain(data)
            else:  # LOGIN: user name, then password, each after its own 334
                data = await self._auth_response(initial, _auth.LOGIN_USERNAME)
                if data is None:
                    return None
                authzid, user = "", data.decode("utf-8")
                data = await self._auth_response("", _auth.LOGIN_PASSWORD)
                if data is None:
                    return None
                password = data.decode("utf-8")
        except _auth.Cancelled:
            return await self._reply("auth_cancelled", "AUTH")
        except (_auth.Undecodable, UnicodeDecodeError):
            return await self._reply("auth_undecodable", "AUTH")
        if not _auth.credentials_ok(lab.users, user, password, authzid):
            self._event(f"AUTH {mechanism} failed for user {user!r}")
            return await self._reply("auth_failed", "AUTH")
        session.authenticated = True
        session.auth_data = user
        self._event(f"authenticated as {user!r} with {mechanism}")
        return await self._reply("auth_ok", "AUTH")


class LabServer:
    """A real SMTP server on loopback, running in a background thread of this kernel.

    >>> with LabServer(persona="postfix") as server:
    ...     client = server.client()
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        persona: str | Persona = "generic",
        hostname: str = DEFAULT_HOSTNAME,
        policy: Policy | None = None,
        name: str | None = None,
        max_lines: int = 50_000,
        max_messages: int = 10_000,
        max_sessions: int = 10_000,
        seed: int | None = None,
        allow_non_loopback: bool = False,
        mode: str = "mx",
        tls: bool | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        **policy_switches,
    ):
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise LabValueError(f"port must be a whole number from 1 to 65535, not {port!r}")
        if port is not None and not 0 <= port <= 65535:
            raise LabValueError(f"port must be from 1 to 65535 (or left out), not {port}")
        if not isinstance(host, str) or not host:
            raise LabValueError(f"host must be an address such as '127.0.0.1', not {host!r}")
        if not _is_loopback(host):
            if not allow_non_loopback:
                raise LabValueError(
                    f"the lab server listens on loopback only (127.0.0.1); {host!r} would "
                    f"let other machines talk to it. Pass allow_non_loopback=True if you "
                    f"really mean it."
                )
            warnings.warn(
                f"labsmtp: listening on {host}, which other machines may reach", stacklevel=2
            )
        if not isinstance(hostname, str) or not hostname or " " in hostname:
            raise LabValueError(
                f"hostname must be a name such as 'mx.lab.example.org', not {hostname!r}"
            )
        for label, value in (
            ("max_lines", max_lines),
            ("max_messages", max_messages),
            ("max_sessions", max_sessions),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabValueError(f"{label} must be a whole number of at least 1, not {value!r}")
        self.host, self._requested_port = host, port
        self.hostname = hostname
        self.persona = get_persona(persona)
        if policy is not None and not isinstance(policy, Policy):
            raise LabValueError("policy must be a labsmtp.Policy (or leave it out)")
        self.policy = (
            (policy or Policy()).with_(**policy_switches)
            if policy_switches
            else (policy or Policy())
        )
        self.name = name if name is not None else (f"port {port}" if port else "lab")
        if self.policy.open_relay and mode == "mx":
            mode = "open-relay"  # open_relay=True is the open-relay mode: name it as such
        self._set_security(
            mode=mode,
            tls=tls,
            implicit_tls=implicit_tls,
            users=users,
            auth_require_tls=auth_require_tls,
        )
        self.mailbox = Mailbox(max_messages)
        self.transcript = Transcript(max_lines, max_sessions)
        self._controller: _Controller | None = None
        self._port: int | None = None
        self._probe_peers: set = set()
        self._active: weakref.WeakSet = weakref.WeakSet()
        self._listeners: list = []
        self._session_counter = 0
        self._internal_errors: list[str] = []
        self._resolver = None  # reject_unknown_helo_hostname's DNS (the fault lab sets it)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.faults = FaultEngine(seed)  # fault rules; empty until a lesson adds some
        self.seed = seed

    # --- lifecycle ------------------------------------------------------

    def start(self) -> LabServer:
        """Start listening (stopping any earlier lab server with the same name)."""
        if self.running:
            return self
        with _registry_lock:
            old = _registry.get(self.name)
        if old is not None and old is not self:
            # Re-running a cell lands here: replace, never "address in use". Say so,
            # in case two different servers were given the same (default) name.
            where = f"{old.host}:{old._port}" if old.running else "stopped"
            old.stop()
            print(
                f"labsmtp: stopped the earlier server named {self.name!r} ({where}) and started "
                f"this one; give servers different name= values to run several at once."
            )
        port = self._requested_port or 0
        if port:
            _check_port(self.host, port)
        ctrl = _Controller(
            self,
            hostname=self.host,
            port=port,
            server_hostname=self.hostname,
            ready_timeout=5.0,
            timeout=self.policy.idle_timeout,
            enable_SMTPUTF8=True,
            data_size_limit=None,
        )
        try:
            ctrl.start()
        except Exception as exc:
            try:
                ctrl.stop(no_assert=True)
            except Exception:
                pass
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                raise PortInUseError(f"port {port} on {self.host} is already in use") from None
            raise
        if self.implicit_tls:
            try:
                self._start_implicit_tls(ctrl)
            except Exception:
                ctrl.stop(no_assert=True)
                raise
        self._controller, self._port = ctrl, ctrl.port
        with _registry_lock:
            _registry[self.name] = self
        return self

    def stop(self) -> None:
        """Stop the server; open sessions get 421 first.  Safe to call twice."""
        ctrl, self._controller = self._controller, None
        if ctrl is None:
            return
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        loop = ctrl.loop
        done = threading.Event()
        tls_listener, self._tls_listener, self._tls_port = self._tls_listener, None, None

        def _goodbye():
            if tls_listener is not None:
                tls_listener.close()  # closes the implicit-TLS listening socket at once
            for proto in list(self._active):
                try:
                    proto._write_reply(proto.persona.render("shutdown", proto._fields()), None)
                    proto._close()
                except Exception:
                    pass
            done.set()

        try:
            loop.call_soon_threadsafe(_goodbye)
            done.wait(1.0)
        except RuntimeError:
            pass
        ctrl.stop(no_assert=True)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            if self._controller is not None:
                self.stop()
        except Exception:
            pass

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def port(self) -> int:
        """The port the server listens on (chosen by the system if none was asked for)."""
        if self._port is None:
            if self._requested_port:
                return self._requested_port
            raise LabValueError("the server has not been started yet: call server.start() first")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self.running else "stopped"
        extra = ""
        if self.tls:
            extra += " STARTTLS" + (f" implicit-TLS:{self._tls_port}" if self._tls_port else "")
        if self.users:
            extra += " AUTH"
        if self.mode != "mx":
            extra += (
                " OPEN RELAY (deliberately misconfigured)"
                if self.mode == "open-relay"
                else " submission"
            )
        return f"<LabServer {self.persona.name} {self.hostname} {where}{extra}>"

    # --- settings a lesson changes live --------------------------------

    def configure(
        self, *, persona: str | Persona | None = None, mode: str | None = None, **policy_switches
    ) -> LabServer:
        """Change the persona, the mode and/or policy switches; new connections see the change."""
        if persona is not None:
            self.persona = get_persona(persona)
        if policy_switches:
            self.policy = self.policy.with_(**policy_switches)
            if "open_relay" in policy_switches and mode is None:
                mode = "open-relay" if self.policy.open_relay else "mx"
        if mode is not None:
            self._set_security(
                mode=mode,
                tls=self.tls,
                implicit_tls=self.implicit_tls,
                users=self.users,
                auth_require_tls=self.auth_require_tls,
            )
        return self

    def on_line(self, callback) -> None:
        """Call ``callback(line)`` for every transcript line (from the server thread)."""
        self._listeners.append(callback)

    # --- clients --------------------------------------------------------

    def client(
        self,
        source: str | None = None,
        *,
        connect: bool = True,
        timeout: float = 10.0,
        implicit_tls: bool = False,
    ):
        """A step client for this server (connected, greeting read, unless connect=False)."""
        from .client import StepClient

        port = self.port
        if implicit_tls:
            if not self._tls_port:
                raise LabValueError(
                    "this server has no implicit-TLS port: start it with "
                    "LabServer(implicit_tls=True) first"
                )
            port = self._tls_port
        c = StepClient(
            self.host,
            port,
            source=source,
            timeout=timeout,
            server_name=self.hostname,
            implicit_tls=implicit_tls,
        )
        if connect:
            c.connect()
        return c

    # --- internals used by the protocol objects ---------------------------

    def _new_session_id(self) -> int:
        with self._lock:
            self._session_counter += 1
            return self._session_counter

    def _next_queue_id(self) -> str:
        """A queue id shaped like the persona's server's (Postfix: 11 hex digits)."""
        fmt, alphabet = self.persona.queue_id_format, self.persona.queue_id_alphabet
        with self._lock:
            return "".join(self._rng.choice(alphabet) if ch == "#" else ch for ch in fmt)

    def _helo_required(self) -> bool:
        req = self.policy.smtpd_helo_required
        return self.persona.helo_required_default if req is None else bool(req)

    def _tls_offered(self) -> bool:
        return self.tls

    def _auth_offered(self) -> bool:
        return bool(self.users)

    # --- TLS, AUTH and modes ----------------------------------------------

    def _set_security(self, *, mode, tls, implicit_tls, users, auth_require_tls) -> None:
        """Check and set mode, TLS and AUTH settings (a learner's typo gets a clear message)."""
        mode = check_mode(mode)
        users = _auth.check_users(users)
        if tls is not None and not isinstance(tls, bool):
            raise LabValueError(f"tls must be True or False, not {tls!r}")
        if not isinstance(auth_require_tls, bool):
            raise LabValueError(f"auth_require_tls must be True or False, not {auth_require_tls!r}")
        if implicit_tls is not False and implicit_tls is not True:
            if (
                isinstance(implicit_tls, bool)
                or not isinstance(implicit_tls, int)
                or not 1 <= implicit_tls <= 65535
            ):
                raise LabValueError(
                    f"implicit_tls must be True (pick a free port), False, or a port from 1 to "
                    f"65535, not {implicit_tls!r}"
                )
        if mode == "submission" and not users:
            raise LabValueError(
                "mode='submission' refuses MAIL until the client authenticates, so it needs lab "
                "users to log in as: add users={'alice': 'wonderland'}"
            )
        if tls is None:
            tls = bool(users) or implicit_tls is not False
        if not tls and implicit_tls is not False:
            raise LabValueError("implicit_tls needs TLS: leave out tls=False")
        if not tls and users and auth_require_tls:
            raise LabValueError(
                "AUTH is offered only inside TLS (RFC 4954 §4: passwords travel merely "
                "base64-encoded). Leave out tls=False, or pass auth_require_tls=False to "
                "show on purpose why AUTH in the clear is dangerous."
            )
        self.mode, self.tls, self.implicit_tls = mode, tls, implicit_tls
        self.users, self.auth_require_tls = users, auth_require_tls
        if self.policy.open_relay != (mode == "open-relay"):
            self.policy = self.policy.with_(open_relay=mode == "open-relay")
        if not hasattr(self, "_tls_listener"):
            self._tls_listener, self._tls_port = None, None

    @property
    def mode_about(self) -> str:
        """What this server's mode (mx, submission, open-relay) accepts and refuses."""
        return f"{self.mode}: {MODE_ABOUT[self.mode]}"

    @property
    def tls_port(self) -> int | None:
        """The implicit-TLS port (RFC 8314, like 465), or None if there is none."""
        return self._tls_port

    @property
    def ca_file(self) -> str:
        """Path of the lab CA certificate (PEM): give it to swaks, curl or smtplib to trust the lab."""
        from .tls import lab_ca

        return lab_ca().ca_file

    def client_ssl_context(self, verify: bool = True):
        """An ``ssl.SSLContext`` that trusts the lab CA, for smtplib's starttls(context=...)."""
        from .tls import lab_ca

        return lab_ca().client_context(verify=verify)

    def _server_tls_context(self):
        ctx = getattr(self, "_server_ctx", None)
        if ctx is None or ctx[0] != self.hostname:
            from .tls import lab_ca

            ctx = (self.hostname, lab_ca().server_context(self.hostname))
            self._server_ctx = ctx
        return ctx[1]

    def _start_implicit_tls(self, ctrl) -> None:
        """A second listener whose connections are TLS from the first byte (RFC 8314 §3.3)."""
        want = 0 if self.implicit_tls is True else int(self.implicit_tls)
        if want:
            _check_port(self.host, want)

        async def listen():
            return await ctrl.loop.create_server(
                ctrl.factory,
                self.host,
                want,
                ssl=self._server_tls_context(),
                ssl_handshake_timeout=min(60.0, self.policy.idle_timeout),
            )

        listener = asyncio.run_coroutine_threadsafe(listen(), ctrl.loop).result(5.0)
        self._tls_listener, self._tls_port = listener, listener.sockets[0].getsockname()[1]

    def _ehlo_keywords(self) -> list[str]:
        return [k.format(size=self.policy.message_size_limit) for k in self.persona.ehlo_keywords]

    @property
    def sessions(self) -> list[SessionInfo]:
        """Every session the transcript still holds."""
        return self.transcript.sessions()
