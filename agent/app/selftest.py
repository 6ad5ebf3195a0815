"""The self-test a newly installed version passes before it becomes current.

It exercises what an update could break without the agent noticing at start: every
message in both languages, the cryptography the credentials need, the credential store,
and that the code is the version its bundle says it is.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent import __version__
from eidcore.messages import Language, MessageCode, catalogue

__all__ = ["self_test"]


def self_test(data_dir: Path, bundle: Path | None) -> list[str]:
    """What is wrong, as short lines for the log; empty when all is well."""
    problems: list[str] = []
    try:
        texts = catalogue()
        for code in MessageCode:
            entry = texts.entry(code)
            params = {name: 1 for name in entry.placeholders - {"code"}}
            for language in Language:
                text = entry.texts[language]
                # a value may stand in the console's text alone (a notice's link is shown
                # beside its body in a window, e.g. 10096's way back to the site)
                used = {
                    f
                    for part in (text.title, text.body, text.console or "")
                    for _, f, _, _ in string.Formatter().parse(part)
                    if f
                }
                if used - {"code"} != set(params):
                    problems.append(
                        f"message catalogue: {int(code)} in {language.value} "
                        f"uses {sorted(used)}, expected {sorted(params)}"
                    )
                texts.render(code, language, **params)
    except Exception as exc:  # the point is to report anything at all
        problems.append(f"message catalogue: {type(exc).__name__}: {exc}")
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        signature = key.sign(b"self-test", ec.ECDSA(hashes.SHA256()))
        key.public_key().verify(signature, b"self-test", ec.ECDSA(hashes.SHA256()))
        sealed = AESGCM(bytes(32)).encrypt(bytes(12), b"self-test", None)
        if AESGCM(bytes(32)).decrypt(bytes(12), sealed, None) != b"self-test":
            problems.append("cryptography: AES-GCM round trip differs")
    except Exception as exc:
        problems.append(f"cryptography: {type(exc).__name__}: {exc}")
    try:
        from agent.credentials import CredentialStore

        CredentialStore(data_dir).entries()
    except Exception as exc:
        problems.append(f"credential store: {type(exc).__name__}: {exc}")
    if bundle is not None:
        from agent.updater import InstallError, bundle_version

        try:
            if str(bundle_version(bundle)) != __version__:
                problems.append(f"bundle says {bundle_version(bundle)}, code is {__version__}")
        except InstallError as exc:
            problems.append(str(exc))
    if not os.access(data_dir, os.W_OK) and data_dir.exists():
        problems.append(f"data folder {data_dir} is not writable")
    return problems
