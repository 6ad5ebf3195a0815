"""PKCS#11 tokens through the real python-pkcs11 and SoftHSM2: tokens made by the test
(keys generated on the token, certificates from the tests' CA written with pkcs11-tool),
watched, listed and used by the agent's token watcher; modules that are missing or crash
when loaded are reported while the watcher goes on."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from agent.credentials.card.errors import (
    CardRemoved,
    NoCard,
    PinFormat,
    PinRef,
    WrongCurrentPin,
    WrongPin,
    WrongPuk,
)
from agent.credentials.model import CredentialKind, CredentialState, KeyPurpose
from agent.credentials.pkcs11.modules import ModuleEntry
from agent.credentials.pkcs11.watcher import TokenWatcher
from issuer.ca import CertificateAuthority
from tests.conftest import BERTIL
from tests.softhsm_kit import MODULE, SO_PIN, USER_PIN, SoftHsm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def token_ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        "Token Test", dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    )


def _entry(path: str | Path) -> ModuleEntry:
    return ModuleEntry(Path(path).name, Path(path), "config")


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def watching(*paths: str | Path) -> AsyncIterator[TokenWatcher]:
    """A watcher over the modules, started after the tokens are made: SoftHSM2 reads its
    token folder when it is initialised and never sees a token made after that."""
    watcher = TokenWatcher([_entry(p) for p in paths or (MODULE,)], poll=0.1)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.ready.wait(), 20)
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _verify(chain: tuple[bytes, ...], data: bytes, raw: bytes) -> None:
    leaf = x509.load_der_x509_certificate(chain[0])
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))


async def test_a_token_bankid_is_listed_and_signs_with_each_key(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca, always_auth=True)  # 9C-like: a login per signature
    async with watching() as watcher:
        await _check_signatures(watcher, token_ca)


async def _check_signatures(watching: TokenWatcher, token_ca: CertificateAuthority) -> None:
    (info,) = watching.credentials()
    assert info.kind is CredentialKind.TOKEN and info.owner.name == "Anna Andersson"
    assert info.state(dt.datetime.now(dt.UTC)) is CredentialState.USABLE
    held = watching.card(info.id)
    assert held is not None
    for purpose in KeyPurpose:
        data = f"signed for {purpose}".encode()
        raw = await asyncio.to_thread(watching.sign, info.id, purpose, data, USER_PIN)
        _verify(held.chains[purpose], data, raw)
        # the right key for the purpose: the other certificate does not verify it
        other = held.chains[next(p for p in KeyPurpose if p is not purpose)]
        with pytest.raises(Exception):  # noqa: B017 — InvalidSignature
            _verify(other, data, raw)
    issuing = token_ca.issuing_certificate.public_bytes(serialization.Encoding.DER)
    assert held.chains[KeyPurpose.SIGNATURE][1] == issuing


async def test_a_wrong_pin_is_counted_by_the_token(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca)
    async with watching() as watcher:
        await _check_wrong_pin(watcher)


async def _check_wrong_pin(watching: TokenWatcher) -> None:
    (info,) = watching.credentials()
    with pytest.raises(WrongPin) as wrong:
        await asyncio.to_thread(watching.sign, info.id, KeyPurpose.IDENTIFICATION, b"x", "000000")
    assert wrong.value.pin is PinRef.USER and wrong.value.tries_left is None  # SoftHSM: "low"
    with pytest.raises(PinFormat):  # refused here: nothing reaches the token
        await asyncio.to_thread(watching.sign, info.id, KeyPurpose.IDENTIFICATION, b"x", "9" * 65)
    status = await asyncio.to_thread(watching.pin_status, info.id, PinRef.USER)
    assert not status.blocked
    raw = await asyncio.to_thread(watching.sign, info.id, KeyPurpose.IDENTIFICATION, b"x", USER_PIN)
    assert len(raw) == 64


async def test_only_complete_pairs_are_offered(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("lone", token_ca, signature=False)
    softhsm.bankid("old", token_ca, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=20), days=5)
    softhsm.bankid("bertil", token_ca, person=BERTIL)
    async with watching() as watcher:
        states = sorted(
            (c.owner.name, c.state(dt.datetime.now(dt.UTC)).value) for c in watcher.credentials()
        )
    assert states == [("Anna Andersson", "expired"), ("Bertil Berg", "usable")]


async def test_a_token_removed_is_gone_within_a_second(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca)
    softhsm.bankid("bertil", token_ca, person=BERTIL)
    async with watching() as watcher:
        assert len(watcher.credentials()) == 2
        anna = next(c for c in watcher.credentials() if c.owner.given_name == "Anna")
        generation = watcher.generation
        softhsm.remove_token("anna")
        await asyncio.wait_for(watcher.wait_changed(generation), 1.0)
        assert [c.owner.given_name for c in watcher.credentials()] == ["Bertil"]
        with pytest.raises(NoCard):
            watcher.sign(anna.id, KeyPurpose.IDENTIFICATION, b"x", USER_PIN)


async def test_change_pin_and_unblock_with_the_so_pin(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca)
    async with watching() as watcher:
        await _check_pins(watcher)


async def _check_pins(watching: TokenWatcher) -> None:
    (info,) = watching.credentials()
    with pytest.raises(WrongCurrentPin):
        await asyncio.to_thread(watching.change_pin, info.id, PinRef.USER, "000000", "654321")
    await asyncio.to_thread(watching.change_pin, info.id, PinRef.USER, USER_PIN, "654321")
    with pytest.raises(WrongPin):
        await asyncio.to_thread(watching.sign, info.id, KeyPurpose.IDENTIFICATION, b"x", USER_PIN)
    await asyncio.to_thread(watching.sign, info.id, KeyPurpose.IDENTIFICATION, b"x", "654321")
    with pytest.raises(WrongPuk) as wrong:
        await asyncio.to_thread(watching.unblock_pin, info.id, PinRef.USER, "87654321", "111111")
    assert wrong.value.tries_left is None
    with pytest.raises(PinFormat):  # a token takes a new PIN with its unblocking
        await asyncio.to_thread(watching.unblock_pin, info.id, PinRef.USER, SO_PIN, None)
    await asyncio.to_thread(watching.unblock_pin, info.id, PinRef.USER, SO_PIN, "111111")
    await asyncio.to_thread(watching.sign, info.id, KeyPurpose.SIGNATURE, b"x", "111111")


CRASHING_MODULE = r"""
#include <signal.h>
/* A PKCS#11 module that crashes the process that loads it. */
long C_GetFunctionList(void **list) { (void)list; raise(SIGSEGV); return 0; }
"""


def _crashing_module(tmp_path: Path) -> Path:
    source, library = tmp_path / "crash.c", tmp_path / "libcrash-pkcs11.so"
    source.write_text(CRASHING_MODULE)
    subprocess.run(
        ["/usr/bin/gcc", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return library


async def test_broken_modules_are_reported_and_skipped(
    tmp_path: Path,
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    crash = _crashing_module(tmp_path)
    not_a_module = tmp_path / "not-a-module.so"
    not_a_module.write_bytes(b"\x7fELF garbage")
    softhsm.bankid("anna", token_ca)
    async with watching(crash, tmp_path / "missing.so", not_a_module, MODULE) as watcher:
        reasons = {Path(p.path).name: (p.reason, p.detail) for p in watcher.problems}
        assert reasons["libcrash-pkcs11.so"] == ("crashed", "crashed when loaded (SIGSEGV)")
        assert reasons["missing.so"] == ("missing", "no such file")
        assert reasons["not-a-module.so"][0] == "unloadable"
        assert len(watcher.credentials()) == 1  # the good module still serves its token


def test_a_token_signature_matches_a_bare_python_pkcs11_one(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    """The same key through the agent's Module and through python-pkcs11 alone: both
    signatures verify with the token's certificate (the baseline the benchmark uses)."""
    import pkcs11

    from agent.credentials.pkcs11.contents import TokenRef
    from agent.credentials.pkcs11.lib import Module

    softhsm.bankid("anna", token_ca)
    module = Module(MODULE)
    (head,) = module.present()
    digest = hashlib.sha256(b"data").digest()
    ours = module.sign(head.ref, b"\x01", digest, USER_PIN)
    try:
        lib = pkcs11.lib(MODULE)  # the same library, initialised already by the Module
        token = lib.get_token(token_label="anna")
        with token.open(user_pin=USER_PIN) as session:
            key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=b"\x01")
            bare = key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)  # type: ignore[attr-defined]
        contents = module.contents(head)
        cert = next(c for c in contents.certificates if c.id == b"\x01")
        for raw in (ours, bare):
            _verify((cert.der,), b"data", raw)
        with pytest.raises(CardRemoved):
            module.sign(
                TokenRef(MODULE, head.ref.slot, "another serial"), b"\x01", digest, USER_PIN
            )
    finally:
        module.close()  # C_Finalize: the next test's SoftHSM2 reads its own configuration


def _hostile_objects(label: str) -> None:
    """Objects no issuer writes, put on the token with python-pkcs11 itself (pkcs11-tool
    refuses certificates that do not parse): junk values, huge labels with bidi and
    invisible characters, objects without ids, an oversized value."""
    import pkcs11

    lib = pkcs11.lib(MODULE)
    try:
        _write_hostile(lib.get_token(token_label=label))
    finally:
        lib.finalize()  # SoftHSM2 reads its configuration again at the next initialise


def _write_hostile(token: object) -> None:
    from pkcs11 import Attribute, CertificateType, ObjectClass

    with token.open(rw=True, user_pin=USER_PIN) as session:  # type: ignore[attr-defined]
        for value, attrs in (
            (b"\x30\x82\xff\xff" + b"\x00" * 40, {}),  # a DER length that lies
            (b"not a certificate", {Attribute.ID: b"\x01"}),  # beside the real one's id
            (b"\x30" * 20_000, {Attribute.ID: b"\x07" * 64}),
        ):
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.LABEL: "\u202e\u200b" + "x" * 300,
                    Attribute.VALUE: value,
                    Attribute.SUBJECT: b"\x30\x00",
                    **attrs,
                }
            )


async def test_hostile_token_contents_hide_nothing_and_break_nothing(
    softhsm: SoftHsm,
    token_ca: CertificateAuthority,
) -> None:
    softhsm.bankid("anna", token_ca)
    softhsm.init_token("junk")  # before this process loads SoftHSM2: it would not see it
    _hostile_objects("anna")
    _hostile_objects("junk")
    async with watching() as watcher:
        (info,) = watcher.credentials()  # the real pair, nothing from the junk
        assert info.owner.name == "Anna Andersson"
        raw = await asyncio.to_thread(watcher.sign, info.id, KeyPurpose.SIGNATURE, b"x", USER_PIN)
        assert len(raw) == 64


def test_probe_results_are_kept_by_module_file(tmp_path: Path) -> None:
    """``tokens list`` keeps what a probe found, by the module file's path, size and
    modification time; a module replaced is probed again."""
    import json
    import shutil

    from agent.credentials.pkcs11.probe import ProbeCache

    library = _crashing_module(tmp_path)
    cache_file = tmp_path / "probes.json"
    first = ProbeCache(cache_file).probe(library)
    assert (first.ok, first.reason) == (False, "crashed")
    assert oct(cache_file.stat().st_mode)[-3:] == "600"
    # a result on file is used as it stands: no child process is started for it
    doc = json.loads(cache_file.read_text())
    (key,) = doc
    doc[key] = {"ok": False, "detail": "remembered", "reason": "unloadable"}
    cache_file.write_text(json.dumps(doc))
    assert ProbeCache(cache_file).probe(library).detail == "remembered"
    # the file replaced by a working module: probed again, and found good
    shutil.copyfile(MODULE, library)
    again = ProbeCache(cache_file).probe(library)
    assert again.ok and again.detail == "Implementation of PKCS11"


_WAITING_FINALIZE = r"""
/* Like OpenSC's C_Finalize waiting on pcscd, which waits on a card: this one waits (up
   to 5 s) for a file that a Python thread of the caller's process makes, and writes
   down whether it came. */
static CK_RV waiting_finalize(CK_VOID_PTR reserved) {
    int waited = 0;
    FILE *said;
    while (access(GATE, F_OK) != 0 && waited < 5000) { usleep(1000); waited++; }
    said = fopen(SAID, "w");
    if (said != NULL) {
        fputs(access(GATE, F_OK) == 0 ? "came" : "never came", said);
        fclose(said);
    }
    return real->C_Finalize(reserved);
}
"""


def test_c_finalize_lets_the_other_threads_run(tmp_path: Path, softhsm: SoftHsm) -> None:
    """A module's C_Finalize may wait on something that needs this process's other
    threads (OpenSC: pcscd, which was asking the tests' in-process virtual card for its
    ATR — a serial run once stopped so, all three waiting). The agent calls it without
    the interpreter lock: here a module whose C_Finalize waits for a file a Python thread
    makes sees the file come (with the lock held, as python-pkcs11 calls it, it never
    would)."""
    import threading
    import time

    from agent.credentials.pkcs11.lib import Module
    from tests.pinpad_kit import build_wrapper

    softhsm.init_token("anna")
    gate, said = tmp_path / "gate", tmp_path / "said"
    replace = "ours.C_Finalize = waiting_finalize;"
    defines = {"GATE": gate, "SAID": said}
    library = build_wrapper(tmp_path, "waiting", _WAITING_FINALIZE, replace, defines)
    module = Module(str(library))
    assert module.present()  # loaded and initialised: SoftHSM2's token behind it

    def open_the_gate() -> None:
        time.sleep(0.2)  # C_Finalize is waiting by now
        gate.touch()

    helper = threading.Thread(target=open_the_gate)
    helper.start()
    module.close()
    helper.join()
    assert said.read_text() == "came"
