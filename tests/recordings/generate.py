"""Generate random but plausible SMTP dialogues, seeded, for differential tests.

    python3 tests/recordings/generate.py --seed 1 --count 600 \
        --out tests/recordings/generated/corpus.json

The dialogues are what a curious learner or a fuzzer types at an SMTP
server: valid and invalid verbs, HELO/EHLO names, MAIL FROM / RCPT TO
arguments that exercise each program's address parser, ESMTP parameters,
long lines, empty lines, odd orders, several transactions, message bodies
with dot-stuffing, bare LF and NUL, raw bytes and pipelined groups, from
127.0.0.1 (trusted) and 127.0.0.2 (an outside client).  The same seed gives
the same corpus on every machine (``random.Random`` with an int seed).

The output has the shape of dialogues.json, which record.py replays; the
item kinds (one reply is read for each, unless said otherwise):

- ``"TEXT"``: a command line, sent as UTF-8 followed by CRLF.
- ``{"raw": TEXT, "replies": N}``: exactly these bytes (every character is
  one byte, U+0000..U+00FF, i.e. latin-1), nothing added; then N replies
  are read (N may be 0: bytes that end no line).
- ``{"pipeline": [ITEM, ...]}``: command lines and raw items written in one
  send() (RFC 2920 pipelining); then one reply per command (N per raw).
- ``{"message": TEXT}``: a message body (CRLF line ends), dot-stuffed and
  ended with CRLF.CRLF by the recorder.  Sent only if the reply before it
  was 354 (otherwise recorded as skipped, so that a refused DATA does not
  turn the body into commands).
- ``{"message_raw": TEXT}``: exactly these bytes (latin-1) as the message,
  terminator included; also only after a 354.
- ``{"message_bytes": N}``: a generated body of about N bytes.
- ``{"bdat": TEXT, "last": BOOL}``: ``BDAT <len> [LAST]`` and the chunk in
  one write (RFC 3030: the client does not wait between them); a server
  without CHUNKING reads the chunk as commands and its replies to those are
  kept as unasked replies.

Each dialogue has ``name``, ``client`` (source address), ``area`` (what it
mostly exercises) and ``lines``; at most MAX_EXCHANGES replies are expected
and the dialogues avoid inputs that make a real server sleep for long (see
tests/recordings/behaviour/*.md for the tarpits that exist).
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys

GENERATOR_VERSION = 1
MAX_EXCHANGES = 12

# ------------------------------------------------------------------ vocabulary
LOCAL_DOMAIN = "lab.example.org"
SERVER_NAME = "mx.lab.example.org"
# Names the lab zone (labsmtp/lab/dnszone.py) knows, and names it does not.
ZONE_DOMAINS = ["client.example.org", "mail.good.example", "mail.mismatch.example"]
OUTSIDE_DOMAINS = ["example.org", "example.com", "elsewhere.example.net", "nowhere.invalid"]
EXISTING_LOCAL_PARTS = ["postmaster", "root", "abuse", "Postmaster", "POSTMASTER", "postMaster"]
MISSING_LOCAL_PARTS = ["nosuchuser", "alice", "bob", "info", "jdoe", "x"]

GOOD_HELO = [
    "client.example.org",
    "client.example.org",
    "mail.good.example",
    "mail.mismatch.example",
    "host.example.net",
    "[127.0.0.1]",
]
HELO_ARGS = [
    # FQDNs, in and out of the lab zone
    "client.example.org",
    "mail.good.example",
    "unknown.example.net",
    "CLIENT.EXAMPLE.ORG",
    "mx.lab.example.org",
    "lab.example.org",
    "localhost",
    "localhost.localdomain",
    # bare names and odd-but-valid names
    "client",
    "laptop",
    "a",
    "x1",
    "1.2.3.4",
    "123",
    "client.example.org.",
    "a.b",
    "xn--bcher-kva.example",
    # address literals (RFC 5321 4.1.3)
    "[127.0.0.1]",
    "[127.0.0.2]",
    "[192.0.2.1]",
    "[IPv6:::1]",
    "[IPv6:2001:db8::1]",
    "[IPv6:::ffff:127.0.0.1]",
    "[999.1.1.1]",
    "[127.0.0.1",
    "127.0.0.1]",
    "[]",
    "[IPv6:zz]",
    "[1.2.3]",
    "[::1]",
    "[ipv6:::1]",
    # invalid characters and shapes
    "bad_host!",
    "under_score.example.org",
    "-leading.example.org",
    "trailing-.example.org",
    "a..b.example.org",
    ".example.org",
    "example..org",
    "host name",
    "host\tname",
    "*",
    "%",
    "host@example.org",
    "<client.example.org>",
    '"client.example.org"',
    "client,example.org",
    "bücher.example",
    "ünïcode",
    "host.example.org extra words",
    "foo/bar",
    "$(id)",
]
VERBS_OK = ["NOOP", "RSET", "HELP", "QUIT"]


class Gen:
    """One dialogue under construction; counts the replies it will expect."""

    def __init__(self, rnd: random.Random, area: str):
        self.r = rnd
        self.area = area
        self.lines: list = []
        self.expect = 0
        self.client = "127.0.0.2" if rnd.random() < 0.3 else "127.0.0.1"

    def room(self, n: int = 1) -> bool:
        return self.expect + n <= MAX_EXCHANGES - 1  # keep one for QUIT

    def add(self, item, replies: int = 1) -> None:
        self.lines.append(item)
        self.expect += replies

    def raw(self, text: str, replies: int | None = None) -> None:
        n = text.count("\n") if replies is None else replies
        self.add({"raw": text, "replies": n}, n)

    def pipeline(self, items: list) -> None:
        n = sum(it["replies"] if isinstance(it, dict) else 1 for it in items)
        self.add({"pipeline": items}, n)

    # -- vocabulary helpers -----------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    def domain(self, local_bias: float = 0.5) -> str:
        if self.chance(local_bias):
            return self.pick(
                [LOCAL_DOMAIN] * 6 + [SERVER_NAME, "LAB.EXAMPLE.ORG", "localhost", "[127.0.0.1]"]
            )
        return self.pick(ZONE_DOMAINS + OUTSIDE_DOMAINS)

    def sender(self) -> str:
        """A plain, valid sender address (domains in and out of the zone)."""
        lp = self.pick(["a", "alice", "bob", "sender", "first.last", "user+tag", "root"])
        dom = self.pick(
            ["client.example.org"] * 3 + ["mail.good.example", LOCAL_DOMAIN] + OUTSIDE_DOMAINS
        )
        return f"{lp}@{dom}"

    def recipient(self) -> str:
        """A plain recipient: mostly local, sometimes missing users or other domains."""
        x = self.r.random()
        if x < 0.55:
            return f"{self.pick(EXISTING_LOCAL_PARTS[:3])}@{LOCAL_DOMAIN}"
        if x < 0.7:
            return f"{self.pick(MISSING_LOCAL_PARTS)}@{LOCAL_DOMAIN}"
        if x < 0.8:
            return f"postmaster@{self.pick([SERVER_NAME, 'localhost', 'LAB.EXAMPLE.ORG'])}"
        return f"{self.pick(['someone', 'x', 'postmaster'])}@{self.pick(ZONE_DOMAINS + OUTSIDE_DOMAINS)}"

    def address_arg(self, role: str) -> str:
        """The text after 'FROM:' / 'TO:', exercising address parsers."""
        lp = (
            self.pick(EXISTING_LOCAL_PARTS + MISSING_LOCAL_PARTS)
            if role == "rcpt"
            else self.pick(["a", "sender", "Alice", "first.last", "user+tag"])
        )
        dom = self.domain(0.7 if role == "rcpt" else 0.3)
        forms = [
            lambda: f"<{lp}@{dom}>",
            lambda: f"{lp}@{dom}",  # no angle brackets
            lambda: f" <{lp}@{dom}>",  # space after the colon
            lambda: f"  <{lp}@{dom}>",
            lambda: f"< {lp}@{dom} >",  # spaces inside
            lambda: f"<{lp}@{dom} >",
            lambda: f"<{lp} @{dom}>",
            lambda: f"<{lp}@ {dom}>",
            lambda: f"<{lp}@{dom}",  # unclosed
            lambda: f"{lp}@{dom}>",
            lambda: f"<<{lp}@{dom}>>",
            lambda: "<>",
            lambda: "< >",
            lambda: "",
            lambda: "<@>",
            lambda: f"<{lp}>",  # no domain
            lambda: f"{lp}",
            lambda: f"<@{dom}>",  # empty local part
            lambda: f"<{lp}@>",  # empty domain
            lambda: f"<{lp}@@{dom}>",  # doubled @
            lambda: f"<{lp}@{dom}@{dom}>",
            lambda: f"<{lp}@{dom}.>",  # trailing dot
            lambda: f"<{lp}@.{dom}>",
            lambda: f"<{lp}@{dom.replace('.', '..', 1)}>",
            lambda: f"<.{lp}@{dom}>",
            lambda: f"<{lp}.@{dom}>",
            lambda: f"<{lp}..x@{dom}>",
            lambda: f"<@relay.example.net:{lp}@{dom}>",  # source routes (RFC 5321 4.1.2, C)
            lambda: f"<@a.example.net,@b.example.net:{lp}@{dom}>",
            lambda: f"<@:{lp}@{dom}>",
            lambda: f'<"{lp}"@{dom}>',  # quoted local parts
            lambda: f'<"john doe"@{dom}>',
            lambda: f'<"a\\"b"@{dom}>',
            lambda: f'<"a@b"@{dom}>',
            lambda: f'<""@{dom}>',
            lambda: f"<{lp}@[127.0.0.1]>",  # address literals
            lambda: f"<{lp}@[IPv6:::1]>",
            lambda: f"<{lp}@[1.2.3.999]>",
            lambda: f"<{lp}@[127.0.0.1>",
            lambda: f"<jörg@{dom}>",  # UTF-8
            lambda: f"<{lp}@bücher.example>",
            lambda: f"<{lp}%{dom}@{LOCAL_DOMAIN}>",  # old relay hacks
            lambda: f"<{dom}!{lp}@{LOCAL_DOMAIN}>",
            lambda: f"<{lp}|cmd@{LOCAL_DOMAIN}>",
            lambda: f"</tmp/x@{LOCAL_DOMAIN}>",
            lambda: f"<{lp}#x@{dom}>",
            lambda: f"<{lp}/x@{dom}>",
            lambda: f"<{lp}&x@{dom}>",
            lambda: f"<{lp}?x@{dom}>",
            lambda: f"<{lp}`x@{dom}>",
            lambda: f"<{lp}'x@{dom}>",
            lambda: f"<{lp}=x@{dom}>",
            lambda: f"<{lp}@{dom}> trailing",  # junk after the address
            lambda: f"<{lp}@{dom}>junk",
            lambda: f"<{lp}@{dom}> <{lp}@{dom}>",
            lambda: f"<{lp}@{dom}>,<{lp}@{dom}>",
            lambda: f"{lp}@{dom} SIZE=10",
            lambda: f"<{lp}@{dom_upper(dom)}>",  # case
            lambda: f"<{lp.upper()}@{dom}>",
            lambda: f"<{lp}@{dom}\t>",
            lambda: f"<{lp}@-bad.example.org>",
            lambda: f"<{lp}@under_score.example.org>",
            lambda: f"<{lp}@example>",  # single-label domain
            lambda: f"<{lp}@123.45>",
            lambda: f"<{lp}(comment)@{dom}>",
            lambda: f"<{lp}@{dom}(comment)>",
            lambda: f"Name <{lp}@{dom}>",  # header syntax
            lambda: f'"Full Name" <{lp}@{dom}>',
        ]
        return self.pick(forms)()


def dom_upper(d: str) -> str:
    return d.upper()


# ------------------------------------------------------------------ pieces
def keyword(g: Gen, kw: str) -> str:
    """'MAIL FROM:' in the case variants learners type."""
    x = g.r.random()
    if x < 0.7:
        return kw
    if x < 0.82:
        return kw.lower()
    if x < 0.9:
        return kw.title()
    return "".join(c.upper() if g.chance(0.5) else c.lower() for c in kw)


def helo_arg(g: Gen, p_odd: float = 0.3) -> str:
    return g.pick(HELO_ARGS) if g.chance(p_odd) else g.pick(GOOD_HELO)


def greet(g: Gen, p_ehlo: float = 0.7) -> None:
    x = g.r.random()
    if x < p_ehlo:
        g.add(f"{keyword(g, 'EHLO')} {helo_arg(g)}")
    elif x < 0.92:
        g.add(f"{keyword(g, 'HELO')} {helo_arg(g)}")
    # else: no greeting at all (MAIL before HELO is allowed by some servers)


def mail(g: Gen, arg: str | None = None, params: str | None = None) -> None:
    """MAIL FROM; unless given, the argument is sometimes odd and sometimes has parameters."""
    if arg is None:
        arg = g.address_arg("mail") if g.chance(0.2) else f"<{g.sender()}>"
    if params is None:
        params = g.pick(MAIL_PARAMS) if g.chance(0.15) else ""
    g.add(f"{keyword(g, 'MAIL FROM:')}{arg}{params}")


def rcpt(g: Gen, arg: str | None = None, params: str | None = None) -> None:
    if arg is None:
        arg = g.address_arg("rcpt") if g.chance(0.2) else f"<{g.recipient()}>"
    if params is None:
        params = g.pick(RCPT_PARAMS) if g.chance(0.12) else ""
    g.add(f"{keyword(g, 'RCPT TO:')}{arg}{params}")


def message_text(g: Gen) -> dict:
    subj = g.pick(["test", "hello", "lab", "Re: your mail", "ünïcödé"])
    body = g.pick(
        [
            "Hello.",
            "Just a test.",
            ".leading dot",
            "line one\r\nline two",
            "..two dots",
            "a\r\n.\r\nnot the end (dot-stuffed)",
        ]
    )
    headers = f"From: {g.sender()}\r\nTo: {g.recipient()}\r\nSubject: {subj}\r\n"
    if g.chance(0.2):
        headers = f"Subject: {subj}\r\n"
    if g.chance(0.1):
        headers = ""
    return {"message": f"{headers}\r\n{body}\r\n"}


def transaction(g: Gen, n_rcpt: int | None = None, body: bool = True) -> None:
    n_rcpt = n_rcpt or g.pick([1, 1, 1, 2, 3])
    if g.chance(0.15) and g.room(n_rcpt + 3):
        # the whole envelope in one write (RFC 2920), DATA last in the group
        group = [f"MAIL FROM:<{g.sender()}>"] + [
            f"RCPT TO:<{g.recipient()}>" for _ in range(n_rcpt)
        ]
        if body:
            group.append("DATA")
        g.pipeline(group)
    else:
        mail(g)
        for _ in range(n_rcpt):
            if g.room(2):
                rcpt(g)
        body = body and g.room(2)
        if body:
            g.add(keyword(g, "DATA"))
    if body:
        g.add(body_variants(g) if g.chance(0.3) else message_text(g))


def pad_to(prefix: str, total: int, suffix: str = "", fill: str = "x") -> str:
    """prefix + filler + suffix, exactly `total` octets including the CRLF."""
    n = total - 2 - len(prefix.encode()) - len(suffix.encode())
    return prefix + fill * max(n, 0) + suffix


def misc_command(g: Gen) -> str:
    return g.pick(
        [
            "NOOP",
            "NOOP hello",
            "noop",
            "RSET",
            "RSET now",
            "rset",
            "HELP",
            "HELP MAIL",
            "HELP FOO",
            "help",
            "VRFY postmaster",
            "VRFY nosuchuser",
            "VRFY <postmaster@lab.example.org>",
            "VRFY root",
            "VRFY",
            "vrfy postmaster",
            "EXPN postmaster",
            "EXPN",
            "EXPN root",
            "ETRN lab.example.org",
            "ETRN",
            "ETRN @example.org",
            "ETRN #queue",
            "TURN",
            "ATRN",
            "STARTTLS",
            "STARTTLS now",
            "starttls",
            "AUTH",
            "AUTH PLAIN",
            "AUTH LOGIN",
            "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
            "AUTH CRAM-MD5",
            "AUTH FOO",
            "AUTH PLAIN =",
            "BDAT",
            "BDAT x",
            "BDAT 0 LAST",
            "SEND FROM:<a@example.org>",
            "SOML FROM:<a@example.org>",
            "SAML FROM:<a@example.org>",
            "XCLIENT ADDR=192.0.2.1",
            "XFORWARD NAME=spoof.example",
            "VERB",
            "ONEX",
            "XUSR",
            "XEXCH50 1 2",
            "DSN",
            "X-EXPS LOGIN",
            "LHLO client.example.org",
            "FOO",
            "FOO bar",
            "XYZZY",
            "HELLO client.example.org",
            "EHLLO client.example.org",
            "HLEO client.example.org",
            "EHL client.example.org",
            "MAILFROM:<a@example.org>",
            "MAIL",
            "MAIL FROM",
            "MAIL TO:<a@example.org>",
            "RCPT",
            "RCPT FROM:<a@example.org>",
            "RCPT TO",
            "DATA now",
            "QUIT now",
            "GET / HTTP/1.0",
            "USER alice",
            "PASS secret",
            "CAPA",
            "LOGIN alice",
            "a001 LOGIN alice secret",
            "PING",
            "?",
            ".",
            "..",
            "*",
            "MAIL FROM :<a@example.org>",
            "MAIL  FROM:<a@example.org>",
            "MAIL FROM:<a@example.org> ",
            " NOOP",
            "NOOP ",
            "NO OP",
            "N00P",
            "QUITE",
            "RCPT  TO:<postmaster@lab.example.org>",
        ]
    )


# ------------------------------------------------------------------ areas
def area_helo(g: Gen) -> None:
    for _ in range(g.pick([1, 1, 2, 2, 3])):
        verb = keyword(g, g.pick(["EHLO", "HELO", "EHLO"]))
        arg = g.pick(HELO_ARGS)
        x = g.r.random()
        if x < 0.08:
            g.add(verb)  # no argument
        elif x < 0.12:
            g.add(verb + " ")
        elif x < 0.16:
            g.add(f"{verb}  {arg}")  # two spaces
        elif x < 0.2:
            g.add(f"{verb} {'a' * g.pick([63, 64, 65])}.example.org")  # label lengths
        elif x < 0.24:
            g.add(f"{verb} {'.'.join(['abcdefghij'] * g.pick([25, 26, 30]))}")  # ~255 octets
        else:
            g.add(f"{verb} {arg}")
    if g.chance(0.8):
        transaction(g, body=g.chance(0.3))


def area_verbs(g: Gen) -> None:
    if g.chance(0.6):
        greet(g)
    for _ in range(g.pick([2, 3, 4, 5, 6])):
        if g.room():
            g.add(misc_command(g))
    if g.chance(0.4) and g.room(3):
        transaction(g, body=False)


def area_mail_from(g: Gen) -> None:
    greet(g, 0.75)
    for _ in range(g.pick([1, 2, 3, 3])):
        mail(g, g.address_arg("mail"))
        if g.chance(0.5) and g.room(2):
            rcpt(g)
        if g.chance(0.6) and g.room(2):
            g.add(keyword(g, "RSET"))
    if g.chance(0.3) and g.room(3):
        g.add("DATA")
        g.add(message_text(g))


def area_rcpt_to(g: Gen) -> None:
    greet(g, 0.75)
    mail(g, g.pick([None, None, None, "<>"]))
    for _ in range(g.pick([2, 3, 4, 5])):
        if g.room(2):
            rcpt(g, g.address_arg("rcpt"))
    if g.chance(0.35) and g.room(3):
        g.add("DATA")
        g.add(message_text(g))


MAIL_PARAMS = [
    " SIZE=1000",
    " SIZE=0",
    " SIZE=10240000",
    " SIZE=10240001",
    " SIZE=52428800",
    " SIZE=52428801",
    " SIZE=36700160",
    " SIZE=36700161",
    " SIZE=99999999999999999999",
    " SIZE=-1",
    " SIZE=abc",
    " SIZE=",
    " SIZE",
    " size=1000",
    " SIZE=1000 SIZE=2000",
    " SIZE = 1000",
    " BODY=8BITMIME",
    " BODY=7BIT",
    " BODY=BINARYMIME",
    " BODY=8bitmime",
    " BODY=junk",
    " BODY=",
    " SMTPUTF8",
    " SMTPUTF8=yes",
    " RET=FULL",
    " RET=HDRS",
    " RET=bogus",
    " ENVID=abc123",
    " ENVID=",
    " ENVID=a+2Bb",
    " AUTH=<>",
    " AUTH=a@example.org",
    " AUTH=",
    " FOO=bar",
    " FOO",
    " X-UNKNOWN=1",
    " BY=120;R",
    " MT-PRIORITY=3",
    " REQUIRETLS",
    " HOLDFOR=60",
    " SIZE=1000 BODY=8BITMIME",
    " BODY=8BITMIME SMTPUTF8 SIZE=500",
    " RET=FULL ENVID=x",
    "  SIZE=1000",
    "\tSIZE=1000",
    " SIZE=1000 FOO=bar",
    " =",
    " SIZE=1000=2",
    " BODY=8BITMIME BODY=7BIT",
]
RCPT_PARAMS = [
    " NOTIFY=SUCCESS,FAILURE",
    " NOTIFY=NEVER",
    " NOTIFY=DELAY",
    " NOTIFY=never",
    " NOTIFY=NEVER,SUCCESS",
    " NOTIFY=bogus",
    " NOTIFY=",
    " ORCPT=rfc822;a@example.org",
    " ORCPT=rfc822;postmaster@lab.example.org",
    " ORCPT=bogus",
    " ORCPT=",
    " FOO=bar",
    " SIZE=1000",
    " NOTIFY=SUCCESS ORCPT=rfc822;x@example.org",
    " RRVS=2030-01-01T00:00:00Z",
    " BODY=8BITMIME",
    " X=1",
]


def area_params(g: Gen) -> None:
    helo_kind = g.r.random()
    if helo_kind < 0.7:
        g.add(f"EHLO {g.pick(GOOD_HELO)}")
    elif helo_kind < 0.92:
        g.add(f"HELO {g.pick(GOOD_HELO)}")  # parameters after HELO: not allowed
    for _ in range(g.pick([1, 2, 2, 3])):
        if not g.room(3):
            break
        mail(g, None, g.pick(MAIL_PARAMS))
        if g.chance(0.7):
            rcpt(g, None, g.pick(RCPT_PARAMS) if g.chance(0.6) else "")
        if g.chance(0.25) and g.room(3):
            g.add("DATA")
            g.add(message_text(g))
        elif g.room(2):
            g.add("RSET")


LINE_TOTALS = [
    509,
    510,
    511,
    512,
    513,
    514,
    998,
    999,
    1000,
    1001,
    1002,
    2046,
    2047,
    2048,
    2049,
    2050,
    4096,
    4097,
    8192,
    12288,
    16384,
    16385,
    32768,
    65536,
    100000,
]


def long_line(g: Gen) -> str:
    """A command line of an exact length (octets, CRLF included) around the limits."""
    total = g.pick(LINE_TOTALS)
    kind = g.pick(
        [
            "noop",
            "helo",
            "mail-local",
            "mail-domain",
            "rcpt",
            "vrfy",
            "unknown",
            "mail-param",
            "help",
            "rset",
        ]
    )
    if kind == "noop":
        return pad_to("NOOP ", total)
    if kind == "helo":
        return pad_to("EHLO ", total, ".example.org")
    if kind == "mail-local":
        return pad_to("MAIL FROM:<", total, "@example.org>")
    if kind == "mail-domain":
        return pad_to("MAIL FROM:<a@", total, ".example.org>", fill="a")
    if kind == "rcpt":
        return pad_to("RCPT TO:<", total, "@lab.example.org>")
    if kind == "vrfy":
        return pad_to("VRFY ", total)
    if kind == "unknown":
        return pad_to("XLONG", total)
    if kind == "mail-param":
        return pad_to(f"MAIL FROM:<{g.sender()}> ENVID=", total)
    if kind == "help":
        return pad_to("HELP ", total)
    return pad_to("RSET ", total, fill=" ")


def area_length(g: Gen) -> None:
    greet(g, 0.8)
    for _ in range(g.pick([1, 1, 2])):
        if g.chance(0.3):
            mail(g, f"<{g.sender()}>", "")
        g.add(long_line(g))
    for _ in range(g.pick([1, 2, 3])):
        if g.room():
            g.add(
                g.pick(
                    [
                        "NOOP",
                        "RSET",
                        f"MAIL FROM:<{g.sender()}>",
                        "HELP",
                        f"EHLO {g.pick(GOOD_HELO)}",
                    ]
                )
            )


WHITESPACE_FORMS = [
    "",
    "",
    " ",
    "  ",
    "\t",
    " NOOP",
    "NOOP ",
    "NOOP\t",
    "\tNOOP",
    "HELO  client.example.org",
    "HELO\tclient.example.org",
    "EHLO client.example.org ",
    "MAIL FROM: <a@example.org>",
    "MAIL FROM:\t<a@example.org>",
    "MAIL\tFROM:<a@example.org>",
    "RCPT TO: <postmaster@lab.example.org>",
    "RCPT TO:<postmaster@lab.example.org>  ",
    "QUIT ",
    "DATA ",
    "RSET ",
    "   ",
    "RCPT\tTO:<root@lab.example.org>",
]


def area_whitespace(g: Gen) -> None:
    if g.chance(0.5):
        greet(g)
    for _ in range(g.pick([3, 4, 5, 6])):
        if g.room():
            g.add(g.pick(WHITESPACE_FORMS))
    if g.chance(0.4) and g.room(3):
        transaction(g, body=False)


def area_sequence(g: Gen) -> None:
    steps = g.pick(
        [
            ["MAIL", "EHLO", "MAIL", "RCPT", "DATA"],
            ["EHLO", "RCPT", "MAIL", "RCPT", "DATA"],
            ["EHLO", "DATA", "MAIL", "DATA", "RCPT", "DATA"],
            ["EHLO", "MAIL", "MAIL", "RSET", "MAIL", "RCPT"],
            ["HELO", "EHLO", "MAIL", "HELO", "RCPT"],
            ["EHLO", "MAIL", "RCPT", "EHLO", "RCPT", "DATA"],
            ["EHLO", "MAIL", "RCPT", "RSET", "RCPT", "DATA"],
            ["RSET", "RSET", "EHLO", "RSET", "MAIL", "RSET", "RSET"],
            ["EHLO", "MAIL", "RCPT", "RCPT", "RSET", "DATA"],
            ["HELO", "HELO", "MAIL", "RCPT", "DATA"],
            ["EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA"],
            ["DATA", "RCPT", "MAIL", "EHLO"],
            ["EHLO", "MAIL", "VRFY", "RCPT", "NOOP", "DATA"],
            ["EHLO", "MAIL", "RCPT", "STARTTLS"],
            ["EHLO", "MAIL", "RCPT", "AUTH", "DATA"],
            ["EHLO", "MAIL", "RCPT", "HELO", "DATA"],
            ["EHLO", "QUITX", "MAIL", "RCPT", "DATA"],
        ]
    )
    for s in steps:
        if not g.room(2):
            break
        if s == "EHLO":
            g.add(f"{keyword(g, 'EHLO')} {g.pick(GOOD_HELO)}")
        elif s == "HELO":
            g.add(f"{keyword(g, 'HELO')} {g.pick(GOOD_HELO)}")
        elif s == "MAIL":
            mail(g)
        elif s == "RCPT":
            rcpt(g)
        elif s == "DATA":
            g.add(keyword(g, "DATA"))
            g.add(message_text(g))
        elif s == "AUTH":
            g.add("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
        else:
            g.add(s if s != "QUITX" else "QUIT please")


def area_transactions(g: Gen) -> None:
    greet(g, 0.8)
    for _ in range(g.pick([2, 2, 3])):
        if g.room(4):
            transaction(g, n_rcpt=g.pick([1, 1, 2]))
        if g.chance(0.3) and g.room(2):
            g.add(g.pick(["RSET", "NOOP", f"EHLO {g.pick(GOOD_HELO)}"]))


BAD_HEADERS = [
    "From: <a@example.org\r\n",
    "To: a b c\r\n",
    "Cc: ,,\r\n",
    "From: @\r\n",
    "Sender: <>\r\n",
    "To: <postmaster@lab.example.org\r\n",
]
# Message bodies that test framing and content checks: kind -> (g, headers) -> item.
BODY_KINDS = {
    "dots": lambda g, hdr: {"message": hdr + ".one dot\r\n..two dots\r\n.\r\n.x\r\n"},
    "only-dot": lambda g, hdr: {"message_raw": hdr + "line\r\n..\r\n.\r\n"},
    "bare-lf": lambda g, hdr: {"message_raw": hdr + "line one\nline two\r\n.\r\n"},
    "lf-dot-lf": lambda g, hdr: {"message_raw": hdr + "before\n.\nafter\r\n.\r\n", "replies": 1},
    "cr-dot": lambda g, hdr: {"message_raw": hdr + "before\r.\rafter\r\n.\r\n"},
    "long": lambda g, hdr: {
        "message": hdr + "y" * g.pick([998, 999, 1000, 1001, 2000, 5000, 20000]) + "\r\n"
    },
    "nul": lambda g, hdr: {"message_raw": hdr + "a\x00b\r\n\x00\r\n.\r\n"},
    "8bit": lambda g, hdr: {"message_raw": hdr + "caf\xe9 \xff\xfe\r\n.\r\n"},
    "empty": lambda g, hdr: {"message_raw": ".\r\n"},
    "no-headers": lambda g, hdr: {"message": "just a body line\r\n"},
    "header-only": lambda g, hdr: {"message": "Subject: only a header\r\n"},
    "bad-header": lambda g, hdr: {
        "message": g.pick(BAD_HEADERS) + "Subject: bad header\r\n\r\nbody\r\n"
    },
    "from-line": lambda g, hdr: {
        "message": "From a@example.org Mon Jan  1 00:00:00 2024\r\n" + hdr + "x\r\n"
    },
    "utf8-header": lambda g, hdr: {
        "message": "Subject: ünïcödé\r\nFrom: jörg@example.org\r\n\r\nbody\r\n"
    },
    "long-header": lambda g, hdr: {
        "message": "Subject: " + "z" * g.pick([990, 1000, 3000]) + "\r\n\r\nbody\r\n"
    },
    "dot-space": lambda g, hdr: {"message_raw": hdr + "x\r\n. \r\n.\r\n"},
    "crlf-dot-lf": lambda g, hdr: {"message_raw": hdr + "before\r\n.\nafter\r\n.\r\n"},
    "lf-end": lambda g, hdr: {"message_raw": hdr + "body\n.\n", "replies": 1},
    "bare-cr": lambda g, hdr: {"message_raw": hdr + "a\rb\r\n.\r\n"},
    "big": lambda g, hdr: {"message_bytes": g.pick([100000, 300000])},
}


def body_variants(g: Gen) -> dict:
    hdr = f"From: {g.sender()}\r\nTo: postmaster@lab.example.org\r\nSubject: body test\r\n\r\n"
    return BODY_KINDS[g.pick(list(BODY_KINDS))](g, hdr)


def area_data(g: Gen) -> None:
    g.add(f"EHLO {g.pick(GOOD_HELO)}")
    for _ in range(g.pick([1, 1, 2])):
        if not g.room(4):
            break
        mail(g, None, g.pick(["", "", " BODY=8BITMIME", " SMTPUTF8", " SIZE=500"]))
        rcpt(g, "<postmaster@lab.example.org>")
        g.add("DATA")
        g.add(body_variants(g))
        if g.chance(0.3) and g.room():
            g.add("NOOP")


def raw_piece(g: Gen) -> None:
    """Bytes a terminal, a script or a fuzzer sends that a plain line does not show."""
    g.pick(
        [
            lambda: g.raw("NOOP\n"),  # bare LF ends a command
            lambda: g.raw(f"HELO {g.pick(GOOD_HELO)}\n"),
            lambda: g.raw(f"MAIL FROM:<{g.sender()}>\n"),
            lambda: g.raw("RCPT TO:<postmaster@lab.example.org>\n"),
            lambda: g.raw("NOOP\r\r\n"),
            lambda: g.raw("NOOP a\rb\r\n"),  # bare CR inside
            lambda: g.raw("NOOP\r", 0) or g.raw("NOOP\r\n"),  # CR alone: no line yet
            lambda: g.raw("NO", 0) or g.raw("OP\r\n"),  # one command in two writes
            lambda: g.raw("MAIL FR", 0) or g.raw(f"OM:<{g.sender()}>\r\n"),
            lambda: g.raw("\x00\r\n"),  # NUL bytes
            lambda: g.raw("NOOP\x00\r\n"),
            lambda: g.raw("HELO cli\x00ent.example.org\r\n"),
            lambda: g.raw("MAIL FROM:<a\x00b@example.org>\r\n"),
            lambda: g.raw("RCPT TO:<postmaster@lab.example.org>\x00\r\n"),
            lambda: g.raw("\x00NOOP\r\n"),
            lambda: g.raw("HELO caf\xe9.example.org\r\n"),  # 8-bit, not UTF-8
            lambda: g.raw("MAIL FROM:<j\xf6rg@example.org>\r\n"),
            lambda: g.raw("RCPT TO:<\xff@lab.example.org>\r\n"),
            lambda: g.raw("\xff\xf4\xff\xfd\x06\r\n"),  # telnet's Ctrl-C (IAC IP IAC DO TM)
            lambda: g.raw("NOOP\r\n\r\n"),  # an empty line after it
            lambda: g.raw("\r\n"),
            lambda: g.raw("\n"),
            lambda: g.raw("\x1b[A\r\n"),  # arrow key
            lambda: g.raw("NOOP\x08\x08\x08\x08RSET\r\n"),  # backspaces
            lambda: g.raw("\x04\r\n"),  # Ctrl-D
            lambda: g.raw("\x7f\r\n"),
            lambda: g.raw("QUIT\n"),
            lambda: g.raw("RSET\r\nNOOP\n"),
        ]
    )()


def area_raw(g: Gen) -> None:
    if g.chance(0.7):
        greet(g)
    for _ in range(g.pick([2, 3, 4])):
        if g.room(2):
            raw_piece(g)
    if g.chance(0.4) and g.room(4):
        transaction(g, n_rcpt=1)


def area_pipeline(g: Gen) -> None:
    ehlo = g.chance(0.75)
    group: list = []
    x = g.r.random()
    if x < 0.3:
        g.add(f"{'EHLO' if ehlo else 'HELO'} {g.pick(GOOD_HELO)}")
        group = [f"MAIL FROM:<{g.sender()}>", f"RCPT TO:<{g.recipient()}>", "DATA"]
    elif x < 0.45:
        group = [
            f"{'EHLO' if ehlo else 'HELO'} {g.pick(GOOD_HELO)}",
            f"MAIL FROM:<{g.sender()}>",
            f"RCPT TO:<{g.recipient()}>",
        ]
    elif x < 0.55:
        group = ["NOOP", "NOOP", "NOOP"]
    elif x < 0.65:
        g.add(f"EHLO {g.pick(GOOD_HELO)}")
        group = [
            f"MAIL FROM:<{g.sender()}>",
            f"RCPT TO:<{g.recipient()}>",
            f"RCPT TO:<{g.recipient()}>",
            "RSET",
        ]
    elif x < 0.72:
        group = [f"EHLO {g.pick(GOOD_HELO)}", "QUIT"]
    elif x < 0.8:
        g.add(f"EHLO {g.pick(GOOD_HELO)}")
        group = [f"MAIL FROM:<{g.sender()}>", "RCPT TO:<postmaster@lab.example.org>", "DATA"]
        group.append({"raw": "Subject: early\r\n\r\nsent before 354\r\n.\r\n", "replies": 1})
    elif x < 0.88:
        g.add(f"EHLO {g.pick(GOOD_HELO)}")
        group = ["VRFY postmaster", "NOOP", "HELP"]
    else:
        group = [{"raw": f"EHLO {g.pick(GOOD_HELO)}\nNOOP\n", "replies": 2}, "NOOP"]
    if group and isinstance(group[-1], str) and group[-1] == "DATA":
        g.pipeline(group)
        g.add(message_text(g))
    else:
        g.pipeline(group)
    if g.chance(0.5) and g.room(3):
        transaction(g, n_rcpt=1, body=g.chance(0.5))


def area_bdat(g: Gen) -> None:
    g.add(f"EHLO {g.pick(GOOD_HELO)}")
    if g.chance(0.8):
        mail(g)
        rcpt(g, "<postmaster@lab.example.org>")
    body = "Subject: bdat\r\n\r\nchunked\r\n"
    x = g.r.random()
    if x < 0.5:
        g.add({"bdat": body, "last": True})
    elif x < 0.8:
        g.add({"bdat": body, "last": False})
        g.add({"bdat": "more\r\n", "last": True})
    else:
        g.add({"bdat": body, "last": False})
        g.add("DATA")  # mixing BDAT and DATA (RFC 3030 forbids)
        g.add({"message": "x\r\n"})
    if g.chance(0.3) and g.room():
        g.add("NOOP")


def area_starttls(g: Gen) -> None:
    """STARTTLS and AUTH, where the stock programs differ most in what they offer."""
    g.add(f"{g.pick(['EHLO', 'EHLO', 'HELO'])} {g.pick(GOOD_HELO)}")
    x = g.r.random()
    if x < 0.5:
        g.add(g.pick(["STARTTLS", "STARTTLS", "starttls", "STARTTLS x"]))
        if g.chance(0.8):
            g.add(f"EHLO {g.pick(GOOD_HELO)}")
        if g.chance(0.6):
            transaction(g, n_rcpt=1, body=g.chance(0.5))
    else:
        g.add(
            g.pick(
                [
                    "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
                    "AUTH LOGIN",
                    "AUTH PLAIN",
                    "AUTH CRAM-MD5",
                    "AUTH DIGEST-MD5",
                    "AUTH XOAUTH2",
                    "AUTH",
                ]
            )
        )
        g.add(g.pick(["*", "YWxpY2U=", "AGFsaWNlAHNlY3JldA==", "NOOP"]))
        if g.chance(0.6):
            transaction(g, n_rcpt=1, body=False)


AREAS = {
    # area: (function, weight)
    "helo": (area_helo, 12),
    "verbs": (area_verbs, 11),
    "mail-from": (area_mail_from, 11),
    "rcpt-to": (area_rcpt_to, 11),
    "params": (area_params, 9),
    "length": (area_length, 7),
    "whitespace": (area_whitespace, 5),
    "sequence": (area_sequence, 8),
    "transactions": (area_transactions, 5),
    "data": (area_data, 8),
    "raw": (area_raw, 7),
    "pipeline": (area_pipeline, 6),
    "bdat": (area_bdat, 5),
    "starttls-auth": (area_starttls, 5),
}


def closing(g: Gen) -> None:
    x = g.r.random()
    if x < 0.85:
        g.add(g.pick(["QUIT"] * 8 + ["quit", "Quit"]))
    # else: the client just closes the connection


def generate(seed: int, count: int) -> dict:
    rnd = random.Random(seed)
    names = list(AREAS)
    weights = [AREAS[a][1] for a in names]
    dialogues = []
    for i in range(count):
        area = rnd.choices(names, weights)[0]
        g = Gen(rnd, area)
        AREAS[area][0](g)
        if g.chance(0.25) and g.room(2):  # a stray item somewhere
            stray = Gen(rnd, area)
            x = rnd.random()
            if x < 0.45:
                stray.add(misc_command(stray))
            elif x < 0.65:
                stray.add(long_line(stray))
            elif x < 0.85:
                raw_piece(stray)
            else:
                stray.add(stray.pick(WHITESPACE_FORMS))
            where = rnd.randrange(len(g.lines) + 1)
            if (
                where
                and isinstance(g.lines[where - 1], dict)
                and g.lines[where - 1].get("pipeline")
                and g.lines[where - 1]["pipeline"][-1] == "DATA"
            ):
                where -= 1  # never between a pipelined DATA and its message
            if (
                where
                and g.lines[where - 1] in ("DATA", "data", "Data", "DaTa")
                or (
                    where
                    and isinstance(g.lines[where - 1], str)
                    and g.lines[where - 1].upper() == "DATA"
                )
            ):
                where -= 1  # nor between DATA and its message
            g.lines[where:where] = stray.lines
            g.expect += stray.expect
        closing(g)
        dialogues.append(
            {"name": f"g{i + 1:04d}-{area}", "client": g.client, "area": area, "lines": g.lines}
        )
    return {
        "about": (
            "Generated by tests/recordings/generate.py (see its docstring for the item kinds); "
            "replayed against the real MTAs by record.py (record_stock.sh) and against the "
            "personas by replay.py. Addresses: the lab's domain is lab.example.org, the server "
            "calls itself mx.lab.example.org, 127.0.0.1 is trusted and 127.0.0.2 is not; the "
            "DNS is the lab's offline zone (labsmtp/lab/dnszone.py DEFAULT_ZONE)."
        ),
        "generator": {
            "script": "tests/recordings/generate.py",
            "version": GENERATOR_VERSION,
            "seed": seed,
            "count": count,
        },
        "dialogues": dialogues,
    }


def targeted() -> dict:
    """Hand-made dialogues for the setting variants (HELO checks, limits, privacy).

    Recorded, together with dialogues.json, under each variant of a program's
    configuration (record_stock.sh VARIANT=...): each dialogue isolates one
    setting's effect, from both clients.
    """
    out = []

    def add(name, lines, client="127.0.0.1"):
        out.append(
            {
                "name": f"t-{name}" + ("-outside" if client == "127.0.0.2" else ""),
                "client": client,
                "area": "targeted",
                "lines": lines,
            }
        )

    helo_names = {
        "fqdn-in-zone": "client.example.org",
        "fqdn-not-in-zone": "unknown.example.net",
        "bare": "client",
        "invalid": "bad_host!",
        "underscore": "under_score.example.org",
        "literal": "[127.0.0.1]",
        "literal-wrong": "[192.0.2.1]",
        "ipv6-literal": "[IPv6:::1]",
        "trailing-dot": "client.example.org.",
        "localhost": "localhost",
        "own-name": "mx.lab.example.org",
        "numeric": "1.2.3.4",
        "empty": None,
    }
    for client in ("127.0.0.1", "127.0.0.2"):
        for label, name in helo_names.items():
            for verb in (
                ("HELO", "EHLO") if label in ("bare", "invalid", "fqdn-not-in-zone") else ("HELO",)
            ):
                helo = verb if name is None else f"{verb} {name}"
                add(
                    f"{verb.lower()}-{label}",
                    [
                        helo,
                        "MAIL FROM:<a@client.example.org>",
                        "RCPT TO:<postmaster@lab.example.org>",
                        "DATA",
                        {"message": "Subject: t\r\n\r\nbody\r\n"},
                        "QUIT",
                    ],
                    client,
                )
        add(
            "no-helo",
            ["MAIL FROM:<a@client.example.org>", "RCPT TO:<postmaster@lab.example.org>", "QUIT"],
            client,
        )
        add(
            "helo-twice",
            [
                "HELO client",
                "HELO client.example.org",
                "MAIL FROM:<a@client.example.org>",
                "RCPT TO:<postmaster@lab.example.org>",
                "QUIT",
            ],
            client,
        )
        add(
            "envelope-forms",
            [
                "EHLO client.example.org",
                "MAIL FROM:a@client.example.org",
                "RSET",
                "MAIL FROM: <a@client.example.org>",
                "RSET",
                "MAIL FROM:<@relay.example.net:a@client.example.org>",
                "RCPT TO:postmaster@lab.example.org",
                "RCPT TO: <postmaster@lab.example.org>",
                "RCPT TO:<postmaster>",
                'RCPT TO:<"post master"@lab.example.org>',
                "QUIT",
            ],
            client,
        )
        add(
            "sender-forms",
            [
                "EHLO client.example.org",
                "MAIL FROM:<a>",
                "RSET",
                "MAIL FROM:<a@client>",
                "RSET",
                "MAIL FROM:<a@example.org>",
                "RCPT TO:<postmaster@lab.example.org>",
                "RSET",
                "MAIL FROM:<a@nowhere.invalid>",
                "RCPT TO:<postmaster@lab.example.org>",
                "QUIT",
            ],
            client,
        )
        add(
            "recipient-limit",
            ["EHLO client.example.org", "MAIL FROM:<a@client.example.org>"]
            + [
                "RCPT TO:<postmaster@lab.example.org>",
                "RCPT TO:<root@lab.example.org>",
                "RCPT TO:<abuse@lab.example.org>",
                "RCPT TO:<postmaster@mx.lab.example.org>",
                "RCPT TO:<root@mx.lab.example.org>",
                "DATA",
                {"message": "Subject: five\r\n\r\nx\r\n"},
                "QUIT",
            ],
            client,
        )
        add(
            "size-param",
            [
                "EHLO client.example.org",
                "MAIL FROM:<a@client.example.org> SIZE=1999",
                "RSET",
                "MAIL FROM:<a@client.example.org> SIZE=2001",
                "RSET",
                "MAIL FROM:<a@client.example.org> SIZE=20000000",
                "QUIT",
            ],
            client,
        )
        add(
            "size-data",
            [
                "EHLO client.example.org",
                "MAIL FROM:<a@client.example.org>",
                "RCPT TO:<postmaster@lab.example.org>",
                "DATA",
                {"message_bytes": 3000},
                "QUIT",
            ],
            client,
        )
        add(
            "privacy",
            [
                "VRFY postmaster",
                "EXPN postmaster",
                "EHLO client.example.org",
                "VRFY postmaster",
                "VRFY root",
                "VRFY nosuchuser",
                "EXPN postmaster",
                "EXPN root",
                "VERB",
                "HELP",
                "QUIT",
            ],
            client,
        )
        add(
            "unknown-user",
            [
                "EHLO client.example.org",
                "MAIL FROM:<a@client.example.org>",
                "RCPT TO:<nosuchuser@lab.example.org>",
                "RCPT TO:<alice@lab.example.org>",
                "RCPT TO:<Postmaster@lab.example.org>",
                "QUIT",
            ],
            client,
        )
        add(
            "relay",
            [
                "EHLO client.example.org",
                "MAIL FROM:<a@client.example.org>",
                "RCPT TO:<someone@elsewhere.example.net>",
                "RCPT TO:<x@client.example.org>",
                "QUIT",
            ],
            client,
        )
    return {
        "about": "Targeted dialogues for the setting variants; made by generate.py --targeted.",
        "dialogues": out,
    }


ITEM_KINDS = {
    "raw": "raw",
    "pipeline": "pipeline",
    "bdat": "bdat",
    "message_raw": "message-raw-or-big",
    "message_bytes": "message-raw-or-big",
    "message": "message",
}


def _classify_command(text: str) -> str:
    verb, _, arg = text.partition(" ")
    v = verb.upper()
    if v in ("HELO", "EHLO"):
        return "helo-plain" if arg in GOOD_HELO else "helo-odd"
    after = arg.split(">", 1)[-1].strip()
    if v.startswith("MAIL"):
        return "mail-params" if after else "mail"
    if v == "RCPT":
        return "rcpt-params" if after else "rcpt"
    if v in ("STARTTLS", "AUTH"):
        return "starttls-auth"
    if v in ("DATA", "QUIT", "RSET", "NOOP"):
        return v.lower()
    return "other-verb"


def classify(item) -> str:
    """The kind of sample one item is, for --stats."""
    if isinstance(item, dict):
        return next(kind for key, kind in ITEM_KINDS.items() if key in item)
    if len(item.encode()) > LONG_LINE:
        return "long-line"
    if not item.strip() or item != item.strip() or "\t" in item:
        return "whitespace"
    return _classify_command(item)


LONG_LINE = 510


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument(
        "--targeted",
        action="store_true",
        help="write the hand-made dialogues for setting variants instead",
    )
    ap.add_argument("--stats", action="store_true", help="print how many samples each area got")
    args = ap.parse_args(argv)
    corpus = targeted() if args.targeted else generate(args.seed, args.count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(corpus, indent=1, ensure_ascii=False) + "\n")
    if args.stats:
        from collections import Counter

        areas = Counter(d["area"] for d in corpus["dialogues"])
        kinds: Counter = Counter()
        for d in corpus["dialogues"]:
            for item in d["lines"]:
                kinds[classify(item)] += 1
                if isinstance(item, dict) and "pipeline" in item:
                    kinds.update(classify(s) for s in item["pipeline"])
        print("dialogues per area:", dict(sorted(areas.items())), file=sys.stderr)
        print("items per kind:", dict(sorted(kinds.items())), file=sys.stderr)
        print("clients:", dict(Counter(d["client"] for d in corpus["dialogues"])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
