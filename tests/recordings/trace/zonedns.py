"""Answer DNS queries from the lab's offline zone, for the trace recordings.

    python3 zonedns.py --listen 127.0.0.1:53 --log queries.log

record_trace.sh runs every real MTA in a private network namespace whose
/etc/resolv.conf names 127.0.0.1; this answers there, so that the programs'
reverse lookups of 127.0.0.2..5 (the PTR names written in ``Received:``) and
the forward lookups that confirm them get the lab zone's answers, at once and
always the same.  The zone is ``DEFAULT_ZONE`` of labsmtp/lab/dnszone.py, read
as text with ``ast`` (the package and dnspython are not needed: the script runs
as root with the system python3).  It acts as the whole name space: a name in
the zone gets its records or an empty answer (NODATA), any other name
NXDOMAIN.  UDP and TCP, no compression, EDNS ignored (RFC 6891 §7 allows a
responder to omit OPT).  Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import ipaddress
import pathlib
import socketserver
import struct
import sys
import threading

ZONE_SOURCE = pathlib.Path(__file__).resolve().parents[3] / "labsmtp" / "lab" / "dnszone.py"
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
NAMES = {v: k for k, v in TYPES.items()}
SOA = ("lab-dns.invalid.", "hostmaster.lab-dns.invalid.", 1, 3600, 600, 86400, 300)


def zone_text(variable: str = "DEFAULT_ZONE") -> str:
    for node in ast.parse(ZONE_SOURCE.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == variable for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{variable} not found in {ZONE_SOURCE}")


def parse_zone(text: str) -> dict[str, list[tuple[int, int, str]]]:
    """name (lower case, trailing dot) -> [(type, ttl, rdata text)]."""
    records: dict[str, list[tuple[int, int, str]]] = {}
    ttl = 300
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("$TTL"):
            ttl = int(line.split()[1])
            continue
        if line.startswith("$"):
            continue
        parts = line.split(None, 2)
        if parts[1] == "IN":
            parts = [parts[0], *parts[2].split(None, 1)]
        name, rtype, data = parts[0].lower(), parts[1].upper(), parts[2].strip()
        records.setdefault(name, []).append((TYPES[rtype], ttl, data))
    return records


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def rdata(rtype: int, data: str) -> bytes:
    if rtype == 1:
        return ipaddress.IPv4Address(data).packed
    if rtype == 28:
        return ipaddress.IPv6Address(data).packed
    if rtype in (2, 5, 12):
        return encode_name(data)
    if rtype == 15:
        pref, host = data.split()
        return struct.pack("!H", int(pref)) + encode_name(host)
    if rtype == 16:
        text = data.strip('"').encode()
        return bytes([len(text)]) + text
    raise ValueError(rtype)


def soa_rr() -> bytes:
    body = encode_name(SOA[0]) + encode_name(SOA[1]) + struct.pack("!5I", *SOA[2:])
    return encode_name(".") + struct.pack("!HHIH", 6, 1, 300, len(body)) + body


class Zone:
    def __init__(self, records: dict[str, list[tuple[int, int, str]]]):
        self.records = records

    def exists(self, name: str) -> bool:
        # a name with records, or an empty non-terminal above one (RFC 8020)
        return name in self.records or any(n.endswith("." + name) for n in self.records)

    def answer(self, query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", query[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        pos, labels = 12, []
        while query[pos]:
            n = query[pos]
            labels.append(query[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        qname = (".".join(labels) + ".").lower() if labels else "."
        qtype, qclass = struct.unpack("!HH", query[pos + 1 : pos + 5])
        question = query[12 : pos + 5]
        answers = []
        rcode = 0
        if not self.exists(qname):
            rcode = 3  # NXDOMAIN
        else:
            for rtype, ttl, data in self.records.get(qname, []):
                if rtype == qtype or qtype == 255 or (rtype == 5 and qtype != 5):
                    body = rdata(rtype, data)
                    answers.append(
                        encode_name(qname) + struct.pack("!HHIH", rtype, 1, ttl, len(body)) + body
                    )
        authority = [] if answers else [soa_rr()]
        # QR, opcode 0, AA, RD copied, RA
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        header = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), len(authority), 0)
        self.log(qname, qtype, rcode, len(answers))
        return header + question + b"".join(answers) + b"".join(authority)

    log_file = None
    lock = threading.Lock()

    def log(self, qname: str, qtype: int, rcode: int, count: int) -> None:
        if self.log_file is None:
            return
        result = "NXDOMAIN" if rcode == 3 else (f"{count} answer(s)" if count else "NODATA")
        with self.lock, open(self.log_file, "a") as f:
            f.write(f"{qname} {NAMES.get(qtype, qtype)} -> {result}\n")


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = self.server.zone.answer(data)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            head = self.request.recv(2)
            if len(head) < 2:
                return
            (length,) = struct.unpack("!H", head)
            data = b""
            while len(data) < length:
                chunk = self.request.recv(length - len(data))
                if not chunk:
                    return
                data += chunk
            reply = self.server.zone.answer(data)
            if reply is None:
                return
            self.request.sendall(struct.pack("!H", len(reply)) + reply)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:53")
    ap.add_argument("--log", help="append one line per query to this file")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    zone = Zone(parse_zone(zone_text()))
    zone.log_file = args.log
    udp = socketserver.ThreadingUDPServer((host, int(port)), UDPHandler)
    tcp = socketserver.ThreadingTCPServer((host, int(port)), TCPHandler, bind_and_activate=False)
    tcp.allow_reuse_address = True
    tcp.server_bind()
    tcp.server_activate()
    for srv in (udp, tcp):
        srv.zone = zone
        srv.daemon_threads = True
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print(f"zonedns: answering on {host}:{port}", file=sys.stderr, flush=True)
    udp.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
