"""The client's side of the commands: one method per command, one line and one reply.

``CommandWriter`` is what the step client (``lab/client.py``, over a socket)
and the in-memory pair (``pair.py``) share: how each command is written on
the wire (RFC 5321 §4.1.1, RFC 4954 for AUTH).  Each subclass says how a
line is sent and its reply read (``command``), how message text goes after
354 (``send_message``), and may check the addresses it is given.
"""

from __future__ import annotations

from . import auth
from .replies import Reply
from .states import Command

DEFAULT_HELO = "client.example.org"


class CommandWriter:
    """The SMTP commands as methods; ``command`` and ``send_message`` are the subclass's."""

    def command(self, line: str, cmd: Command | None = None) -> Reply:
        """Send one command line and read its one reply."""
        raise NotImplementedError

    def send_message(self, message: str | bytes) -> Reply:
        """After 354: the dot-stuffed message and the final dot; returns the reply to it."""
        raise NotImplementedError

    def send_chunk(self, data: bytes, cmd: Command) -> Reply:
        """Send a BDAT line and its chunk in one go; returns the one reply to them."""
        raise NotImplementedError

    def check_address(self, address: object, what: str, allow_empty: bool = False) -> None:
        """Refuse an address before it is sent (the step client explains a learner's typo)."""

    def helo(self, name: str = DEFAULT_HELO) -> Reply:
        """HELO <your FQDN> (RFC 5321 §4.1.1.1; the grammar gives address literals to EHLO)."""
        return self.command(f"HELO {name}".rstrip(), Command.HELO)

    def ehlo(self, name: str = DEFAULT_HELO) -> Reply:
        """EHLO <FQDN or [address literal]>: like HELO, and the reply lists the extensions."""
        return self.command(f"EHLO {name}".rstrip(), Command.EHLO)

    def mail(self, sender: str, **params: object) -> Reply:
        """MAIL FROM:<sender> [PARAM=value ...] (§4.1.1.2); '' is the null sender."""
        self.check_address(sender, "sender", allow_empty=True)
        extra = "".join(f" {k.upper()}={v}" for k, v in params.items())
        return self.command(f"MAIL FROM:<{sender}>{extra}", Command.MAIL)

    def rcpt(self, recipient: str) -> Reply:
        """RCPT TO:<recipient> (§4.1.1.3)."""
        self.check_address(recipient, "recipient")
        return self.command(f"RCPT TO:<{recipient}>", Command.RCPT)

    def data(self, message: str | bytes | None = None) -> Reply:
        """DATA.  With a message: if the server says 354, send it and return the final reply."""
        reply = self.command("DATA", Command.DATA)
        if message is None or reply.code != 354:
            return reply
        return self.send_message(message)

    def bdat(self, chunk: str | bytes, last: bool = False) -> Reply:
        """BDAT <size> [LAST] with the chunk right behind it (RFC 3030 §2): the server
        counts octets, so nothing is dot-stuffed and no final dot is sent."""
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        line = f"BDAT {len(data)}{' LAST' if last else ''}\r\n".encode()
        return self.send_chunk(line + data, Command.BDAT_LAST if last else Command.BDAT)

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
        """EXPN <list>: ask who is on a mailing list (§4.1.1.7); most servers refuse."""
        return self.command(f"EXPN {who}", Command.EXPN)

    def help(self) -> Reply:
        """HELP: what the server says about itself (§4.1.1.8)."""
        return self.command("HELP", Command.HELP)

    def auth(self, user: str, password: str, mechanism: str = "PLAIN") -> Reply:
        """AUTH PLAIN or LOGIN (RFC 4954) as ``user``; returns the final reply (235 or an error).

        The password crosses the wire merely base64-encoded: use it inside TLS.
        """
        if mechanism.upper() == "PLAIN":
            # The initial response rides on the AUTH line (RFC 4954 §4), as smtplib sends it.
            return self.command(f"AUTH PLAIN {auth.plain_response(user, password)}", Command.AUTH)
        reply = self.command("AUTH LOGIN", Command.AUTH)
        for answer in (user, password):
            if reply.code != 334:
                return reply
            reply = self.command(auth.b64(answer), Command.AUTH)
        return reply
