"""Public surfaces are pinned: a name added or removed is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

EXPORTS = {
    "agent": ["__version__"],
    "eidcore.messages": [
        "Action",
        "Catalogue",
        "Entry",
        "Language",
        "MessageCode",
        "Severity",
        "Term",
        "Text",
        "catalogue",
        "language_from_env",
    ],
    "agent.credentials": [
        "ALGORITHM",
        "MAX_PASSWORD_TRIES",
        "MIN_PASSWORD_LENGTH",
        "AlreadyPresent",
        "AmbiguousId",
        "CannotOpenFile",
        "CannotSaveFile",
        "CredentialDamaged",
        "CredentialInfo",
        "CredentialLocked",
        "CredentialState",
        "DamagedEntry",
        "CredentialFile",
        "KdfParams",
        "KeyPurpose",
        "NoSuchCredential",
        "NoUsableCredential",
        "NoneReason",
        "Owner",
        "PasswordTooWeak",
        "RemoveFailed",
        "StorageFailed",
        "CredentialError",
        "CredentialKind",
        "CredentialStore",
        "UnlockedCredential",
        "UnsupportedVersion",
        "WrongCurrentPassword",
        "WrongPassword",
        "select",
    ],
    "agent.notices": ["Notice", "NoticeError", "format_notice", "notice_for"],
    "agent.credentials.card": [
        "CardError",
        "CardProtocolError",
        "CardRemoved",
        "CardReset",
        "CardSession",
        "Connection",
        "NoCard",
        "NoReader",
        "NotOurCard",
        "PcscUnavailable",
        "PinBlocked",
        "PinFormat",
        "PinRef",
        "PinStatus",
        "PinsDiffer",
        "PukBlocked",
        "WrongCurrentPin",
        "WrongPin",
        "WrongPuk",
    ],
    "issuer.vcard": [
        "AID",
        "ATR",
        "VPCD_PORTS",
        "CardFile",
        "CardState",
        "VirtualCard",
        "VpcdLink",
        "generate_key",
        "new_card",
        "write_file",
    ],
    "issuer": ["CertificateAuthority", "IssuedPair", "Person", "make_file_credential"],
    "agent.bridge": [
        "API_VERSION",
        "BridgeConfig",
        "BridgeError",
        "ErrorCode",
        "OriginPolicy",
        "build_app",
    ],
    "agent.updater": ["Policy", "PolicyError", "Standing", "UpdaterState", "standing", "step"],
    "agent.ui": [
        "DesktopPort",
        "DialogBlocked",
        "EnrolmentAnswer",
        "PinAnswer",
        "PinRequest",
        "Presentation",
        "Request",
        "UiPort",
    ],
    "agent.updater.errors": [
        "CheckError",
        "FetchError",
        "InstallError",
        "PolicyError",
        "UpdateError",
    ],
    "agent.enrol.errors": [
        "AlreadyEnrolled",
        "EnrolmentError",
        "EnrolmentRefused",
        "IssuerCertificateUntrusted",
        "IssuerUnreachable",
    ],
    "agent.cli": ["entry", "main"],
    "agent.orders": [
        "DEFAULT_TTL",
        "REPLACE_AFTER",
        "AlreadyInProgress",
        "Completion",
        "Event",
        "Hint",
        "IllegalTransition",
        "Order",
        "OrderBook",
        "OrderError",
        "OrderKind",
        "OrderRequest",
        "Phase",
        "Status",
        "UnknownOrder",
        "advance",
    ],
    "eidcore.signeddata": [
        "VERSION",
        "Door",
        "MalformedSignedData",
        "OrderKind",
        "SignedData",
        "b64url",
        "build",
        "digest",
        "parse",
        "unb64url",
    ],
    "rp": [
        "RETURN_PARAMETER",
        "BadSignature",
        "CertificateExpired",
        "CertificateRevoked",
        "DataMismatch",
        "ExpiredNonce",
        "MalformedResponse",
        "NonceStore",
        "OcspPolicy",
        "Person",
        "RelayApi",
        "RelayApiError",
        "RelayLogin",
        "Result",
        "ReusedNonce",
        "RevocationUnknown",
        "TimeSkew",
        "UnknownNonce",
        "UntrustedChain",
        "Verified",
        "VerificationError",
        "WrongDoor",
        "WrongKeyUsage",
        "WrongOrderType",
        "WrongOrigin",
        "WrongParty",
        "WrongTokenKind",
        "certificate_kind",
        "http_fetch",
        "read_result",
        "verify_auth",
        "verify_sign",
    ],
    "installer": [],
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exported_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPORTS[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name


@pytest.mark.parametrize(
    ("library", "module"),
    [("platformdirs", "eidcore/paths.py"), ("smartcard", "agent/credentials/card/pcsc.py")],
)
def test_one_importer_per_library(library: str, module: str) -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).parent.parent
    importers = []
    for pkg in ("eidcore", "agent", "issuer", "rp", "installer"):
        for path in (root / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n == library or n.startswith(library + ".") for n in names):
                    importers.append(path.relative_to(root).as_posix())
    assert sorted(set(importers)) == [module]
