"""OpenSMTPD 6.8's own syntax rules: addresses, domain names, message headers.

Modelled on the program's source (usr.sbin/smtpd, tag 6.8.0p2) and checked against
the stock recordings (tests/recordings/behaviour/opensmtpd.md):

- ``mailaddr``: smtp_session.c ``smtp_mailaddr`` and to.c ``text_to_mailaddr``:
  angle brackets required, the *last* ``@`` splits the address, everything up to
  the first ``:`` of the local part is dropped (a source route, RFC 5321 §4.1.2),
  no quoting at all, a missing domain becomes the server's own name.
- ``valid_localpart`` / ``valid_domainpart``: util.c; a domain goes through the C
  library's ``res_hnok`` (Debian 12: glibc 2.36), an address literal through
  ``inet_pton``.
- ``HeaderCheck``: rfc5322.c, the parser the server runs over the message text
  while it arrives; a line that is neither a header, a continuation nor the empty
  line ending the header makes the message "not RFC 2822 compliant".

Byte lengths matter (C buffers): a text here is the line's bytes decoded as
UTF-8 with surrogateescape, so ``_octets`` gives the length the program sees.
"""

from __future__ import annotations

import ipaddress
import re
import string

from ..lines import MessageText, TooLong

LINE_MAX = 2048  # Linux <limits.h>: buffers for a command line, a HELO name, an address
PART_MAX = 256  # SMTPD_MAXLOCALPARTSIZE / SMTPD_MAXDOMAINPARTSIZE (255 + NUL)
# smtpd.h MAILADDR_ALLOWED, with isalnum() in the C locale.
ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*/?^`{|}~+-=_")
_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_IPV4 = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}\Z")
SPACE = " \t\n\v\f\r"  # C isspace()


def _octets(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def valid_localpart(user: str) -> bool:
    """util.c valid_localpart(): dot-separated atoms of letters, digits and !#$%&'*/?^`{|}~+-=_."""
    return all(atom and all(c in ATEXT for c in atom) for atom in user.split("."))


def inet_pton4(text: str) -> bool:
    """glibc inet_pton(AF_INET): four decimal octets, no leading zeros."""
    return bool(_IPV4.match(text)) and all(int(o) <= 255 for o in text.split("."))


def inet_pton6(text: str) -> bool:
    """glibc inet_pton(AF_INET6): RFC 4291 text forms, no zone index."""
    if "%" in text or not text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _labels(name: str) -> list[str] | None:
    """ns_name_pton(): the labels of ``name`` (backslash escapes read), None if malformed."""
    labels, label, i = [], "", 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            digits = name[i + 1 : i + 4]
            if digits[:1].isdigit():
                if len(digits) < 3 or not digits.isdigit() or int(digits) > 255:
                    return None
                label, i = label + chr(int(digits)), i + 4
            elif i + 1 < len(name):
                label, i = label + name[i + 1], i + 2
            else:
                return None
        elif ch == ".":
            if not label:
                return None  # an empty label: "..", a leading dot
            labels.append(label)
            label, i = "", i + 1
        else:
            label, i = label + ch, i + 1
        if len(label) > 63:
            return None
    if label:
        labels.append(label)
    if sum(len(lb) + 1 for lb in labels) + 1 > 255:  # NS_MAXCDNAME
        return None
    return labels


def res_hnok(name: str) -> bool:
    """glibc 2.36 res_hnok(): printable, a well-formed DNS name, labels of letters,
    digits, '-' and '_', and not starting with '-' (a label may end with one)."""
    if any(not "!" <= c <= "~" for c in name):
        return False
    labels = _labels(name)
    if labels is None:
        return False
    if labels and labels[0].startswith("-"):
        return False
    return all(c in _HOST_CHARS for label in labels for c in label)


def valid_domainpart(domain: str) -> bool:
    """util.c valid_domainpart(): an address literal ([IPv6:...] or [a.b.c.d]) or a
    host name without a trailing dot."""
    if domain.startswith("["):
        inner = domain[6:] if domain[:6].lower() == "[ipv6:" else domain[1:]
        if _octets(inner) >= PART_MAX or inner.find("]") != len(inner) - 1:
            return False
        inner = inner[:-1]
        return inet_pton6(inner) or inet_pton4(inner)
    if not domain or _octets(domain) >= PART_MAX or domain.endswith("."):
        return False
    return res_hnok(domain)


def mailaddr(argument: str, mail_from: bool, hostname: str) -> tuple[str | None, str]:
    """smtp_mailaddr(): (``user@domain`` or None if refused, what follows the ``>``).

    The null reverse-path (``<>``, also ``<@>``) is "" for MAIL and refused for RCPT.
    """
    if not argument.startswith("<"):
        return None, ""
    end = argument.find(">")
    if end < 0:
        return None, ""
    inner, rest = argument[1:end], argument[end + 1 :].lstrip(" ")
    if _octets(inner) >= LINE_MAX:
        return None, rest
    user, at, domain = inner.rpartition("@")
    if not at:
        user, domain = inner, ""
    if _octets(user) >= PART_MAX or _octets(domain) >= PART_MAX:
        return None, rest
    user = user.partition(":")[2] if ":" in user else user  # "@a,@b:u" -> "u"
    if mail_from and not user and not domain:
        return "", rest
    if not user or not valid_localpart(user):
        return None, rest
    domain = domain or hostname
    if not valid_domainpart(domain):
        return None, rest
    return f"{user}@{domain}", rest


def orcpt_ok(value: str) -> bool:
    """smtp_tx_rcpt_to()'s check of ORCPT=[rfc822;]address (no angle brackets, no route)."""
    if value[:7].lower() == "rfc822;":
        value = value[7:]
    if _octets(value) >= LINE_MAX:
        return False
    user, at, domain = value.rpartition("@")
    if not at:
        user, domain = value, ""
    if _octets(user) >= PART_MAX or _octets(domain) >= PART_MAX:
        return False
    return bool(user) and valid_localpart(user) and (not domain or valid_domainpart(domain))


# --- the message text ----------------------------------------------------------------

MAX_HOPS_COUNT = 100  # smtpd.h: this many Received: fields is a loop
_HEADER_NAME_MAX = 1024  # rfc5322.c hdr.bufmax
_FOLDED_MAX = 65536  # rfc5322.c val.bufmax: an unfolded To/Cc/From value
_UNFOLDED = ("to", "cc", "from")


class HeaderCheck(MessageText):
    """Message text as OpenSMTPD 6.8 collects it (smtp_session.c, rfc5322.c).

    Lines arrive without their line end (LF, one CR before it removed, cut at a
    NUL: C strings).  The size counts each line's bytes plus one, before the
    stuffed dot is removed; past the limit the message is refused at the final
    dot (data_too_big).  The header is parsed as it arrives: a line that is not
    "Name: value", a continuation (starts with a space or TAB) or the empty line
    ending the header refuses the message (message_malformed), so does a 100th
    Received: field (message_loop).  There is no line-length limit short of the
    64 KiB read buffer (Grammar.text_overflow_key).
    """

    __slots__ = ("state", "error", "received", "name_len", "folded")

    def __init__(self, size_limit: int, line_limit: int) -> None:
        super().__init__(size_limit, line_limit)
        self.state = "header"  # header, header_field, body
        self.error: str | None = None  # the first refusal the parser found
        self.received = 0
        self.name_len = 0  # rfc5322.c hdr.buflen: the previous field name's length + 1
        self.folded = -1  # >= 0: the length of the To/Cc/From value being unfolded

    def add(self, line: bytes | TooLong) -> bool:
        if isinstance(line, TooLong):  # not reached: the server closes at once
            return super().add(line)
        show = self._show(len(line))
        self.size += len(line) - 1  # strlen(line) + 1: CRLF here, LF there
        if self.size > self.size_limit:
            self.too_big = True
        if len(line) - line.startswith(b".") > self.line_limit:
            self.too_long = True
        text = line[1:] if line.startswith(b".") else line
        if not (self.too_big or self.too_long or self.error):
            self._parse(text[:-2])
        if self.too_big or self.too_long or self.error:
            self.kept.clear()
        else:
            self.kept.append(text)
        return show

    def _parse(self, line: bytes) -> None:
        if self.state == "body":
            return
        if self.state == "header_field" and line[:1] in (b" ", b"\t"):
            if self.folded >= 0:  # To/Cc/From are unfolded into one buffer
                self.folded += 1 + len(line)
                if self.folded + 1 >= _FOLDED_MAX:
                    self.error = "message_malformed"
            return
        self.folded = -1
        name, colon, _value = line.partition(b":")
        if not colon:
            self.state = "body"
            if line:
                self.error = "message_malformed"  # neither a header nor the empty line
            return
        if self.name_len + len(name) + 1 >= _HEADER_NAME_MAX:
            self.error = "message_malformed"
            return
        self.name_len, self.state = len(name) + 1, "header_field"
        lowered = name.lower()
        if lowered == b"received":
            self.received += 1
            if self.received >= MAX_HOPS_COUNT:
                self.error = "message_loop"
        elif lowered.decode("latin-1") in _UNFOLDED:
            self.folded = len(_value)

    @property
    def refusal(self) -> str | None:
        if self.too_big:
            return "data_too_big"
        if self.too_long:
            return "text_line_too_long"
        return self.error
