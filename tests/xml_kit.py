"""The XML signatures relay orders complete with, checked the ways a website would: by
``xmlsec1`` (Debian's, a verifier nobody here wrote) with the issuer's root as its only
trust, and by the rp kit against what the site itself knows."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import rp
from eidcore import xmlsig
from issuer import CertificateAuthority
from tests.ocsp_kit import openssl_reads

XMLSEC1 = "/usr/bin/xmlsec1"  # Debian's xmlsec1 (./dev setup installs it)


def xmlsec1(
    document: bytes, root: x509.Certificate, folder: Path
) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify`` of ``document`` trusting ``root`` only."""
    folder.mkdir(parents=True, exist_ok=True)
    root_pem, path = folder / "root.pem", folder / "signature.xml"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    path.write_bytes(document)
    return subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--trusted-pem",
            str(root_pem),
            "--id-attr:Id",
            f"{xmlsig.BID_NS}:bankIdSignedData",
            "--id-attr:Id",
            f"{xmlsig.DSIG_NS}:KeyInfo",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def verified_everywhere(
    completion: dict[str, Any],
    *,
    ca: CertificateAuthority,
    folder: Path,
    order_type: str,
    origin: str,
    order_ref: str,
    party: str = "shop",
    text: str | None = None,
    non_visible: bytes | None = None,
) -> rp.VerifiedXml:
    """``completionData.signature`` verified by xmlsec1 and by the rp kit, and its
    ``ocspResponse`` where there is one: by the rp kit (bound to this signature) and by
    ``openssl ocsp``."""
    root = ca.root_certificate
    document = base64.b64decode(completion["signature"])
    checked = xmlsec1(document, root, folder)
    assert checked.returncode == 0 and "OK" in checked.stderr, checked.stderr
    verified = rp.verify_xml_signature(
        completion["signature"],
        order_type=order_type,
        expected_origin=origin,
        party=party,
        order_ref=order_ref,
        trust_anchors=[root],
        now=dt.datetime.now(dt.UTC),
        user_visible_data=text,
        user_non_visible_data=non_visible,
        ocsp_response=completion.get("ocspResponse"),
    )
    if "ocspResponse" in completion:
        response = base64.b64decode(completion["ocspResponse"])
        said = openssl_reads(response, verified.certificate, ca, folder / "ocsp")
        assert "Response verify OK" in said.stderr, said.stdout + said.stderr
        assert "leaf.pem: good" in said.stdout, said.stdout
    return verified
