"""labsmtp: a real SMTP server and a step-by-step client for learning the protocol.

Start here::

    from labsmtp import LabServer
    server = LabServer().start()       # a real server on 127.0.0.1, in this kernel
    c = server.client()                # connected; c.history[0] is the 220 greeting
    c.helo("client.example.org")

Everything a lesson needs is imported from here. The package has three rooms
(tests/test_layers.py keeps the walls standing):

- ``labsmtp.protocol``: what SMTP is (state table, replies, personas, policy); no I/O.
- ``labsmtp.lab``: the running lab (server, client, TLS, faults, DNS zone, trials).
- ``labsmtp.classroom``: what a learner sees (plots, widgets, comparison,
  mysteries, exercises).

``plots``, ``replies``, ``trials`` and ``widgets`` are modules, loaded on first use
(``from labsmtp import plots``), so importing labsmtp stays quick.
"""

import importlib

from .classroom.compare import compare, compare_steps
from .classroom.course import check, solution
from .classroom.mystery import DIAGNOSES, mystery
from .errors import (
    ConnectFailed,
    LabConnectionError,
    LabError,
    LabValueError,
    PortInUseError,
    ReplyTimeout,
    ServerClosed,
    TLSFailed,
)
from .lab.client import StepClient, dot_stuff, make_message, show_wire
from .lab.dnszone import DEFAULT_ZONE, LabZone, use_zone
from .lab.faults import Fault, FaultEngine, parse_fault
from .lab.mailbox import Mailbox, StoredMessage
from .lab.server import LabServer, running_servers, stop_all
from .lab.transcript import Transcript
from .lab.trials import TrialResults, run_trials
from .protocol.personas import Persona, get_persona, persona_names
from .protocol.policy import Policy
from .protocol.replies import Reply, explain_code, explain_enhanced, is_legal, parse_reply
from .protocol.states import TRANSITIONS, Command, State, allowed_commands, next_state

__version__ = "0.1.0"

# Modules a lesson uses by name (``plots.ladder(...)``), loaded when first asked for.
_LAZY_MODULES = {
    "plots": "labsmtp.classroom.plots",
    "widgets": "labsmtp.classroom.widgets",
    "trials": "labsmtp.lab.trials",
    "replies": "labsmtp.protocol.replies",
}


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        module = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'labsmtp' has no attribute {name!r}")


__all__ = [
    "DEFAULT_ZONE",
    "DIAGNOSES",
    "LabZone",
    "check",
    "compare",
    "compare_steps",
    "mystery",
    "plots",
    "replies",
    "solution",
    "trials",
    "use_zone",
    "widgets",
    "Command",
    "ConnectFailed",
    "Fault",
    "FaultEngine",
    "LabConnectionError",
    "LabError",
    "LabServer",
    "LabValueError",
    "Mailbox",
    "Persona",
    "Policy",
    "PortInUseError",
    "Reply",
    "ReplyTimeout",
    "ServerClosed",
    "State",
    "StepClient",
    "StoredMessage",
    "TLSFailed",
    "TRANSITIONS",
    "Transcript",
    "TrialResults",
    "allowed_commands",
    "dot_stuff",
    "explain_code",
    "explain_enhanced",
    "get_persona",
    "is_legal",
    "make_message",
    "next_state",
    "parse_fault",
    "parse_reply",
    "persona_names",
    "run_trials",
    "running_servers",
    "show_wire",
    "stop_all",
]
