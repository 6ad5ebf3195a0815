"""Public surfaces are pinned: a name added or removed is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

EXPORTS = {
    "agent": ["__version__"],
    "agent.messages": [
        "Action", "Catalogue", "Entry", "Language", "MessageCode", "Severity", "Term", "Text",
        "catalogue", "language_from_env",
    ],
    "agent.tokens": [
        "ALGORITHM", "MAX_PASSWORD_TRIES", "MIN_PASSWORD_LENGTH", "AlreadyPresent",
        "AmbiguousId", "CannotOpenFile", "CannotSaveFile", "CredentialDamaged",
        "CredentialInfo", "CredentialLocked", "CredentialState", "DamagedEntry", "FileToken",
        "KdfParams", "KeyPurpose", "NoSuchCredential", "NoUsableCredential", "NoneReason",
        "Owner", "PasswordTooWeak", "RemoveFailed", "StorageFailed", "TokenError", "TokenKind",
        "TokenStore", "UnlockedCredential", "UnsupportedVersion", "WrongCurrentPassword",
        "WrongPassword", "select",
    ],
    "agent.notices": ["Notice", "format_notice", "notice_for"],
    "issuer": ["CertificateAuthority", "IssuedPair", "Person", "make_file_credential"],
    "agent.bridge": ["API_VERSION", "BridgeConfig", "BridgeError", "ErrorCode", "OriginPolicy",
                     "build_app"],
    "agent.updater": [],
    "agent.ui": ["Request", "UiPort"],
    "rp": [
        "BadSignature", "CertificateExpired", "DataMismatch", "ExpiredNonce", "MalformedResponse",
        "NonceStore", "Person", "ReusedNonce", "TimeSkew", "UnknownNonce", "UntrustedChain",
        "Verified", "VerificationError", "WrongKeyUsage", "WrongOrderType", "WrongOrigin",
        "verify_auth", "verify_sign",
    ],
    "installer": [],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exported_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPORTS[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_only_one_module_imports_platformdirs() -> None:
    from pathlib import Path

    root = Path(__file__).parent.parent
    importers = [
        p.relative_to(root).as_posix()
        for pkg in ("agent", "issuer", "rp", "installer")
        for p in (root / pkg).rglob("*.py")
        if "import platformdirs" in p.read_text()
    ]
    assert importers == ["agent/paths.py"]
