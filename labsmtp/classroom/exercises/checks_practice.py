"""Checks of lessons 10 to 14: SMTP in practice.

STARTTLS, authentication and relaying, scripting with smtplib, troubleshooting
mysteries and the myth-or-fact tests.  Each check returns None when solved,
else hints from gentle to specific; 12.2 runs the learner's function against
servers of its own.
"""

from __future__ import annotations

import itertools

from ..course import Checker
from .reading import accepted_messages, greetings, not_a_client, sent_commands, source_of

# --- lesson 10 -------------------------------------------------------------


def _check_10_1(error):
    from ...errors import LabConnectionError

    if not isinstance(error, LabConnectionError):
        return (
            "keep the exception itself: except TLSFailed as exc: error = exc.",
            "starttls(server_name='evil.example.net') raises TLSFailed; catch it.",
        )
    if "evil.example.net" not in str(error):
        return "the error should be about the name evil.example.net."
    return None


def _check_10_2(new_keywords):
    if isinstance(new_keywords, str):
        new_keywords = {new_keywords}
    if not isinstance(new_keywords, (set, frozenset, list, tuple)):
        return "new_keywords should be a set of keywords such as {'SIZE'}."
    names = {str(k).split()[0].upper() for k in new_keywords if str(k).strip()}
    if names != {"AUTH"}:
        return (
            "compare the two EHLO replies line by line.",
            "one keyword disappears inside TLS and one appears: you want the one that appears.",
        )
    return None


# --- lesson 11 -------------------------------------------------------------


def _check_11_1(submitter):
    if problem := not_a_client(submitter):
        return problem
    steps = sent_commands(submitter)
    ok_rcpt = any(
        v == "RCPT" and "friend@elsewhere.example.net" in a and r.code == 250 for v, a, r in steps
    )
    if ok_rcpt and accepted_messages(submitter):
        return None
    codes = [r.code for _, _, r in steps]
    if 530 in codes:
        return "MAIL got 530: log in with .auth('alice', 'wonderland') first."
    if 538 in codes or 503 in codes and "AUTH" in [v for v, _, _ in steps]:
        return "AUTH needs TLS here: .starttls(), then EHLO again, then AUTH."
    return (
        "no message for friend@elsewhere.example.net got its 250 yet.",
        "EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA.",
    )


def _check_11_2(stranger):
    if problem := not_a_client(stranger):
        return problem
    if source_of(stranger) != "127.0.0.2":
        return "connect from 127.0.0.2, which the server does not trust: mx.client(source='127.0.0.2')."
    rcpts = [(a.lower(), r.code) for v, a, r in sent_commands(stranger) if v == "RCPT"]
    own = any("@lab.example.org" in a and c == 250 for a, c in rcpts)
    foreign = any("@lab.example.org" not in a and c and c >= 500 for a, c in rcpts)
    if own and foreign:
        return None
    return (
        "one RCPT for the server's own domain and one for another domain, in one transaction.",
        "RCPT TO:<postmaster@lab.example.org> and RCPT TO:<friend@elsewhere.example.net>.",
    )


# --- lesson 12 -------------------------------------------------------------


def _check_12_1(outcome):
    if str(outcome).strip() != "SMTPRecipientsRefused":
        return (
            "provoke it: send from 127.0.0.2 to a foreign recipient only.",
            "catch smtplib.SMTPException and look at type(exc).__name__.",
        )
    return None


def _check_12_2(send_with_retry):
    from ...lab.labserver import LabServer

    if not callable(send_with_retry):
        return "send_with_retry should be a function: def send_with_retry(host, port, sender, rcpt, text): ..."
    text = "Subject: retried\r\n\r\nhello\r\n"
    with LabServer(name="check-12-2-busy") as busy, LabServer(name="check-12-2-hard") as hard:
        busy.faults.add("rcpt:451:sessions=1-2")
        hard.faults.add("rcpt:550")
        try:
            send_with_retry(busy.host, busy.port, "a@example.org", "retry@lab.example.org", text)
        except Exception as exc:  # noqa: BLE001  (any failure is the learner's to fix)
            return (
                f"against a server whose first two sessions answer 451, your function raised "
                f"{type(exc).__name__}.",
                "catch smtplib.SMTPRecipientsRefused, read exc.recipients[rcpt][0], and try "
                "again when it is a 4xx.",
            )
        if not busy.mailbox.find(rcpt="retry@lab.example.org"):
            return "the message never arrived at the busy server: retry after a 4xx until it is accepted."
        # The pause between one session's end and the next one's start is the learner's
        # wait alone (connecting and the dialogue itself take time too, more when the
        # machine is busy).
        sessions = list(busy.sessions)
        waits = [
            b.started - a.ended for a, b in itertools.pairwise(sessions) if a.ended is not None
        ]
        if len(waits) >= 2 and waits[1] < waits[0] * 1.2:
            return "the waits between attempts should grow (for example double each time)."
        try:
            send_with_retry(hard.host, hard.port, "a@example.org", "nobody@lab.example.org", text)
        except Exception:  # noqa: BLE001  (raising is right here; how is the learner's choice)
            pass
        if len(hard.sessions) > 1:
            return (
                f"against a server that answers 550, your function tried {len(hard.sessions)} "
                f"times.",
                "a 5xx means do not repeat: re-raise it at once.",
            )
    return None


# --- lesson 13 -------------------------------------------------------------


def _diagnosis_hint(case, diagnosis):
    from ..mystery import DIAGNOSES

    name = str(diagnosis).strip().lower()
    if name not in DIAGNOSES:
        return f"{diagnosis!r} is not a diagnosis name; choose one of: {', '.join(DIAGNOSES)}."
    if not case.is_right(name):
        return (
            "not this one. Which command gets the first error?",
            "does the reply change with the HELO name, the client address (source=...) or a "
            "second attempt a little later?",
        )
    return None


def _check_13_1(diagnosis_1, case):
    return _diagnosis_hint(case, diagnosis_1)


def _check_13_2(diagnosis_2, case):
    return _diagnosis_hint(case, diagnosis_2)


def _check_13_3(diagnoses, mysteries):
    if not isinstance(diagnoses, dict):
        return "diagnoses should be a dict such as {3: 'greylisting', ...}."
    wrong = [
        n for n, m in sorted(mysteries.items()) if _diagnosis_hint(m, diagnoses.get(n)) is not None
    ]
    if wrong:
        first = _diagnosis_hint(mysteries[wrong[0]], diagnoses.get(wrong[0]))
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        return (
            f"look again at mystery {wrong[0]}{more}.",
            f"mystery {wrong[0]}: " + (first if isinstance(first, str) else first[-1]),
        )
    return None


# --- lesson 14 -----------------------------------------------------------------


def _check_14_1(bare):
    if problem := not_a_client(bare):
        return problem
    if any(v == "HELO" and not a and r.code == 501 for v, a, r in sent_commands(bare)):
        return None
    return (
        "your client sent no HELO without an argument.",
        "client.helo() always sends a name; client.raw('HELO') sends the bare line.",
    )


def _check_14_2(nameless):
    from ...protocol.policy import address_literal

    if problem := not_a_client(nameless):
        return problem
    if not any(address_literal(a) and r.code == 250 for _, a, r in greetings(nameless)):
        return (
            "greet with an address literal instead of a name.",
            "EHLO with your address in square brackets: '[127.0.0.1]'.",
        )
    if not accepted_messages(nameless):
        return "greeted; now deliver a message: MAIL, RCPT, DATA."
    return None


CHECKS: dict[str, Checker] = {
    "10.1": _check_10_1,
    "10.2": _check_10_2,
    "11.1": _check_11_1,
    "11.2": _check_11_2,
    "12.1": _check_12_1,
    "12.2": _check_12_2,
    "13.1": _check_13_1,
    "13.2": _check_13_2,
    "13.3": _check_13_3,
    "14.1": _check_14_1,
    "14.2": _check_14_2,
}
