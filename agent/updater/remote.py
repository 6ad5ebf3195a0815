"""The update repository, through tufup. The agent's only importer of tufup, tuf and
requests (ADR 0008): a move to another TUF client is a change to this module alone.

What tufup does not do for a daemon, done here:
- a ``Client`` refreshes once, so every check builds a new one;
- ``check_for_updates`` answers ``None`` both for "nothing new" and "could not check";
  ``client.new_targets`` tells them apart ({} vs None), and the errors it lets through
  (expired or otherwise invalid metadata, a target that fails its hash) become
  ``CheckError``/``FetchError`` instead of reaching the agent's loop;
- ``download_and_apply_update`` would ask on stdin and install with an installer that
  refuses Linux: it gets ``skip_confirmation=True`` and an install step that only
  records where the archive was unpacked — installing is ``agent.updater.install``'s;
- a patch that fails verification makes tufup log and return without installing; a
  patch that fails (download or result) is followed by the full archive at once;
- a download gets an overall deadline, so a server that trickles bytes cannot hold an
  update forever (tuf's own limit is per read).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
from packaging.version import InvalidVersion, Version
from requests.adapters import HTTPAdapter
from tuf.api import exceptions as tuf_errors
from tufup.client import AuthRequestsFetcher, Client
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from agent.updater.errors import CheckError, FetchError  # raised here; defined with the others
from agent.updater.policy import Policy, PolicyError, Standing, standing
from agent.updater.rollout import Rollout, offered
from agent.updater.source import APP_NAME, DOWNLOAD_DEADLINE, Source, Staging

__all__ = [
    "APP_NAME",
    "CheckError",
    "FetchError",
    "Found",
    "Source",
    "Staging",
    "check",
    "download_artifact",
    "fetch",
    "refresh_metadata",
    "verify_target",
]

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 10.0  # seconds per read


@dataclass(frozen=True)
class Found:
    latest: Version | None  # the newest release in the repository
    update: Version | None  # what an update would install now (None: nothing newer)
    by_patch: bool  # the update would come as patch(es) from the cached archive
    download_bytes: int  # what the update would download
    policy: Policy


class _Client(Client):  # type: ignore[misc]
    """tufup's client that does not see the releases ``hidden`` from it (a staged
    roll-out that has not reached this agent): it then chooses, and patches up to, the
    newest release it is offered."""

    hidden: frozenset[Version] = frozenset()

    @property
    def trusted_target_metas(self) -> list[Any]:
        metas: list[Any] = super().trusted_target_metas
        if not self.hidden:
            return metas
        return [
            m
            for m in metas
            if not (m.name == APP_NAME and not m.is_other and m.version in self.hidden)
        ]


class _Fetcher(AuthRequestsFetcher):  # type: ignore[misc]
    """tufup's fetcher with one overall deadline for a whole check or download. tuf's
    timeout is per read, and a read asks for a whole chunk (400 kB): a server sending a
    byte a second — in the TLS handshake, the headers or the body — never times out a
    read. So every socket the fetcher opens is recorded, and at the deadline a watchdog
    shuts them all, which ends any blocked read at once. The records are duplicate
    descriptors of our own: a socket closed meanwhile, its number reused, is never
    touched. ``close`` ends the watch."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.socket_timeout = SOCKET_TIMEOUT
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._expired = False
        self._watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _get_session(self, url: str) -> requests.Session:
        session: requests.Session = super()._get_session(url)
        if not isinstance(session.get_adapter(url), _WatchedAdapter):
            adapter = _WatchedAdapter(self._record)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        return session

    def _record(self, sock: socket.socket) -> None:
        with self._lock:
            if self._expired:
                sock.close()
                raise OSError("the update deadline has passed")
            self._sockets.append(sock.dup())

    def _cut(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _raise_if_expired(self) -> None:
        if self._expired:
            raise tuf_errors.SlowRetrievalError("download deadline passed") from None

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            chunks: Iterator[bytes] = super()._fetch(url)  # connects, reads the headers
        except (requests.RequestException, tuf_errors.DownloadError, OSError):
            self._raise_if_expired()
            raise
        return chunks

    def _chunks(self, response: Any) -> Iterator[bytes]:
        try:
            for chunk in super()._chunks(response):
                self._raise_if_expired()
                yield chunk
        except (requests.RequestException, tuf_errors.DownloadError, OSError):
            self._raise_if_expired()  # what the cut socket raised
            raise

    def close(self) -> None:
        self._watchdog.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connection pools report each new socket to ``record``."""

    def __init__(self, record: Callable[[socket.socket], None]) -> None:
        self._record = record  # before super().__init__, which builds the pool manager
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools()

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = self._pools()
        return manager

    def _pools(self) -> dict[str, type[HTTPConnectionPool]]:
        record = self._record
        return {
            "http": _recording(HTTPConnectionPool, HTTPConnection, record),
            "https": _recording(HTTPSConnectionPool, HTTPSConnection, record),
        }


def _recording(
    pool: type[HTTPConnectionPool],
    connection: type[HTTPConnection],
    record: Callable[[socket.socket], None],
) -> type[HTTPConnectionPool]:
    """``pool`` whose connections hand each new socket to ``record``."""

    class Recording(connection):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            record(sock)
            return sock

    return type(pool.__name__, (pool,), {"ConnectionCls": Recording})


def _done(client: Any) -> None:
    client._fetcher.close()


def _client(source: Source, current: Version, extract_dir: Path | None) -> Any:
    source.targets_dir.mkdir(parents=True, exist_ok=True)
    client = _Client(
        app_name=APP_NAME,
        app_install_dir=extract_dir or source.targets_dir,
        current_version=str(current),
        metadata_dir=source.metadata_dir,
        metadata_base_url=source.metadata_url,
        target_dir=source.targets_dir,
        target_base_url=source.targets_url,
        extract_dir=extract_dir,
    )
    client._fetcher = _Fetcher(time.monotonic() + source.deadline)  # the seam owns this detail
    # Our repositories use consistent snapshots for metadata (eid-release publishes by
    # version, ADR 0016); archives and patches have one name per version and never change,
    # so they are fetched by that name, not a hash-prefixed copy.
    client.config.prefix_targets_with_hash = False
    return client


_CHECK_ERRORS = (
    tuf_errors.RepositoryError,
    tuf_errors.DownloadError,
    requests.RequestException,
    OSError,
    ValueError,
)


def _refresh(client: Any) -> None:
    """Raises: CheckError, with the reason."""
    try:
        client.refresh()
    except tuf_errors.UnsignedMetadataError as exc:
        raise CheckError("unsigned", str(exc)) from None
    except tuf_errors.ExpiredMetadataError as exc:
        raise CheckError("expired", str(exc)) from None
    except (tuf_errors.DownloadError, requests.RequestException, OSError) as exc:
        raise CheckError("unreachable", f"{type(exc).__name__}: {exc}") from None
    except (tuf_errors.RepositoryError, ValueError) as exc:
        raise CheckError("invalid", f"{type(exc).__name__}: {exc}") from None


def _refreshed(
    client: Any, source: Source, current: Version, staging: Staging | None, *, patch: bool = True
) -> Found:
    """Run tufup's check on a new client. Raises: CheckError."""
    # Refresh here rather than inside check_for_updates, which folds "unreachable" and
    # "signed by the wrong key" into one None; a tuf Updater refreshes only once anyway.
    _refresh(client)
    client.refresh = lambda: None
    if staging is not None:
        client.hidden = _not_offered(client, current, staging)
    try:
        update = client.check_for_updates(pre=None, patch=patch)
    except _CHECK_ERRORS as exc:
        raise CheckError("invalid", f"{type(exc).__name__}: {exc}") from None
    if client.new_targets is None:
        raise CheckError("invalid", "tufup could not read the verified targets")
    archives = [m for m in client.trusted_target_metas if m.name == APP_NAME and m.is_archive]
    latest = max(archives, default=None)  # the newest offered to this agent
    newest = max(_all_archives(client), default=None)  # whose policy everyone follows
    try:
        policy = Policy.from_custom(newest.custom or {} if newest is not None else {})
    except PolicyError as exc:
        raise CheckError("policy", str(exc)) from None
    if not policy.manual_url:  # the install page eid-release writes next to the repository
        policy = replace(policy, manual_url=source.base_url.rstrip("/") + "/install/")
    targets = client.new_targets or {}
    try:
        return Found(
            latest=Version(str(latest.version)) if latest is not None else None,
            update=Version(str(update.version)) if update is not None else None,
            by_patch=bool(targets) and all(meta.is_patch for meta in targets),
            download_bytes=sum(info.length for info in targets.values()),
            policy=policy,
        )
    except InvalidVersion as exc:
        raise CheckError("invalid", str(exc)) from None


def _all_archives(client: Any) -> list[Any]:
    """Every release archive, hidden ones too."""
    metas: list[Any] = Client.trusted_target_metas.fget(client)
    return [m for m in metas if m.name == APP_NAME and m.is_archive and m.version is not None]


def _not_offered(client: Any, current: Version, staging: Staging) -> frozenset[Version]:
    """The newer releases whose staged roll-out has not reached this agent; none when
    this agent must update (a required minimum above it, or its version blocked).

    Raises: CheckError (a roll-out or policy that does not parse)."""
    archives = sorted(_all_archives(client))
    if not archives:
        return frozenset()
    try:
        policy = Policy.from_custom(archives[-1].custom or {})
        if standing(current, None, policy, staging.now) in (Standing.REQUIRED, Standing.BLOCKED):
            return frozenset()  # a required update is not staged
        return frozenset(
            Version(str(meta.version))
            for meta in archives
            if meta.version > current
            and not offered(
                staging.draw, Rollout.from_custom((meta.custom or {}).get("rollout")), staging.now
            )
        )
    except (PolicyError, InvalidVersion) as exc:
        raise CheckError("policy", str(exc)) from None


def check(source: Source, current: Version, staging: Staging | None = None) -> Found:
    """Refresh the metadata and say what is there (with ``staging``: what a staged
    roll-out offers this agent; without, every release).

    Raises:
        CheckError: the repository could not be checked (never "nothing new").
    """
    try:
        client = _client(source, current, None)
    except _CHECK_ERRORS as exc:  # the trusted root is missing or damaged
        raise CheckError("invalid", f"trusted metadata: {exc}") from None
    try:
        return _refreshed(client, source, current, staging)
    finally:
        _done(client)


def fetch(
    source: Source, current: Version, extract_dir: Path, staging: Staging | None = None
) -> tuple[Found, Path]:
    """Download the update (patches or archive), verify it and unpack it into
    ``extract_dir`` (empty). Returns what was found and the unpacked folder. A patch
    that fails (download or verification) is followed by the full archive at once.

    Raises:
        CheckError: the repository could not be checked.
        FetchError: nothing newer, or the download did not verify.
    """
    try:
        return _fetch(source, current, extract_dir, staging, patch=True)
    except FetchError as exc:
        if not exc.by_patch:
            raise
        log.warning("%s; trying the full archive", exc)
        return _fetch(source, current, extract_dir, staging, patch=False)


def _fetch(
    source: Source, current: Version, extract_dir: Path, staging: Staging | None, *, patch: bool
) -> tuple[Found, Path]:
    try:
        client = _client(source, current, extract_dir)
    except _CHECK_ERRORS as exc:
        raise CheckError("invalid", f"trusted metadata: {exc}") from None
    try:
        return _download(client, source, current, staging, patch=patch)
    finally:
        _done(client)


def _download(
    client: Any, source: Source, current: Version, staging: Staging | None, *, patch: bool
) -> tuple[Found, Path]:
    found = _refreshed(client, source, current, staging, patch=patch)
    if found.update is None:
        raise FetchError("nothing newer to install")
    unpacked: list[Path] = []

    def install(src_dir: Path, dst_dir: Path, **_: object) -> None:
        unpacked.append(Path(src_dir))

    kind = "patch" if found.by_patch else "archive"
    try:
        client.download_and_apply_update(skip_confirmation=True, install=install)
    except _CHECK_ERRORS as exc:
        raise FetchError(
            f"the {kind} did not download or verify: {type(exc).__name__}: {exc}",
            by_patch=found.by_patch,
        ) from None
    if not unpacked:
        raise FetchError(
            f"the {kind} did not reproduce the signed archive", by_patch=found.by_patch
        )
    log.info("update %s fetched (%s, %d bytes)", found.update, kind, found.download_bytes)
    return found, unpacked[0]


def verify_target(source: Source, name: str, path: Path) -> dict[str, Any]:
    """Check that ``path`` is the signed target ``name`` of the repository (an installer's
    archive, say): refresh the metadata and compare length and hashes. Returns the
    target's signed custom metadata for the project (a release's policy, its installers).

    Raises:
        CheckError: the repository could not be checked.
        FetchError: the repository signs no such target, or ``path`` is not it.
    """
    client = _bare_client(source, source.metadata_url, source.targets_url, source.deadline)
    try:
        _refresh(client)
        try:
            info = client.get_targetinfo(name)
        except _CHECK_ERRORS as exc:
            raise CheckError("invalid", f"{type(exc).__name__}: {exc}") from None
        if info is None:
            raise FetchError(f"the repository signs no {name}")
        with path.open("rb") as data:
            info.verify_length_and_hashes(data)
        custom = info.unrecognized_fields.get("custom")
        user = custom.get("user") if isinstance(custom, dict) else None
        return dict(user) if isinstance(user, dict) else {}
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise FetchError(f"{path} is not the {name} the repository signed: {exc}") from None
    finally:
        _done(client)


# -- the TUF conformance suite's client protocol, over this same seam ----------------------


def refresh_metadata(metadata_dir: Path, metadata_url: str, targets_dir: Path) -> None:
    """Refresh the top-level metadata the TUF way.

    Raises:
        CheckError: any part of the refresh failed.
    """
    source = Source("", metadata_dir, targets_dir)
    client = _bare_client(source, metadata_url, metadata_url)
    try:
        _refresh(client)
    finally:
        _done(client)


def download_artifact(
    metadata_dir: Path, metadata_url: str, target_name: str, target_base_url: str, target_dir: Path
) -> Path:
    """Refresh, then download ``target_name`` into ``target_dir`` (kept when cached).

    Raises:
        CheckError: the metadata could not be refreshed.
        FetchError: no such target, or it did not download or verify.
    """
    source = Source("", metadata_dir, target_dir)
    client = _bare_client(source, metadata_url, target_base_url)
    try:
        _refresh(client)
        info = client.get_targetinfo(target_name)
        if info is None:
            raise FetchError(f"{target_name} is not a signed target")
        cached = client.find_cached_target(info)
        return Path(cached or client.download_target(info))
    except _CHECK_ERRORS as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from None
    finally:
        _done(client)


def _bare_client(
    source: Source, metadata_url: str, targets_url: str, deadline: float = DOWNLOAD_DEADLINE
) -> Any:
    source.targets_dir.mkdir(parents=True, exist_ok=True)
    try:
        client = Client(
            app_name=APP_NAME,
            app_install_dir=source.targets_dir,
            current_version="0",
            metadata_dir=source.metadata_dir,
            metadata_base_url=metadata_url,
            target_dir=source.targets_dir,
            target_base_url=targets_url,
        )
    except _CHECK_ERRORS as exc:
        raise CheckError("invalid", f"trusted metadata: {exc}") from None
    client._fetcher = _Fetcher(time.monotonic() + deadline)
    return client
