"""Who opened a loopback TCP connection: the peer's user, from /proc/net/tcp and /proc/net/tcp6.

On a shared JupyterHub host (The Littlest JupyterHub, or any hub whose
learners are system users of one machine) every learner's lab server listens
on the same loopback address, so learner B could deliver into, or inject
faults against, learner A's server just by connecting to its port. A loopback
connection has both of its ends on this machine, and Linux lists every TCP
socket of the network namespace, with its owner's uid, in /proc/net/tcp (IPv4)
and /proc/net/tcp6 (IPv6). The client's end is the line whose local address
is the peer address the server sees and whose remote address is the server's
own: its ``uid`` column names the user who opened the connection.

Pure functions over the text of those files (``parse_address``, ``parse_table``,
``owner_uid``) and the wording of a refusal (``refusal``); ``check`` reads the
files and is what the server calls, once per accepted connection.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import sys
from dataclasses import dataclass

PROC_NET = "/proc/net"
TIME_WAIT = 0x06  # a closed connection's leftover: printed with uid 0, owned by nobody


@dataclass(frozen=True)
class TcpSocket:
    """One line of /proc/net/tcp or tcp6."""

    local: tuple[str, int]
    remote: tuple[str, int]
    state: int
    uid: int
    inode: int


def parse_address(text: str) -> tuple[str, int]:
    """``"0100007F:1F90"`` -> ``("127.0.0.1", 8080)``; IPv4-mapped IPv6 comes out as IPv4.

    The kernel prints each 32-bit word of the address as a hexadecimal number in
    the machine's byte order (so 127.0.0.1 is 0100007F on x86), and the port in
    plain hexadecimal.
    """
    addr, _, port = text.partition(":")
    if len(addr) not in (8, 32):
        raise ValueError(f"not an address from /proc/net/tcp: {text!r}")
    raw = b"".join(
        int(addr[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(addr), 8)
    )
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def parse_table(text: str) -> list[TcpSocket]:
    """Every socket listed in the text of /proc/net/tcp or tcp6 (the header line skipped)."""
    sockets = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        sockets.append(
            TcpSocket(parse_address(f[1]), parse_address(f[2]), int(f[3], 16), int(f[7]), int(f[9]))
        )
    return sockets


def _normal(address: tuple) -> tuple[str, int]:
    """A socket address as asyncio reports it, in the form parse_address gives."""
    ip = ipaddress.ip_address(address[0].split("%")[0])  # drop an IPv6 scope id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(address[1])


def owner_uid(sockets: list[TcpSocket], server: tuple, peer: tuple) -> int | None:
    """The uid of the socket at ``peer`` connected to ``server``; None if no such socket here."""
    server, peer = _normal(server), _normal(peer)
    for s in sockets:
        if s.local == peer and s.remote == server and s.state != TIME_WAIT:
            return s.uid
    return None


def read_sockets(proc_net: str = PROC_NET) -> list[TcpSocket]:
    """Every TCP socket of this network namespace, IPv4 and IPv6."""
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc_net, name)) as f:
                sockets += parse_table(f.read())
        except FileNotFoundError:  # a kernel without IPv6
            continue
    return sockets


def available(proc_net: str = PROC_NET) -> bool:
    """True where the check can work: Linux, with /proc/net/tcp readable."""
    return sys.platform.startswith("linux") and os.access(os.path.join(proc_net, "tcp"), os.R_OK)


def user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a container user with no passwd entry
        return f"uid {uid}"


def refusal(owner: int, peer_owner: int | None) -> str | None:
    """Why a connection is refused (None: it is the owner's own), in words a learner reads."""
    if peer_owner == owner:
        return None
    mine = user_name(owner)
    if peer_owner is None:
        return (
            f"this lab server serves only its owner, {mine}, and cannot tell who opened "
            f"this connection (it does not come from a program on this machine)"
        )
    return (
        f"this lab server belongs to {mine} and serves only its owner; this connection "
        f"comes from {user_name(peer_owner)}; every learner runs a lab server of their own"
    )


def check(
    server: tuple, peer: tuple, owner: int | None = None, proc_net: str = PROC_NET
) -> str | None:
    """One accepted connection: None if its peer is ``owner`` (default: this process's user), else why not."""
    owner = os.geteuid() if owner is None else owner
    return refusal(owner, owner_uid(read_sockets(proc_net), server, peer))
