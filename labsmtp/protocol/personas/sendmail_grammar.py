"""How Sendmail 8.17 reads and answers a command line (srvrsmtp.c, as a model).

One ``SendmailGrammar`` per session, because Sendmail's answers depend on what
came before:

- a line is read up to LF, cut at its first NUL (C strings), 8-bit bytes kept;
  the verb runs to the first white space; over 2048 octets is "Command too long,
  possible attack" and the end of the session (AUTH lines aside);
- the first line may not be HTTP or POP (GET, POST, CONNECT, USER): "Rejecting
  open proxy" and the end;
- a client that sends more before the HELO/EHLO reply, or sends message text
  before DATA's 354, broke RFC 2920's rules: "554 5.5.0 SMTP protocol error" (the
  SMTP-smuggling fix Debian backported from 8.18).  After HELO the session goes on
  answering "550 5.0.0 Command rejected" to all but HELO, EHLO, NOOP, RSET, QUIT
  and unknown commands; after DATA it ends;
- PrivacyOptions decide VRFY, EXPN, VERB, ETRN and what EHLO lists;
- ETRN, VERB and RFC 821's SEND, SOML, SAML, TURN are commands of its own;
- the client is named by its reverse DNS ($_: "name [address]", "(may be
  forged)" when the name does not lead back to the address).

Tarpits are left out (the lab answers at once): from the 3rd HELO/EHLO on
(MAXHELOCOMMANDS) Sendmail waits 1, 2, 4... seconds before answering, likewise
after 6 VRFY/EXPN, 8 ETRN, 20 NOOP/VERB; each RCPT after 3 refused ones waits a
second (BAD_RCPT_THROTTLE); greet_pause is 0 for 127/8 in Debian's access file.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..auth import Cancelled, Undecodable, Unverifiable, decode_response
from ..grammar import CommandLine, Grammar, Path, Refusal, View
from ..states import Command, State
from .sendmail_envelope import (
    Envelope,
    Problem,
    Site,
    local_problem,
    mail_parameters,
    rcpt_parameters,
    read_address,
    relay_problem,
    sender_mailer_problem,
    sender_problem,
    seven_bit,
    shorten,
    skipword,
    typed_null,
    user_of,
    verify,
)
from .sendmail_help import HELP_LINES

if TYPE_CHECKING:
    from ..policy import Policy
    from ..setup import Fields, Setup
    from .base import Persona

VERSION = "8.17.1.9"
CF_VERSION = "8.17.1.9/Debian-2+deb12u2"  # $Z: Debian's cf files
MAXLINE = 2048
GOAWAY = frozenset(
    {"needmailhelo", "needexpnhelo", "needvrfyhelo", "noexpn", "novrfy", "authwarnings", "noverb"}
)
OWN_VERBS = ("ETRN", "VERB", "SEND", "SOML", "SAML", "TURN")
NOT_IMPLEMENTED = frozenset({"SEND", "SOML", "SAML", "TURN"})  # RFC 821's, never implemented
HTTP_VERBS = ("GET", "POST", "CONNECT", "USER")  # an open proxy's first words
# Commands Sendmail still answers after "SMTP protocol error" (nullserver).
STILL_ANSWERED = frozenset({Command.QUIT, Command.HELO, Command.EHLO, Command.NOOP, Command.RSET})
HELO_PUNCTUATION = frozenset("[].-_#:")
SPACES = " \t\n\r\v\f"  # C's isspace()


def option(setup: Setup, name: str) -> Any:
    """One of Sendmail's options (Persona.settings) in this setup."""
    return setup.settings[name]


def privacy(setup: Setup) -> frozenset[str]:
    """PrivacyOptions as the flags they set (goaway is several)."""
    names = frozenset(str(v).lower() for v in option(setup, "PrivacyOptions"))
    return names | GOAWAY if "goaway" in names else names


def reply(problem: Problem) -> Refusal:
    """A reply Sendmail's rules worded."""
    return Refusal("sm_reply", fields={"reply": problem.line()})


class SendmailGrammar(Grammar):
    """Sendmail 8.17's reading of the dialogue, for one session."""

    text_line_end = b"\n"  # a bare LF in message text is refused, so read up to any LF

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        super().__init__(persona, setup)
        self.nullserver = False  # "Command rejected" mode (pipelined before a reply)
        self.lines = 0  # command lines read
        self.raw = ""  # the last line with its line end, as read
        self.envelope: Envelope | None = None  # the last MAIL/RCPT argument read
        self.senders: dict[str, Envelope] = {}  # accepted MAIL addresses, as read
        self.accepted: dict[tuple[str, ...], str] = {}  # recipients of the transaction
        self.rng = random.Random()

    # --- reading lines ------------------------------------------------------------

    def read(self, raw: bytes) -> CommandLine | None:
        text = raw.split(b"\0", 1)[0].decode("latin-1")  # C strings end at NUL
        self.raw, self.lines = text, self.lines + 1
        if text.endswith("\n"):
            text = text[:-2] if text.endswith("\r\n") else text[:-1]
        rest = text.lstrip(SPACES)
        end = next((i for i, c in enumerate(rest) if c in SPACES), len(rest))
        return CommandLine(text, rest[:end].upper(), rest[end:].lstrip(SPACES))

    def too_long(self, raw: bytes, text: str, verb: str, policy: Policy) -> bool:
        # MAXLINE counts the line end; AUTH lines may be longer (SASL).
        size = len(raw.split(b"\0", 1)[0])
        return size > MAXLINE and raw[:5].upper() != b"AUTH "

    def command(self, verb: str, argument: str) -> Command | None:
        return None if verb in OWN_VERBS else super().command(verb, argument)

    # --- answers before the table -------------------------------------------------

    def before(self, cmd: Command | None, line: CommandLine, view: View) -> Refusal | None:
        if self.lines == 1 and self._http(self.raw):
            return Refusal("sm_open_proxy")
        own = line.verb in OWN_VERBS
        if self.nullserver and (own or (cmd is not None and cmd not in STILL_ANSWERED)):
            return Refusal("sm_command_rejected", count=True)
        flags = privacy(view.setup)
        if own:
            return self._own_verb(line, flags)
        if cmd is Command.VRFY:
            if "novrfy" in flags:
                return Refusal("sm_vrfy_refused")
            if view.helo is None and "needvrfyhelo" in flags:
                return Refusal("need_helo_for_vrfy")
        if cmd is Command.EXPN:
            return self._expn(line.arg, view, flags)
        if cmd is Command.HELP:
            return self._help(line.arg)
        if cmd is Command.AUTH and not view.setup.users:
            return self._auth(line.arg, view)
        if cmd is Command.STARTTLS:
            return self._starttls(line.arg, view)
        return None

    @staticmethod
    def _http(raw: str) -> bool:
        upper = raw.upper()
        return any(
            len(w) < len(raw) and upper.startswith(w) and raw[len(w)] in SPACES for w in HTTP_VERBS
        )

    def _own_verb(self, line: CommandLine, flags: frozenset[str]) -> Refusal:
        verb, arg = line.verb, line.arg
        if verb in NOT_IMPLEMENTED:
            return Refusal("sm_not_implemented")
        if verb == "VERB":
            if flags & {"noexpn", "noverb"}:
                return Refusal("sm_verbose_unavailable")
            return Refusal("sm_verbose")
        if "noetrn" in flags:  # ETRN
            return Refusal("sm_not_allowed")
        if not arg:
            return Refusal("sm_etrn_required")
        if arg.startswith("#"):
            group = seven_bit(arg[1:])
            return Refusal("sm_etrn_group" if group == "mqueue" else "sm_etrn_unknown", group)
        return Refusal("sm_etrn_node", seven_bit(arg))

    def _expn(self, arg: str, view: View, flags: frozenset[str]) -> Refusal:
        if "noexpn" in flags:
            return Refusal("sm_not_allowed")
        if view.helo is None and "needexpnhelo" in flags:
            return Refusal("need_helo_for_vrfy")
        return self._lookup(arg, view, expand=True)

    def _help(self, arg: str) -> Refusal:
        topic = arg.lower() or "smtp"
        found = []
        for key, text in HELP_LINES:
            if f"{key}\t{text}".startswith(topic):
                found.append(f"214 2.0.0 {text.replace('$v', VERSION)}")
        if not found:
            return Refusal(
                "sm_lines",
                fields={"lines": f'504 5.3.0 HELP topic "{seven_bit(topic[:10])}" unknown'},
            )
        return Refusal(
            "sm_lines", fields={"lines": "\n".join([*found, "214 2.0.0 End of HELP info"])}
        )

    def _auth(self, arg: str, view: View) -> Refusal:
        """AUTH with no lab users: Sendmail offers its SASL mechanisms, none of which works."""
        # With AuthMechanisms empty Sendmail still has SASL: it lists no AUTH keyword,
        # and any mechanism "is not available".
        mechanisms = [m.upper() for m in option(view.setup, "AuthMechanisms")]
        if view.state in (State.MAIL, State.RCPT):
            return Refusal("auth_in_transaction")
        end = next((i for i, c in enumerate(arg) if c in SPACES), len(arg))
        mechanism, initial = arg[:end], arg[end:].lstrip(SPACES)
        if not mechanism:
            return Refusal("auth_syntax")
        if mechanism.upper() not in mechanisms:
            return Refusal("auth_mechanism_unknown", fields={"word": seven_bit(mechanism[:32])})
        if initial and initial != "=":
            try:
                decode_response(initial)
            except (Undecodable, Cancelled):
                return Refusal("sm_auth_initial", seven_bit(initial))
            return Refusal("auth_failed")  # neither mechanism takes an initial response
        challenge = self._challenge(mechanism.upper(), view.setup.hostname)
        return Refusal("auth_challenge", exchange=Unverifiable(mechanism.upper(), challenge))

    def _challenge(self, mechanism: str, hostname: str) -> str:
        if mechanism == "CRAM-MD5":
            text = f"<{self.rng.randrange(10**9, 10**10)}.{self.rng.randrange(10**6)}@{hostname}>"
        else:
            nonce = base64.b64encode(self.rng.randbytes(32)).decode()
            text = (
                f'nonce="{nonce}",realm="{hostname}",qop="auth,auth-int,auth-conf",'
                'cipher="rc4-40,rc4-56,rc4,des,3des",maxbuf=8192,charset=utf-8,algorithm=md5-sess'
            )
        return base64.b64encode(text.encode()).decode()

    @staticmethod
    def _starttls(arg: str, view: View) -> Refusal | None:
        if arg:
            return Refusal("starttls_syntax")
        if not view.setup.tls_offered or view.tls:
            return Refusal("starttls_not_offered")  # compiled in, no certificate configured
        if view.state in (State.MAIL, State.RCPT):
            return Refusal("starttls_in_transaction")
        return None

    # --- HELO and EHLO --------------------------------------------------------------

    def helo(self, verb: str, arg: str, view: View) -> Refusal | str:
        if not arg:
            return Refusal(f"{verb.lower()}_syntax")
        if not _helo_name_ok(arg):
            return Refusal("helo_invalid")
        if view.input_waiting:  # RFC 2920: wait for the greeting's reply
            self.nullserver = True
            return Refusal("sm_protocol_error")
        return arg

    def keywords(self, words: list[str], view: View) -> list[str]:
        if self.nullserver:
            return ["ENHANCEDSTATUSCODES"]
        offered = {w.split(" ", 1)[0].upper() for w in words}
        lab_auth = next((w for w in words if w.upper().startswith("AUTH ")), None)
        flags = privacy(view.setup)
        left_out = {
            "EXPN": "noexpn" in flags,
            "VERB": bool(flags & {"noexpn", "noverb"}),
            "DSN": "noreceipts" in flags,
            "ETRN": "noetrn" in flags,
        }
        out = []
        for name in view.setup.persona.ehlo_keywords:  # in the order Sendmail lists them
            if name not in offered or left_out.get(name):
                continue
            if name == "SIZE":
                limit = int(option(view.setup, "MaxMessageSize"))
                out.append(f"SIZE {limit}" if limit > 0 else "SIZE")
            elif name == "AUTH":
                mechanisms = " ".join(option(view.setup, "AuthMechanisms"))
                if view.setup.users:
                    out += [lab_auth] if lab_auth else []
                elif mechanisms:
                    out.append(f"AUTH {mechanisms}")
            else:
                out.append(name)
        return out

    # --- MAIL and RCPT --------------------------------------------------------------

    def parse_path(self, command: Command, argument: str, view: View) -> Path | Refusal:
        is_rcpt = command is Command.RCPT
        limit = int(option(view.setup, "MaxRecipientsPerMessage"))
        if is_rcpt and limit and len(view.recipients) >= limit:
            return Refusal("too_many_recipients")
        rest = skipword(argument, "to" if is_rcpt else "from")
        if isinstance(rest, Problem):
            return reply(rest)
        site = self.site(view)
        env = read_address(rest, is_rcpt, here=site.local_names)
        if isinstance(env, Problem):
            if not env.code:  # MAIL FROM: with nothing but a comment: accepted as it is
                env = Envelope(seven_bit(rest.split(" ", 1)[0]), "", None, ())
            else:
                return reply(env)
        local = site.is_local(env.host)
        if not is_rcpt and (problem := sender_mailer_problem(env, local)) is not None:
            return reply(problem)
        self.envelope = env
        params = tuple(k if v is None else f"{k}={v}" for k, v in env.parameters)
        return Path(env.address, params, env.typed)

    def path_parameters(self, command: Command, path: Path, view: View) -> Refusal | None:
        env = self.envelope
        assert env is not None
        dsn = "noreceipts" not in privacy(view.setup)
        if command is Command.RCPT:
            problem = rcpt_parameters(env.parameters, dsn)
        else:
            size = int(option(view.setup, "MaxMessageSize"))
            problem = mail_parameters(env.parameters, dsn, size)
            if problem is None:
                self.senders[env.address] = env
        return reply(problem) if problem is not None else None

    def recipient(self, path: Path, refused: Refusal | None, view: View) -> Refusal | None:
        standard = refused.key if refused is not None else None
        env = self.envelope
        assert env is not None
        if not view.recipients:
            self.accepted.clear()  # a new transaction
        null = Problem("553", "5.0.0", "User address required", env.typed)
        if env.null and typed_null(env.typed):  # Basic_check_rcpt: R<> before all else
            return reply(null)
        site = self.site(view)
        local = site.is_local(env.host)
        if not local and (standard == "relay_denied" or not self.may_relay(env, view)):
            return Refusal("relay_denied", fields={"addr": env.typed})
        if not (local and user_of(env) in SPAM_FRIENDS):  # delay_checks: the sender now
            problem = sender_problem(self.senders.get(view.sender or ""), site)
            if problem is not None:
                return reply(Problem(problem.code, problem.enhanced, problem.text, env.typed))
        if env.null:  # <<>>: canonify made it <@>, the null address, too late for R<>
            return reply(null)
        if local:
            if view.setup.recipients is not None:
                if standard == "user_unknown":
                    return Refusal("user_unknown", fields={"addr": env.typed})
            elif (problem := local_problem(env)) is not None:
                return reply(problem)
        # sameaddr(): the mailer, host and user; the local mailer lowers the user but
        # keeps its +detail (a different address until aliasing, after the RCPT).
        key = ("local", env.user.lower()) if local else ("smtp", env.user, (env.host or "").lower())
        return Refusal("rcpt_ok", fields={"addr": self.accepted.setdefault(key, env.typed)})

    def may_relay(self, env: Envelope, view: View) -> bool:
        """check_rcpt's relay rule for where the address goes once ruleset 0 rerouted it
        (user%host@here goes to host): the session's check saw only the typed domain."""
        if env.routed is None or view.user is not None:
            return True
        return view.setup.policy.may_deliver(
            env.address_routed, view.client_ip, view.setup.hostname
        )

    def site(self, view: View) -> Site:
        """What the checks know of this server and this client."""
        setup = view.setup
        name, resolve, _ = self.client(setup, view.client_ip)
        short = setup.hostname.split(".", 1)[0]
        local_names = frozenset(
            {setup.hostname.lower(), short.lower(), "localhost", "[127.0.0.1]"}
            | {d.lower() for d in setup.policy.mydestination}
        )
        use_dns = "dns" in option(setup, "hosts") and not option(
            setup, "accept_unresolvable_domains"
        )
        return Site(
            local_names,
            setup.hostname,
            name,
            resolve,
            setup.policy.is_trusted(view.client_ip),
            setup.domain_resolves if use_dns else None,
        )

    def client(self, setup: Setup, client_ip: str) -> tuple[str, str, str]:
        """(${client_name}, ${client_resolve}, $_) for the client's address."""
        if "dns" in option(setup, "hosts"):
            ptr, confirmed = setup.reverse_of(client_ip)
        else:  # /etc/hosts only
            ptr = setup.reverse_names.get(client_ip)
            confirmed = ptr is not None
        literal = f"[{client_ip}]"
        if ptr is None:
            return literal, "FAIL", literal
        if not confirmed:
            return literal, "FORGED", f"{ptr} {literal} (may be forged)"
        return ptr, "OK", f"{ptr} {literal}"

    # --- VRFY, DATA, message text --------------------------------------------------

    def vrfy(self, argument: str, view: View) -> Refusal | None:
        return self._lookup(argument, view, expand=False)

    def _lookup(self, argument: str, view: View, expand: bool) -> Refusal:
        """sendtolist(): each comma-separated address, looked up locally."""
        if not argument.strip(SPACES):
            return Refusal("vrfy_syntax")
        env = read_address(argument, True, ",", self.site(view).local_names)
        if isinstance(env, Problem):
            return reply(env)
        lines = verify(env, expand, view.setup.hostname, self.site(view))
        return Refusal("sm_lines", fields={"lines": "\n".join(lines)})

    def argument_refusal(self, command: Command, argument: str, view: View) -> Refusal | None:
        if command is Command.DATA and view.input_waiting:
            return Refusal("sm_protocol_error", close=True)  # text before the 354
        return None

    def text_line(self, line: bytes) -> Refusal | None:
        body = line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line
        if line.endswith(b"\n") and not line.endswith(b"\r\n"):
            return Refusal("sm_bare_lf", close=True)
        if b"\r" in body:
            return Refusal("sm_bare_cr", close=True)
        if b"\0" in body:
            return Refusal("sm_nul")
        return None

    # --- reply fields ---------------------------------------------------------------

    def field(self, key: str, fields: Fields) -> object:
        setup, client_ip, line = fields.setup, fields.client_ip, fields.line
        if key in ("authinfo", "client_name", "client_resolve"):
            name, resolve, authinfo = self.client(setup, client_ip)
            return {"authinfo": authinfo, "client_name": name, "client_resolve": resolve}[key]
        if key == "cmdline":
            return seven_bit(shorten(line))
        if key == "typed_verb":
            return seven_bit(line.lstrip(SPACES).split(None, 1)[0] if line.strip(SPACES) else "")
        if key == "why":
            return relay_problem(self.site_of(setup, client_ip)).text[len("Relaying denied") :]
        if key == "banner":
            return self.banner(setup, client_ip, fields)
        raise KeyError(key)

    def site_of(self, setup: Setup, client_ip: str) -> Site:
        name, resolve, _ = self.client(setup, client_ip)
        return Site(frozenset(), setup.hostname, name, resolve, False, None)

    def banner(self, setup: Setup, client_ip: str, fields: Fields) -> str:
        """SmtpGreetingMessage expanded, "ESMTP" after its first word (RFC 1869)."""
        name, resolve, authinfo = self.client(setup, client_ip)
        macros = {
            "j": setup.hostname,
            "v": VERSION,
            "Z": CF_VERSION,
            "b": str(fields["date"]),
            "client_addr": client_ip,
            "client_name": name,
            "client_resolve": resolve,
            "_": authinfo,
        }
        text = expand(str(option(setup, "SmtpGreetingMessage")), macros)
        first, _, rest = text.partition(" ")
        return f"{first} ESMTP {rest}" if rest else f"{first} ESMTP"


SPAM_FRIENDS = frozenset({"postmaster", "abuse", "spam"})


def _helo_name_ok(arg: str) -> bool:
    """Sendmail's HELO check: letters, digits, "[].-_#:", one word, at most 256 long."""
    if len(arg) > 256:
        return False
    for i, c in enumerate(arg):
        if not c.isascii():
            return False
        if c.isalnum() or c in HELO_PUNCTUATION:
            continue
        if c in SPACES:
            return not arg[i:].strip(SPACES)  # only trailing white space may follow
        return False
    return True


def expand(text: str, macros: Mapping[str, str]) -> str:
    """Sendmail's macro expansion: $x, ${name}, $?x yes $| no $. (one level)."""
    out: list[str] = []
    skip: list[bool] = []  # inside $?...: whether this branch is left out
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$" or i + 1 >= len(text):
            if not any(skip):
                out.append(c)
            i += 1
            continue
        op = text[i + 1]
        i += 2
        if op == "?":
            name, i = _macro_name(text, i)
            skip.append(not macros.get(name))
        elif op == "|" and skip:
            skip[-1] = not skip[-1]
        elif op == "." and skip:
            skip.pop()
        elif op == "$":
            out += [] if any(skip) else ["$"]
        else:
            name, i = _macro_name(text, i - 1)
            if not any(skip):
                out.append(macros.get(name, ""))
    return "".join(out)


def _macro_name(text: str, i: int) -> tuple[str, int]:
    if text[i] == "{":
        end = text.index("}", i)
        return text[i + 1 : end], end + 1
    return text[i], i + 1
