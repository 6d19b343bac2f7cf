"""labsmtp: a real SMTP server and a step-by-step client for learning the protocol.

Start here::

    from labsmtp import LabServer
    server = LabServer().start()       # a real server on 127.0.0.1, in this kernel
    c = server.client()                # connected; c.history[0] is the 220 greeting
    c.helo("client.example.org")
"""

from .client import StepClient, dot_stuff, make_message, show_wire
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
from .faults import Fault, FaultEngine, parse_fault
from .mailbox import Mailbox, StoredMessage
from .personas import Persona, get_persona, persona_names
from .policy import Policy
from .replies import Reply, explain_code, explain_enhanced, is_legal, parse_reply
from .server import LabServer, running_servers, stop_all
from .states import TRANSITIONS, Command, State, allowed_commands, next_state
from .transcript import Transcript
from .trials import TrialResults, run_trials

__version__ = "0.1.0"

__all__ = [
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
