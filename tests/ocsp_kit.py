"""An issuer's OCSP responder on loopback for tests that need the issuer's word on a
certificate: the issuer's own answering code (``issuer.ocsp.answer``) behind a few lines of
``http.server``, for the ``ca`` fixture's CA; a test revokes by serial. And OpenSSL's
``ocsp`` command, a verifier nobody here wrote, reading an answer a relay kept."""

from __future__ import annotations

import datetime as dt
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from issuer import CertificateAuthority
from issuer.ocsp import Status, answer

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass
class Responder:
    url: str
    revoked: set[int] = field(default_factory=set)
    asked: list[bytes] = field(default_factory=list)  # the requests, as they came

    def status(self, serial: int) -> Status:
        if serial in self.revoked:
            return "revoked", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), "keyCompromise"
        return "good", None, None


@contextmanager
def ocsp_responder(ca: CertificateAuthority) -> Iterator[Responder]:
    responder = Responder("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            der = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            responder.asked.append(der)
            body, _ = answer(der, responder.status, ca, dt.datetime.now(dt.UTC))
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    responder.url = f"http://127.0.0.1:{server.server_address[1]}/ocsp"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield responder
    finally:
        server.shutdown()
        server.server_close()


def openssl_reads(
    response: bytes, leaf: x509.Certificate, ca: CertificateAuthority, folder: Path
) -> subprocess.CompletedProcess[str]:
    """``openssl ocsp -respin``: the answer verified against the issuer's CA, and its
    status for ``leaf``. The nonce's binding to the signature is the rp kit's check."""
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    files = {
        "resp.der": response,
        "leaf.pem": leaf.public_bytes(pem),
        "issuing.pem": ca.issuing_certificate.public_bytes(pem),
        "root.pem": ca.root_certificate.public_bytes(pem),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return subprocess.run(
        [
            OPENSSL,
            "ocsp",
            "-respin",
            str(folder / "resp.der"),
            "-issuer",
            str(folder / "issuing.pem"),
            "-sha256",  # the answer names the certificate by SHA-256 hashes, as asked
            "-cert",
            str(folder / "leaf.pem"),
            "-CAfile",
            str(folder / "root.pem"),
            "-verify_other",
            str(folder / "issuing.pem"),
            "-no_nonce",  # there is no request here to compare with: the rp kit checks it
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
