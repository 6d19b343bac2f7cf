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

from ..errors import ConnectFailed, LabValueError, ReplyTimeout, ServerClosed, TLSFailed
from ..protocol import auth as _auth
from ..protocol import states
from ..protocol.replies import Reply, parse_reply, reply_is_complete
from ..protocol.states import Command, State

DEFAULT_HELO = "client.example.org"


def dot_stuff(message: str | bytes) -> bytes:
    """The bytes that carry ``message`` after DATA: CRLF line ends, leading dots
    doubled (RFC 5321 §4.5.2), and the final <CRLF>.<CRLF>."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    elif not isinstance(message, (bytes, bytearray)):
        message = bytes(message)  # an email.message.Message's as_bytes()
    text = bytes(message).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    return out + b".\r\n"


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


@dataclass(frozen=True)
class Exchange:
    """One command the client sent and the reply it got."""

    sent: bytes
    reply: Reply | None
    tls: bool = False  # the command travelled inside TLS


class StepClient:
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
        self._buf = b""

    # --- connection -------------------------------------------------------

    def connect(self) -> Reply:
        """Open the TCP connection and read the greeting (220, or 554/421)."""
        if self.sock is not None:
            self.close()
        try:
            sock = socket.create_connection(
                (self.host, self.port),
                timeout=self.timeout,
                source_address=(self.source, 0) if self.source else None,
            )
        except ConnectionRefusedError:
            raise ConnectFailed(
                f"connection refused by {self.host}:{self.port}: no server is listening there "
                f"(is the lab server started? server.port tells its port)",
                phase="connect",
            ) from None
        except TimeoutError:
            raise ConnectFailed(
                f"no answer from {self.host}:{self.port} within {self.timeout} s "
                f"(a firewall that drops packets looks like this)",
                phase="connect",
            ) from None
        except OSError as exc:
            raise ConnectFailed(
                f"cannot connect to {self.host}:{self.port} from {self.source or 'any address'}: "
                f"{exc.strerror or exc}",
                phase="connect",
            ) from None
        self.sock, self._buf = sock, b""
        if self.implicit_tls:
            # RFC 8314 §3.3: TLS from the first byte, before the 220 greeting.
            self._handshake(verify=True, server_name=self.server_name, trust=self.trust)
        self.state = State.CONNECTED
        reply = self._read_reply("CONNECT", time.perf_counter())
        self.history.append(Exchange(b"", reply, self.tls))
        # A 554 or 421 instead of 220 means no service here (§3.1): it is returned,
        # not raised, and only QUIT is useful after it.
        return reply

    def close(self) -> None:
        """Close the socket without QUIT (what a crashed client does)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.state = State.CLOSED

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

    # --- the commands -------------------------------------------------------

    def helo(self, name: str = DEFAULT_HELO) -> Reply:
        """HELO <your FQDN or [address literal]> (RFC 5321 §4.1.1.1)."""
        return self.command(f"HELO {name}".rstrip(), Command.HELO)

    def ehlo(self, name: str = DEFAULT_HELO) -> Reply:
        """EHLO <name>: like HELO, and the reply lists the server's extensions."""
        reply = self.command(f"EHLO {name}".rstrip(), Command.EHLO)
        if reply.code == 250:
            self.esmtp_keywords = {}
            for text in reply.texts[1:]:
                key, _, value = text.partition(" ")
                self.esmtp_keywords[key.upper()] = value
        return reply

    def mail(self, sender: str, **params) -> Reply:
        """MAIL FROM:<sender> [PARAM=value ...] (§4.1.1.2); '' is the null sender."""
        _check_address(sender, "sender", allow_empty=True)
        extra = "".join(f" {k.upper()}={v}" for k, v in params.items())
        return self.command(f"MAIL FROM:<{sender}>{extra}", Command.MAIL)

    def rcpt(self, recipient: str) -> Reply:
        """RCPT TO:<recipient> (§4.1.1.3)."""
        _check_address(recipient, "recipient")
        return self.command(f"RCPT TO:<{recipient}>", Command.RCPT)

    def data(self, message: str | bytes | None = None) -> Reply:
        """DATA.  With a message: if the server says 354, send it and return the final reply."""
        reply = self.command("DATA", Command.DATA)
        if message is None or reply.code != 354:
            return reply
        return self.send_message(message)

    def send_message(self, message: str | bytes) -> Reply:
        """After 354: the dot-stuffed message and the final dot; returns the reply to it."""
        return self._send(dot_stuff(message), Command.END_OF_DATA)

    def rset(self) -> Reply:
        """RSET: abort the transaction, keep the greeting (§4.1.1.5)."""
        return self.command("RSET", Command.RSET)

    def noop(self) -> Reply:
        """NOOP: do nothing, get 250 (§4.1.1.9) - a keep-alive and a liveness test."""
        return self.command("NOOP", Command.NOOP)

    def vrfy(self, who: str) -> Reply:
        """VRFY <name>: ask about a mailbox (§4.1.1.6); most servers answer 252."""
        return self.command(f"VRFY {who}", Command.VRFY)

    def expn(self, who: str) -> Reply:
        return self.command(f"EXPN {who}", Command.EXPN)

    def help(self) -> Reply:
        return self.command("HELP", Command.HELP)

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
        if mechanism.upper() == "PLAIN":
            # The initial response rides on the AUTH line (RFC 4954 §4), as smtplib sends it.
            return self.command(f"AUTH PLAIN {_auth.plain_response(user, password)}", Command.AUTH)
        reply = self.command("AUTH LOGIN", Command.AUTH)
        for answer in (user, password):
            if reply.code != 334:
                return reply
            reply = self._send(_auth.b64(answer).encode() + b"\r\n", Command.AUTH)
        return reply

    @property
    def tls(self) -> bool:
        """True once the connection is inside TLS."""
        return isinstance(self.sock, ssl.SSLSocket)

    @property
    def peer_certificate(self) -> dict | None:
        """The server's certificate as the ssl module decodes it (inside TLS), else None."""
        return self.sock.getpeercert() if self.tls else None

    def _handshake(self, verify: bool, server_name: str, trust) -> None:
        from .tls import client_context, explain_tls_error

        ctx = client_context(trust, verify=verify)
        # RFC 3207 §4.2: forget anything the server sent before TLS (nothing may be
        # trusted), including its EHLO keywords; EHLO must be sent again.
        self._buf, self.esmtp_keywords = b"", {}
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_name)
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self.close()
            raise TLSFailed(explain_tls_error(exc, server_name), phase="TLS handshake") from None

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
        try:
            cmd: Command | None = Command(verb)
        except ValueError:
            cmd = None
        if not expect_reply:
            self._write(data, verb or "raw")
            self.history.append(Exchange(data, None, self.tls))
            return None
        return self._send(data, cmd, label=verb or "raw")

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

    def _write(self, data: bytes, phase: str) -> None:
        if self.sock is None:
            raise ServerClosed(
                f"not connected (phase {phase}): call connect() first, "
                f"or the server already closed the connection",
                phase=phase,
            )
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise ServerClosed(
                f"the server closed the connection before {phase} could be sent ({exc})",
                phase=phase,
            ) from None

    def _send(self, data: bytes, cmd: Command | None, label: str | None = None) -> Reply:
        phase = label or (cmd.value if cmd else "raw")
        started = time.perf_counter()
        tls = self.tls
        self._write(data, phase)
        reply = self._read_reply(cmd.value if cmd else label, started)
        self.history.append(Exchange(data, reply, tls))
        self._advance(cmd, reply)
        return reply

    def _advance(self, cmd: Command | None, reply: Reply) -> None:
        if reply.code == 421:
            self.state = State.CLOSED
            return
        if cmd is None:
            return
        try:
            # helo_required=False: if the server let MAIL through before HELO, follow it.
            self.state = states.next_state(self.state, cmd, ok=reply.ok, helo_required=False)
        except states.SequenceError:
            pass  # out of order: the server answered 503 and stayed put; so do we

    def _read_reply(self, command: str | None, started: float) -> Reply:
        phase = "greeting" if command == "CONNECT" else (command or "raw")
        if phase == ".":
            phase = "after the final dot"
        while True:
            n = reply_is_complete(self._buf)
            if n:
                raw, self._buf = self._buf[:n], self._buf[n:]
                return parse_reply(raw, command=command, elapsed=time.perf_counter() - started)
            try:
                chunk = self.sock.recv(65536) if self.sock else b""
            except TimeoutError:
                raise ReplyTimeout(
                    f"no complete reply within {self.timeout} s (phase {phase}); "
                    f"the server may be slow on purpose (a tarpit) or stuck",
                    phase=phase,
                ) from None
            except OSError as exc:
                chunk = b""
                err = exc
            else:
                err = None
            if not chunk:
                partial, self._buf = self._buf, b""
                self.close()
                detail = f" after sending {partial!r}" if partial else ""
                raise ServerClosed(
                    f"the server closed the connection without a complete reply "
                    f"(phase {phase}){detail}" + (f": {err}" if err else ""),
                    phase=phase,
                )
            self._buf += chunk


def _check_address(addr, what: str, allow_empty: bool = False) -> None:
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
