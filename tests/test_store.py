from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.credentials import (
    AlreadyPresent,
    AmbiguousId,
    CannotOpenFile,
    CannotSaveFile,
    CredentialDamaged,
    CredentialInfo,
    CredentialLocked,
    CredentialStore,
    DamagedEntry,
    KeyPurpose,
    NoSuchCredential,
    PasswordTooWeak,
    UnsupportedVersion,
    WrongCurrentPassword,
    WrongPassword,
)
from tests.conftest import ANNA, BERTIL, FAST_KDF, NOW, PASSWORD, MakeToken


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_list_unlock_sign(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    (listed,) = store.credentials()
    assert listed == info
    unlocked = store.unlock(info.id[:6], PASSWORD)
    assert unlocked.info.id == info.id
    signature = unlocked.sign(KeyPurpose.SIGNATURE, b"text")
    assert len(signature) == 64
    assert "PRIVATE" not in repr(unlocked)
    path = store.directory / f"{info.id}.eidtoken"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_passwords_count_survive_restarts_and_lock_at_five(
    tmp_path: Path, make_token: MakeToken
) -> None:
    data = tmp_path / "data"
    info = CredentialStore(data, kdf=FAST_KDF).add(make_token())
    for expected_left in (4, 3, 2, 1):
        # a fresh store each time: the count lives in the file, not in memory
        with pytest.raises(WrongPassword) as err:
            CredentialStore(data, kdf=FAST_KDF).unlock(info.id, "not-the-right-one")
        assert err.value.tries_left == expected_left
    with pytest.raises(CredentialLocked):
        CredentialStore(data, kdf=FAST_KDF).unlock(info.id, "not-the-right-one")
    # locked for good: the right password does not open it any more
    with pytest.raises(CredentialLocked):
        CredentialStore(data, kdf=FAST_KDF).unlock(info.id, PASSWORD)
    (listed,) = CredentialStore(data).credentials()
    assert listed.locked and listed.tries_left == 0


def test_right_password_resets_the_count(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    for _ in range(4):
        with pytest.raises(WrongPassword):
            store.unlock(info.id, "not-the-right-one")
    store.unlock(info.id, PASSWORD)
    with pytest.raises(WrongPassword) as err:
        store.unlock(info.id, "not-the-right-one")
    assert err.value.tries_left == 4


def test_concurrent_wrong_tries_all_count(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    errors: list[BaseException] = []

    def guess() -> None:
        try:
            store.unlock(info.id, "not-the-right-one")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(e, WrongPassword) for e in errors) and len(errors) == 4
    (listed,) = store.credentials()
    assert listed.tries_left == 1


def test_change_password(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    before = (store.directory / f"{info.id}.eidtoken").read_bytes()
    with pytest.raises(PasswordTooWeak):
        store.change_password(info.id, PASSWORD, "short", NOW)
    with pytest.raises(WrongCurrentPassword) as err:
        store.change_password(info.id, "not the old one", "a new password", NOW)
    assert err.value.tries_left == 4
    store.change_password(info.id, PASSWORD, "a new password", NOW)
    after = (store.directory / f"{info.id}.eidtoken").read_bytes()
    assert json.loads(before)["certificates"] == json.loads(after)["certificates"]
    assert store.unlock(info.id, "a new password")
    with pytest.raises(WrongPassword):
        store.unlock(info.id, PASSWORD)
    assert store.credentials()[0].id == info.id  # id survives the change


def test_remove(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    store.remove(info.id)
    assert store.credentials() == []
    with pytest.raises(NoSuchCredential):
        store.remove(info.id)


def test_ids_resolve_by_unique_prefix(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    with pytest.raises(NoSuchCredential):
        store.resolve("abc")  # too short to be meant
    with pytest.raises(NoSuchCredential):
        store.resolve("../../etc/passwd")
    (store.directory / f"{info.id[:4]}0000.eidtoken").write_bytes(b"x")
    with pytest.raises(AmbiguousId):
        store.resolve(info.id[:4])


def test_export_import_moves_a_credential(
    tmp_path: Path, store: CredentialStore, make_token: MakeToken
) -> None:
    info = store.add(make_token())
    with pytest.raises(WrongPassword):
        store.unlock(info.id, "not-the-right-one")
    exported = store.export(info.id, tmp_path)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert PASSWORD.encode() not in exported.read_bytes()
    other = CredentialStore(tmp_path / "other-computer", kdf=FAST_KDF)
    imported = other.import_file(exported)
    assert imported.id == info.id
    assert imported.tries_left == 4  # the count moves with the file: no reset by copying
    assert other.unlock(info.id, PASSWORD)
    with pytest.raises(AlreadyPresent):
        other.import_file(exported)


def test_export_to_an_unwritable_place(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    with pytest.raises(CannotSaveFile):
        store.export(info.id, Path("/proc/no-such-dir/copy.eidtoken"))
    with pytest.raises(CannotSaveFile):
        store.export(info.id, Path("/nonexistent-dir/copy.eidtoken"))


@pytest.mark.parametrize("content", [b"", b"hello", b'{"format": "eid-agent/file-token"}'])
def test_import_of_a_non_credential(tmp_path: Path, store: CredentialStore, content: bytes) -> None:
    path = tmp_path / "x.eidtoken"
    path.write_bytes(content)
    with pytest.raises(CannotOpenFile):
        store.import_file(path)
    with pytest.raises(CannotOpenFile):
        store.import_file(tmp_path / "missing.eidtoken")
    assert store.entries() == []


def test_import_of_a_newer_format(tmp_path: Path, store: CredentialStore, token_file: Path) -> None:
    doc = json.loads(token_file.read_bytes())
    doc["version"] = 2
    token_file.write_text(json.dumps(doc))
    with pytest.raises(UnsupportedVersion):
        store.import_file(token_file)


def test_damaged_files_are_listed_untouched_and_others_still_work(
    store: CredentialStore, make_token: MakeToken
) -> None:
    good = store.add(make_token(ANNA))
    victim = store.add(make_token(BERTIL))
    victim_path = store.directory / f"{victim.id}.eidtoken"
    victims = {
        "truncated": victim_path.read_bytes()[:500],
        "flipped": _flip(victim_path.read_bytes(), 300),  # inside a certificate
        "not-json": b"\x00\x01 garbage",
        "wrong-version": json.dumps(json.loads(victim_path.read_bytes()) | {"version": 7}).encode(),
    }
    names = {name: f"ffff000{i}.eidtoken" for i, name in enumerate(victims)}
    for name, content in victims.items():
        (store.directory / names[name]).write_bytes(content)
    victim_path.unlink()
    digests = {p: _digest(p) for p in store.directory.glob("ffff*")}

    entries = store.entries()
    damaged = [e for e in entries if isinstance(e, DamagedEntry)]
    assert len(damaged) == 4
    assert [e for e in entries if isinstance(e, CredentialInfo)] == [good]
    by_name = {d.file_name: d.problem for d in damaged}
    assert isinstance(by_name[names["wrong-version"]], UnsupportedVersion)
    assert all(isinstance(p, CredentialDamaged) for p in by_name.values())
    with pytest.raises(CredentialDamaged):
        store.unlock(names["truncated"][:8], PASSWORD)
    assert store.unlock(good.id, PASSWORD)
    assert {p: _digest(p) for p in store.directory.glob("ffff*")} == digests


def _flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x04
    return bytes(out)


_CHILD = """
import resource, signal, sys
from pathlib import Path
from agent.credentials import StorageFailed, CredentialStore, WrongPassword
from tests.conftest import FAST_KDF, PASSWORD
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a too-large write fails with EFBIG
store = CredentialStore(Path(sys.argv[1]), kdf=FAST_KDF)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
try:
    store.unlock(sys.argv[2], "not-the-right-one")
except StorageFailed:
    print("refused")
except WrongPassword:
    print("counted")
"""


def test_a_wrong_try_that_cannot_be_recorded_is_refused(
    tmp_path: Path, make_token: MakeToken
) -> None:
    """A real write failure (file-size limit, which root cannot bypass either): the
    agent must not say "wrong password, try again" when it could not count the try."""
    data = tmp_path / "data"
    info = CredentialStore(data, kdf=FAST_KDF).add(make_token())
    path = data / "tokens" / f"{info.id}.eidtoken"
    before = path.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data), info.id],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert result.stdout.strip() == "refused"
    assert path.read_bytes() == before  # the old file is intact
    assert not list(path.parent.glob(".*.tmp"))  # and no temporary file is left


def test_leftover_temporaries_are_swept(store: CredentialStore, make_token: MakeToken) -> None:
    info = store.add(make_token())
    leftover = store.directory / f".{info.id}.eidtoken.k2j3h4.tmp"
    leftover.write_bytes(b"half a file")
    unrelated = store.directory / "notes.tmp"
    unrelated.write_bytes(b"not ours")
    store.change_password(info.id, PASSWORD, "another password", NOW)
    assert not leftover.exists() and unrelated.exists()
