"""Who may reach a lab server, and how: loopback, owner-only, mode, TLS and AUTH.

Theory of operation.  A lesson names these settings on ``LabServer(...)`` and
``configure(...)``; this module checks them and says what a typo means in a
learner's terms, before anything listens.  The lab listens on loopback only
unless told otherwise; on a shared host (JupyterHub, Linux) it refuses other
users' connections (``peeruid.py``); AUTH is offered only inside TLS (RFC 4954
§4) unless a lesson turns that off on purpose; ``mode`` is one of
``protocol.policy``'s modes.  The certificates come from ``tls.py``, made on
first use (trustme is costly: only TLS lessons pay for it).
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LabValueError
from ..protocol import auth as _auth
from ..protocol.personas import Persona
from ..protocol.policy import check_mode
from . import peeruid


def is_loopback(host: str) -> bool:
    """True for a loopback address (or the name ``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_host(host: Any, allow_non_loopback: bool) -> None:
    """Refuse a host other machines could reach unless asked for (then warn)."""
    if not isinstance(host, str) or not host:
        raise LabValueError(f"host must be an address such as '127.0.0.1', not {host!r}")
    if not is_loopback(host):
        if not allow_non_loopback:
            raise LabValueError(
                f"the lab server listens on loopback only (127.0.0.1); {host!r} would "
                f"let other machines talk to it. Pass allow_non_loopback=True if you "
                f"really mean it."
            )
        # stacklevel 3: the warning points at the cell that made the LabServer
        warnings.warn(f"labsmtp: listening on {host}, which other machines may reach", stacklevel=3)


def owner_only(asked: bool | None) -> bool:
    """Whether to refuse other users' connections: on by default under JupyterHub, on Linux."""
    if asked is None:
        return "JUPYTERHUB_USER" in os.environ and peeruid.available()
    if not isinstance(asked, bool):
        raise LabValueError(f"owner_only must be True, False or left out, not {asked!r}")
    if asked and not peeruid.available():
        raise LabValueError(
            "owner_only=True needs Linux (it reads who opened each connection from "
            "/proc/net/tcp); leave it out on this system"
        )
    return asked


@dataclass(frozen=True)
class Security:
    """A server's checked mode, TLS and AUTH settings."""

    mode: str
    tls: bool
    implicit_tls: bool | int
    users: dict[str, str]
    auth_require_tls: bool


def _check_implicit_tls(implicit_tls: Any) -> None:
    if implicit_tls is False or implicit_tls is True:
        return
    if (
        isinstance(implicit_tls, bool)
        or not isinstance(implicit_tls, int)
        or not 1 <= implicit_tls <= 65535
    ):
        raise LabValueError(
            f"implicit_tls must be True (pick a free port), False, or a port from 1 to "
            f"65535, not {implicit_tls!r}"
        )


def check_security(
    persona: Persona,
    *,
    mode: str,
    tls: bool | None,
    implicit_tls: bool | int,
    users: Mapping[str, str] | None,
    auth_require_tls: bool,
) -> Security:
    """Check mode, TLS and AUTH settings together (a learner's typo gets a clear message);
    ``tls=None`` offers STARTTLS as ``persona``'s program does out of the box."""
    mode = check_mode(mode)
    checked_users = _auth.check_users(users)
    if tls is not None and not isinstance(tls, bool):
        raise LabValueError(f"tls must be True or False, not {tls!r}")
    if not isinstance(auth_require_tls, bool):
        raise LabValueError(f"auth_require_tls must be True or False, not {auth_require_tls!r}")
    _check_implicit_tls(implicit_tls)
    if mode == "submission" and not checked_users:
        raise LabValueError(
            "mode='submission' refuses MAIL until the client authenticates, so it needs lab "
            "users to log in as: add users={'alice': 'wonderland'}"
        )
    if tls is None:
        tls = persona.stock_tls or bool(checked_users) or implicit_tls is not False
    if not tls and implicit_tls is not False:
        raise LabValueError("implicit_tls needs TLS: leave out tls=False")
    if not tls and checked_users and auth_require_tls:
        raise LabValueError(
            "AUTH is offered only inside TLS (RFC 4954 §4: passwords travel merely "
            "base64-encoded). Leave out tls=False, or pass auth_require_tls=False to "
            "show on purpose why AUTH in the clear is dangerous."
        )
    return Security(mode, tls, implicit_tls, checked_users, auth_require_tls)


def implicit_port(implicit_tls: bool | int) -> int | None:
    """The implicit-TLS port to listen on (0: any free one), None for none (RFC 8314 §3.3)."""
    if implicit_tls is False:
        return None
    return 0 if implicit_tls is True else int(implicit_tls)


def ca_file() -> str:
    """Path of the lab CA certificate (PEM)."""
    from .tls import lab_ca  # trustme is costly: only TLS lessons pay for it

    return lab_ca().ca_file


def client_ssl_context(verify: bool = True) -> Any:
    """An ``ssl.SSLContext`` that trusts the lab CA."""
    from .tls import lab_ca

    return lab_ca().client_context(verify=verify)


def server_ssl_context(hostname: str) -> Any:
    """A server ``ssl.SSLContext`` with a lab certificate for ``hostname``."""
    from .tls import lab_ca

    return lab_ca().server_context(hostname)
