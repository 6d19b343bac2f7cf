"""OpenSMTPD 6.8 (Debian 12's opensmtpd 6.8.0p2) as the package configures itself.

Ground truth: tests/recordings/generated/opensmtpd.json (the stock program, 600
generated dialogues), generated/variants/opensmtpd-*.json, the rules in
tests/recordings/behaviour/opensmtpd.md, and the program's source
(usr.sbin/smtpd/smtp_session.c, to.c, util.c, rfc5322.c, lka_filter.c).

How OpenSMTPD reads a session, in short (``OpenSMTPDGrammar``):

- A line ends at LF; one CR before it is dropped, a NUL ends it (C strings).
  A command line of 2048 octets or more: "500 5.0.0 Command line too long",
  64 KiB without an end (also in message text): "500 5.0.0 Line too long";
  both close the connection.
- It does not offer PIPELINING (RFC 2920) and checks: input already waiting
  behind a command line, or behind the final dot, is answered "500 5.5.1
  Invalid command: Pipelining not supported" and the connection closes.
- "MAIL FROM:" and "RCPT TO:" are verbs with a space inside; the verb ends at
  the first space (a TAB is part of it); no VRFY, EXPN, ETRN; commands that take
  no argument refuse even a trailing space; HELO or EHLO once per session;
  RSET, STARTTLS and AUTH only after it.
- Paths: angle brackets required, no quoted local parts, the last "@" splits,
  a source route is dropped, a bare local part gets the server's name
  (``opensmtpd_syntax``).  MAIL takes SIZE= (not compared with the limit),
  BODY=7BIT|8BITMIME, AUTH=, RET=, ENVID=; RCPT takes NOTIFY= and ORCPT=.
- Recipients follow Debian's smtpd.conf: ``match from any for domain
  <mydestination> action "local"``, ``match for local action "local"``, ``match
  from local for any action "relay"`` (local = ``mynetworks``); the local action
  knows the names in /etc/aliases (``aliases``) and the system's accounts
  (``userbase``), or a virtual table (``virtual``).
- No error limit, no tarpit; the message must start with a header or an empty
  line (RFC 5322), else "550 5.7.1 ... Message is not RFC 2822 compliant".
- HELO checks exist only as built-in filters (``filters``: smtpd.conf lines,
  ``opensmtpd_filters``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from ..grammar import CommandLine, Grammar, Path, Refusal, View
from ..lines import MessageText
from ..states import Command, State
from .base import Persona, recorded_policy, register
from .generic import GENERIC
from .opensmtpd_filters import Filters, _hostname_match
from .opensmtpd_syntax import (
    SPACE,
    HeaderCheck,
    _octets,
    mailaddr,
    orcpt_ok,
    valid_domainpart,
)

if TYPE_CHECKING:
    from ..policy import Policy
    from ..setup import Setup

_SEQUENCE = "503 5.5.1 Invalid command: Command not allowed at this point."
_UNKNOWN = "500 5.5.1 Invalid command: Command unrecognized"
_NO_ARGS = "500 5.5.4 Invalid command arguments: command does not accept arguments."
_INVALID_RECIPIENT = "550 Invalid recipient: <{addr}>"
_NOT_SUPPORTED = "503 5.5.1 Invalid command: Command not supported"
OPENSMTPD = dict(
    GENERIC,
    **{
        "greeting": "220 {hostname} ESMTP OpenSMTPD",
        "helo_ok": "250 {hostname} Hello {arg} [{client}], pleased to meet you",
        "ehlo_ok": "250 {hostname} Hello {arg} [{client}], pleased to meet you",
        "helo_syntax": "501 5.5.1 Invalid command: HELO requires domain name",
        "ehlo_syntax": "501 5.5.1 Invalid command: EHLO requires domain name",
        "helo_invalid": "501 5.5.4 Invalid command arguments: Invalid domain name",
        # OpenSMTPD has no such checks (a filter does them, in the site's words); these
        # answer the lab's Postfix-named switches, in OpenSMTPD's style.
        "helo_non_fqdn": "501 5.5.4 Invalid command arguments: Invalid domain name",
        "helo_unknown": "501 5.5.4 Invalid command arguments: Host not found",
        "need_helo": _SEQUENCE,
        "need_mail": _SEQUENCE,
        "need_rcpt": _SEQUENCE,
        "no_valid_recipients": "503 5.5.4 Invalid command arguments: No recipient specified",
        "nested_mail": _SEQUENCE,
        "bad_sequence": _SEQUENCE,
        "need_ehlo_for_auth": _SEQUENCE,
        "auth_in_transaction": _SEQUENCE,
        "starttls_in_transaction": _SEQUENCE,
        "unknown_command": _UNKNOWN,
        "empty_line": _UNKNOWN,
        "bad_bytes": _UNKNOWN,  # never said: OpenSMTPD reads bytes, not UTF-8
        "line_too_long": "500 5.0.0 Command line too long",
        "text_line_too_long": "500 5.0.0 Line too long",  # only with a lower text_line_limit
        "mail_ok": "250 2.0.0 Ok",
        "mail_syntax": "553 5.1.0 Sender address syntax error",
        "mail_param_unknown": "503 5.5.4 Invalid command arguments: Unsupported option {arg}",
        "rcpt_ok": "250 2.1.5 Destination address valid: Recipient ok",
        "rcpt_syntax": "501 5.1.3 Recipient address syntax error",
        "relay_denied": _INVALID_RECIPIENT,
        "too_many_recipients": "451 4.5.3 Too many recipients: Too many recipients",
        # Never said: OpenSMTPD does not compare SIZE= with its limit at MAIL.
        "size_param_exceeded": "552 5.3.4 Message too big for system",
        "data_go": '354 Enter mail, end with "." on a line by itself',
        "data_syntax": _NO_ARGS,
        "data_ok": "250 2.0.0 {queue_id} Message accepted for delivery",
        "data_too_big": "554 5.3.4 Message too big for system: Transaction failed, message too big",
        "rset_ok": "250 2.0.0 Reset state",
        "rset_syntax": _NO_ARGS,
        "noop_ok": "250 2.0.0 Ok",
        "noop_syntax": _NO_ARGS,
        "vrfy_ok": _UNKNOWN,  # never said: VRFY is not a command here
        "vrfy_syntax": _UNKNOWN,
        "expn": _UNKNOWN,
        "help": (
            "214-2.0.0 This is OpenSMTPD\n"
            "214-2.0.0 To report bugs in the implementation, please contact bugs@openbsd.org\n"
            "214-2.0.0 with full details\n"
            "214 2.0.0 End of HELP info"
        ),
        "quit": "221 2.0.0 Bye",
        # OpenSMTPD 6.8 counts no errors: said only under the lab's hard_error_limit.
        "too_many_unknown": "421 4.7.0 {hostname} Too many errors, closing connection",
        "too_many_errors": "421 4.7.0 {hostname} Too many errors, closing connection",
        "timeout": "421 4.4.2 {hostname} Timeout",  # never said: closes_silently
        "too_many_connections": "421 4.7.0 {hostname} Too many connections, try again later",
        "shutdown": "421 4.3.2 {hostname} Service shutting down",  # never said, as timeout
        "starttls_not_offered": _NOT_SUPPORTED,
        "starttls_go": "220 2.0.0 Ready to start TLS",
        "starttls_syntax": "501 5.5.4 Invalid command arguments: No parameters allowed",
        "starttls_already": "503 5.5.1 Invalid command: Channel already secured",
        "auth_not_offered": _NOT_SUPPORTED,
        "auth_challenge": "334 {arg}",
        "auth_ok": "235 2.0.0 Authentication succeeded",
        "auth_failed": "535 Authentication failed",
        "auth_required": "530 5.5.1 Invalid command: Must issue an AUTH command first",
        "auth_encryption_required": _NOT_SUPPORTED,  # it offers AUTH only inside TLS
        "auth_already": "503 5.5.1 Invalid command: Already authenticated",
        "auth_mechanism_unknown": (
            '504 5.7.4 Security features not supported: AUTH method "{word}" not supported'
        ),
        "auth_cancelled": "501 5.5.2 Syntax error: Syntax error",
        "auth_undecodable": "501 5.5.2 Syntax error: Syntax error",
        "auth_syntax": "501 5.5.4 Invalid command arguments: No parameters given",
        "already_greeted": "503 5.5.1 Invalid command: Already identified",
        "need_helo_for_vrfy": _SEQUENCE,
        # OpenSMTPD 6.8 has no greylisting or identity checks of its own: the lab's
        # words in its style ("Invalid ...: reason").
        "greylisted": "451 4.7.1 Temporary failure: <{addr}> greylisted, try again in {wait} seconds",
        "client_unknown": "450 4.7.25 Temporary failure: no reverse DNS for [{client}]",
        "helo_mismatch": "450 4.7.1 Temporary failure: HELO name {helo} does not match [{client}] (the lab's check, against RFC 5321 §4.1.4)",
        "internal_error": "421 4.3.0 Temporary failure",  # smtp_session.c's own
        "connection_refused": "554 5.7.1 {hostname} Connection refused for [{client}]",
        "user_unknown": _INVALID_RECIPIENT,
        # Replies only OpenSMTPD has (keys its grammar uses).
        "line_overflow": "500 5.0.0 Line too long",
        "pipelining": "500 5.5.1 Invalid command: Pipelining not supported",
        "no_arguments": _NO_ARGS,
        "wiz": "500 5.5.1 Invalid command: this feature is not supported yet ;-)",
        "rcpt_param_unknown": "503 Unsupported option {arg}",
        "option_too_large": (
            "503 5.5.4 Invalid command arguments: option too large, truncated: {arg}"
        ),
        "notify_never": "553 NOTIFY option NEVER cannot be combined with other options",
        "orcpt_syntax": "553 ORCPT address syntax error",
        "virtual_unknown": "524 5.2.4 Mailing list expansion problem: <{addr}>",
        "message_malformed": (
            "550 5.7.1 Delivery not authorized, message refused: Message is not RFC 2822 compliant"
        ),
        "message_loop": "500 5.4.6 Routing loop detected: Loop detected",
        "filter_reject": "{arg}",  # a built-in filter's own reply
        "filter_disconnect": "{arg}",
        "access_denied": "503 5.5.1 Invalid command: Access denied for [{client}]",
    },
)

# /etc/aliases as Debian's postinst writes it (every name leads to root).
STOCK_ALIASES = ("abuse", "noc", "security", "postmaster", "hostmaster", "webmaster", "www", "ftp")
# getpwnam() on a fresh Debian 12: base-passwd's accounts and the package's own.
DEBIAN_ACCOUNTS = (
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody", "opensmtpd", "opensmtpq",
)  # fmt: skip
# <localnames> (config.c set_local): "localhost", the server's name and the addresses
# of its interfaces, bare and as literals.  The lab's machine has 127.0.0.1 on lo and
# no IPv6 (as the recording machine: RCPT TO:<bob@[IPv6:::1]> was relayed, not local).
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[127.0.0.1]")
_NO_ARGUMENT = (Command.DATA, Command.RSET, Command.QUIT, Command.NOOP, Command.HELP)
_VERBS = ("HELO", "EHLO", "STARTTLS", "AUTH", "DATA", "RSET", "QUIT", "NOOP", "HELP")
SMTP_LINE_MAX = 65535  # smtp_session.c: a line this long (CR included) is never read
DSN_ENVID_LEN = 100  # smtpd.h
DSN_NOTIFY = ("SUCCESS", "FAILURE", "DELAY", "NEVER")


class OpenSMTPDGrammar(Grammar):
    """How smtp_session.c reads a line and decides on it (see the module's docstring)."""

    text_line_end = b"\n"
    read_limit = SMTP_LINE_MAX - 1  # bytes before the LF
    eager_overflow = True  # said as soon as 64 KiB wait without an end
    overflow_key = "line_overflow"
    text_overflow_key = "line_overflow"
    refuses_pipelining = True

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        super().__init__(persona, setup)
        self.notify: set[str] = set()  # the transaction's DSN NOTIFY flags, across RCPTs

    def decode(self, line: bytes) -> str:
        raw = line[:-1] if line.endswith(b"\n") else line
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def split(self, text: str) -> tuple[str, str]:
        # The argument keeps its leading space: "NOOP " has one, "NOOP" has none.
        word = text.split(" ", 1)[0]
        return word.upper(), text[len(word) :]

    def too_long(self, line: bytes, text: str, verb: str, policy: Policy) -> bool:
        # s->cmd is char[LINE_MAX]: 2048 octets or more (stock command_line_limit 2049 with CRLF).
        return _octets(text) + 2 > policy.command_line_limit

    def command(self, verb: str, argument: str) -> Command | None:
        if verb == "MAIL":
            return Command.MAIL if argument[:6].upper() == " FROM:" else None
        if verb == "RCPT":
            return Command.RCPT if argument[:4].upper() == " TO:" else None
        return Command(verb) if verb in _VERBS else None

    def before(self, cmd: Command | None, line: CommandLine, view: View) -> Refusal | None:
        verb, argument = line.verb, line.arg
        if verb == "WIZ":
            return Refusal("no_arguments" if argument else "wiz", argument)
        if cmd in _NO_ARGUMENT and argument:
            # checked before anything else, a trailing space too
            return Refusal("no_arguments", argument)
        if cmd in (Command.STARTTLS, Command.AUTH) and view.state is not State.GREETED:
            return Refusal("bad_sequence", argument)  # after HELO, outside a transaction
        return None

    def refuses_argument(self, command: Command, argument: str) -> bool:
        return False  # refusal() said it already

    def helo(self, verb: str, argument: str, view: View) -> Refusal | str:
        if not argument:
            return Refusal("helo_syntax" if verb == "HELO" else "ehlo_syntax")
        name = argument[1:].lstrip(SPACE)
        if not valid_domainpart(name):
            return Refusal("helo_invalid", argument)
        assert self.setup is not None
        filters = self.setup.settings.get("filters")
        if not isinstance(filters, Filters) or not filters:
            return name
        ptr, confirmed = self.setup.reverse_of(self.client_ip)
        verdict = filters.at_helo(verb, name, self.client_ip, ptr, confirmed and ptr is not None)
        if verdict.key is not None:
            return Refusal(verdict.key, verdict.text)
        if not valid_domainpart(verdict.name):  # a rewritten name is checked again
            return Refusal("helo_invalid", argument)
        return verdict.name

    def path(self, argument: str, keyword: str) -> Path | None:
        prefix = " " + keyword
        if argument[: len(prefix)].upper() != prefix:
            return None
        mail_from = keyword == "FROM:"
        if mail_from:
            self.notify = set()  # a new transaction, a new envelope
        assert self.setup is not None
        rest = argument[len(prefix) :].lstrip(SPACE)
        address, options = mailaddr(rest, mail_from, self.setup.hostname)
        if address is None:
            return None
        return Path(address, tuple(opt for opt in options.split(" ") if opt))

    def parameters(self, command: Command, path: Path, size_limit: int) -> Refusal | None:
        check = self._mail_option if command is Command.MAIL else self._rcpt_option
        for option in path.parameters:
            refused = check(option)
            if refused is not None:
                return refused
        return None

    def _mail_option(self, option: str) -> Refusal | None:
        name = option.upper()
        if name.startswith(("AUTH=", "SIZE=", "RET=")) or name in ("BODY=7BIT", "BODY=8BITMIME"):
            return None  # SIZE= and RET= are taken whatever they say
        if name.startswith("ENVID="):
            value = option[6:]
            return Refusal("option_too_large", value) if _octets(value) > DSN_ENVID_LEN else None
        return Refusal("mail_param_unknown", option)

    def _rcpt_option(self, option: str) -> Refusal | None:
        name = option.upper()
        if name.startswith("NOTIFY="):
            self.notify.update(v for v in name[7:].split(",") if v in DSN_NOTIFY)
            return (
                Refusal("notify_never") if "NEVER" in self.notify and len(self.notify) > 1 else None
            )
        if name.startswith("ORCPT="):
            return None if orcpt_ok(option[6:]) else Refusal("orcpt_syntax")
        return Refusal("rcpt_param_unknown", option)

    def recipient(self, path: Path, standard: Refusal | None, view: View) -> Refusal | None:
        """Debian's match rules, in order: local delivery for mydestination from anyone,
        and for the server's own names from local clients; relaying for local clients."""
        key = self._verdict(path.address, view.user is not None)
        return Refusal(key, fields={"addr": path.address}) if key is not None else None

    def _verdict(self, address: str, authenticated: bool) -> str | None:
        setup = self.setup
        assert setup is not None
        policy = setup.policy
        if policy.open_relay:
            return None
        user, _, domain = address.rpartition("@")
        local_client = policy.is_trusted(self.client_ip)
        names = (setup.hostname, *_LOCAL_NAMES) if local_client else ()
        if any(_hostname_match(domain, d) for d in (*policy.mydestination, *names)):
            return self._local_user(user, domain, address)
        return None if local_client or authenticated else "relay_denied"

    def _local_user(self, user: str, domain: str, address: str) -> str | None:
        """The local action: a virtual table, or /etc/aliases then the system's accounts."""
        setup = self.setup
        assert setup is not None
        known = setup.recipients  # a lab net's users replace the machine's
        if known is not None:
            return None if known.knows(address) else "user_unknown"
        settings = setup.settings
        user, domain = user.lower(), domain.lower()
        untagged = user.split("+", 1)[0]  # gilles+hackers@ -> gilles@ (sc_subaddressing_delim)
        virtual = _names(settings.get("virtual"))
        if virtual:
            keys = (f"{user}@{domain}", f"{untagged}@{domain}", user, untagged, f"@{domain}", "@")
            return None if any(k in virtual for k in keys) else "virtual_unknown"
        if {user, untagged} & _names(settings.get("aliases")):
            return None
        return None if untagged in _names(settings.get("userbase")) else "user_unknown"

    def text_bytes(self, line: bytes) -> bytes:
        raw = line[:-1] if line.endswith(b"\n") else line
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        return raw.split(b"\0", 1)[0] + b"\r\n"

    def message_text(self, size_limit: int, line_limit: int) -> MessageText:
        return HeaderCheck(size_limit, line_limit)


def _names(value: object) -> frozenset[str]:
    return frozenset(v.lower() for v in value) if isinstance(value, tuple) else frozenset()


register(
    Persona(
        name="opensmtpd",
        software="OpenSMTPD 6.8 (Debian)",
        about="OpenSMTPD 6.8.0p2 as Debian 12 configures it: no HELO checks beyond the "
        "name's syntax (built-in filters can add them), HELO once per session, no "
        "VRFY, SIZE= not checked at MAIL, no PIPELINING (pipelined input closes the "
        "connection), mail for lab.example.org's known users from anyone and relaying "
        "for local clients.",
        replies=MappingProxyType(OPENSMTPD),
        ehlo_keywords=("8BITMIME", "ENHANCEDSTATUSCODES", "SIZE {size}", "DSN", "HELP"),
        source="tests/recordings/opensmtpd-6.8.0.json",
        # smtpd.conf(5): "smtp max-message-size", "smtp limit max-rcpt".
        policy_names=MappingProxyType(
            {"max-message-size": "message_size_limit", "max-rcpt": "max_recipients"}
        ),
        helo_required_default=True,
        # smtp.c: out of file descriptors, smtpd pauses its listening sockets ("fd
        # exhaustion"); new clients wait, unanswered.  There is no setting for it.
        waits_when_full=True,
        sequence_variants=("helo_once", "rset_needs_helo"),
        keyword_is_part_of_verb=True,
        unsupported_verbs=("VRFY", "EXPN"),
        no_argument_verbs=("RSET", "NOOP", "DATA", "QUIT", "HELP"),
        checks_size_param=False,
        closes_after=("line_too_long", "line_overflow", "pipelining", "filter_disconnect"),
        # smtp_session.c: an idle session (300 s) is freed without a word, and so is
        # every session when smtpd stops.
        closes_silently=("timeout", "shutdown"),
        extensions_before="HELP",
        grammar=OpenSMTPDGrammar,
        settings=MappingProxyType(
            {
                # smtpd.conf's built-in filters (phase helo / ehlo); stock: none.
                "filters": Filters(),
                # The local action's tables: /etc/aliases' names, the system's
                # accounts (getpwnam), or a virtual table (its keys; "@" = catch-all).
                "aliases": STOCK_ALIASES,
                "userbase": DEBIAN_ACCOUNTS,
                "virtual": (),
            }
        ),
        policy_defaults=MappingProxyType(
            {
                "message_size_limit": 36700160,  # smtpd.conf max-message-size default, 35M
                "command_line_limit": 2049,  # 2048 octets or more: too long (with CRLF: 2049)
                "text_line_limit": SMTP_LINE_MAX,  # none short of the read buffer
                "hard_error_limit": 2**31 - 1,  # OpenSMTPD 6.8 counts no errors
            }
        ),
        # tests/recordings/opensmtpd-6.8.0.json's smtpd.conf: max-message-size 1048576,
        # relaying from 127.0.0.1, lab.example.org from anyone, a catch-all virtual table.
        platform_policy=MappingProxyType(dict(recorded_policy(()), virtual=("@",))),
        queue_id_format="########",
        queue_id_alphabet="0123456789abcdef",
    )
)
