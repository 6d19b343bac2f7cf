"""Checks of lessons 5 to 9: mail among several servers.

Identity in DNS, finding the mail server by MX, comparing platforms, faults
and retries, following a bounce.  Each check returns None when solved, else
hints from gentle to specific.
"""

from __future__ import annotations

from ..course import Checker
from .reading import greetings, not_a_client, source_of

# --- lesson 5 -------------------------------------------------------------


def _check_5_1(nat_address, zone):
    if str(nat_address).strip() == "127.0.0.5":
        return None
    return (
        "print zone.fcrdns(a).detail for 127.0.0.1 to 127.0.0.5 and compare.",
        "which PTR name resolves to a *different address* (not to nothing)?",
    )


def _check_5_2(newmx, server):
    if problem := not_a_client(newmx):
        return problem
    if "reject_unknown_helo_hostname" not in server.policy.smtpd_helo_restrictions:
        return "keep reject_unknown_helo_hostname on: fix the DNS, not the policy."
    if source_of(newmx) != "127.0.0.6":
        return "connect from 127.0.0.6: server.client(source='127.0.0.6')."
    if any(a.lower() == "newmx.example.org" and r.code == 250 for _, a, r in greetings(newmx)):
        return None
    return (
        "newmx.example.org was not accepted: is it in the zone the server uses?",
        "add the line 'newmx.example.org. A 127.0.0.6' to the zone text and load it "
        "with use_zone(server, zone_text, identity='off') before connecting.",
    )


# --- lesson 6 -------------------------------------------------------------


def _check_6_1(where):
    want = {
        "shop.example": "mx1.shop.example",
        "plain.example": "plain.example",
        "nomail.example": None,
    }
    if not isinstance(where, dict):
        return "where should be a dict such as {'shop.example': 'mx1.shop.example', ...}."
    got = {str(k).lower(): (str(v).lower().rstrip(".") if v else None) for k, v in where.items()}
    for domain, host in want.items():
        if got.get(domain, "missing") != host:
            hints = {
                "shop.example": (
                    "shop.example is not right yet.",
                    "two MX records: the lower preference wins.",
                ),
                "plain.example": (
                    "plain.example is not right yet.",
                    "no MX record: the domain's own address is the implicit MX (§5.1).",
                ),
                "nomail.example": (
                    "nomail.example is not right yet.",
                    "MX 0 . is a null MX (RFC 7505): no mail, not even to its address.",
                ),
            }
            return hints[domain]
    return None


def _check_6_2(delivery):
    if not hasattr(delivery, "attempts") or not hasattr(delivery, "results"):
        return "keep what net.send(...) returns in delivery."
    result = delivery.results.get("bob@shop.example")
    if result is None:
        return "send to bob@shop.example."
    if result.action != "delivered":
        return "the message was not delivered: was mx2 refusing too?"
    if result.host != "mx2.shop.example":
        return (
            "mx1 took the message itself.",
            "make mx1 refuse first: net.server('mx1.shop.example').faults.add('connect:421'), "
            "or .stop() it.",
        )
    if not delivery.attempts or delivery.attempts[0].host != "mx1.shop.example":
        return "the MTA should have tried mx1 first."
    return None


# --- lesson 7 -------------------------------------------------------------


def _check_7_1(refusers, table):
    want = {n for n in table.personas if (table.cell(n, "HELO non-FQDN").code or 0) >= 400}
    if not isinstance(refusers, (set, frozenset, list, tuple)):
        return "refusers should be a set of names such as {'postfix'}."
    got = {str(n).strip().lower() for n in refusers}
    if got != want:
        return (
            f"{len(got ^ want)} name(s) wrong.",
            "a refusal is a 4xx or 5xx code in the 'HELO non-FQDN' column (table.personas "
            "lists the names).",
        )
    return None


def _check_7_2(sendmail_reply):
    if not hasattr(sendmail_reply, "code"):
        return "keep the reply object that client.helo(...) returns."
    if sendmail_reply.code != 250 or "pleased to meet you" not in sendmail_reply.text:
        return (
            "that does not look like Sendmail's 250 reply.",
            "start the server with LabServer(persona='sendmail').",
        )
    return None


# --- lesson 8 -------------------------------------------------------------


def _check_8_1(result):
    if not hasattr(result, "by_outcome"):
        return "keep what trials.run_trials(...) returns in result."
    if len(result.trials) != 100:
        return "run 100 trials."
    if "rcpt:451:0.5" not in [str(f) for f in result.faults]:
        return "use the fault 'rcpt:451:0.5'."
    if result.policy.name != "mta":
        return "retry as a mail server does: retry='mta'."
    if result.by_outcome()["delivered"] < 90:
        return "with retries, almost every message should get through a 50% 4xx."
    return None


def _check_8_2(first, second):
    if not (hasattr(first, "trials") and hasattr(second, "trials")):
        return "keep both results of trials.run_trials(...)."
    if first.seed != 42 or second.seed != 42:
        return "pass seed=42 to both runs."
    if any("mail:450:0.4" not in [str(f) for f in r.faults] for r in (first, second)):
        return "use the fault 'mail:450:0.4' in both runs."

    def replies(r):
        return [[sorted(a.codes.items(), key=str) for a in t.attempts] for t in r.trials]

    if replies(first) != replies(second) or first.policy.name != second.policy.name:
        return "the two runs differ: were the retry policy, the faults and the seed the same?"
    if not any(450 in a.codes.values() for t in first.trials for a in t.attempts):
        return "no trial met a 450: use the fault 'mail:450:0.4'."
    return None


# --- lesson 9 -------------------------------------------------------------


def _check_9_1(failed_status, reporter):
    if str(failed_status).strip() != "5.1.1":
        return (
            "failed_status is not right yet.",
            "the Status field of the recipient whose Action is 'failed' (an enhanced status code).",
        )
    name = str(reporter).split(";")[-1].strip().lower().rstrip(".")
    if name != "mta.home.example":
        return (
            "reporter is not right yet: who *sent* the bounce?",
            "the Reporting-MTA field, not Remote-MTA (the server that refused).",
        )
    return None


def _check_9_2(given_up):
    if not hasattr(given_up, "results") or not hasattr(given_up, "bounces"):
        return "keep what net.send(...) returns in given_up."
    result = given_up.results.get("bob@shop.example")
    if result is None:
        return "send to bob@shop.example."
    if result.action == "delivered":
        return (
            "Bob got the message: both mail hosts must answer RCPT with 451.",
            "net.server('mx1.shop.example').faults.add('rcpt:451'), and the same for mx2.",
        )
    if not result.status.startswith("4"):
        return "that failure was permanent (5xx) and bounced at once; the task wants a 4xx."
    if result.rounds < 2 or not given_up.bounces:
        return "the MTA should retry before it gives up: use the default retry policy."
    return None


CHECKS: dict[str, Checker] = {
    "5.1": _check_5_1,
    "5.2": _check_5_2,
    "6.1": _check_6_1,
    "6.2": _check_6_2,
    "7.1": _check_7_1,
    "7.2": _check_7_2,
    "8.1": _check_8_1,
    "8.2": _check_8_2,
    "9.1": _check_9_1,
    "9.2": _check_9_2,
}
