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
``owner_uid``) and the wording of a refusal (``refusal``); ``check`` is what
the server calls, once per accepted connection.

Speed: the kernel writes out every socket of the namespace for each read of
/proc/net/tcp, and a busy host holds thousands (every closed connection stays
in TIME_WAIT for a minute; one fault-lab lesson makes hundreds). Measured here
with 3,100 lines: 12 ms to read and 31 ms to parse, per connection; with 7,100
lines one trial run of 150 dialogues took 62 s of CPU instead of 0.6 s. So
``check`` asks the kernel about the one socket instead, through the sock_diag
netlink interface that ss(8) uses (``netlink_owner_uid``: an exact lookup by
address and port, about 40 microseconds, no privilege needed), and reads
/proc/net/tcp{,6} only where netlink is unavailable.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
import struct
import sys
from dataclasses import dataclass

PROC_NET = "/proc/net"
TIME_WAIT = 0x06  # a closed connection's leftover: printed with uid 0, owned by nobody

# linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_UID_OFFSET = 16 + 64  # nlmsghdr, then inet_diag_msg's family..sockid, expires, queues


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


def _diag_request(server: tuple[str, int], peer: tuple[str, int], seq: int = 1) -> bytes:
    """A sock_diag request for the one TCP socket whose local end is ``peer`` and
    remote end ``server`` (inet_diag_req_v2 in an nlmsghdr; ports and addresses in
    network byte order, the rest in the machine's)."""
    ip = ipaddress.ip_address(peer[0])
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    sockid = (
        struct.pack("!HH", peer[1], server[1])
        + ip.packed.ljust(16, b"\0")
        + ipaddress.ip_address(server[0]).packed.ljust(16, b"\0")
        + struct.pack("=LLL", 0, _INET_DIAG_NOCOOKIE, _INET_DIAG_NOCOOKIE)
    )
    body = struct.pack("=BBBBL", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    return (
        struct.pack("=LHHLL", 16 + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, seq, 0) + body
    )


def parse_diag_reply(data: bytes) -> int | None:
    """The uid in a sock_diag reply; None for "no such socket" or a TIME_WAIT leftover."""
    _, kind = struct.unpack_from("=LH", data)
    if kind == _NLMSG_ERROR:
        errno_ = -struct.unpack_from("=i", data, 16)[0]
        if errno_ == 2:  # ENOENT: no such socket here
            return None
        raise OSError(errno_, os.strerror(errno_))
    if kind != _SOCK_DIAG_BY_FAMILY or len(data) < _UID_OFFSET + 4:
        raise OSError(f"unexpected sock_diag reply of type {kind}")
    if data[17] == TIME_WAIT:  # inet_diag_msg.idiag_state
        return None
    return struct.unpack_from("=L", data, _UID_OFFSET)[0]


def netlink_owner_uid(server: tuple, peer: tuple) -> int | None:
    """``owner_uid`` asked of the kernel for the one socket (sock_diag netlink, as ss does).

    Raises OSError where netlink sock_diag is unavailable.
    """
    server, peer = _normal(server), _normal(peer)
    if ipaddress.ip_address(server[0]).version != ipaddress.ip_address(peer[0]).version:
        return None  # cannot be one connection
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)
        nl.send(_diag_request(server, peer))
        return parse_diag_reply(nl.recv(65536))


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


_use_netlink = True  # until netlink sock_diag fails once in this process


def peer_uid(server: tuple, peer: tuple, proc_net: str = PROC_NET) -> int | None:
    """The uid of whoever opened the connection from ``peer`` to ``server``; None if unknown."""
    global _use_netlink
    if _use_netlink and proc_net == PROC_NET:
        try:
            return netlink_owner_uid(server, peer)
        except OSError:  # no sock_diag (an old or locked-down kernel): read /proc instead
            _use_netlink = False
    return owner_uid(read_sockets(proc_net), server, peer)


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
    server: tuple | list[tuple], peer: tuple, owner: int | None = None, proc_net: str = PROC_NET
) -> str | None:
    """One accepted connection: None if its peer is ``owner`` (default: this process's
    user), else why not. ``server`` is the address the connection came in on, or a list
    of candidates (a server listening on two ports asks about both)."""
    owner = os.geteuid() if owner is None else owner
    uid = None
    for address in [server] if isinstance(server[0], str) else server:
        uid = peer_uid(address, peer, proc_net)
        if uid is not None:
            break
    return refusal(owner, uid)
