"""Exim 4.96's commands, one function each, in the order smtp_in.c checks things.

``screen`` is smtp_read_command plus the head of each command's case (what
is refused before the command does anything); ``respond`` is the rest, for
the commands whose answer is Exim's own.  ``g`` is the connection's
``EximGrammar`` (exim_smtp.py), holding Exim's counters and flags; ``s`` the
session.  Reply texts are the persona's (exim.py), keyed by situation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import Answer, ClientLine, Event
from ..lines import TooLong
from ..states import Command, State
from . import exim_acl as acl
from .exim_parse import check_helo, extract_option, parse_extract_address

if TYPE_CHECKING:
    from ..session import Session
    from .exim_smtp import EximGrammar

SPACE = " \t\n\v\f\r"  # C isspace()
INT_MAX = 2**31 - 1
_MAIL_OPTIONS = ("SIZE", "BODY", "AUTH", "PRDR", "RET", "ENVID", "SMTPUTF8")
_NEED_VALUE = ("SIZE", "BODY", "AUTH", "RET", "ENVID")

# smtp_in.c cmd_list: name -> (takes an argument, counts as a mail command).
COMMANDS: dict[str, tuple[bool, bool]] = {
    "rset": (False, False),
    "helo": (True, False),
    "ehlo": (True, False),
    "auth": (True, True),
    "starttls": (False, False),
    "mail from:": (True, True),
    "rcpt to:": (True, True),
    "data": (False, True),
    "bdat": (True, True),
    "quit": (False, True),
    "noop": (True, False),
    "etrn": (True, False),
    "vrfy": (True, False),
    "expn": (True, False),
    "help": (True, False),
}
# Commands that must end a pipelined group (before NON_SYNC_CMD_PIPELINING in smtp_in.c),
# and those that must too while PIPELINING has not been advertised.
SYNC_ALWAYS = frozenset({"helo", "ehlo", "data", "vrfy", "expn", "noop", "etrn", "starttls"})
SYNC_NO_PIPELINING = frozenset({"mail from:", "rcpt to:", "rset"})
# One of each of these per message is not counted as a non-mail command.
FREE_ONCE = frozenset({"rset", "helo", "ehlo", "starttls"})
VERBS = {"mail from:": "MAIL", "rcpt to:": "RCPT"}


def octets(text: str) -> str:
    """Text as Exim sees it: one character per octet."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def text_of(octet_str: str) -> str:
    """Octets back to the session's text (undecodable octets kept as surrogates)."""
    return octet_str.encode("latin-1").decode("utf-8", "surrogateescape")


def stored(octet_str: str) -> str:
    """An address as the lab stores it (trace fields, the mailbox): text, octets that
    are not UTF-8 shown as U+FFFD."""
    return octet_str.encode("latin-1").decode("utf-8", "replace")


def match(text: str) -> str | None:
    """The command a line starts with, as smtp_read_command matches cmd_list."""
    low = text[:10].lower()
    for name in COMMANDS:
        n = len(name)
        if low.startswith(name) and (name.endswith(":") or text[n : n + 1] in ("", " ")):
            return name
    return None


def argument(text: str, name: str) -> str:
    """smtp_cmd_data: what follows the command's name, leading white space skipped."""
    return text[len(name) :].lstrip(SPACE)


# --- smtp_read_command and the head of each command -------------------------


def screen(
    g: EximGrammar, s: Session, line: bytes | TooLong, more: bool
) -> tuple[ClientLine, list[Event]] | None:
    g.start_command(s)
    if isinstance(line, TooLong):
        seen = ClientLine(b"", None, f"{line.size} bytes of a longer command line (not shown)")
        return seen, (_closedown(g, s, "") if g.closedown else g.unknown_command(s))
    text = line.decode("latin-1").rstrip(SPACE)
    name = match(text)
    verb = VERBS.get(name, name.upper()) if name else text.split(" ", 1)[0].upper()
    seen = ClientLine(line, verb or None)
    if g.closedown:
        return seen, _closedown(g, s, name or "")
    if s.state is State.CHUNKING or g.rset_only:
        between = _between_chunks(g, s, name or "", verb)
        if between is not None:
            return seen, between
    if "\x00" in text:  # NULs are shown as '?' in the log and refused
        counted = g.count_only(s)
        return seen, [g.emit(s, s.answer("exim_nul", None).lines, None), *counted]
    check_sync = not g.pipe_connect and g.enforce_sync(s)
    if name is None:
        return seen, (g.sync_failure(s, None) if more and check_sync else g.unknown_command(s))
    needs_sync = name in SYNC_ALWAYS or (name in SYNC_NO_PIPELINING and not g.sync_pipelining)
    if more and check_sync and needs_sync:
        return seen, g.sync_failure(s, verb)
    if g.too_many_nonmail(s, name):
        return seen, [s.answer("exim_too_many_nonmail", verb), *s.hang_up()]
    data = argument(text, name)
    if data and not COMMANDS[name][0]:
        return seen, g.synprot(s, "exim_unexpected_argument", verb)
    head = _HEADS.get(name)
    events = head(g, s, verb, data) if head is not None else None
    return None if events is None else (seen, events)


def _closedown(g: EximGrammar, s: Session, name: str) -> list[Event]:
    """After "421 Unexpected error" Exim reads on, answering only QUIT and RSET."""
    if name == "quit":
        return [s.answer("quit", "QUIT"), *s.advance(Command.QUIT, 221)]
    if name == "rset":
        return [s.answer("rset_ok", "RSET")]
    return [s.answer("exim_closedown", None, message=g.closedown)]


def _between_chunks(g: EximGrammar, s: Session, name: str, verb: str) -> list[Event] | None:
    """bdat_getc(): after a chunk that was not the last, Exim reads the next command
    itself.  BDAT goes on, NOOP is answered, RSET and QUIT work; anything else is
    "only BDAT permissible after non-LAST BDAT", and from then on (repeat_until_rset)
    everything but RSET gets "only RSET accepted now".  A QUIT there ends the message
    read too: 221, then receive_msg's "421 Lost incoming connection"."""
    if name == "rset":
        return None
    if name == "quit":
        if not g.rset_only:
            return None
        lost = s.answer("exim_lost_connection", None)
        return [s.answer("quit", "QUIT"), lost, *s.advance(Command.QUIT, 221)]
    if g.rset_only:
        return g.synprot(s, "bdat_discarded", verb)
    if name in ("bdat", "noop"):
        return None
    g.rset_only = True
    return g.synprot(s, "after_bdat", verb)


def _rset(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    g.free.discard("rset")
    g.rset_only = False
    g.reset()
    return None  # the session's RSET: "250 Reset OK", the transaction forgotten


def _auth(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    g.auth_counts = True
    if not g.auth_advertised:
        return g.synprot(s, "auth_not_offered", verb)
    if s.user is not None:
        return g.synprot(s, "auth_already", verb)
    if s.mail_from is not None:
        return g.synprot(s, "auth_in_transaction", verb)
    return None


def _starttls(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    if not g.tls_advertised:
        return g.synprot(s, "starttls_not_offered", verb)
    g.free.discard("starttls")
    g.reset()
    if s.mail_from is not None:  # an implied RSET (smtp_in.c), then TLS
        s.reset_transaction()
        s.advance(Command.RSET, 250)
    return None


def _mail(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    g.was_rej_mail = True
    if not g.helo_seen and g.helo_needed(s):
        return [s.answer("need_helo", verb)]
    if s.mail_from is not None:
        return g.synprot(s, "nested_mail", verb)
    if not data:
        return g.synprot(s, "mail_syntax", verb)
    return None


def _rcpt(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    g.rcpt_count += 1
    g.was_rcpt = g.rcpt_in_progress = True
    if s.mail_from is None:
        if g.pipelining and g.last_was_rej_mail:  # the client pipelined after a refused MAIL
            g.was_rej_mail = True
            return [g.emit(s, s.answer("need_mail", verb).lines, verb)]
        g.was_rcpt = False
        return g.synprot(s, "need_mail", verb)
    if not data:
        return g.synprot(s, "rcpt_syntax", verb)
    return None


def _data(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    g.pipe_connect = False
    if not s.rcpt_tos:
        return no_recipients(g, s, verb)
    g.strict_crlf = None
    return None  # the session's DATA: 354, then message text


def no_recipients(g: EximGrammar, s: Session, verb: str) -> list[Event]:
    """DATA or BDAT without an accepted recipient: the RCPTs' common error, if they
    all had the same, then "Valid RCPT command must precede DATA" (not counted when
    the client pipelined it after RCPTs) or its lower-case, counted form."""
    lines: list[str] = []
    if g.rcpt_same and g.rcpt_response is not None:
        first = s.answer("exim_all_rcpt_rejected", verb).lines[0]
        lines = ["503-" + first[4:], "503-" + g.rcpt_response]
    if g.pipelining and g.last_was_rcpt:
        return [g.emit(s, lines + list(s.answer("exim_rcpt_first", verb, verb=verb).lines), verb)]
    events = g.synprot(s, "no_valid_recipients", verb, verb=verb)
    answer = events[0]
    if lines and isinstance(answer, Answer):
        events[0] = Answer(tuple(lines) + answer.lines, answer.command)
    return events


def _etrn(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event]:
    if s.mail_from is not None:
        return g.synprot(s, "exim_etrn_in_transaction", verb)
    return [s.answer("exim_etrn", verb)]  # no acl_smtp_etrn: denied


def _expn(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event]:
    return [s.answer("expn", verb)]  # no acl_smtp_expn: denied


def _help(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event]:
    return [s.answer("exim_help_tls" if s.setup.tls_offered and not s.tls else "help", verb)]


def _bdat(g: EximGrammar, s: Session, verb: str, data: str) -> list[Event] | None:
    if not g.chunking:
        return g.synprot(s, "exim_bdat_not_offered", verb)
    size = data.split(" ", 1)[0].lstrip(SPACE)
    if not size.isdigit():
        return g.synprot(s, "exim_bdat_size", verb)
    g.pipe_connect = False
    if not s.rcpt_tos:
        events = no_recipients(g, s, verb)
        s.discard_input(int(size))  # the chunk is read and dropped
        return events
    return None


_HEADS = {
    "rset": _rset,
    "auth": _auth,
    "starttls": _starttls,
    "mail from:": _mail,
    "rcpt to:": _rcpt,
    "data": _data,
    "bdat": _bdat,
    "etrn": _etrn,
    "expn": _expn,
    "help": _help,
}


# --- the rest of each command, for those Exim answers its own way ------------


def respond(g: EximGrammar, s: Session, cmd: Command, arg: str, verb: str) -> list[Event] | None:
    if cmd in (Command.HELO, Command.EHLO):
        return hello(g, s, verb, arg)
    if cmd is Command.MAIL:
        return mail(g, s, octets(arg))
    if cmd is Command.RCPT:
        return rcpt(g, s, octets(arg))
    if cmd is Command.VRFY:
        return vrfy(g, s, octets(arg))
    if cmd is Command.END_OF_DATA:
        return end_of_data(g, s)
    return None


def hello(g: EximGrammar, s: Session, verb: str, arg: str) -> list[Event]:
    cmd = Command(verb)
    g.esmtp = verb == "EHLO"  # set before the checks, as smtp_in.c does
    g.free.difference_update({"helo", "ehlo"})
    name = octets(arg)
    junk = g.host_in(s, "helo_accept_junk_hosts")
    allow = g.setting(s, "helo_allow_chars")
    assert isinstance(allow, str)
    if not check_helo(name, allow, junk):
        g.helo_name = None
        key = "helo_syntax" if verb == "HELO" else "ehlo_syntax"
        return [s.answer(key, verb), *s.advance(cmd, 501), *g.count_only(s)]
    g.helo_name = name
    if g.host_in(s, "helo_verify_hosts") or g.host_in(s, "helo_try_verify_hosts"):
        if not g.helo_verified(s) and g.host_in(s, "helo_verify_hosts"):
            return [s.answer("exim_helo_mismatch", verb, hello=verb), *s.advance(cmd, 550)]
    refused = _helo_acl(g, s, verb)
    if refused is not None:
        g.helo_name = None
        return refused
    lab_key = s.policy.helo_verdict(arg, resolves=s.setup.resolves)  # the lab's, on top
    if lab_key:
        answer = s.answer(lab_key, verb, arg=arg)
        return [answer, *s.advance(cmd, int(answer.lines[-1][:3]))]
    first = s.answer("helo_ok", verb, arg=text_of(g.host_name(s) or name)).lines[0]
    g.pipelining = g.auth_advertised = g.tls_advertised = g.smtputf8 = False
    lines = [first] if verb == "HELO" else g.ehlo_lines(s, first)
    return g.greeted(s, verb, arg, lines)


def _helo_acl(g: EximGrammar, s: Session, verb: str) -> list[Event] | None:
    text = g.setting(s, "acl_smtp_helo")
    assert isinstance(text, str)
    if text.strip():
        facts = acl.Facts(
            helo=g.helo_name,
            ip=s.client_ip,
            host_name=g.host_name(s),
            primary=s.setup.hostname,
            helo_verified=lambda: g.helo_verified(s),
        )
        verdict = acl.HeloAcl(text).check(facts)
        if not verdict.ok:
            answer = s.answer("exim_acl_refusal", verb, code=verdict.code, message=verdict.message)
            events: list[Event] = [answer, *s.advance(Command(verb), verdict.code)]
            return events + (s.hang_up() if verdict.drop else [])
        if not g.pipe_connect and s.pending_input and g.enforce_sync(s):
            return g.sync_failure(s, verb)
    return None


def _strtoul(value: str) -> int | None:
    """Ustrtoul(value, &end, 10) with *end == 0: white space, a sign, digits, nothing else."""
    v = value.lstrip(SPACE)
    negative = v[:1] == "-"
    if v[:1] in "+-" and v:
        v = v[1:]
    if not v.isdigit():
        return None
    n = int(v)
    return INT_MAX if negative and n else min(n, INT_MAX)


def _xtext_ok(value: str) -> bool:
    i = 0
    while i < len(value):
        c = value[i]
        if ord(c) < 33 or ord(c) > 127 or c == "=":
            return False
        if c == "+":
            pair = value[i + 1 : i + 3]
            if len(pair) < 2 or any(ch not in "0123456789abcdefABCDEF" for ch in pair):
                return False
            i += 2
        i += 1
    return True


def _mail_options(g: EximGrammar, s: Session, data: str) -> tuple[str, list[Event] | None]:
    """Take ESMTP options off the end of a MAIL argument (after EHLO only): the
    argument left for the address parser, or a refusal."""
    while g.esmtp:
        found = extract_option(data)
        if found is None:
            break
        rest, name, value = found.rest, found.name, found.value
        kind = name.upper() if name.upper() in _MAIL_OPTIONS else ""
        if kind in _NEED_VALUE and not value:
            return rest, None
        if kind == "SIZE":
            size = _strtoul(value)
            if size is None:
                return rest, None
            g.message_size = size
        elif kind == "BODY" and value.upper() not in ("8BITMIME", "7BIT"):
            return rest, g.synprot(s, "exim_invalid_body", "MAIL", Command.MAIL)
        elif kind == "AUTH" and value != "<>" and not _xtext_ok(value):
            return rest, g.synprot(s, "exim_invalid_auth", "MAIL", Command.MAIL)
        elif kind == "PRDR":
            g.prdr = bool(g.setting(s, "prdr_enable"))
        elif kind == "SMTPUTF8" and not g.smtputf8:
            return rest, g.synprot(s, "exim_smtputf8", "MAIL", Command.MAIL)
        elif not kind:
            return found.restored(mail=True), None  # the address parser will object
        data = rest
    return data, None


def mail(g: EximGrammar, s: Session, data: str) -> list[Event]:
    g.reset()
    if s.setup.mode == "submission" and s.user is None:  # the lab's submission mode
        return [s.answer("auth_required", "MAIL"), *s.advance(Command.MAIL, 530)]
    data, refused = _mail_options(g, s, data)
    if refused is not None:
        return refused
    got = parse_extract_address(data, allow_null=True)
    if got.address is None:
        return g.synprot(
            s,
            "exim_address_error",
            "MAIL",
            Command.MAIL,
            data=text_of(data),
            error=text_of(got.error),
        )
    limit = s.policy.message_size_limit
    if 0 < limit < g.message_size:
        return [s.answer("size_param_exceeded", "MAIL"), *s.advance(Command.MAIL, 552)]
    if got.address and not got.domain:
        answer = g.emit(
            s, s.answer("exim_sender_unqualified", "MAIL", data=text_of(data)).lines, "MAIL"
        )
        return [answer, *s.advance(Command.MAIL, 501)]
    if not g.pipelining and s.pending_input and g.enforce_sync(s):
        return g.sync_failure(s, "MAIL")
    s.mail_from, s.mail_options = stored(got.address), []
    g.was_rej_mail = False
    key = "exim_mail_ok_prdr" if g.prdr else "mail_ok"
    return [s.answer(key, "MAIL"), *s.advance(Command.MAIL, 250)]


def rcpt(g: EximGrammar, s: Session, data: str) -> list[Event]:
    # RCPT options (ORCPT, NOTIFY) are taken off only when DSN is advertised, which
    # Debian's configuration does not: the last option is put back, and the
    # address parser sees it (a bare last word gets an '=' before it).
    found = extract_option(data) if g.esmtp else None
    if found is not None:
        data = found.restored(mail=False)
    got = parse_extract_address(data, allow_null=False)
    if got.address is None:
        return g.synprot(
            s,
            "exim_address_error",
            "RCPT",
            Command.RCPT,
            data=text_of(data),
            error=text_of(got.error),
        )
    address: str = got.address
    if not got.domain:
        if address.lower() != "postmaster":  # RFC 5321: postmaster needs no domain
            answer = g.emit(
                s, s.answer("exim_recipient_unqualified", "RCPT", data=text_of(data)).lines, "RCPT"
            )
            return [answer, *s.advance(Command.RCPT, 501)]
        address = f"{address}@{g.setting(s, 'qualify_domain')}"
    if g.rcpt_count > s.policy.max_recipients:  # recipients_max
        return [
            g.emit(s, s.answer("too_many_recipients", "RCPT").lines, "RCPT"),
            *s.advance(Command.RCPT, 452),
        ]
    identity = s.setup.identity  # the lab's identity policy (use_zone), before the ACL
    if identity is not None:
        key = identity.at_rcpt(s.helo or "", s.client_ip)
        if key is not None:
            answer = g.emit(s, s.answer(key, "RCPT", helo=s.helo or "").lines, "RCPT")
            return [answer, *s.advance(Command.RCPT, int(answer.lines[-1][:3]))]
    verdict = _rcpt_acl(g, s, text_of(address))
    if not verdict.ok:
        g.note_rcpt_response(verdict.message)  # an ACL's refusal: DATA quotes its message
        answer = s.answer("exim_acl_refusal", "RCPT", code=verdict.code, message=verdict.message)
        return [answer, *s.advance(Command.RCPT, verdict.code)]
    if not g.pipelining and s.pending_input and g.enforce_sync(s):
        return g.sync_failure(s, "RCPT")
    s.rcpt_tos.append(stored(address))
    return [g.emit(s, s.answer("rcpt_ok", "RCPT").lines, "RCPT"), *s.advance(Command.RCPT, 250)]


def _rcpt_acl(g: EximGrammar, s: Session, address: str) -> acl.Verdict:
    if not g.setting(s, "acl_smtp_rcpt"):
        return acl.Verdict(True)
    _, domain = acl.split_address(address)
    known = s.setup.recipients
    facts = acl.RcptFacts(
        address=address,
        is_local=s.policy.is_local_domain(domain, s.setup.hostname),
        relay_host=s.policy.is_trusted(s.client_ip),
        authenticated=s.user is not None,
        open_relay=s.policy.open_relay,
        known=known.knows if known is not None else acl.debian_known,
        rcpt_count=g.rcpt_count,
        recipients_count=len(s.rcpt_tos),
    )
    return acl.debian_rcpt(facts)


def vrfy(g: EximGrammar, s: Session, data: str) -> list[Event]:
    got = parse_extract_address(data, allow_null=False)
    if got.address is None:
        return [
            g.emit(s, s.answer("exim_vrfy_error", "VRFY", error=text_of(got.error)).lines, "VRFY")
        ]
    if not got.domain and got.address.lower() != "postmaster":
        return [
            g.emit(
                s, s.answer("exim_recipient_unqualified", "VRFY", data=text_of(data)).lines, "VRFY"
            )
        ]
    return [s.answer("vrfy_ok", "VRFY")]  # no acl_smtp_vrfy: Exim neither confirms nor denies


def end_of_data(g: EximGrammar, s: Session) -> list[Event] | None:
    """Debian's acl_check_data at the final dot; None: accepted (the session stores it)."""
    g.new_message()
    if not g.setting(s, "acl_smtp_data"):
        return None
    content = s.message_content
    longest = max_line_length(content, strict=g.strict_crlf is not False)
    if longest > 998:
        refusal = s.answer("exim_line_length", ".", length=longest)
    elif acl.header_syntax(header_fields(content)) is not None:
        refusal = s.answer("exim_header_syntax", ".")
    else:
        return None
    s.reset_transaction()
    return [refusal, *s.advance(Command.END_OF_DATA, 550)]


def max_line_length(content: bytes, strict: bool) -> int:
    """$max_received_linelength: the longest line, CR or CRLF ending a line (and LF,
    unless the message is in strict CRLF mode, where a bare LF is one more octet)."""
    text = content.replace(b"\r\n", b"\n") if not strict else content
    longest = 0
    for ln in text.split(b"\r\n" if strict else b"\n"):
        for part in ln.split(b"\r"):
            longest = max(longest, len(part))
    return longest


def header_fields(content: bytes) -> list[str]:
    """The message's header fields, unfolded (up to the first line that is not one)."""
    fields: list[str] = []
    for raw in content.decode("latin-1").split("\n"):
        ln = raw.rstrip("\r")
        if not ln:
            break
        if ln[0] in " \t" and fields:
            fields[-1] += "\n" + ln
            continue
        name, colon, _ = ln.partition(":")
        if (
            not colon
            or not name.rstrip(" \t")
            or any(ord(c) <= 32 or ord(c) == 127 for c in name.rstrip(" \t"))
        ):
            break  # not a header: the body starts here
        fields.append(ln)
    return fields
