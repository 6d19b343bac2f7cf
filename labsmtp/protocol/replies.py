"""SMTP replies: parsing, meanings, and the usual replies to each command.

Sources: RFC 5321 §4.2 (reply codes and their digits), §4.3.2 (command-reply
sequences), RFC 3463 (enhanced status codes), RFC 4954 (AUTH codes), RFC 3207
(STARTTLS).  Free of sockets: the server, the client and the plots share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .frozen import fast_init
from .states import Stage

# §4.2.1: the first digit.
FIRST_DIGIT = {
    "2": "Positive completion: the requested action has been done.",
    "3": "Positive intermediate: go on, send the next part (354 after DATA, 334 in AUTH).",
    "4": "Transient negative: not now; the same request may succeed later, so a client "
    "keeps the message and retries.",
    "5": "Permanent negative: the same request should not be repeated unchanged (§4.2.1); "
    "the sender must change something first.",
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
# The RFC's placeholders (<domain>, <forward-path>) are left out: a learner reads
# these texts, and the real reply shows the real name.
CODES: dict[int, str] = {
    211: "System status, or system help reply",
    214: "Help message",
    220: "Service ready",
    221: "Service closing transmission channel",
    235: "Authentication succeeded (RFC 4954)",
    250: "Requested mail action okay, completed",
    251: "User not local; will forward",
    252: "Cannot VRFY user, but will accept message and attempt delivery",
    334: "Server challenge: continue the AUTH exchange (RFC 4954)",
    354: "Start mail input; end with <CRLF>.<CRLF>",
    421: "Service not available, closing transmission channel",
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
    551: "User not local; please try another path",
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
    "1.10": "Recipient address has null MX (RFC 7505)",
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
    "7.12": "A password transition is needed (RFC 4954)",
    "7.20": "No passing DKIM signature found (RFC 7372)",
    "7.21": "No acceptable DKIM signature found (RFC 7372)",
    "7.22": "No valid author-matched DKIM signature found (RFC 7372)",
    "7.23": "SPF validation failed (RFC 7372)",
    "7.24": "SPF validation error (RFC 7372)",
    "7.25": "Reverse DNS validation failed (RFC 7372)",
    "7.26": "Multiple authentication checks failed (RFC 7372)",
    "7.27": "Sender address has null MX (RFC 7505)",
}

# §4.3.2: the usual replies at each stage.  "I" intermediate, "S" success,
# "E" error.  On top of these, §4.3.2 lets any command get 500, 501 or 421.
# HELO and EHLO share a stage (and a line of §4.3.2).  §4.3.2 lists *usual*
# replies ("some servers may generate other replies"), so a code outside it is
# unusual, not forbidden: Postfix refuses relaying with 554 under
# reject_unauth_destination, and a stock Postfix (defer_unauth_destination,
# the default since 2.10) defers it with 454.
ANY_COMMAND = frozenset({421, 500, 501})
LEGAL_REPLIES: dict[Stage, dict[str, frozenset[int]]] = {
    Stage.CONNECT: {"S": frozenset({220}), "E": frozenset({554})},
    Stage.HELO: {"S": frozenset({250}), "E": frozenset({504, 550, 502})},
    Stage.MAIL: {
        "S": frozenset({250}),
        "E": frozenset({552, 451, 452, 550, 553, 503, 455, 555}),
    },
    Stage.RCPT: {
        "S": frozenset({250, 251}),
        "E": frozenset({550, 551, 552, 553, 450, 451, 452, 503, 455, 555}),
    },
    Stage.DATA: {"I": frozenset({354}), "E": frozenset({503, 554})},
    Stage.DOT: {"S": frozenset({250}), "E": frozenset({552, 554, 451, 452, 450, 550})},
    Stage.RSET: {"S": frozenset({250})},
    Stage.VRFY: {"S": frozenset({250, 251, 252}), "E": frozenset({550, 551, 553, 502, 504})},
    Stage.EXPN: {"S": frozenset({250, 252}), "E": frozenset({550, 500, 502, 504})},
    Stage.HELP: {"S": frozenset({211, 214}), "E": frozenset({502, 504})},
    Stage.NOOP: {"S": frozenset({250})},
    Stage.QUIT: {"S": frozenset({221})},
    # Not in RFC 5321: RFC 3207 §4 (STARTTLS) and RFC 4954 §4, §6 (AUTH).
    Stage.STARTTLS: {"S": frozenset({220}), "E": frozenset({454, 501, 502, 503})},
    Stage.AUTH: {
        "I": frozenset({334}),
        "S": frozenset({235}),
        "E": frozenset({432, 454, 500, 501, 502, 503, 504, 534, 535, 538}),
    },
}
# RFC 4954 §6: 530 "SHOULD be returned by any command other than AUTH, EHLO, HELO,
# NOOP, RSET, or QUIT when server policy requires authentication": a transaction's.
EXTENSION_REPLIES: dict[Stage, dict[int, str]] = {
    Stage.MAIL: {530: "RFC 4954 §6"},
    Stage.RCPT: {530: "RFC 4954 §6"},
    Stage.DATA: {530: "RFC 4954 §6"},
}
# Where each stage's row of usual replies comes from.
SOURCES = {Stage.STARTTLS: "RFC 3207 §4", Stage.AUTH: "RFC 4954 §6"}

_REPLY_LINE = re.compile(rb"^([0-9]{3})([ -])(.*?)\r?\n?$", re.S)
_ENHANCED = re.compile(r"^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:\s|$)")


def _groups(command: str | Stage | None) -> dict[str, frozenset[int]] | None:
    stage = Stage.of(command) if command is not None else None
    return LEGAL_REPLIES.get(stage) if stage is not None else None


def legal_codes(command: str | Stage) -> frozenset[int]:
    """Every usual reply code the RFCs list for ``command`` (a verb such as 'MAIL',
    'CONNECT', '.' or a ``Stage``), plus 421, 500 and 501, allowed for any."""
    groups = _groups(command)
    stage = Stage.of(command)
    if groups is None or stage is None:
        return ANY_COMMAND
    extensions = frozenset(EXTENSION_REPLIES.get(stage, {}))
    return frozenset().union(*groups.values()) | ANY_COMMAND | extensions


def is_legal(command: str | Stage | None, code: int) -> bool:
    """True if ``code`` is among the usual replies the RFCs list for ``command``.

    RFC 5321 §4.3.2 (RFC 3207 §4 for STARTTLS, RFC 4954 §6 for AUTH and 530);
    421, 500 and 501 count for every command.  A code outside the list is
    unusual, not forbidden: a client acts on its first digit.
    """
    if _groups(command) is None:
        return 200 <= code <= 599
    return code in legal_codes(command)  # type: ignore[arg-type]


is_listed = is_legal  # the same question, in the words of §4.3.2 ("usual replies")


def reply_source(command: str | Stage | None, code: int | None = None) -> str:
    """The RFC section that lists the usual replies to ``command`` (for ``code``, if given)."""
    stage = Stage.of(command) if command else None
    if stage is None:
        return "RFC 5321 §4.3.2"
    if code is not None and code in EXTENSION_REPLIES.get(stage, {}):
        return EXTENSION_REPLIES[stage][code]
    return SOURCES.get(stage, "RFC 5321 §4.3.2")


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


# What a code means after a given command, in one short line (Reply.explain()).
# (command, code); command None: after any command.  Words, not RFC placeholders.
_MEANING: dict[tuple[str | None, int], str] = {
    ("CONNECT", 220): "the server is ready; greet it with EHLO or HELO",
    ("CONNECT", 554): "no SMTP service for this client here; only QUIT is useful now",
    ("CONNECT", 421): "the server cannot take the connection now; try again later",
    ("HELO", 250): "greeting accepted; a message can start with MAIL FROM",
    ("EHLO", 250): "greeting accepted; the other lines list the server's extensions",
    ("HELO", 504): "the name given is refused (for example, not fully qualified)",
    ("EHLO", 504): "the name given is refused (for example, not fully qualified)",
    ("HELO", 550): "the greeting is refused by the server's policy",
    ("EHLO", 550): "the greeting is refused by the server's policy",
    ("EHLO", 502): "no EHLO here (an old server): greet with HELO instead",
    ("MAIL", 250): "sender accepted; now name a recipient with RCPT TO",
    ("RCPT", 250): "recipient accepted; add another, or send DATA",
    ("RCPT", 251): "recipient accepted; the server will forward the message",
    ("RCPT", 550): "recipient refused (no such mailbox, or policy); do not repeat unchanged",
    ("RCPT", 554): "recipient refused by policy (relaying denied, say); do not repeat unchanged",
    # Stock Postfix: 454 4.7.1 Relay access denied (defer_unauth_destination).
    ("RCPT", 454): "recipient refused for now by policy (relaying deferred, say); retrying "
    "will not help until this client is allowed to relay",
    ("DATA", 354): "go ahead: send the message, then a line with only a dot",
    ("DATA", 554): "no valid recipient, so no message can follow",
    (".", 250): "message accepted: the server is now responsible for it",
    (".", 554): "message refused (its content, or policy); do not repeat unchanged",
    ("RSET", 250): "transaction cleared; the greeting still holds",
    ("NOOP", 250): "nothing done; the connection is alive",
    ("VRFY", 250): "the mailbox exists",
    ("VRFY", 252): "the server will not confirm the mailbox, but would accept mail for it",
    ("QUIT", 221): "goodbye; the server closes the connection",
    ("STARTTLS", 220): "start the TLS handshake now, then send EHLO again",
    ("AUTH", 334): "the server waits for the next part of the login (base64)",
    ("AUTH", 235): "logged in",
    ("AUTH", 503): "AUTH is not possible now (not offered here, or already logged in)",
    ("AUTH", 535): "wrong user name or password",
    ("AUTH", 538): "this login method needs an encrypted connection: STARTTLS first",
    (None, 211): "system status",
    (None, 214): "help text",
    (None, 250): "done",
    (None, 421): "the server is closing the connection (shutting down, idle too long or "
    "overloaded); try again later",
    (None, 450): "mailbox unavailable for now (busy, or a temporary block such as "
    "greylisting); try again later",
    (None, 451): "aborted by an error at the server; try again later",
    (None, 452): "not now: too many recipients, or too little storage; try again later",
    (None, 454): "TLS or login unavailable for now; try again later",
    (None, 455): "the server cannot accommodate these parameters now",
    (None, 500): "command not recognized, or the line is too long",
    (None, 501): "the command's argument is malformed",
    (None, 502): "command not implemented here",
    (None, 503): "wrong moment for this command (bad sequence); nothing changed",
    (None, 504): "a parameter of the command is not implemented",
    (None, 521): "this host does not accept mail at all",
    (None, 530): "log in first (AUTH): this server requires authentication",
    (None, 534): "this login method is too weak for the server",
    (None, 550): "refused: mailbox unavailable (no such user, or policy); do not repeat unchanged",
    (None, 551): "user not local, and the server will not forward",
    (None, 552): "too big: over the size limit or storage allocation",
    (None, 553): "mailbox name not allowed (bad address)",
    (None, 554): "refused (often by policy); do not repeat unchanged",
    (None, 555): "MAIL FROM/RCPT TO parameters not recognized",
    (None, 556): "this domain does not accept mail",
}
_GIST = {  # the first digit, when nothing more specific is known
    "2": "done",
    "3": "go on with the next part",
    "4": "temporary failure; try again later",
    "5": "permanent failure; do not repeat unchanged",
}


def command_words(command: str | None) -> str:
    """How to name ``command`` in a sentence: 'on connecting', 'after the final dot', 'after MAIL'."""
    if not command:
        return ""
    key = str(command).upper()
    if key == "CONNECT":
        return "on connecting"
    if key == ".":
        return "after the final dot"
    return f"after {key}"


def meaning(command: str | None, code: int) -> str:
    """What ``code`` means after ``command``, in a few words."""
    key = str(command).upper() if command else None
    found = _MEANING.get((key, code)) or _MEANING.get((None, code))
    if found:
        return found
    text = str(code)
    gist = _GIST.get(text[0], "not a valid reply code")
    return f"{CODES[code][0].lower()}{CODES[code][1:]} ({gist})" if code in CODES else gist


@fast_init
@dataclass(frozen=True, slots=True)
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
    def listed(self) -> bool:
        """Whether the RFCs list this code among the usual replies to its command (§4.3.2)."""
        return self.code is not None and is_legal(self.command, self.code)

    legal = listed  # the older name; "listed" says what §4.3.2 means

    def explain(self, detail: bool = False) -> str:
        """One line: what this code means after this command.  ``detail=True``: the long story.

        The long story reads each digit (RFC 5321 §4.2.1), the enhanced code
        (RFC 3463), and whether the RFCs list the code among the usual replies
        to the command (RFC 5321 §4.3.2; RFC 3207, RFC 4954 for STARTTLS, AUTH).
        """
        if self.code is None:
            return "No valid reply: the server sent something that is not an SMTP reply."
        where = command_words(self.command)
        short = f"{self.code}{' ' + where if where else ''}: {meaning(self.command, self.code)}."
        if not detail:
            return short
        parts = [short, explain_code(self.code)]
        if self.enhanced:
            parts.append(explain_enhanced(self.enhanced))
        if self.command and _groups(self.command) is not None:
            cmd = {".": "the final dot", "CONNECT": "a connection (the greeting)"}.get(
                str(self.command).upper(), str(self.command).upper()
            )
            source = reply_source(self.command, self.code)
            if self.code in ANY_COMMAND:
                parts.append(f"{self.code} may answer any command (RFC 5321 §4.3.2).")
            elif self.listed:
                parts.append(f"{source} lists {self.code} among the usual replies to {cmd}.")
            else:
                parts.append(
                    f"{source} does not list {self.code} among the usual replies to {cmd}; "
                    f"servers may send others, and a client acts on the first digit "
                    f"({self.klass})."
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

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's text form (a Reply inside a tuple): one reply line per screen line.

        Continued lines line up under the first and long ones wrap at spaces, so a
        multi-line EHLO reply inside a tuple never wraps mid-word in a notebook.
        """
        import textwrap

        with p.group(len("<Reply "), "<Reply ", ">"):
            first = True
            for line in self.lines or ("",):
                for part in textwrap.wrap(line, 72, subsequent_indent="    ") or [""]:
                    if not first:
                        p.break_()
                    p.text(part)
                    first = False
            if self.injected:
                p.break_()
                p.text(f"[injected: {self.injected}]")

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
        em = _ENHANCED.match(texts[0][4:])
        if em and em.group(1) == str(code)[0]:
            enhanced = ".".join(em.groups())
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
        and (len(lines) == 1 or all(ln[:3] == code and ln[3:4] in ("-", " ") for ln in lines[:-1]))
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


class ReplyBuffer:
    """Bytes from a server, cut into whole replies: every client here reads through one.

    Sans-IO: ``feed`` what the socket gave, then ``pop`` complete replies (raw
    bytes, possibly several lines) until it returns None.
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = b""

    def feed(self, data: bytes) -> None:
        self._data += data

    def pop(self) -> bytes | None:
        """One complete reply's bytes, or None until more arrive."""
        n = reply_is_complete(self._data)
        if not n:
            return None
        raw, self._data = self._data[:n], self._data[n:]
        return raw

    def clear(self) -> bytes:
        """Forget what is buffered (after STARTTLS, RFC 3207 §4.2); returns it."""
        rest, self._data = self._data, b""
        return rest


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
