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
