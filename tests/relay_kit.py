"""A real order relay on loopback (SQLite in a temporary folder, a clock the test moves),
a relying party's client for it, and an agent's side done by hand with a real BankID on
file: what the agent will do, until it does it itself."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from agent.credentials import CredentialStore, KeyPurpose, UnlockedCredential
from eidcore import signeddata, xmlsig
from eidcore.personal_number import PersonalNumber
from issuer import CertificateAuthority, Person
from issuer.servecli import dev_tls
from relay.config import Ocsp, Party, RelayConfig
from relay.partycert import CA_DIR, make_party_certificate
from relay.server import RelayServer, build_app
from relay.store import OrderStore

ORIGIN = "https://relay.example"
RETURN = "https://shop.example/eid/return"
ANNA_NUMBER = PersonalNumber.parse("198112189876")
PARTIES = {"shop": "Exempelbutiken AB", "other": "Annan AB"}


def relay_config(ca: CertificateAuthority, certificates: Mapping[str, str]) -> RelayConfig:
    """``certificates``: each party's client certificate's SHA-256."""
    parties = {
        pid: Party(pid, name, frozenset({certificates[pid]}), (RETURN,) if pid == "shop" else ())
        for pid, name in PARTIES.items()
    }
    return RelayConfig(ORIGIN, (ca.root_certificate,), parties)


@dataclass(frozen=True)
class Tls:
    """A relay's TLS on loopback, as in service: its certificate, the development RP CA
    that issued the parties' client certificates, and a client context per party (and
    ``None``'s, with no certificate: an agent's, or an unknown caller's)."""

    server: ssl.SSLContext
    clients: Mapping[str | None, ssl.SSLContext]
    certificates: Mapping[str, str]  # party id → SHA-256 of its certificate
    folder: Path


def relay_tls(tmp: Path) -> Tls:
    now = dt.datetime.now(dt.UTC)
    folder = tmp / "relay-tls"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = dev_tls(folder, now)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    clients: dict[str | None, ssl.SSLContext] = {None: ssl.create_default_context(cafile=cert)}
    certificates = {}
    for pid in PARTIES:
        made = make_party_certificate(folder, pid, folder / "certs", "pw", now)
        certificates[pid] = made.sha256
        clients[pid] = ssl.create_default_context(cafile=cert)
        clients[pid].load_cert_chain(made.certificate, made.key)
    server.load_verify_locations(cafile=folder / CA_DIR / "ca.pem")
    server.verify_mode = ssl.CERT_OPTIONAL
    return Tls(server, clients, certificates, folder)


@dataclass
class Clock:
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class Relay:
    client: TestClient[Any, Any]
    clock: Clock
    store: OrderStore
    tls: Tls

    async def rp(
        self, path: str, body: object, party: str | None = "shop", raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        """``/rp/v6.0/path`` with ``party``'s client certificate (None: with none)."""
        return await self.post(f"/rp/v6.0/{path}", body, party, raw)

    async def agent(
        self, path: str, body: object, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        return await self.post(f"/agent/v1/{path}", body, None, raw)

    async def post(
        self, path: str, body: object, party: str | None = None, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(
            path,
            json=None if raw else body,
            data=raw,
            headers={"Content-Type": "application/json"},
            ssl=self.tls.clients[party],
        )
        return response.status, await response.json()


@asynccontextmanager
async def running_relay(
    tmp: Path,
    ca: CertificateAuthority,
    db: str | None = None,
    ocsp: Ocsp | None = None,
    origin: str = ORIGIN,
    plain_port: int | None = None,
    **options: Any,
) -> AsyncIterator[Relay]:
    """``options``: RelayServer's (an agent_limiter, say). ``plain_port``: the relay in
    plain HTTP there too, for an agent in the test (``origin`` then names how it is
    reached)."""
    clock = Clock()
    store = OrderStore(db or f"sqlite:///{tmp / 'relay.db'}")
    tls = relay_tls(tmp)
    config = replace(relay_config(ca, tls.certificates), origin=origin)
    if ocsp is not None:
        config = replace(config, ocsp=ocsp)
    server = RelayServer(config, store, clock=clock, **options)
    test_server = TestServer(build_app(server), host="127.0.0.1")
    await test_server.start_server(ssl=tls.server)  # once started, TestClient keeps it
    client = TestClient(test_server)
    await client.start_server()
    if plain_port is not None:
        assert test_server.runner is not None
        await web.TCPSite(test_server.runner, "127.0.0.1", plain_port).start()
    try:
        yield Relay(client, clock, store, tls)
    finally:
        await client.close()
        store.close()


UHI = "dGhpcyBpbnN0YWxsYXRpb24sIHRoaXMgcGFydHk="


def completion_for(
    order: dict[str, Any],
    credential: UnlockedCredential,
    *,
    party: str | None = None,
    party_name: str | None = None,
    origin: str | None = None,
    order_ref: str | None = None,
    visible_format: str | None = None,
    func: xmlsig.FuncId | None = None,
) -> dict[str, Any]:
    """What an agent posts for a fetched ``order``: the XML signature over the relay's
    origin, the party, its nonce, the order and the text, signed with the key for the
    order's type; each named part may be changed (an agent that lies)."""
    kind = order["type"]
    purpose = KeyPurpose.IDENTIFICATION if kind == "auth" else KeyPurpose.SIGNATURE
    visible = order.get("userVisibleData")
    non_visible = order.get("userNonVisibleData")
    auth = kind == "auth"
    content = xmlsig.SignedContent(
        func=func or (xmlsig.FuncId.IDENTIFICATION if auth else xmlsig.FuncId.SIGNING),
        visible=None if visible is None else base64.b64decode(visible).decode(),
        visible_format=visible_format or order["userVisibleDataFormat"],
        non_visible=None if non_visible is None else base64.b64decode(non_visible),
        party_id=party or order["party"]["id"],
        party_name=party_name or order["party"]["name"],
        origin=origin or order["relay"],
        nonce=signeddata.unb64url(order["nonce"]),
        order_ref=order_ref or order["orderRef"],
        version="test",
    )
    unsigned = xmlsig.prepare(
        content, credential.certificate_chain(purpose), xmlsig.Algorithm.ECDSA_SHA256
    )
    document = unsigned.finish(credential.sign(purpose, unsigned.signed_info))
    return {"signature": base64.b64encode(document).decode(), "uhi": UHI}


def unlocked(store: CredentialStore, token: Any, password: str) -> UnlockedCredential:
    return store.unlock(store.add(token).id, password)


def without_policies(cert: x509.Certificate, ca: CertificateAuthority) -> x509.Certificate:
    """``cert`` as an issuer wrote it before kinds were written: the same, re-signed by
    the same issuing CA, without its certificate policies."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        if not isinstance(ext.value, x509.CertificatePolicies):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(ca.issuing_key, hashes.SHA256())


def legacy_completion(order: dict[str, Any], ca: CertificateAuthority) -> dict[str, Any]:
    """What an agent with a BankID issued before kinds were written posts for ``order``:
    a real key and a certificate from the same CA with no certificate policy."""
    key = ec.generate_private_key(ec.SECP256R1())
    person = Person.from_full_name(ANNA_NUMBER, "Anna Andersson")
    now = dt.datetime.now(dt.UTC)
    pair = ca.issue_pair(person, key.public_key(), key.public_key(), now, kind="file")
    leaf = without_policies(pair.identification if order["type"] == "auth" else pair.signature, ca)

    class _Key:
        def sign(self, _purpose: KeyPurpose, data: bytes) -> bytes:
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        def certificate_chain(self, _purpose: KeyPurpose) -> tuple[bytes, ...]:
            der = serialization.Encoding.DER
            return (leaf.public_bytes(der), ca.issuing_certificate.public_bytes(der))

    return completion_for(order, _Key())  # type: ignore[arg-type]
