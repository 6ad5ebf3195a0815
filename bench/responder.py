"""The issuer's OCSP answering (``issuer.ocsp.answer``: a fresh signature per nonce, every
serial "good") over HTTP in a process of its own, as the relay reaches the issuer's
responder in service: its CPU is then not counted against the relay's. With
``--prepared`` it gives the answer to its first request to every request after it: a
bare aiohttp handler, what the HTTP server alone costs per connection (the floor under
any responder built on it).

    python -m bench.responder CA_DIR PORT [--prepared]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

from issuer import CertificateAuthority
from issuer.ocsp import answer
from tests.bridge_kit import free_port


def _good(_serial: int) -> tuple[str, None, None]:
    return "good", None, None


def app(ca: CertificateAuthority, *, prepared: bool = False) -> web.Application:
    ready: list[bytes] = []  # prepared: the answer to the first request, given to all

    async def respond(request: web.Request) -> web.Response:
        der = await request.read()
        if ready:
            return web.Response(body=ready[0], content_type="application/ocsp-response")
        body = answer(der, _good, ca, dt.datetime.now(dt.UTC))[0]
        if prepared:
            ready.append(body)
        return web.Response(body=body, content_type="application/ocsp-response")

    application = web.Application()
    application.router.add_post("/ocsp", respond)
    return application


@contextlib.contextmanager
def running(ca_dir: Path, *, prepared: bool = False) -> Iterator[tuple[str, int]]:
    """This responder in a process of its own over the CA saved in ``ca_dir``: its URL
    and process id."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.responder", str(ca_dir), str(port)]
        + (["--prepared"] if prepared else []),
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"listening"
        yield f"http://127.0.0.1:{port}/ocsp", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    web.run_app(
        app(CertificateAuthority.load(Path(sys.argv[1])), prepared="--prepared" in sys.argv),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        access_log=None,
        print=lambda *_: print("listening", flush=True),
    )
