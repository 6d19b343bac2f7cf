"""A step-by-step SMTP client over a real socket: one method per command.

Each method sends one command and returns the server's one reply
(``Reply``) - 4xx and 5xx are returned, not raised, because reading them is
the lesson.  Only connection trouble raises: ``ConnectFailed``,
``ServerClosed`` and ``ReplyTimeout``, each naming the phase (as swaks's
exit codes do).  The client tracks the session state with the same table as
the server (``states.py``), so ``allowed()`` says what may come next - but it
will send anything you ask, in any order, because meeting 503 is part of
learning the protocol.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConnectFailed, LabValueError, ReplyTimeout, ServerClosed, TLSFailed
from ..protocol import auth as _auth
from ..protocol import states
from ..protocol.commands import DEFAULT_HELO, CommandWriter
from ..protocol.lines import dot_stuff
from ..protocol.replies import Reply, ReplyBuffer, parse_reply
from ..protocol.states import Command, Stage, State

__all__ = [
    "DEFAULT_HELO",
    "Exchange",
    "ReplyReader",
    "StepClient",
    "dot_stuff",
    "make_message",
    "show_wire",
]


def show_wire(data: bytes | str) -> str:
    """The bytes with CR and LF made visible: 'HELO x<CR><LF>'."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    text = data.decode("utf-8", "replace")
    return text.replace("\r", "<CR>").replace("\n", "<LF>\n").rstrip("\n")


def make_message(
    sender: str = "learner@example.org",
    to: str = "postmaster@lab.example.org",
    subject: str = "Hello from the lab",
    body: str = "This message never left this computer.",
) -> str:
    """A small RFC 5322 message (headers, blank line, body) with CRLF line ends."""
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"\r\n{body}\r\n"
    )


class ConnectionEnded(Exception):
    """The server closed the connection before a reply was complete."""

    def __init__(self, partial: bytes, cause: OSError | None = None):
        super().__init__(f"closed after {partial!r}" if partial else "closed")
        self.partial, self.cause = partial, cause


class ReplyReader:
    """Reads a server's replies from a socket, one whole reply at a time.

    The lab's one reply reader: the step client, the trial runner and the
    persona comparison all read through it (``replies.ReplyBuffer`` cuts the
    bytes).  Raises ``TimeoutError`` when the socket's timeout passes and
    ``ConnectionEnded`` (with what had arrived) when the server closes.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = ReplyBuffer()

    def read(self) -> bytes:
        """The bytes of one complete (possibly multi-line) reply."""
        while True:
            raw = self.buffer.pop()
            if raw is not None:
                return raw
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError as exc:
                raise ConnectionEnded(self.buffer.clear(), exc) from None
            if not chunk:
                raise ConnectionEnded(self.buffer.clear())
            self.buffer.feed(chunk)


@dataclass(frozen=True)
class Exchange:
    """One command the client sent and the reply it got."""

    sent: bytes
    reply: Reply | None
    tls: bool = False  # the command travelled inside TLS


class StepClient(CommandWriter):
    """Hold an SMTP dialogue one command at a time and read every reply."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 25,
        *,
        source: str | None = None,
        timeout: float = 10.0,
        server_name: str | None = None,
        implicit_tls: bool = False,
        trust="lab",
    ):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise LabValueError(f"port must be a whole number from 1 to 65535, not {port!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise LabValueError(f"timeout must be a number of seconds above 0, not {timeout!r}")
        if source is not None and not isinstance(source, str):
            raise LabValueError(f"source must be an address such as '127.0.0.2', not {source!r}")
        self.host, self.port, self.source, self.timeout = host, port, source, timeout
        if server_name is not None and (not isinstance(server_name, str) or not server_name):
            raise LabValueError(
                f"server_name must be a host name such as 'mx.lab.example.org', not {server_name!r}"
            )
        if not isinstance(implicit_tls, bool):
            raise LabValueError(f"implicit_tls must be True or False, not {implicit_tls!r}")
        from .tls import check_trust  # light: the lab CA is made only when TLS starts

        check_trust(trust)
        # The name the server's certificate must carry (RFC 6125): by default the host.
        self.server_name = server_name or host
        self.implicit_tls, self.trust = implicit_tls, trust
        self.sock: socket.socket | None = None
        self.state: State = State.CLOSED
        self.history: list[Exchange] = []
        self.esmtp_keywords: dict[str, str] = {}
        self._reader: ReplyReader | None = None
        self._lab: Any = None  # the LabServer that made this client (LabServer.client sets it)

    # --- connection -------------------------------------------------------

    def connect(self) -> Reply:
        """Open the TCP connection and read the greeting (220, or 554/421)."""
        if self.sock is not None:
            self.close()
        if self._lab is not None:
            self._lab.ensure_running()  # stopped by a lesson's last cell: start it again
        try:
            sock = socket.create_connection(
                (self.host, self.port),
                timeout=self.timeout,
                source_address=(self.source, 0) if self.source else None,
            )
        except ConnectionRefusedError:
            raise ConnectFailed(
                f"connection refused by {self.host}:{self.port}: no server is listening there "
                f"({_where_is_the_server()})",
                phase=Stage.CONNECT,
            ) from None
        except TimeoutError:
            raise ConnectFailed(
                f"no answer from {self.host}:{self.port} within {self.timeout} s "
                f"(a firewall that drops packets looks like this)",
                phase=Stage.CONNECT,
            ) from None
        except OSError as exc:
            raise ConnectFailed(
                f"cannot connect to {self.host}:{self.port} from {self.source or 'any address'}: "
                f"{exc.strerror or exc}",
                phase=Stage.CONNECT,
            ) from None
        self.sock, self._reader = sock, ReplyReader(sock)
        if self.implicit_tls:
            # RFC 8314 §3.3: TLS from the first byte, before the 220 greeting.
            self._handshake(verify=True, server_name=self.server_name, trust=self.trust)
        self.state = states.opened()
        reply = self._read_reply("CONNECT", time.perf_counter())
        self.history.append(Exchange(b"", reply, self.tls))
        # A 554 or 421 instead of 220 means no service here (§3.1): it is returned,
        # not raised; a 421 closes (§3.8), and after a 554 only QUIT is useful.
        self.state = states.after_greeting(reply.code)
        return reply

    def close(self) -> None:
        """Close the socket without QUIT (what a crashed client does)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock, self._reader = None, None
        self.state = states.closed(self.state)

    def __enter__(self) -> StepClient:
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        if self.sock is not None:
            try:
                self.quit()
            except Exception:
                pass
        self.close()

    # --- the commands (protocol.commands.CommandWriter writes the rest) -----

    def ehlo(self, name: str = DEFAULT_HELO) -> Reply:
        """EHLO <FQDN or [address literal]>: like HELO, and the reply lists the extensions."""
        reply = super().ehlo(name)
        if reply.code == 250:
            self.esmtp_keywords = {}
            for text in reply.texts[1:]:
                key, _, value = text.partition(" ")
                self.esmtp_keywords[key.upper()] = value
        return reply

    def check_address(self, address: object, what: str, allow_empty: bool = False) -> None:
        _check_address(address, what, allow_empty)

    def send_message(self, message: str | bytes) -> Reply:
        """After 354: the dot-stuffed message and the final dot; returns the reply to it."""
        return self._send(dot_stuff(message), Command.END_OF_DATA)

    def send_chunk(self, data: bytes, cmd: Command) -> Reply:
        return self._send(data, cmd, label="BDAT")

    def starttls(self, verify: bool = True, *, server_name: str | None = None, trust=None) -> Reply:
        """STARTTLS (RFC 3207): on 220, a TLS handshake that checks the server's certificate.

        ``trust``: "lab" (the lab CA, default), "system" (this computer's public CAs:
        the lab's certificate fails, as an untrusted one should), a CA file path, or an
        ``ssl.SSLContext``.  ``server_name``: the name the certificate must carry.
        A failed check raises ``TLSFailed`` saying why.  Afterwards send EHLO again.
        """
        reply = self.command("STARTTLS", Command.STARTTLS)
        if reply.code == 220:
            self._handshake(
                verify, server_name or self.server_name, self.trust if trust is None else trust
            )
        return reply

    def auth(self, user: str, password: str, mechanism: str = "PLAIN") -> Reply:
        """AUTH PLAIN or LOGIN (RFC 4954) as ``user``; returns the final reply (235 or an error).

        The password crosses the wire merely base64-encoded: use it inside TLS.
        """
        if not isinstance(user, str) or not isinstance(password, str):
            raise LabValueError("auth() needs a user name and a password, both strings")
        if not isinstance(mechanism, str) or mechanism.upper() not in _auth.MECHANISMS:
            raise LabValueError(
                f"mechanism must be one of {', '.join(_auth.MECHANISMS)}, not {mechanism!r}"
            )
        return super().auth(user, password, mechanism)

    @property
    def tls(self) -> bool:
        """True once the connection is inside TLS."""
        return isinstance(self.sock, ssl.SSLSocket)

    @property
    def peer_certificate(self) -> dict | None:
        """The server's certificate as the ssl module decodes it (inside TLS), else None."""
        return self.sock.getpeercert() if isinstance(self.sock, ssl.SSLSocket) else None

    def _handshake(self, verify: bool, server_name: str, trust) -> None:
        from .tls import client_context, explain_tls_error

        ctx = client_context(trust, verify=verify)
        # RFC 3207 §4.2: forget anything the server sent before TLS (nothing may be
        # trusted), including its EHLO keywords; EHLO must be sent again.
        self.esmtp_keywords = {}
        if self.sock is None:
            raise ServerClosed("not connected: call connect() first", phase=Stage.TLS)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_name)
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self.close()
            raise TLSFailed(explain_tls_error(exc, server_name), phase=Stage.TLS) from None
        self._reader = ReplyReader(self.sock)

    def quit(self) -> Reply:
        """QUIT: the server answers 221 and closes (§4.1.1.10)."""
        reply = self.command("QUIT", Command.QUIT)
        self.close()
        return reply

    def raw(self, line: str | bytes, *, expect_reply: bool = True) -> Reply | None:
        """Send any line, legal or not ('\\r\\n' added to a str that lacks it)."""
        if isinstance(line, str):
            data = line.encode("utf-8", "surrogateescape")
            if not data.endswith(b"\n"):
                data += b"\r\n"
        elif isinstance(line, (bytes, bytearray)):
            data = bytes(line)
        else:
            raise LabValueError(f"raw() sends a str or bytes, not {type(line).__name__}")
        verb = data.split(b" ", 1)[0].strip().decode("ascii", "replace").upper()
        cmd = _command_named(verb)
        if not expect_reply:
            self._write(data, Stage.of(verb) or verb or "raw")
            self.history.append(Exchange(data, None, self.tls))
            return None
        return self._send(data, cmd, label=verb or "raw")

    def read_reply(self, command: str | None = None) -> Reply:
        """Read one more reply: after message text sent with ``raw(..., expect_reply=False)``,
        the reply to its final dot (``command='.'``), or a 421 the server sent unasked."""
        reply = self._read_reply(command, time.perf_counter())
        if self.history and self.history[-1].reply is None:
            last = self.history.pop()
            self.history.append(Exchange(last.sent, reply, last.tls))
        else:
            self.history.append(Exchange(b"", reply, self.tls))
        self._advance(_command_named(command), reply)
        return reply

    def command(self, line: str, cmd: Command | None = None) -> Reply:
        """Send one command line and read its one reply."""
        return self._send(line.encode("utf-8", "surrogateescape") + b"\r\n", cmd)

    # --- what may come next ---------------------------------------------

    def allowed(self) -> list[str]:
        """The commands the state table allows now (others will get 503)."""
        return [c.value for c in states.allowed_commands(self.state)]

    @property
    def transcript(self) -> list[Exchange]:
        return list(self.history)

    def wire(self) -> str:
        """Every byte both ways so far, CR and LF visible (C: client, S: server)."""
        out = []
        for ex in self.history:
            if ex.sent:
                out += ["C: " + ln for ln in show_wire(ex.sent).split("\n")]
            if ex.reply is not None:
                out += ["S: " + ln for ln in show_wire(ex.reply.raw).split("\n")]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        from ..render import exchanges_html

        return exchanges_html(self.history)

    # --- plumbing -------------------------------------------------------

    def _stopped_note(self) -> str:
        """Why the connection may be gone, when the lab server that made it was stopped."""
        lab = self._lab
        if lab is None or lab.running:
            return ""
        return (
            f". The lab server {lab.name!r} was stopped after this client connected "
            f"(stop_all() or .stop()); connect() or server.client() starts it again"
        )

    def _write(self, data: bytes, phase: str) -> None:
        """Send ``data``; ``phase`` (a Stage, or the verb) names where a failure happened."""
        where = phase.described if isinstance(phase, Stage) else phase
        if self.sock is None:
            raise ServerClosed(
                f"not connected ({where}): call connect() first, "
                f"or the server already closed the connection{self._stopped_note()}",
                phase=phase,
            )
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise ServerClosed(
                f"the server closed the connection before {where} could be sent "
                f"({exc}){self._stopped_note()}",
                phase=phase,
            ) from None

    def _send(self, data: bytes, cmd: Command | None, label: str | None = None) -> Reply:
        phase = (Stage.of(cmd) if cmd else None) or label or "raw"
        started = time.perf_counter()
        tls = self.tls
        self._write(data, phase)
        reply = self._read_reply(cmd.value if cmd else label, started)
        self.history.append(Exchange(data, reply, tls))
        self._advance(cmd, reply)
        return reply

    def _advance(self, cmd: Command | None, reply: Reply) -> None:
        # The server's table: 421 closes; out of order, the 503 left it where it was.
        # helo_required=False: if the server let MAIL through before HELO, follow it.
        self.state = states.after_reply(self.state, cmd, reply.code, helo_required=False)

    def _read_reply(self, command: str | None, started: float) -> Reply:
        stage = Stage.of(command) if command else None
        phase = stage.described if stage else (command or "raw")
        if self._reader is None:
            raise ServerClosed(
                f"not connected ({phase}): call connect() first", phase=stage or "raw"
            )
        try:
            raw = self._reader.read()
        except TimeoutError:
            raise ReplyTimeout(
                f"no complete reply within {self.timeout} s ({phase}); "
                f"the server may be slow on purpose (a tarpit) or stuck",
                phase=stage or phase,
            ) from None
        except ConnectionEnded as end:
            self.close()
            detail = f" after sending {end.partial!r}" if end.partial else ""
            raise ServerClosed(
                f"the server closed the connection without a complete reply "
                f"({phase}){detail}"
                + (f": {end.cause}" if end.cause else "")
                + self._stopped_note(),
                phase=stage or phase,
            ) from None
        return parse_reply(raw, command=command, elapsed=time.perf_counter() - started)


def _where_is_the_server() -> str:
    """Advice for a refused connection, in the words of where the learner is."""
    from ..errors import front_end

    if front_end() == "cli":
        return "is `python -m labsmtp serve` running? It prints the port it listens on"
    return "is the lab server started? server.port tells its port"


def _command_named(name: str | None) -> Command | None:
    try:
        return Command(name) if name else None
    except ValueError:
        return None


def _check_address(addr: object, what: str, allow_empty: bool = False) -> None:
    if not isinstance(addr, str):
        raise LabValueError(
            f"the {what} must be an address such as 'ada@example.org', not {addr!r}"
        )
    if addr == "" and allow_empty:
        return
    if any(c in addr for c in "<>\r\n") or " " in addr.strip():
        raise LabValueError(
            f"the {what} {addr!r} contains spaces, angle brackets or line breaks; give just "
            f"the address, e.g. 'ada@example.org' (use raw() to send something malformed)"
        )
    if not addr:
        raise LabValueError(f"the {what} is empty; give an address such as 'ada@example.org'")
    if "@" not in addr and addr.lower() != "postmaster":  # §4.5.1: bare postmaster is legal
        raise LabValueError(
            f"the {what} {addr!r} has no @: an address is local-part@domain, e.g. "
            f"'ada@example.org' (use raw() to send something malformed on purpose)"
        )
