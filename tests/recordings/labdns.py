"""A tiny authoritative DNS server that serves the lab's offline zone.

    python3 tests/recordings/labdns.py --listen 127.0.0.1:53 [--log FILE] [--zone FILE]
        [--syslog /dev/log --syslog-out FILE]

The recording scripts run each real MTA in a private network namespace whose
/etc/resolv.conf says ``nameserver 127.0.0.1``; this server answers there.
It serves ``DEFAULT_ZONE`` from labsmtp/lab/dnszone.py (read as text with ``ast``,
so neither the package nor dnspython is needed) as if it were authoritative
for the whole name space ("."):

- a name in the zone gets its records (A, AAAA, PTR, MX, CNAME, TXT, NS),
  or an empty NOERROR answer (NODATA) for a type it has no records of;
- every other name gets NXDOMAIN at once.

So a program that looks up the sender's domain or the client's PTR gets the
same definite answer the lab's zone gives, never a timeout: the recordings are
deterministic and agree with what ``labsmtp.lab.dnszone.LabZone`` says.  The log
(one line per query) shows which lookups each program makes.

With ``--syslog PATH`` it also receives syslog datagrams on that unix socket
(the namespace's private /dev/log) and appends them to ``--syslog-out``, so
that Postfix's and Sendmail's own log lines can be read after a recording.

Standard library only (RFC 1035 wire format, UDP and TCP, no compression
needed when answering).
"""

from __future__ import annotations

import argparse
import ast
import ipaddress
import os
import pathlib
import socket
import socketserver
import struct
import sys
import threading

HERE = pathlib.Path(__file__).resolve().parent
DNSZONE_PY = HERE.parent.parent / "labsmtp" / "lab" / "dnszone.py"

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
TYPE_NAMES = {v: k for k, v in TYPES.items()} | {
    255: "ANY",
    41: "OPT",
    33: "SRV",
    43: "DS",
    48: "DNSKEY",
}
ANY = 255
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
# The SOA sent with negative answers (RFC 2308): the lab is the root of its world.
SOA_RDATA = ("lab-dns.invalid.", "hostmaster.lab-dns.invalid.", 1, 3600, 600, 86400, 300)


def default_zone_text() -> str:
    """DEFAULT_ZONE from labsmtp/lab/dnszone.py, without importing the package."""
    tree = ast.parse(DNSZONE_PY.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DEFAULT_ZONE" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no DEFAULT_ZONE in {DNSZONE_PY}")


def _absolute(name: str, origin: str) -> str:
    if name == "@":
        return origin
    if name.endswith("."):
        return name.lower()
    return (name + "." + origin).lower().replace("..", ".")


def _record_value(rtype: str, data: list[str], origin: str) -> object:
    if rtype == "MX":
        return (int(data[0]), _absolute(data[1], origin))
    if rtype in ("PTR", "CNAME", "NS"):
        return _absolute(data[0], origin)
    if rtype == "TXT":
        return " ".join(data).strip('"')
    return data[0]


def parse_zone(text: str) -> dict[tuple[str, int], list[tuple[int, object]]]:
    """Zone-file text -> {(lowercase absolute name, type): [(ttl, data)]}.

    Enough of RFC 1035 §5 for the lab's zone: $ORIGIN, $TTL, one record per
    line, optional TTL and class, comments after ';'.
    """
    origin, ttl = ".", 300
    records: dict[tuple[str, int], list[tuple[int, object]]] = {}
    name = None
    for raw in text.splitlines():
        fields = raw.split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] in ("$ORIGIN", "$TTL"):
            origin, ttl = (
                (fields[1].lower(), ttl) if fields[0] == "$ORIGIN" else (origin, int(fields[1]))
            )
            continue
        if raw[0] not in " \t":  # a leading blank repeats the previous owner name
            name = _absolute(fields.pop(0), origin)
        rttl = int(fields.pop(0)) if fields[0].isdigit() else ttl
        if fields[0].upper() == "IN":
            fields.pop(0)
        rtype = fields[0].upper()
        if rtype not in TYPES:
            raise ValueError(f"unsupported record type in zone: {raw!r}")
        records.setdefault((name, TYPES[rtype]), []).append(
            (rttl, _record_value(rtype, fields[1:], origin))
        )
    return records


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("ascii")
            out += bytes([len(b)]) + b
    return out + b"\0"


def encode_rdata(rtype: int, value) -> bytes:
    if rtype == TYPES["A"]:
        return ipaddress.IPv4Address(value).packed
    if rtype == TYPES["AAAA"]:
        return ipaddress.IPv6Address(value).packed
    if rtype in (TYPES["PTR"], TYPES["CNAME"], TYPES["NS"]):
        return encode_name(value)
    if rtype == TYPES["MX"]:
        return struct.pack("!H", value[0]) + encode_name(value[1])
    if rtype == TYPES["TXT"]:
        b = value.encode()
        return bytes([len(b)]) + b
    if rtype == TYPES["SOA"]:
        mname, rname, *nums = value
        return encode_name(mname) + encode_name(rname) + struct.pack("!5I", *nums)
    raise ValueError(rtype)


def rr(name: str, rtype: int, ttl: int, value) -> bytes:
    rdata = encode_rdata(rtype, value)
    return encode_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


class Zone:
    def __init__(self, text: str):
        self.records = parse_zone(text)
        self.names = {name for name, _ in self.records}

    def lookup(self, qname: str, qtype: int) -> tuple[int, list[bytes]]:
        """(rcode, answer RRs) for one question; follows CNAMEs."""
        answers: list[bytes] = []
        name = qname.lower()
        if not name.endswith("."):
            name += "."
        for _ in range(8):  # CNAME chain limit
            if name not in self.names:
                return (NXDOMAIN if not answers else NOERROR), answers
            if qtype == ANY:
                for (n, t), rrs in sorted(self.records.items()):
                    if n == name:
                        answers += [rr(name, t, ttl, v) for ttl, v in rrs]
                return NOERROR, answers
            if (name, qtype) in self.records:
                answers += [rr(name, qtype, ttl, v) for ttl, v in self.records[(name, qtype)]]
                return NOERROR, answers
            cname = self.records.get((name, TYPES["CNAME"]))
            if cname and qtype != TYPES["CNAME"]:
                ttl, target = cname[0]
                answers.append(rr(name, TYPES["CNAME"], ttl, target))
                name = target
                continue
            return NOERROR, answers  # NODATA
        return SERVFAIL, []


def parse_question(msg: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, qname, qtype, qclass, end offset) of a query's first question."""
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount < 1:
        raise ValueError("no question")
    pos, labels = 12, []
    while True:
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[pos : pos + n].decode("ascii", "replace"))
        pos += n
    qtype, qclass = struct.unpack("!HH", msg[pos : pos + 4])
    return qid, flags, ".".join(labels) + ".", qtype, qclass, pos + 4


class Server:
    def __init__(self, zone: Zone, log=None):
        self.zone, self.log, self.lock = zone, log, threading.Lock()

    def answer(self, msg: bytes, peer: str) -> bytes | None:
        try:
            qid, flags, qname, qtype, qclass, end = parse_question(msg)
        except (ValueError, IndexError, struct.error):
            if len(msg) >= 2:
                return msg[:2] + struct.pack("!HHHHH", 0x8000 | FORMERR, 0, 0, 0, 0)
            return None
        opcode = (flags >> 11) & 0xF
        question = msg[12:end]
        rd = flags & 0x0100
        if opcode != 0:
            rcode, answers = NOTIMP, []
        elif qclass not in (1, 255):
            rcode, answers = NOERROR, []
        else:
            rcode, answers = self.zone.lookup(qname, qtype)
        authority = []
        if rcode in (NOERROR, NXDOMAIN) and not answers:
            authority = [rr(".", TYPES["SOA"], 300, SOA_RDATA)]
        header = struct.pack(
            "!HHHHHH", qid, 0x8000 | 0x0400 | rd | rcode, 1, len(answers), len(authority), 0
        )
        if self.log:
            kind = {NOERROR: "NOERROR" if answers else "NODATA", NXDOMAIN: "NXDOMAIN"}.get(
                rcode, str(rcode)
            )
            with self.lock:
                self.log.write(
                    f"{peer} {TYPE_NAMES.get(qtype, qtype)} {qname} -> {kind}"
                    f" ({len(answers)} answers)\n"
                )
                self.log.flush()
        return header + question + b"".join(answers) + b"".join(authority)


def catch_syslog(path: str, out_path: str) -> None:
    """Append every datagram sent to the unix socket ``path`` to ``out_path``."""
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)  # daemons log as their own users

    def loop():
        with open(out_path, "ab", buffering=0) as out:
            while True:
                data = sock.recv(65536)
                out.write(data.rstrip(b"\0\n") + b"\n")

    threading.Thread(target=loop, daemon=True).start()


def serve(listen: str, zone_text: str, log_path: str | None) -> None:
    host, _, port = listen.rpartition(":")
    log = open(log_path, "a") if log_path else None
    server = Server(Zone(zone_text), log)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            reply = server.answer(data, self.client_address[0])
            if reply:
                sock.sendto(reply, self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    return
                (n,) = struct.unpack("!H", head)
                reply = server.answer(self.rfile.read(n), self.client_address[0])
                if reply:
                    self.wfile.write(struct.pack("!H", len(reply)) + reply)

    class UdpServer(socketserver.ThreadingUDPServer):
        allow_reuse_address = True
        daemon_threads = True

    class TcpServer(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    udp = UdpServer((host, int(port)), Udp)
    tcp = TcpServer((host, int(port)), Tcp)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print(f"labdns: serving the lab zone on {listen} (udp, tcp)", file=sys.stderr, flush=True)
    udp.serve_forever()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:53")
    ap.add_argument(
        "--zone", type=pathlib.Path, help="zone-file text (default: labsmtp DEFAULT_ZONE)"
    )
    ap.add_argument("--log", help="append one line per query to this file")
    ap.add_argument("--print-zone", action="store_true", help="print the zone text and exit")
    ap.add_argument("--syslog", help="also receive syslog datagrams on this unix socket path")
    ap.add_argument("--syslog-out", help="file the syslog lines are appended to")
    args = ap.parse_args(argv)
    text = args.zone.read_text() if args.zone else default_zone_text()
    if args.print_zone:
        sys.stdout.write(text)
        return 0
    if args.syslog:
        catch_syslog(args.syslog, args.syslog_out or os.devnull)
    serve(args.listen, text, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
