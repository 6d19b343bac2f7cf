"""The lab's certificate authority and TLS contexts (RFC 3207 STARTTLS, RFC 8314).

Theory of operation.  The first time anything needs TLS, ``lab_ca()`` makes a
throw-away certificate authority with ``trustme`` (in memory, about 10 ms)
and writes its certificate to a temporary file, so that other programs
(swaks ``--tls-ca-path``, curl ``--cacert``, smtplib) can be told to trust it.
Each lab server gets a certificate from that CA for its own name, plus
``localhost`` and the loopback addresses, so a client verifies it as a mail
program verifies its submission server (RFC 8314).  (Between MTAs on port 25,
STARTTLS is usually opportunistic and unverified, RFC 7435, unless MTA-STS or
DANE is used.)  Nothing here is trusted outside this process:
the CA dies with the kernel, and the system's trust store never sees it -
which is how a lesson shows "untrusted CA" (``trust="system"``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
import threading

from ..errors import LabValueError
from ..protocol.trace import TlsInfo

# Names every lab certificate carries besides the server's own name: clients
# reach the lab by these too.
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class LabCA:
    """A certificate authority that exists only for this lab session."""

    def __init__(self, organization: str = "labsmtp lab CA (not trusted anywhere else)"):
        import trustme  # imported late: only TLS lessons pay for it

        self._ca = trustme.CA(organization_name=organization)
        self._dir = tempfile.mkdtemp(prefix="labsmtp-ca-")
        self.ca_file = os.path.join(self._dir, "lab-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self._leaves: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    @property
    def cert_pem(self) -> str:
        """The CA certificate in PEM form (what a client must trust)."""
        return self._ca.cert_pem.bytes().decode("ascii")

    def _leaf(self, hostname: str):
        names = tuple(dict.fromkeys((hostname, *_LOOPBACK_NAMES)))
        with self._lock:
            if names not in self._leaves:
                self._leaves[names] = self._ca.issue_cert(*names, common_name=hostname)
            return self._leaves[names]

    def server_context(self, hostname: str) -> ssl.SSLContext:
        """A server-side context holding a certificate for ``hostname`` signed by this CA."""
        # Not create_default_context(): that loads the system's CA store (~40 ms),
        # which a server that asks for no client certificate never reads.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._leaf(hostname).configure_cert(ctx)
        return ctx

    def client_context(self, verify: bool = True) -> ssl.SSLContext:
        """A client-side context that trusts this CA (and checks names, if ``verify``)."""
        # PROTOCOL_TLS_CLIENT checks the certificate and the name by default; it
        # trusts only the lab CA (the system store is not loaded: faster, and the
        # lab's trust stays separate from the machine's).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._ca.configure_trust(ctx)
        if not verify:
            # Only for showing what an unverified connection looks like:
            # encrypted, but to whoever answered.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def cleanup(self) -> None:
        """Delete the CA file (runs at exit)."""
        shutil.rmtree(self._dir, ignore_errors=True)


_ca: LabCA | None = None
_ca_lock = threading.Lock()


def summary(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """What a TLS connection negotiated, for the transcript: 'TLSv1.3 TLS_AES_256_GCM_SHA384'."""
    if ssl_object is None:
        return "TLS"
    cipher = ssl_object.cipher()
    return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()


def tls_info(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> TlsInfo | None:
    """What the Received: field records of a TLS session: version, cipher, bits."""
    if ssl_object is None:
        return None
    name, _, bits = ssl_object.cipher() or ("", "", 0)
    return TlsInfo(ssl_object.version() or "TLS", name, bits)


def lab_ca() -> LabCA:
    """The lab's certificate authority, made on first use and kept for this process."""
    global _ca
    with _ca_lock:
        if _ca is None:
            _ca = LabCA()
            atexit.register(_ca.cleanup)
        return _ca


def check_trust(trust) -> None:
    """Raise LabValueError unless ``trust`` is "lab", "system", a CA file or an SSLContext."""
    if isinstance(trust, ssl.SSLContext) or trust in ("lab", "system"):
        return
    if isinstance(trust, (str, os.PathLike)) and os.path.isfile(trust):
        return
    raise LabValueError(
        f"trust must be 'lab' (the lab CA), 'system' (this computer's public CAs), "
        f"the path of a CA certificate file, or an ssl.SSLContext; not {trust!r}"
    )


def client_context(trust="lab", verify: bool = True) -> ssl.SSLContext:
    """A client TLS context: trust the lab CA ("lab"), the system's CAs ("system"),
    a CA file (a path), or use a ready ``ssl.SSLContext``."""
    check_trust(trust)
    if isinstance(trust, ssl.SSLContext):
        return trust
    if trust == "lab":
        return lab_ca().client_context(verify=verify)
    if trust == "system":
        # The machine's public CAs: they have never heard of the lab CA, so a
        # lesson gets a real "unable to get local issuer certificate".
        ctx = ssl.create_default_context()
    else:
        ctx = ssl.create_default_context(cafile=os.fspath(trust))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def explain_tls_error(exc: BaseException, server_name: str) -> str:
    """A learner-facing sentence for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        if exc.verify_code == 62 or "hostname mismatch" in why.lower():
            return (
                f"TLS failed: the server's certificate is not valid for the name "
                f"{server_name!r} ({why}). A client must check that the certificate names "
                f"the server it meant to reach (RFC 3207 §4.1, RFC 6125): a mismatch is "
                f"what a man-in-the-middle looks like. Connect using the server's own name."
            )
        from ..errors import front_end

        who = "this notebook" if front_end() == "notebook" else "labsmtp's own clients"
        return (
            f"TLS failed: the server's certificate was not signed by a certificate authority "
            f"this client trusts ({why}). The lab's certificates come from the lab CA, which "
            f"only {who} trust by default: use trust='lab' (the default), or give its file, "
            f"server.ca_file, to other programs."
        )
    return f"TLS failed during the handshake with {server_name!r}: {exc}"
