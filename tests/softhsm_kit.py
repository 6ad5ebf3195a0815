"""SoftHSM2 tokens made for a test: its own token folder and config (``SOFTHSM2_CONF``),
tokens initialised with ``softhsm2-util``, keys generated *on* the token and certificates
written back with OpenSC's ``pkcs11-tool`` — as an issuer would — and the certificates
issued by the tests' CA for the public keys the token gave out."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from issuer.ca import CertificateAuthority, Person
from tests.conftest import ANNA

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PKCS11_TOOL, SOFTHSM_UTIL = "/usr/bin/pkcs11-tool", "/usr/bin/softhsm2-util"
USER_PIN, SO_PIN = "123456", "12345678"
DER = serialization.Encoding.DER


@dataclass
class SoftHsm:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def tool(self, label: str, *args: str, pin: str | None = USER_PIN) -> bytes:
        login = ["--login", "--pin", pin] if pin is not None else []
        done = subprocess.run(
            [PKCS11_TOOL, "--module", MODULE, "--token-label", label, *login, *args],
            env=self.env,
            capture_output=True,
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pkcs11-tool {args}: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def init_token(self, label: str, *, pin: str = USER_PIN, so_pin: str = SO_PIN) -> None:
        subprocess.run(
            [
                SOFTHSM_UTIL,
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                so_pin,
            ],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=30,
        )

    def keypair(
        self,
        label: str,
        key_id: str,
        *,
        always_auth: bool = False,
        pin: str = USER_PIN,
        key_type: str = "EC:prime256v1",
    ) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        extra = ["--always-auth"] if always_auth else []
        self.tool(
            label,
            "--keypairgen",
            "--key-type",
            key_type,
            "--id",
            key_id,
            "--label",
            f"key {key_id}",
            *extra,
            pin=pin,
        )
        der = self.tool(label, "--read-object", "--type", "pubkey", "--id", key_id, pin=pin)
        key = serialization.load_der_public_key(der)
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        return key

    def write(
        self, label: str, kind: str, der: bytes, key_id: str, name: str, *, pin: str = USER_PIN
    ) -> None:
        path = self.root / f"object-{label}-{key_id}.der"
        path.write_bytes(der)
        self.tool(
            label,
            "--write-object",
            str(path),
            "--type",
            kind,
            "--id",
            key_id,
            "--label",
            name,
            pin=pin,
        )

    def bankid(
        self,
        label: str,
        ca: CertificateAuthority,
        *,
        person: Person = ANNA,
        now: dt.datetime | None = None,
        days: int = 365,
        identification: bool = True,
        signature: bool = True,
        always_auth: bool = False,
        key_type: str = "EC:prime256v1",
    ) -> None:
        """A token holding a BankID: both keys made on it, both certificates and the
        issuing CA's certificate written to it (either certificate left out on request)."""
        self.init_token(label)
        ident = self.keypair(label, "01", key_type=key_type)
        sign = self.keypair(label, "02", always_auth=always_auth, key_type=key_type)
        pair = ca.issue_pair(
            person, ident, sign, now or dt.datetime.now(dt.UTC), kind="token", days=days
        )
        if identification:
            self.write(label, "cert", pair.identification.public_bytes(DER), "01", "identification")
        if signature:
            self.write(label, "cert", pair.signature.public_bytes(DER), "02", "signature")
        self.write(label, "cert", ca.issuing_certificate.public_bytes(DER), "cc", "issuing CA")

    def remove_token(self, label: str) -> None:
        subprocess.run(
            [SOFTHSM_UTIL, "--delete-token", "--token", label],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=30,
        )


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    if not all(Path(p).exists() for p in (MODULE, PKCS11_TOOL, SOFTHSM_UTIL)):
        pytest.skip("needs softhsm2 and opensc (./dev setup installs them)")
    root = tmp_path / "softhsm"
    (root / "tokens").mkdir(parents=True)
    hsm = SoftHsm(root)
    hsm.conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = true\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(hsm.conf))  # for modules loaded in this process
    return hsm
