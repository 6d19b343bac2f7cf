"""Where and how Postfix 3.7 applies its restrictions (smtpd_check.c, as a model).

Stock Postfix has ``smtpd_delay_reject = yes``: the client and HELO restrictions are
not applied when the client connects or greets, but at every RCPT TO (and VRFY,
ETRN), so HELO gets 250 and RCPT gets "Helo command rejected".  With ``no`` each
is applied at its own command, and a client refused at connect time gets a 554
greeting and 503 for everything but QUIT.

At RCPT, in this order: the bare "postmaster" is always accepted (RFC 5321 §4.5.1);
then the delayed client and HELO restrictions; then ``smtpd_relay_restrictions``
(Debian: ``permit_mynetworks permit_sasl_authenticated defer_unauth_destination``:
454 4.7.1, not 554); then ``local_recipient_maps``: a local address whose user is
neither an account nor an alias is "User unknown in local recipient table".
The users a fresh Debian 12 has are the persona's stock ``local_recipient_maps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checks import Checks
from ..grammar import Refusal
from .postfix_address import (
    MAILER_DAEMON,
    Resolved,
    extract,
    resolve,
    smtpd_tokens,
    valid_hostaddr,
    valid_hostname,
    valid_mailhost_addr,
)
from .postfix_queue import queue_file_size

if TYPE_CHECKING:
    from ..lines import MessageText
    from ..session import Session

# Always local users (smtpd_check.c check_rcpt_maps): never "User unknown".
ALWAYS_KNOWN = frozenset({"postmaster", MAILER_DAEMON.lower(), "double-bounce"})
NEUTER = ' <>()\\";@'  # smtpd.c: characters replaced by '?' in the stored HELO name


def _truncate_dot(name: str) -> str:
    """dup_if_truncate(): a name ending in one dot, without it."""
    return name[:-1] if len(name) > 1 and name.endswith(".") and name[-2] != "." else name


def neuter(name: str) -> str:
    """The HELO name as Postfix keeps it (and checks it later): specials become '?'."""
    return "".join("?" if c in NEUTER or not c.isprintable() else c for c in name)


def helo_verdict(session: Session, name: str) -> Refusal | None:
    """smtpd_helo_restrictions on ``name``, with Postfix's own tests and codes."""
    for restriction in session.policy.smtpd_helo_restrictions:
        if name.startswith("["):  # every HELO restriction checks a literal's address
            inner = name[1:-1] if len(name) > 2 and name.endswith("]") else name
            if not valid_mailhost_addr(inner):
                return Refusal("helo_bad_literal", name)
            continue
        test = _truncate_dot(name)
        if restriction == "reject_invalid_helo_hostname":
            if not valid_hostname(test) and not valid_hostaddr(test):
                return Refusal("helo_invalid", name)
        elif restriction == "reject_non_fqdn_helo_hostname":
            if not valid_hostname(test) or "." not in test:
                return Refusal("helo_non_fqdn", name)
        elif restriction == "reject_unknown_helo_hostname":
            resolves = session.setup.resolves
            # dns_lookup() refuses invalid and numeric names as "not found" (A, AAAA or MX).
            found = valid_hostname(name) and not valid_hostaddr(name)
            if resolves is not None and not (found and resolves(name)):
                return Refusal("helo_unknown", name)
    return None


class PostfixChecks(Checks):
    """Postfix's restrictions, applied where its settings say."""

    @property
    def delayed(self) -> bool:
        return bool(self.settings.get("smtpd_delay_reject", True))

    # --- the restriction classes -----------------------------------------------------

    def client(self, session: Session) -> Refusal | None:
        """smtpd_client_restrictions (permit_mynetworks, permit, reject)."""
        for restriction in self.settings.get("smtpd_client_restrictions", ()):
            if restriction == "permit" or (
                restriction == "permit_mynetworks" and session.policy.is_trusted(self._ip(session))
            ):
                return None
            if restriction == "reject":
                return Refusal("connection_refused")
        return None

    def delayed_checks(self, session: Session) -> Refusal | None:
        """With smtpd_delay_reject = yes: the client's and the HELO's verdicts, now."""
        if not self.delayed:
            return None
        refused = self.client(session)
        if refused is None and session.helo is not None:
            refused = helo_verdict(session, neuter(session.helo))
        return refused

    def _ip(self, session: Session) -> str:
        # A proxy without XCLIENT (clamsmtpd) makes Postfix see the proxy's address.
        return self.persona.backend_client_ip or session.client_ip

    def _resolve(self, session: Session, address: str, smtputf8: bool = True) -> Resolved:
        hostname = session.setup.hostname
        return resolve(address, lambda d: _is_local(session, d), hostname, smtputf8)

    def relay(self, session: Session, address: str) -> Refusal | None:
        """smtpd_relay_restrictions."""
        if session.policy.open_relay:
            return None
        resolved = self._resolve(session, address)
        # permit_auth_destination: a local destination, not source-routed.
        authorized = resolved.local and not resolved.routed
        for restriction in self.settings.get("smtpd_relay_restrictions", ()):
            if restriction == "permit":
                return None
            if restriction == "permit_mynetworks" and session.policy.is_trusted(self._ip(session)):
                return None
            if restriction == "permit_sasl_authenticated" and session.user is not None:
                return None
            if restriction == "permit_auth_destination" and authorized:
                return None
            if restriction == "reject_unauth_destination" and not authorized:
                return Refusal("relay_denied")
            if restriction == "defer_unauth_destination" and not authorized:
                return Refusal("relay_deferred")
            if restriction == "reject":
                return Refusal("rcpt_access_denied")
        return None

    def known_user(self, session: Session, address: str) -> bool:
        """local_recipient_maps: is a local address's user an account or an alias?"""
        hook = session.setup.recipients  # a lab net's own users replace the stock ones
        if hook is not None:
            return hook.knows(address)
        users = self.settings.get("local_recipient_maps", ())
        resolved = self._resolve(session, address)
        if not users or not resolved.local:
            return True
        user = resolved.address.rpartition("@")[0].lower()
        delimiter = self.settings.get("recipient_delimiter", "")
        base = user.split(delimiter, 1)[0] if delimiter and delimiter in user else user
        known = {u.lower() for u in users}
        return user in ALWAYS_KNOWN or user in known or base in known

    def recipient(self, session: Session, address: str) -> Refusal | None:
        """smtpd_check_rcpt(): everything said about a recipient, in Postfix's order."""
        if address.lower() == "postmaster":  # RFC 5321 §4.5.1: always accepted
            return None
        refused = self.delayed_checks(session) or self.relay(session, address)
        if refused is None and not self.known_user(session, address):
            refused = Refusal("user_unknown")
        return refused

    # --- the session's questions --------------------------------------------------------

    def at_connect(self, session: Session) -> Refusal | None:
        return None if self.delayed else self.client(session)

    def at_helo(self, session: Session, name: str) -> Refusal | None:
        return None if self.delayed else helo_verdict(session, name)

    def at_rcpt(self, session: Session, address: str) -> Refusal | None:
        if len(session.rcpt_tos) >= session.policy.max_recipients:
            return Refusal("too_many_recipients")
        return self.recipient(session, address)

    def at_dot(self, session: Session, message: MessageText) -> Refusal | None:
        """smtpd counts the text against message_size_limit, then cleanup the whole queue
        file, envelope and Postfix's own header lines included (postfix_queue.py)."""
        refused = super().at_dot(session, message)
        limit = session.policy.message_size_limit
        if refused is not None or limit <= 0:  # 0: no limit (ENFORCING_SIZE_LIMIT)
            return refused
        sender, rcpts = session.mail_from or "", tuple(session.rcpt_tos)
        if queue_file_size(session, message.content(), sender, rcpts) > limit:
            return Refusal("data_too_big")
        return None

    def vrfy(self, session: Session, argument: str) -> Refusal:
        if self.settings.get("disable_vrfy_command", False):
            return Refusal("vrfy_disabled")
        words = [w.text for w in smtpd_tokens(argument)]
        smtputf8 = bool(words) and words[-1].lower() == "smtputf8"
        if smtputf8:
            words.pop()
        if not words:
            return Refusal("vrfy_syntax")
        said = " ".join(words)
        found = extract(said)
        bad = found.addresses > 1 or not found.address
        if bad or self._resolve(session, found.address, smtputf8).error:
            return Refusal("rcpt_bad_address")
        refused = self.recipient(session, found.address)
        if refused is not None:
            return Refusal(refused.key, refused.arg or found.address)
        return Refusal("vrfy_ok", said)


def _is_local(session: Session, domain: str) -> bool:
    """resolve_local(): mydestination, the server's name, its own address literals."""
    if domain.startswith("["):
        inner = domain[1:-1].lower()
        return inner in ("127.0.0.1", "ipv6:::1")
    return session.policy.is_local_domain(domain, session.setup.hostname)
