"""The lab's errors: each says what happened and what to do next."""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error labsmtp raises on purpose."""


class LabValueError(LabError, ValueError):
    """A setting or argument has a value the lab cannot use; the message says which."""


class PortInUseError(LabError, OSError):
    """The requested port is taken by another program (or another lab server).

    ``host``, ``port`` and ``reason`` (``"in use"``, ``"not allowed"`` or
    ``"other"``) let the command line give terminal advice instead of the
    notebook advice in the message.
    """

    def __init__(self, message: str, *, host: str = "", port: int = 0, reason: str = "other"):
        super().__init__(message)
        self.host, self.port, self.reason = host, port, reason


class LabConnectionError(LabError, ConnectionError):
    """The client lost or could not make its connection; ``phase`` names where."""

    def __init__(self, message: str, phase: str):
        super().__init__(message)
        self.phase = phase


class ConnectFailed(LabConnectionError):
    """Nothing answered at that address and port (refused or unreachable)."""


class ServerClosed(LabConnectionError):
    """The server closed the connection before it sent a complete reply."""


class ReplyTimeout(LabConnectionError):
    """No complete reply came back in time."""


class TLSFailed(LabConnectionError):
    """The TLS handshake failed (untrusted CA, wrong name...); the message says why."""


# Advice in a message depends on where the learner is: a notebook cell ("re-run the
# cell", "server.port"), a terminal running `python -m labsmtp` ("--port", "Ctrl-C"),
# or a plain Python script.  The CLI says so when it starts; a kernel is recognised.
_front_end: str | None = None


def set_front_end(name: str | None) -> None:
    """Say where labsmtp runs: 'cli' (python -m labsmtp), 'notebook', 'python'; None: guess."""
    global _front_end
    _front_end = name


def front_end() -> str:
    """'cli' under ``python -m labsmtp``, 'notebook' inside a Jupyter kernel, else 'python'."""
    if _front_end is not None:
        return _front_end
    import sys

    return "notebook" if "ipykernel" in sys.modules else "python"
