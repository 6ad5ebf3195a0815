"""The signature a result carries, in BankID's shape: an XMLDSig ``Signature`` whose
``SignedInfo`` references, with SHA-256 and exclusive C14N, the ``bankIdSignedData``
element (``Id="bidSignedData"``: what the person was shown, what was signed with it, who
asked and for what) and the ``KeyInfo`` (``Id="bidKeyInfo"``: the certificate chain, leaf
first, no root). Any XMLDSig library verifies it (Debian's ``xmlsec1``, in the tests).

One home for the format: the agent builds it (``prepare`` gives the canonical
``SignedInfo`` its credential signs, ``Unsigned.finish`` puts the signature value in),
the relay and the rp kit ``parse`` it and ``verify_signature`` the result. The agent
builds the XML itself from what it shows the person; it never signs XML or a digest
someone else gives it.

XML from an agent is hostile input: no DTD, no entity, no network, bounded size and
depth, and a strict shape — exactly the elements this module writes, each reference
pointing at exactly the one element it must (no other ``Id`` anywhere), so a second,
unsigned ``bankIdSignedData`` cannot be slipped in beside the signed one (signature
wrapping). The one importer of lxml, loaded by the first ``parse`` (the agent, which
only writes, never loads it). Pure (no I/O, no clock).
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

if TYPE_CHECKING:
    from lxml import etree

__all__ = [
    "BID_NS",
    "DSIG_NS",
    "MAX_XML_BYTES",
    "MIN_RSA_BITS",
    "Algorithm",
    "Built",
    "FuncId",
    "ParsedSignature",
    "SignedContent",
    "Unsigned",
    "XmlRefused",
    "algorithm_for",
    "build",
    "chain_digest",
    "parse",
    "prepare",
    "verify_signature",
]

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
BID_NS = "http://www.bankid.com/signature/v1.0.0/types"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SIGNED_DATA_ID = "bidSignedData"
KEY_INFO_ID = "bidKeyInfo"

# 40,000 + 200,000 characters of base64 data, a chain of three certificates, with room.
MAX_XML_BYTES = 512 * 1024
MAX_DEPTH = 6  # Signature/Object/bankIdSignedData/srvInfo/name is 5 (text is not a level)
MAX_CHAIN = 4
MIN_RSA_BITS = 2048  # a shorter RSA key signs nothing here (a token's key may be RSA)
_FORMATS = frozenset({"plaintext", "simpleMarkdownV1"})
_DSIG_XMLNS = f' xmlns="{DSIG_NS}"'.encode()
_DSIG_ROOT = b"<Signature" + _DSIG_XMLNS + b">"
_SHAPE_TEXT = re.compile(rb"<!(DOCTYPE|ENTITY)|<\?xml-stylesheet", re.IGNORECASE)


class Algorithm(enum.StrEnum):
    """What the credential's key signs with (a token's key may be RSA)."""

    ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


class FuncId(enum.StrEnum):
    IDENTIFICATION = "Identification"
    SIGNING = "Signing"


class XmlRefused(ValueError):
    """``reason`` says what was wrong, never echoing the document."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedContent:
    """What ``bankIdSignedData`` says. ``party_id`` and ``party_name``: the requesting
    party's identifier and name at ``origin`` (the relay's, or the page's at the bridge);
    ``nonce``: the one that door drew for this order; ``order_ref``: the order as the
    website knows it (what it collects)."""

    func: FuncId
    visible: str | None
    visible_format: str
    non_visible: bytes | None
    party_id: str
    party_name: str
    origin: str
    nonce: bytes
    order_ref: str
    version: str


@dataclass(frozen=True)
class Unsigned:
    """A document waiting for its signature value: ``signed_info`` is what the
    credential signs (the canonical ``SignedInfo``)."""

    signed_info: bytes
    _document: bytes

    def finish(self, signature_value: bytes) -> bytes:
        """The document with ``signature_value`` (ECDSA: r‖s, as XMLDSig and our
        credentials write it; RSA: PKCS#1 v1.5)."""
        value = _b64(signature_value)
        return self._document.replace(
            b"<SignatureValue></SignatureValue>", _tag(b"SignatureValue", value), 1
        )


@dataclass(frozen=True)
class ParsedSignature:
    """A document of the right shape whose digests match; its signature value is checked
    by ``verify_signature`` against ``chain[0]`` (whose trust is the caller's)."""

    content: SignedContent
    chain: tuple[x509.Certificate, ...]
    algorithm: Algorithm
    signed_info: bytes
    signature_value: bytes


def prepare(content: SignedContent, chain: Sequence[bytes], algorithm: Algorithm) -> Unsigned:
    """The document for ``content`` signed by the key of ``chain[0]`` (DER, leaf first, no
    root), less its signature value.

    Written in exclusive canonical form from the start (attributes in order, every element
    with an end tag, no whitespace, text that is base64 or one of a few fixed words), so a
    referenced element's canonical bytes are its bytes as written with its namespace
    declared: nothing is parsed to sign. ``parse`` canonicalises with lxml, and the tests
    check that both agree and that xmlsec1 verifies."""
    if not 0 < len(chain) <= MAX_CHAIN:
        raise ValueError(f"a chain of 1 to {MAX_CHAIN} certificates, not {len(chain)}")
    if content.visible_format not in _FORMATS:
        raise ValueError("visible_format must be plaintext or simpleMarkdownV1")
    key_info, key_reference = _key_info(tuple(chain))
    signed_data = _signed_data(content)
    references = (
        _CANONICALIZATION
        + _SIGNATURE_METHOD[algorithm]
        + _reference(SIGNED_DATA_ID, signed_data, BID_NS)
        + key_reference
    )
    document = (
        _DSIG_ROOT
        + _tag(b"SignedInfo", references)
        + b"<SignatureValue></SignatureValue>"
        + key_info
        + b"<Object>"
        + signed_data
        + b"</Object></Signature>"
    )
    return Unsigned(signed_info=_declared(_tag(b"SignedInfo", references)), _document=document)


@dataclass(frozen=True)
class Built:
    """A document this module wrote with its signature value, and what ``parse`` reads
    from it: who rebuilt a document (the relay, from an agent's signature value) verifies
    it without parsing its own output again."""

    document: bytes
    parsed: ParsedSignature


def build(
    content: SignedContent,
    chain: Sequence[bytes],
    algorithm: Algorithm,
    signature_value: bytes,
) -> Built:
    """``prepare`` and ``Unsigned.finish`` in one, with the parsed form beside (the
    canonical ``SignedInfo`` is what ``prepare`` wrote: the tests check both agree).

    Raises: ValueError (a chain ``prepare`` refuses, or one that is not DER)."""
    unsigned = prepare(content, chain, algorithm)
    certificates = tuple(x509.load_der_x509_certificate(der) for der in chain)
    parsed = ParsedSignature(
        content, certificates, algorithm, unsigned.signed_info, signature_value
    )
    return Built(unsigned.finish(signature_value), parsed)


def chain_digest(chain: Sequence[bytes]) -> str:
    """The name both sides give a certificate chain (DER, leaf first): SHA-256 over each
    certificate with its length before it, base64url. A relay that has seen a chain by
    this name rebuilds a document without it being sent again."""
    lengths = b"".join(len(der).to_bytes(4, "big") + der for der in chain)
    return base64.urlsafe_b64encode(hashlib.sha256(lengths).digest()).rstrip(b"=").decode()


def algorithm_for(certificate: x509.Certificate) -> Algorithm:
    """The signature method a document signed by ``certificate``'s key names.

    Raises: XmlRefused (a key that signs nothing here)."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return Algorithm.ECDSA_SHA256
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return Algorithm.RSA_SHA256
    raise XmlRefused("the certificate's key signs nothing here")


def parse(data: bytes) -> ParsedSignature:
    """The signature document ``data`` if its shape is exactly this module's and both
    references' digests match.

    Raises: XmlRefused."""
    _load_lxml()
    root = _root(data)
    if root.tag != _d("Signature") or root.attrib or root.text or root.tail:
        raise XmlRefused("the root must be a bare XMLDSig Signature")
    signed_info, value, key_info, obj = _children(
        root, ("SignedInfo", "SignatureValue", "KeyInfo", "Object")
    )
    canon, method, ref_data, ref_key = _children(
        signed_info, ("CanonicalizationMethod", "SignatureMethod", "Reference", "Reference")
    )
    if _algorithm_of(canon) != EXC_C14N:
        raise XmlRefused("SignedInfo must use exclusive C14N")
    try:
        algorithm = Algorithm(_algorithm_of(method))
    except ValueError:
        raise XmlRefused("the signature method must be ECDSA or RSA with SHA-256") from None
    ids = [e for e in root.iter() if e.get("Id") is not None]
    if [e.get("Id") for e in ids] != [KEY_INFO_ID, SIGNED_DATA_ID]:
        raise XmlRefused("exactly the two elements the references name may carry an Id")
    (signed_data,) = _children(obj, (_b("bankIdSignedData"),), namespace=None)
    if key_info.get("Id") != KEY_INFO_ID or signed_data.get("Id") != SIGNED_DATA_ID:
        raise XmlRefused("the references must name the KeyInfo and the bankIdSignedData")
    _check_reference(ref_data, SIGNED_DATA_ID, signed_data, BID_NS)
    _check_reference(ref_key, KEY_INFO_ID, key_info, None)
    return ParsedSignature(
        content=_content(signed_data),
        chain=_chain(key_info),
        algorithm=algorithm,
        signed_info=_c14n(signed_info),
        signature_value=_base64(value, "SignatureValue"),
    )


def verify_signature(parsed: ParsedSignature) -> None:
    """The signature value over the canonical ``SignedInfo``, with the leaf's key.

    Raises: XmlRefused."""
    key = parsed.chain[0].public_key()
    value = parsed.signature_value
    try:
        if parsed.algorithm is Algorithm.ECDSA_SHA256 and isinstance(
            key, ec.EllipticCurvePublicKey
        ):
            size = (key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise XmlRefused("an ECDSA signature value is r‖s of the curve's size")
            r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            key.verify(encode_dss_signature(r, s), parsed.signed_info, ec.ECDSA(hashes.SHA256()))
        elif parsed.algorithm is Algorithm.RSA_SHA256 and isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise XmlRefused("an RSA key under 2048 bits")
            key.verify(value, parsed.signed_info, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise XmlRefused("the signature method does not fit the certificate's key")
    except InvalidSignature:
        raise XmlRefused("the signature does not verify") from None


# -- writing ---------------------------------------------------------------------------


def _tag(name: bytes, text: bytes, attributes: bytes = b"") -> bytes:
    return b"<" + name + attributes + b">" + text + b"</" + name + b">"


def _empty(name: bytes, algorithm: str) -> bytes:  # the algorithms are fixed ASCII URIs
    return _tag(name, b"", b' Algorithm="' + algorithm.encode() + b'"')


def _b64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False)


# The fixed parts, written once: building is string joining, two digests and base64.
_CANONICALIZATION = _empty(b"CanonicalizationMethod", EXC_C14N)
_SIGNATURE_METHOD = {a: _empty(b"SignatureMethod", a.value) for a in Algorithm}
_DIGEST_PART = (
    _tag(b"Transforms", _empty(b"Transform", EXC_C14N))
    + _empty(b"DigestMethod", SHA256)
    + b"<DigestValue>"
)
_SIGNED_DATA_OPEN = f'<bankIdSignedData xmlns="{BID_NS}" Id="{SIGNED_DATA_ID}">'.encode()


@functools.lru_cache(maxsize=16)
def _key_info(chain: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """The ``KeyInfo`` of a chain and the reference to it: the same for every order a
    credential signs, so made once (a credential's chain is the same bytes each time)."""
    certificates = b"".join(_tag(b"X509Certificate", _b64(der)) for der in chain)
    key_info = _tag(b"KeyInfo", _tag(b"X509Data", certificates), f' Id="{KEY_INFO_ID}"'.encode())
    return key_info, _reference(KEY_INFO_ID, _declared(key_info), None)


def _signed_data(c: SignedContent) -> bytes:
    parts = [_SIGNED_DATA_OPEN]
    if c.visible is not None:
        parts += (
            b'<usrVisibleData charset="UTF-8" format="',
            c.visible_format.encode(),  # one of _FORMATS, checked by prepare
            b'" visible="wysiwys">',
            _b64(c.visible.encode()),
            b"</usrVisibleData>",
        )
    if c.non_visible is not None:
        parts += (b"<usrNonVisibleData>", _b64(c.non_visible), b"</usrNonVisibleData>")
    parts += (
        b"<srvInfo><name>",
        _b64(c.party_id.encode()),
        b"</name><nonce>",
        _b64(c.nonce),
        b"</nonce><displayName>",
        _b64(c.party_name.encode()),
        b"</displayName><origin>",
        _b64(c.origin.encode()),
        b"</origin><orderRef>",
        _b64(c.order_ref.encode()),
        b"</orderRef></srvInfo><clientInfo><funcId>",
        c.func.value.encode(),
        b"</funcId><version>",
        _b64(c.version.encode()),
        b"</version></clientInfo></bankIdSignedData>",
    )
    return b"".join(parts)


def _declared(element: bytes) -> bytes:
    """A dsig element as exclusive C14N writes it alone: its namespace declared first."""
    head = element.index(b">")
    space = element.find(b" ", 0, head)  # the first attribute, if there is one
    name_end = head if space < 0 else space
    return element[:name_end] + _DSIG_XMLNS + element[name_end:]


def _reference(target: str, canonical: bytes, type_: str | None) -> bytes:
    attributes = (f' Type="{type_}"' if type_ else "") + f' URI="#{target}"'
    return b"".join(
        (
            b"<Reference",
            attributes.encode(),
            b">",
            _DIGEST_PART,
            _b64(hashlib.sha256(canonical).digest()),
            b"</DigestValue></Reference>",
        )
    )


# -- reading ---------------------------------------------------------------------------


def _load_lxml() -> None:
    """lxml (~5 MiB) is loaded by the first ``parse``: the agent only writes documents,
    and never needs it."""
    if "etree" not in globals():
        from lxml import etree as loaded

        globals()["etree"] = loaded


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # libxml2's own limits on depth and text stay on
        remove_blank_text=False,
        collect_ids=False,
    )


def _root(data: bytes) -> etree._Element:
    if not isinstance(data, bytes) or len(data) > MAX_XML_BYTES:
        raise XmlRefused(f"not a document of at most {MAX_XML_BYTES} bytes")
    if _SHAPE_TEXT.search(data):
        raise XmlRefused("no DTD, entity or stylesheet is accepted")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"not well-formed XML ({exc.msg[:80]})") from None
    info: etree.DocInfo = root.getroottree().docinfo
    doctype = getattr(info, "doctype", "")  # lxml has it; its stubs do not
    if doctype or info.internalDTD is not None:  # in an encoding the scan above missed
        raise XmlRefused("no DTD is accepted")
    if (info.encoding or "UTF-8").upper() != "UTF-8":
        raise XmlRefused("the document must be UTF-8")
    for element in root.iter():
        if not isinstance(element.tag, str):  # a comment, a processing instruction, an entity
            raise XmlRefused("only elements and text are accepted")
        depth = sum(1 for _ in element.iterancestors())
        if depth >= MAX_DEPTH:
            raise XmlRefused("the document is nested too deep")
    return root


def _d(name: str) -> str:
    return f"{{{DSIG_NS}}}{name}"


def _b(name: str) -> str:
    return f"{{{BID_NS}}}{name}"


def _children(
    element: etree._Element, names: Sequence[str], namespace: str | None = DSIG_NS
) -> list[etree._Element]:
    """The children of ``element``, exactly these, in this order, with no text between."""
    found = list(element)
    wanted = [f"{{{namespace}}}{n}" if namespace else n for n in names]
    if [c.tag for c in found] != wanted or (element.text or "").strip():
        raise XmlRefused(f"{etree.QName(element).localname} must hold {', '.join(names)}")
    if any((c.tail or "").strip() for c in found):
        raise XmlRefused("text between elements is not accepted")
    return found


def _algorithm_of(element: etree._Element) -> str:
    if len(element) or (element.text or "").strip() or set(element.attrib) != {"Algorithm"}:
        raise XmlRefused(f"{etree.QName(element).localname} takes an Algorithm only")
    return str(element.get("Algorithm"))


def _check_reference(
    reference: etree._Element, target: str, element: etree._Element, type_: str | None
) -> None:
    wanted = {"URI": f"#{target}", **({"Type": type_} if type_ else {})}
    if {str(k): str(v) for k, v in reference.attrib.items()} != wanted:
        raise XmlRefused(f"the reference to {target} is not the one this format writes")
    transforms, method, value = _children(reference, ("Transforms", "DigestMethod", "DigestValue"))
    (transform,) = _children(transforms, ("Transform",))
    if _algorithm_of(transform) != EXC_C14N or _algorithm_of(method) != SHA256:
        raise XmlRefused(f"the reference to {target} must use exclusive C14N and SHA-256")
    if _base64(value, "DigestValue") != hashlib.sha256(_c14n(element)).digest():
        raise XmlRefused(f"the digest of {target} does not match")


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _base64(element: etree._Element, name: str) -> bytes:
    if len(element) or (element.attrib and name != "usrVisibleData"):
        raise XmlRefused(f"{name} holds base64 text only")
    try:
        return base64.b64decode((element.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise XmlRefused(f"{name} is not base64") from None


def _chain(key_info: etree._Element) -> tuple[x509.Certificate, ...]:
    (data,) = _children(key_info, ("X509Data",))
    certificates = list(data)
    if not 0 < len(certificates) <= MAX_CHAIN or (data.text or "").strip():
        raise XmlRefused(f"X509Data must hold 1 to {MAX_CHAIN} certificates")
    chain = []
    for element in certificates:
        if element.tag != _d("X509Certificate") or (element.tail or "").strip():
            raise XmlRefused("X509Data must hold X509Certificate elements only")
        try:
            chain.append(x509.load_der_x509_certificate(_base64(element, "X509Certificate")))
        except ValueError:
            raise XmlRefused("an X509Certificate is not a DER certificate") from None
    return tuple(chain)


def _content(signed_data: etree._Element) -> SignedContent:
    if set(signed_data.attrib) != {"Id"}:
        raise XmlRefused("bankIdSignedData takes an Id only")
    children = {etree.QName(c).localname: c for c in signed_data}
    names = [etree.QName(c).localname for c in signed_data]
    allowed = ["usrVisibleData", "usrNonVisibleData", "srvInfo", "clientInfo"]
    if len(names) != len(children) or [n for n in allowed if n in children] != names:
        raise XmlRefused(
            "bankIdSignedData must hold usrVisibleData, usrNonVisibleData, srvInfo, clientInfo"
        )
    if any(c.tag != _b(etree.QName(c).localname) for c in signed_data):
        raise XmlRefused("bankIdSignedData's elements must be in its namespace")
    if "srvInfo" not in children or "clientInfo" not in children:
        raise XmlRefused("bankIdSignedData must name the server and the client")
    visible, fmt = None, "plaintext"
    if "usrVisibleData" in children:
        element = children["usrVisibleData"]
        fmt = element.get("format", "")
        attributes = {"charset": "UTF-8", "visible": "wysiwys", "format": fmt}
        given = {str(k): str(v) for k, v in element.attrib.items()}
        if given != attributes or fmt not in _FORMATS:
            raise XmlRefused("usrVisibleData's attributes are not the ones this format writes")
        try:
            visible = _base64(element, "usrVisibleData").decode("utf-8")
        except UnicodeDecodeError:
            raise XmlRefused("usrVisibleData is not UTF-8") from None
    non_visible = None
    if "usrNonVisibleData" in children:
        non_visible = _base64(children["usrNonVisibleData"], "usrNonVisibleData")
    server = _fields(children["srvInfo"], ("name", "nonce", "displayName", "origin", "orderRef"))
    client = _fields(children["clientInfo"], ("funcId", "version"), plain={"funcId"})
    try:
        func = FuncId(client["funcId"].decode())
    except ValueError:
        raise XmlRefused("funcId must be Identification or Signing") from None
    try:
        return SignedContent(
            func=func,
            visible=visible,
            visible_format=fmt,
            non_visible=non_visible,
            party_id=server["name"].decode(),
            party_name=server["displayName"].decode(),
            origin=server["origin"].decode(),
            nonce=server["nonce"],
            order_ref=server["orderRef"].decode(),
            version=client["version"].decode(),
        )
    except UnicodeDecodeError:
        raise XmlRefused("srvInfo and clientInfo hold UTF-8 text") from None


def _fields(
    element: etree._Element, names: Sequence[str], plain: frozenset[str] | set[str] = frozenset()
) -> dict[str, bytes]:
    """The children of ``element``, exactly ``names`` in order: base64 (or ``plain``
    text) values."""
    _children(element, names, namespace=BID_NS)
    if element.attrib:
        raise XmlRefused(f"{etree.QName(element).localname} takes no attributes")
    values = {}
    for child in element:
        name = etree.QName(child).localname
        if name in plain:
            if len(child) or child.attrib:
                raise XmlRefused(f"{name} holds text only")
            values[name] = (child.text or "").encode()
        else:
            values[name] = _base64(child, name)
    return values
