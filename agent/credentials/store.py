"""The credential store: file credentials in ``<data dir>/tokens/``. The driver around
fileformat (pure) and lockout (pure); it decides nothing they do not say.

Several processes may use one store at once (the running agent and an ``eid-agent
tokens`` command). Every read-modify-write holds an exclusive ``flock`` on
``tokens/.lock``, and a wrong-password count re-reads the file under that lock, so two
concurrent wrong tries count as two. The slow KDF runs outside the lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.credentials import fileformat
from agent.credentials.errors import (
    AlreadyPresent,
    AmbiguousId,
    CannotOpenFile,
    CannotSaveFile,
    CredentialDamaged,
    CredentialLocked,
    NoSuchCredential,
    RemoveFailed,
    StorageFailed,
    UnsupportedVersion,
    WrongCurrentPassword,
    WrongPassword,
)
from agent.credentials.fileformat import FILE_SUFFIX, CredentialFile, KdfParams, WrongSecret
from agent.credentials.lockout import LockState
from agent.credentials.model import CredentialInfo, KeyPurpose
from agent.credentials.unlocked import UnlockedCredential
from eidcore.atomicfile import NotPrivate, atomic_write_bytes, fsync_directory, private_dir
from eidcore.paths import tokens_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DamagedEntry:
    """A file in the store that is not a usable credential. It is listed, never modified."""

    file_name: str
    problem: CredentialDamaged


class CredentialStore:
    def __init__(
        self,
        data_dir: Path,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        kdf: KdfParams = fileformat.DEFAULT_KDF,
    ) -> None:
        self._dir = tokens_dir(data_dir)
        self._random = random_bytes
        self._kdf = kdf

    @property
    def directory(self) -> Path:
        return self._dir

    # -- reading -------------------------------------------------------------------------

    def entries(self) -> list[CredentialInfo | DamagedEntry]:
        """Every credential file, readable or not, in file-name order."""
        result: list[CredentialInfo | DamagedEntry] = []
        for path in self._files():
            try:
                result.append(_read(path).info())
            except CredentialDamaged as exc:
                log.warning("credential file %s not usable: %s", path.name, exc.detail)
                result.append(DamagedEntry(path.name, exc))
            except OSError as exc:
                log.warning("credential file %s unreadable: %s", path.name, exc.strerror)
                result.append(DamagedEntry(path.name, CredentialDamaged("unreadable")))
        return result

    def credentials(self) -> list[CredentialInfo]:
        return [e for e in self.entries() if isinstance(e, CredentialInfo)]

    def resolve(self, token_id: str) -> Path:
        """The file of the credential whose id starts with ``token_id`` (at least 4 chars).

        Raises:
            NoSuchCredential, AmbiguousId.
        """
        wanted = token_id.strip().lower()
        if len(wanted) < 4 or not all(c in "0123456789abcdef" for c in wanted):
            raise NoSuchCredential(token_id)
        matches = [p for p in self._files() if p.name.startswith(wanted)]
        if not matches:
            raise NoSuchCredential(token_id)
        if len(matches) > 1:
            raise AmbiguousId(token_id)
        return matches[0]

    # -- using ---------------------------------------------------------------------------

    def ready_for_password(self, token_id: str) -> None:
        """Whether asking for the password of ``token_id`` can lead anywhere: checked
        before the person is asked, so they never type a password only to hear that the
        BankID does not exist, is damaged, or is locked.

        Raises: NoSuchCredential, CredentialDamaged, CredentialLocked.
        """
        if _read(self.resolve(token_id)).lock.locked:
            raise CredentialLocked()

    def unlock(self, token_id: str, password: str) -> UnlockedCredential:
        """Open the credential's keys with its password, counting a wrong one.

        Raises:
            NoSuchCredential, CredentialDamaged, CredentialLocked,
            WrongPassword(tries_left), StorageFailed (a wrong try could not be recorded:
            refusing is safer than letting guesses go uncounted).
        """
        path = self.resolve(token_id)
        token = _read(path)
        if token.lock.locked:
            raise CredentialLocked()
        try:
            keys = token.open(password)
        except WrongSecret:
            lock = self._record(path, failed=True)
            if lock.locked:
                log.info("credential %s locked after too many wrong passwords", token.id)
                raise CredentialLocked() from None
            raise WrongPassword(lock.tries_left) from None
        if token.lock.failed_attempts:
            try:
                self._record(path, failed=False)
            except StorageFailed:
                # The person typed the right password; a stale counter errs on the safe side.
                log.warning("could not reset the wrong-password count of %s", token.id)
        return UnlockedCredential(token.info(), token.chains, keys)

    def change_password(self, token_id: str, old: str, new: str, now: dt.datetime) -> None:
        """Raises: PasswordTooWeak (nothing spent), WrongCurrentPassword(tries_left),
        CredentialLocked, NoSuchCredential, CredentialDamaged, StorageFailed."""
        fileformat.check_new_password(new)
        try:
            unlocked = self.unlock(token_id, old)
        except WrongPassword as exc:
            raise WrongCurrentPassword(exc.tries_left) from None
        path = self.resolve(token_id)
        with self._locked():
            current = _read(path)
            resealed = fileformat.seal(
                chains=current.chains,
                keys=unlocked.private_keys_for_reseal(),
                password=new,
                development=current.development,
                created=current.created,
                random_bytes=self._random,
                kdf=self._kdf,
            )
            self._write(path, resealed)
        log.info("password changed for credential %s", current.id)

    # -- moving --------------------------------------------------------------------------

    def add(self, token: CredentialFile) -> CredentialInfo:
        """Store a new credential. Raises: AlreadyPresent, StorageFailed."""
        info = token.info()
        path = self._dir / f"{token.id}{FILE_SUFFIX}"
        with self._locked():
            if path.exists():
                raise AlreadyPresent(token.id)
            self._write(path, token)
        log.info("credential %s added", token.id)
        return info

    def import_file(self, source: Path) -> CredentialInfo:
        """Copy a credential file into the store, keeping its wrong-password count.

        Raises: CannotOpenFile (unreadable or not a credential), UnsupportedVersion,
        AlreadyPresent, StorageFailed.
        """
        try:
            with source.open("rb") as handle:
                data = handle.read(fileformat.MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CannotOpenFile(exc.strerror or type(exc).__name__) from None
        try:
            token = fileformat.loads(data)
        except UnsupportedVersion:
            raise
        except CredentialDamaged as exc:
            raise CannotOpenFile(exc.detail) from None
        return self.add(token)

    def export(self, token_id: str, destination: Path) -> Path:
        """Write a copy (still encrypted, owner-only) to ``destination`` (a file, or a
        folder to put it in). Returns the path written.

        Raises: NoSuchCredential, CredentialDamaged, CannotSaveFile.
        """
        source = self.resolve(token_id)
        data = fileformat.dumps(_read(source))
        target = destination / source.name if destination.is_dir() else destination
        try:
            atomic_write_bytes(target, data, mode=0o600)
        except OSError as exc:
            raise CannotSaveFile(exc.strerror or type(exc).__name__) from None
        log.info("credential %s exported", source.stem)
        return target

    def remove(self, token_id: str) -> None:
        """Raises: NoSuchCredential, RemoveFailed."""
        path = self.resolve(token_id)
        try:
            with self._locked():
                path.unlink()
            fsync_directory(self._dir)
        except OSError as exc:
            raise RemoveFailed(exc.strerror or type(exc).__name__) from None
        log.info("credential %s removed", path.stem)

    # -- internals -----------------------------------------------------------------------

    def _files(self) -> list[Path]:
        try:
            return sorted(self._dir.glob(f"*{FILE_SUFFIX}"))
        except OSError:
            return []

    def _record(self, path: Path, *, failed: bool) -> LockState:
        try:
            with self._locked():
                current = _read(path)
                lock = current.lock.after_failure() if failed else current.lock.after_success()
                self._write(path, current.with_lock(lock))
                return lock
        except OSError as exc:
            raise StorageFailed(exc.strerror or type(exc).__name__) from None

    def _write(self, path: Path, token: CredentialFile) -> None:
        try:
            atomic_write_bytes(path, fileformat.dumps(token), mode=0o600)
        except OSError as exc:
            raise StorageFailed(exc.strerror or type(exc).__name__) from None

    def make_private(self) -> list[Path]:
        """Create the data folder and tokens folder owner-only, or repair them to it;
        the folders repaired. Raises: NotPrivate (another user's), OSError."""
        repaired = [p for p in (self._dir.parent, self._dir) if private_dir(p)]
        for path in repaired:
            log.warning("%s was open to other users; now owner-only", path)
        return repaired

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.make_private()
        except NotPrivate:
            raise  # its own message: the person can act on it
        except OSError as exc:
            raise StorageFailed(exc.strerror or str(exc)) from None
        fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _sweep_temporaries(self._dir)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _sweep_temporaries(directory: Path) -> None:
    # A crash between writing a temporary file and renaming it leaves the temporary
    # behind (the credential itself is intact). Under the lock no writer is mid-way, so
    # any temporary here is such a leftover.
    for leftover in directory.glob(f".*{FILE_SUFFIX}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _read(path: Path) -> CredentialFile:
    with path.open("rb") as handle:
        return fileformat.loads(handle.read(fileformat.MAX_FILE_BYTES + 1))


__all__ = ["CredentialStore", "DamagedEntry", "KeyPurpose"]
