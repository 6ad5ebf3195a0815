"""Ordering a BankID on file: the exchange with the bank's issuer, and the credential it
ends in.

``enrol_credential`` generates both keys on this computer, sends only their certificate
requests, and seals the certificates and keys under the person's new password into the
token store in one atomic write. Submitting the requests is retried when the connection
drops (the issuer answers a retry with the same certificates).

Once the issuer has taken the activation code, the keys it will certify are the only
ones it will ever certify for that order. So before the requests go out, the keys and the
enrolment's id and secret wait beside the credentials, sealed under the new password
(``enrolment.pending``): if the agent dies before the credential is saved, the person's
next try with the same code and password picks the enrolment up where it stopped instead
of finding the code spent. And if it died after saving, before it could say so, the next
try finds the credential it saved (``enrolment.done`` names it, with a hash of the
order's issuer, personal number and spent code).

The HTTP client honours a proxy: the one in the config (with credentials), or the
environment's ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY``; the log says which proxy was
used, never its password. An issuer in development is reached over HTTPS with its own
certificate pinned (``ca_file``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.credentials import (
    AlreadyPresent,
    CredentialError,
    CredentialFile,
    CredentialInfo,
    CredentialStore,
    KeyPurpose,
    PasswordTooWeak,
    fileformat,
)
from agent.enrol.errors import (
    AlreadyEnrolled,
    EnrolmentRefused,
    IssuerCertificateUntrusted,
    IssuerUnreachable,
)
from agent.net import proxy_for, shown_proxy, split_proxy_credentials, tls_for
from eidcore import strictjson
from eidcore.atomicfile import atomic_write_bytes
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber

if TYPE_CHECKING:
    from agent.notices import Notice
    from agent.ui import EnrolmentAnswer, UiPort

__all__ = [
    "IssuerConnection",
    "asked_again",
    "enrol_credential",
    "enrol_with_ui",
    "proxy_for",
    "revoke_credential",
    "shown_proxy",
    "split_proxy_credentials",
]

log = logging.getLogger(__name__)

PENDING_FILE = "enrolment.pending"  # in the token store's folder
DONE_FILE = "enrolment.done"  # likewise
_PENDING_PURPOSE = "eid-agent/pending-enrolment"
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
RETRIES = (0.5, 1.0, 2.0)  # seconds before each retry of a dropped submit


@dataclass(frozen=True)
class IssuerConnection:
    url: str  # the issuer's base URL
    ca_file: str | None = None  # pin: trust only this certificate (development issuers)
    proxy: str | None = None  # "http://user:pass@host:port", "none", or None: environment

    def _ssl(self) -> ssl.SSLContext | bool:
        return tls_for(self.url, self.ca_file or None, pinned=True)

    async def post(
        self, path: str, body: dict[str, Any], *, secret: str | None = None, retry: bool = False
    ) -> dict[str, Any]:
        """Raises: IssuerUnreachable, EnrolmentRefused."""
        url = self.url.rstrip("/") + path
        proxy, auth = split_proxy_credentials(proxy_for(url, self.proxy, os.environ))
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        delays = [*RETRIES] if retry else []
        while True:
            try:
                async with (
                    aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False) as session,
                    session.post(
                        url,
                        json=body,
                        headers=headers,
                        proxy=proxy,
                        proxy_auth=auth,
                        ssl=self._ssl(),
                    ) as resp,
                ):
                    # whatever arrives: bytes that are not the issuer's JSON are "not
                    # the issuer's answer", never a decoding error
                    text = (await resp.read()).decode("utf-8", errors="replace")
                    log.info("issuer POST %s via %s: %d", path, shown_proxy(proxy), resp.status)
                    return _answer(resp.status, text)
            except aiohttp.ClientConnectorCertificateError as exc:
                # Not a passing fault: retrying cannot help, and "a proxy may interfere"
                # would send the person the wrong way.
                log.warning("issuer %s: its certificate is not trusted: %s", path, exc)
                raise IssuerCertificateUntrusted(str(exc), proxy) from None
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
                log.warning(
                    "issuer %s via %s: %s: %s", path, shown_proxy(proxy), type(exc).__name__, exc
                )
                if not delays:
                    raise IssuerUnreachable(f"{type(exc).__name__}: {exc}", proxy) from None
                await asyncio.sleep(delays.pop(0))


def _answer(status: int, text: str) -> dict[str, Any]:
    try:
        doc = strictjson.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise IssuerUnreachable(f"HTTP {status}: not the issuer's answer", None)
    if status >= 400:
        raise EnrolmentRefused(str(doc.get("error", f"http{status}")))
    return doc


def _csr(key: ec.EllipticCurvePrivateKey, personal_number: PersonalNumber) -> str:
    # The issuer sets the subject from its order; the request proves possession of the key.
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(personal_number))])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class _Pending:
    """An enrolment the issuer may have issued to, kept until its credential is saved."""

    issuer: str
    personal_number: str
    code: str
    enrolment: str
    secret: str
    keys: dict[KeyPurpose, ec.EllipticCurvePrivateKey]

    def to_json(self) -> bytes:
        der, pkcs8 = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
        return json.dumps(
            {
                "issuer": self.issuer,
                "personalNumber": self.personal_number,
                "code": self.code,
                "enrolment": self.enrolment,
                "secret": self.secret,
                "keys": {
                    p.value: base64.b64encode(
                        k.private_bytes(der, pkcs8, serialization.NoEncryption())
                    ).decode()
                    for p, k in self.keys.items()
                },
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _Pending:
        """Raises: ValueError, KeyError, TypeError."""
        doc = strictjson.loads(data)
        keys = {}
        for purpose in KeyPurpose:
            key = serialization.load_der_private_key(
                base64.b64decode(doc["keys"][purpose.value]), None
            )
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise TypeError("not an EC key")
            keys[purpose] = key
        return cls(
            str(doc["issuer"]),
            str(doc["personalNumber"]),
            str(doc["code"]),
            str(doc["enrolment"]),
            str(doc["secret"]),
            keys,
        )

    def resumes(self, issuer: str, personal_number: PersonalNumber, code: str) -> bool:
        return (self.issuer, self.personal_number, _plain_code(self.code)) == (
            issuer,
            str(personal_number),
            _plain_code(code),
        )


def _plain_code(code: str) -> str:
    # as the issuer reads a code: spaces, dashes and case do not matter
    return "".join(c for c in code if c.isalnum()).upper()


def _order_key(issuer: str, personal_number: PersonalNumber, code: str) -> str:
    # a spent code's hash: enough to recognise the order, nothing to reuse
    return hashlib.sha256(f"{issuer}\n{personal_number}\n{_plain_code(code)}".encode()).hexdigest()


def _already_enrolled(
    store: CredentialStore, personal_number: PersonalNumber, exc: EnrolmentRefused
) -> EnrolmentRefused:
    """A spent code whose BankID is here already is news of success, not of loss."""
    if exc.answer != "orderUsed":
        return exc
    mine = [c for c in store.credentials() if c.owner.personal_number == personal_number]
    if not mine:
        return exc
    return AlreadyEnrolled(f"{mine[0].owner.name}, {mine[0].issuer}")


def _finished(store: CredentialStore, order_key: str) -> CredentialInfo | None:
    """The credential this very order saved before, if it is still there."""
    try:
        doc = strictjson.loads((store.directory / DONE_FILE).read_bytes())
        if not hmac.compare_digest(str(doc["order"]), order_key):
            return None
        credential = str(doc["credential"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return next((c for c in store.credentials() if c.id == credential), None)


def _save_pending(
    path: Path,
    pending: _Pending,
    password: str,
    random_bytes: Callable[[int], bytes],
    kdf: fileformat.KdfParams,
) -> None:
    sealed = fileformat.seal_blob(
        pending.to_json(), password, purpose=_PENDING_PURPOSE, random_bytes=random_bytes, kdf=kdf
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(path, sealed, mode=0o600)
    except OSError as exc:  # the order can still finish; only a crash could not be resumed
        log.warning("the enrolment could not be kept for resuming: %s", exc.strerror)


def _load_pending(path: Path, password: str) -> _Pending | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("pending enrolment unreadable: %s", exc.strerror)
        return None
    try:
        return _Pending.from_json(fileformat.open_blob(data, password, purpose=_PENDING_PURPOSE))
    except fileformat.WrongSecret:
        log.info("a pending enrolment exists; this password does not open it")
    except (CredentialError, ValueError, KeyError, TypeError) as exc:
        log.warning("pending enrolment damaged: %s", type(exc).__name__)
    return None


async def enrol_credential(
    issuer: IssuerConnection,
    store: CredentialStore,
    personal_number: PersonalNumber,
    activation_code: str,
    password: str,
    now: Callable[[], dt.datetime],
    *,
    random_bytes: Callable[[int], bytes] = os.urandom,
    kdf: fileformat.KdfParams = fileformat.DEFAULT_KDF,
) -> CredentialInfo:
    """Enrol and store the new credential; an enrolment a crash interrupted after the
    issuer took the code is resumed. The activation code and password are never logged.

    Raises:
        PasswordTooWeak: before anything is sent.
        AlreadyEnrolled: this order's BankID is in the store already (its password is
            the one chosen then; ``password`` changes nothing).
        IssuerUnreachable, EnrolmentRefused: no credential was stored.
        AlreadyPresent, StorageFailed: from the store.
    """
    fileformat.check_new_password(password)
    order_key = _order_key(issuer.url, personal_number, activation_code)
    done = await asyncio.to_thread(_finished, store, order_key)
    if done is not None:
        # Not this run's success: the code was spent on the BankID already here, whose
        # password is the one chosen then (reported as ready, the new password was
        # silently ignored and then cost a try as a wrong one).
        log.info("this order was finished before: credential %s", done.id)
        raise AlreadyEnrolled(f"{done.owner.name}, {done.issuer}")
    pending_path = store.directory / PENDING_FILE
    issued: dict[str, Any] | None = None
    earlier = await asyncio.to_thread(_load_pending, pending_path, password)
    if earlier is not None and earlier.resumes(issuer.url, personal_number, activation_code):
        keys, enrolment = earlier.keys, earlier.enrolment
        try:
            issued = await _submit(issuer, enrolment, earlier.secret, keys, personal_number)
            log.info("enrolment %s resumed after an interruption", enrolment)
        except EnrolmentRefused as exc:  # expired or started again since: a new enrolment
            log.info("enrolment %s not resumed (%s)", enrolment, exc.answer)
    if issued is None:
        keys = {p: ec.generate_private_key(ec.SECP256R1()) for p in KeyPurpose}
        try:
            body = {"personalNumber": str(personal_number), "activationCode": activation_code}
            started = await issuer.post("/enrol/v1/enrolments", body)
        except EnrolmentRefused as exc:
            raise _already_enrolled(store, personal_number, exc) from None
        enrolment, secret = str(started["enrolmentId"]), str(started["secret"])
        pending = _Pending(
            issuer.url, str(personal_number), activation_code, enrolment, secret, keys
        )
        await asyncio.to_thread(_save_pending, pending_path, pending, password, random_bytes, kdf)
        issued = await _submit(issuer, enrolment, secret, keys, personal_number)
    try:
        chain = tuple(x509.load_pem_x509_certificate(str(c).encode()) for c in issued["chain"])
        leaves = {
            KeyPurpose.IDENTIFICATION: issued["identification"],
            KeyPurpose.SIGNATURE: issued["signature"],
        }
        der = serialization.Encoding.DER
        chains = {
            p: (
                x509.load_pem_x509_certificate(str(pem).encode()).public_bytes(der),
                *(c.public_bytes(der) for c in chain),
            )
            for p, pem in leaves.items()
        }
    except (KeyError, TypeError, ValueError):
        raise IssuerUnreachable("the issuer's certificates could not be read", None) from None
    token: CredentialFile = await asyncio.to_thread(
        fileformat.seal,
        chains=chains,
        keys=keys,
        password=password,
        development=False,
        created=fileformat.utc_timestamp(now()),
        random_bytes=random_bytes,
        kdf=kdf,
    )
    try:
        info = await asyncio.to_thread(store.add, token)
    except AlreadyPresent:
        if earlier is None:
            raise
        info = token.info()  # saved just before the crash; only the cleanup was missed
    with contextlib.suppress(OSError):
        done_doc = {"order": order_key, "credential": info.id}
        atomic_write_bytes(store.directory / DONE_FILE, json.dumps(done_doc).encode())
        pending_path.unlink(missing_ok=True)
    log.info("enrolment %s: credential %s stored", enrolment, info.id)
    return info


async def _submit(
    issuer: IssuerConnection,
    enrolment: str,
    secret: str,
    keys: Mapping[KeyPurpose, ec.EllipticCurvePrivateKey],
    personal_number: PersonalNumber,
) -> dict[str, Any]:
    """The certificate requests; retried on a dropped connection (the issuer answers a
    retry for the same keys with the same certificates). Raises: IssuerUnreachable,
    EnrolmentRefused."""
    return await issuer.post(
        f"/enrol/v1/enrolments/{enrolment}/certificates",
        {
            "identificationCsr": _csr(keys[KeyPurpose.IDENTIFICATION], personal_number),
            "signatureCsr": _csr(keys[KeyPurpose.SIGNATURE], personal_number),
        },
        secret=secret,
        retry=True,
    )


async def enrol_with_ui(
    ui: UiPort,
    issuer: IssuerConnection,
    store: CredentialStore,
    now: Callable[[], dt.datetime],
    *,
    attempts: int = 3,
    kdf: fileformat.KdfParams = fileformat.DEFAULT_KDF,
) -> CredentialInfo | None:
    """The whole order through the UI port (console or desktop): asks again after a
    mistyped number, a weak password or a wrong code (the issuer counts the tries); any
    other failure ends on its catalogue message. None: cancelled or failed."""

    async def order(answer: EnrolmentAnswer) -> CredentialInfo:
        number = PersonalNumber.parse(answer.personal_number)
        return await enrol_credential(
            issuer, store, number, answer.activation_code, answer.password, now, kdf=kdf
        )

    return await asked_again(
        ui.ask_enrolment,
        order,
        ui.tell,
        attempts=attempts,
        retry=(InvalidPersonalNumber, PasswordTooWeak),
        fatal=(IssuerUnreachable, CredentialError),
    )


async def asked_again(
    ask: Callable[[Notice | None], Awaitable[EnrolmentAnswer | None]],
    order: Callable[[EnrolmentAnswer], Awaitable[CredentialInfo]],
    tell: Callable[[Notice], Awaitable[None]],
    *,
    attempts: int,
    retry: tuple[type[Exception], ...],
    fatal: tuple[type[Exception], ...],
) -> CredentialInfo | None:
    """An order's questions and its outcome: ``retry`` errors and a wrong code or number
    are shown with the question again (``attempts`` times in all); the issuer's other
    refusals and ``fatal`` errors end on their message. None: cancelled or failed."""
    from agent.notices import notice_for  # notices imports this module's errors

    problem: Notice | None = None
    for _ in range(attempts):
        answer = await ask(problem)
        if answer is None:
            return None
        try:
            return await order(answer)
        except retry as exc:
            problem = notice_for(exc)
        except EnrolmentRefused as exc:
            problem = notice_for(exc)
            if exc.answer != "wrongCodeOrNumber":
                await tell(problem)
                return None
        except fatal as exc:
            await tell(notice_for(exc))
            return None
    if problem is not None:
        await tell(problem)
    return None


async def revoke_credential(
    issuer: IssuerConnection,
    certificate: x509.Certificate,
    sign: Callable[[bytes], bytes],
    now: dt.datetime,
) -> list[str]:
    """Ask the issuer to revoke this credential, proving possession of its identification
    key: ``sign`` returns the raw r||s ES256 signature of the request.

    Raises: IssuerUnreachable, EnrolmentRefused."""
    request = json.dumps(
        {"serial": f"{certificate.serial_number:x}", "time": now.isoformat()}
    ).encode()
    proof = sign(request)
    answer = await issuer.post(
        "/enrol/v1/revocations",
        {
            "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "request": base64.b64encode(request).decode(),
            "signature": base64.b64encode(proof).decode(),
        },
    )
    return [str(s) for s in answer.get("revoked", [])]
