"""The issuer's OCSP answering (``issuer.ocsp.answer``: a fresh signature per nonce, every
serial "good") over HTTP in a process of its own, as the relay reaches the issuer's
responder in service: its CPU is then not counted against the relay's.

    python -m bench.responder CA_DIR PORT
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from aiohttp import web

from issuer import CertificateAuthority
from issuer.ocsp import answer


def app(ca: CertificateAuthority) -> web.Application:
    async def respond(request: web.Request) -> web.Response:
        der = await request.read()
        body, _ = answer(der, lambda _serial: ("good", None, None), ca, dt.datetime.now(dt.UTC))
        return web.Response(body=body, content_type="application/ocsp-response")

    application = web.Application()
    application.router.add_post("/ocsp", respond)
    return application


if __name__ == "__main__":
    web.run_app(
        app(CertificateAuthority.load(Path(sys.argv[1]))),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        access_log=None,
        print=lambda *_: print("listening", flush=True),
    )
