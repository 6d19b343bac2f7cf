"""SMTP replies: parsing, meanings and which reply is legal after which command.

Sources: RFC 5321 §4.2 (reply codes and their digits), §4.3.2 (command-reply
sequences), RFC 3463 (enhanced status codes), RFC 4954 (AUTH codes), RFC 3207
(STARTTLS).  Free of sockets: the server, the client and the plots share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# §4.2.1: the first digit.
FIRST_DIGIT = {
    "2": "Positive completion: the requested action has been done.",
    "3": "Positive intermediate: go on, send the next part (354 after DATA, 334 in AUTH).",
    "4": "Transient negative: not now; the same request may succeed later, so a client "
    "keeps the message and retries.",
    "5": "Permanent negative: do not repeat the same request; the sender must change something.",
}
# §4.2.1: the second digit.
SECOND_DIGIT = {
    "0": "syntax",
    "1": "information",
    "2": "connections",
    "3": "unspecified",
    "4": "unspecified",
    "5": "mail system",
}

# §4.2.2 / §4.2.3, plus RFC 4954 (AUTH), RFC 3207 (STARTTLS), RFC 7504 (521, 556).
CODES: dict[int, str] = {
    211: "System status, or system help reply",
    214: "Help message",
    220: "<domain> Service ready",
    221: "<domain> Service closing transmission channel",
    235: "Authentication succeeded (RFC 4954)",
    250: "Requested mail action okay, completed",
    251: "User not local; will forward to <forward-path>",
    252: "Cannot VRFY user, but will accept message and attempt delivery",
    334: "Server challenge: continue the AUTH exchange (RFC 4954)",
    354: "Start mail input; end with <CRLF>.<CRLF>",
    421: "<domain> Service not available, closing transmission channel",
    432: "A password transition is needed (RFC 4954)",
    450: "Requested mail action not taken: mailbox unavailable (e.g. busy or blocked "
    "for policy reasons)",
    451: "Requested action aborted: local error in processing",
    452: "Requested action not taken: insufficient system storage (or too many recipients)",
    454: "Temporary authentication failure / TLS not available (RFC 4954, RFC 3207)",
    455: "Server unable to accommodate parameters",
    500: "Syntax error, command unrecognized (or command line too long)",
    501: "Syntax error in parameters or arguments",
    502: "Command not implemented",
    503: "Bad sequence of commands",
    504: "Command parameter not implemented",
    521: "Host does not accept mail (RFC 7504)",
    530: "Authentication required (RFC 4954)",
    534: "Authentication mechanism is too weak (RFC 4954)",
    535: "Authentication credentials invalid (RFC 4954)",
    538: "Encryption required for requested authentication mechanism (RFC 4954)",
    550: "Requested action not taken: mailbox unavailable (not found, no access, or "
    "rejected for policy reasons)",
    551: "User not local; please try <forward-path>",
    552: "Requested mail action aborted: exceeded storage allocation",
    553: "Requested action not taken: mailbox name not allowed",
    554: "Transaction failed (or, as a greeting: no SMTP service here)",
    555: "MAIL FROM/RCPT TO parameters not recognized or not implemented",
    556: "Domain does not accept mail (RFC 7504)",
}

# RFC 3463 §3 (subjects) and §3.1-3.8 (details), with RFC 4954 and RFC 7372 additions.
ENHANCED_CLASS = {"2": "Success", "4": "Persistent transient failure", "5": "Permanent failure"}
ENHANCED_SUBJECT = {
    "0": "Other or undefined status",
    "1": "Addressing status",
    "2": "Mailbox status",
    "3": "Mail system status",
    "4": "Network and routing status",
    "5": "Mail delivery protocol status",
    "6": "Message content or media status",
    "7": "Security or policy status",
}
ENHANCED_DETAIL = {
    "0.0": "Other undefined status",
    "1.0": "Other address status",
    "1.1": "Bad destination mailbox address",
    "1.2": "Bad destination system address",
    "1.3": "Bad destination mailbox address syntax",
    "1.4": "Destination mailbox address ambiguous",
    "1.5": "Destination address valid",
    "1.6": "Destination mailbox has moved",
    "1.7": "Bad sender's mailbox address syntax",
    "1.8": "Bad sender's system address",
    "2.0": "Other or undefined mailbox status",
    "2.1": "Mailbox disabled, not accepting messages",
    "2.2": "Mailbox full",
    "2.3": "Message length exceeds administrative limit",
    "2.4": "Mailing list expansion problem",
    "3.0": "Other or undefined mail system status",
    "3.1": "Mail system full",
    "3.2": "System not accepting network messages",
    "3.3": "System not capable of selected features",
    "3.4": "Message too big for system",
    "3.5": "System incorrectly configured",
    "4.0": "Other or undefined network or routing status",
    "4.1": "No answer from host",
    "4.2": "Bad connection",
    "4.3": "Directory server failure",
    "4.4": "Unable to route",
    "4.5": "Mail system congestion",
    "4.6": "Routing loop detected",
    "4.7": "Delivery time expired",
    "5.0": "Other or undefined protocol status",
    "5.1": "Invalid command",
    "5.2": "Syntax error",
    "5.3": "Too many recipients",
    "5.4": "Invalid command arguments",
    "5.5": "Wrong protocol version",
    "6.0": "Other or undefined media error",
    "7.0": "Other or undefined security status",
    "7.1": "Delivery not authorized, message refused",
    "7.2": "Mailing list expansion prohibited",
    "7.3": "Security conversion required but not possible",
    "7.4": "Security features not supported",
    "7.5": "Cryptographic failure",
    "7.6": "Cryptographic algorithm not supported",
    "7.7": "Message integrity failure",
    "7.8": "Authentication credentials invalid (RFC 4954)",
    "7.9": "Authentication mechanism is too weak (RFC 4954)",
    "7.11": "Encryption required for requested authentication mechanism (RFC 4954)",
}

# §4.3.2: which codes each command may get.  "I" intermediate, "S" success,
# "E" error.  On top of these, §4.3.2 lets any command get 500, 501 or 421.
ANY_COMMAND = frozenset({421, 500, 501})
LEGAL_REPLIES: dict[str, dict[str, frozenset[int]]] = {
    "CONNECT": {"S": frozenset({220}), "E": frozenset({554})},
    "HELO": {"S": frozenset({250}), "E": frozenset({504, 550, 502})},
    "EHLO": {"S": frozenset({250}), "E": frozenset({504, 550, 502})},
    "MAIL": {"S": frozenset({250}), "E": frozenset({552, 451, 452, 550, 553, 503, 455, 555})},
    "RCPT": {
        "S": frozenset({250, 251}),
        "E": frozenset({550, 551, 552, 553, 450, 451, 452, 503, 455, 555}),
    },
    "DATA": {"I": frozenset({354}), "E": frozenset({503, 554})},
    ".": {"S": frozenset({250}), "E": frozenset({552, 554, 451, 452, 450, 550})},
    "RSET": {"S": frozenset({250})},
    "VRFY": {"S": frozenset({250, 251, 252}), "E": frozenset({550, 551, 553, 502, 504})},
    "EXPN": {"S": frozenset({250, 252}), "E": frozenset({550, 500, 502, 504})},
    "HELP": {"S": frozenset({211, 214}), "E": frozenset({502, 504})},
    "NOOP": {"S": frozenset({250})},
    "QUIT": {"S": frozenset({221})},
    # RFC 3207 §4 and RFC 4954 §4, §6.
    "STARTTLS": {"S": frozenset({220}), "E": frozenset({454, 501, 502, 503})},
    "AUTH": {
        "I": frozenset({334}),
        "S": frozenset({235}),
        "E": frozenset({432, 454, 500, 501, 502, 503, 504, 530, 534, 535, 538}),
    },
}

_REPLY_LINE = re.compile(rb"^([0-9]{3})([ -])(.*?)\r?\n?$", re.S)
_ENHANCED = re.compile(r"^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:\s|$)")


def legal_codes(command: str) -> frozenset[int]:
    """Every reply code RFC 5321 §4.3.2 lists for ``command`` (plus 421/500/501)."""
    key = str(command).upper()
    groups = LEGAL_REPLIES.get(key)
    if groups is None:
        return ANY_COMMAND
    return frozenset().union(*groups.values()) | ANY_COMMAND


def is_legal(command: str | None, code: int) -> bool:
    """True if RFC 5321 §4.3.2 lists ``code`` for ``command`` (421, 500 and 501 always count)."""
    if command is None or str(command).upper() not in LEGAL_REPLIES:
        return 200 <= code <= 599
    return code in legal_codes(command)


def reply_class(code: int | None) -> str:
    """'2xx', '3xx', '4xx', '5xx', or 'none' for a missing or malformed reply."""
    if code is None or not 200 <= code <= 599:
        return "none"
    return f"{code // 100}xx"


def explain_code(code: int) -> str:
    """A sentence on what a reply code means, from its digits and RFC 5321 §4.2."""
    text = str(code)
    if len(text) != 3 or text[0] not in FIRST_DIGIT:
        return f"{code} is not a valid SMTP reply code (§4.2: three digits, first 2 to 5)."
    meaning = CODES.get(code, "not a code RFC 5321 defines; read its first digit")
    second = SECOND_DIGIT.get(text[1], "unknown")
    return f"{code}: {meaning}. First digit {text[0]}: {FIRST_DIGIT[text[0]]} Second digit {text[1]}: {second}."


def explain_enhanced(enhanced: str) -> str:
    """A sentence on an RFC 3463 enhanced status code such as '5.7.1'."""
    m = _ENHANCED.match(enhanced + " ")
    if not m:
        return f"{enhanced!r} is not an enhanced status code (class.subject.detail)."
    cls, subj, det = m.groups()
    detail = ENHANCED_DETAIL.get(f"{subj}.{det}", "detail not listed in RFC 3463")
    return (
        f"{enhanced}: {ENHANCED_CLASS[cls]}; subject {subj} "
        f"({ENHANCED_SUBJECT.get(subj, 'unknown')}); {detail}."
    )


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: a three-digit code, an optional enhanced code, its text lines."""

    code: int | None
    lines: tuple[str, ...]
    enhanced: str | None = None
    raw: bytes = b""
    command: str | None = None  # the command it answers ("CONNECT" for the greeting)
    elapsed: float | None = None  # seconds from sending the command to the full reply
    injected: str | None = field(default=None, compare=False)  # fault rule, if any

    @property
    def text(self) -> str:
        """The reply's text: every line after the code, joined with newlines."""
        return "\n".join(self.texts)

    @property
    def texts(self) -> tuple[str, ...]:
        out = []
        for ln in self.lines:
            body = ln[4:] if len(ln) > 3 and ln[:3].isdigit() else ln
            out.append(body)
        if self.enhanced and out and out[0].startswith(self.enhanced):
            out[0] = out[0][len(self.enhanced) :].lstrip()
        return tuple(out)

    @property
    def klass(self) -> str:
        """'2xx', '3xx', '4xx', '5xx' or 'none'."""
        return reply_class(self.code)

    @property
    def ok(self) -> bool:
        """True for a positive reply (2xx or 3xx)."""
        return self.code is not None and 200 <= self.code < 400

    @property
    def multiline(self) -> bool:
        return len(self.lines) > 1

    @property
    def legal(self) -> bool:
        """Whether RFC 5321 §4.3.2 lists this code for the command it answers (or 421/500/501)."""
        return self.code is not None and is_legal(self.command, self.code)

    def explain(self) -> str:
        """What this reply means, digit by digit, and whether it is legal here."""
        if self.code is None:
            return "No valid reply: the server sent something that is not an SMTP reply."
        parts = [explain_code(self.code)]
        if self.enhanced:
            parts.append(explain_enhanced(self.enhanced))
        if self.command:
            if self.legal:
                parts.append(
                    f"{self.code} is one of the replies RFC 5321 §4.3.2 lists for {self.command}."
                )
            else:
                parts.append(
                    f"{self.code} is NOT among the replies RFC 5321 §4.3.2 lists for {self.command}; "
                    f"a client must still act on its first digit ({self.klass})."
                )
        return " ".join(parts)

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:  # what a notebook shows for a tuple of replies
        return (
            "<Reply "
            + " | ".join(self.lines)
            + (f" [injected: {self.injected}]" if self.injected else "")
            + ">"
        )

    def _repr_html_(self) -> str:
        from ..render import reply_html

        return reply_html(self)


def parse_reply(
    raw: bytes | str, command: str | None = None, elapsed: float | None = None
) -> Reply:
    """Parse the bytes of one complete (possibly multi-line) reply."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    lines = [ln for ln in raw.split(b"\n") if ln]
    texts = [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in lines]
    codes = set()
    for ln in lines:
        m = _REPLY_LINE.match(ln)
        codes.add(int(m.group(1)) if m else None)
    code = codes.pop() if len(codes) == 1 else None
    if code is not None and not 200 <= code <= 599:
        code = None
    enhanced = None
    if code is not None and texts and len(texts[0]) > 4:
        m = _ENHANCED.match(texts[0][4:])
        if m and m.group(1) == str(code)[0]:
            enhanced = ".".join(m.groups())
    return Reply(code, tuple(texts), enhanced, bytes(raw), command, elapsed)


def reply_from_lines(
    lines: list[str], raw: bytes, command: str | None = None, injected: str | None = None
) -> Reply:
    """A Reply for lines the lab itself rendered (one code, well-formed); else parse_reply."""
    first = lines[0] if lines else ""
    code = first[:3]
    if (
        code.isdigit()
        and "2" <= code[0] <= "5"
        and all(ln[:3] == code and ln[3:4] in ("-", " ") for ln in lines[:-1])
        and lines[-1][:3] == code
        and lines[-1][3:4] in (" ", "")
    ):
        m = _ENHANCED.match(first[4:])
        enhanced = ".".join(m.groups()) if m and m.group(1) == code[0] else None
        return Reply(int(code), tuple(lines), enhanced, raw, command, None, injected)
    reply = parse_reply(raw, command=command)
    if injected:
        reply = Reply(reply.code, reply.lines, reply.enhanced, reply.raw, command, None, injected)
    return reply


def reply_is_complete(buffer: bytes) -> int:
    """How many bytes of ``buffer`` make one complete reply (0 if none yet).

    A reply ends with the first line whose fourth character is a space
    (§4.2.1: "250-" continues, "250 " ends).  A line too short to carry a
    code also ends it, so a malformed reply cannot hang a client forever.
    """
    pos = 0
    while True:
        nl = buffer.find(b"\n", pos)
        if nl < 0:
            return 0
        line = buffer[pos:nl].rstrip(b"\r")
        pos = nl + 1
        if len(line) < 4 or line[3:4] != b"-":
            return pos
