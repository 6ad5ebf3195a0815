"""Installer figures, on the real release form (a self-contained bundle): the installer's
size against the release's own archive in the update repository; the install time on a
clean HOME (without starting) against unpacking the same payload with tar alone; and the
installed agent's first start until it listens against a bare interpreter importing
aiohttp.web."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Figure
from installer import release
from installer.bundle import build_bundle
from installer.runfile import HEADER_SIZE
from tests.agent_process import AgentProcess
from tests.update_kit import RepoServer

SH = shutil.which("sh") or "/bin/sh"
TAR = shutil.which("tar") or "/bin/tar"


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "PYTHON", "VIRTUAL_ENV", "DISPLAY", "WAYLAND"))
    }
    return env | {"HOME": str(home), "PATH": f"{home}/.local/bin:/usr/bin:/bin"}


def run(tmp: Path, runs: int) -> list[Figure]:
    folder = tmp / "installer-release"
    release.init(folder)
    server = RepoServer(folder / "repository")
    try:
        return _run(tmp, runs, folder, server)
    finally:
        server.close()


def _run(tmp: Path, runs: int, folder: Path, server: RepoServer) -> list[Figure]:
    bundle = build_bundle(tmp / "installer-bundle", "1.0.0", self_contained=True)
    published = release.publish(folder, "1.0.0", bundle, {})
    release.write_install_page(folder, "1.0.0", server.url.rstrip("/"), dt.datetime.now(dt.UTC))
    [installer] = (folder / "repository/install").glob("*.run")
    size = installer.stat().st_size / 1e6
    installs, unpacks, starts, bares = [], [], [], []
    for n in range(runs):
        home = tmp / f"installer-home{n}"
        home.mkdir()
        start = time.perf_counter()
        as_root = ["--as-root"] if os.geteuid() == 0 else []  # the bench may run as root
        result = subprocess.run(
            [SH, str(installer), "--no-start", *as_root],
            env=_clean_env(home),
            capture_output=True,
            text=True,
            check=False,
        )
        installs.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"the installer failed: {result.stderr}")
        out = tmp / f"installer-unpack{n}"
        out.mkdir()
        start = time.perf_counter()
        with installer.open("rb") as payload:
            payload.seek(HEADER_SIZE)  # tar reads on from here, as the installer's tail does
            subprocess.run([TAR, "-xf", "-", "-C", str(out)], stdin=payload, check=True)
        (out / "bundle").mkdir()
        subprocess.run(
            [TAR, "-xzf", str(out / "archive.tar.gz"), "-C", str(out / "bundle")], check=True
        )
        unpacks.append(time.perf_counter() - start)
        data = home / ".local/share/eid-agent"
        start = time.perf_counter()
        with AgentProcess(
            data, "--no-cards", env=_clean_env(home), program=data / "install/current/eid-agent"
        ) as agent:
            agent.ready()
            starts.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import aiohttp.web"], check=True)
        bares.append(time.perf_counter() - start)
    update = _first_update(tmp, folder, server, tmp / "installer-home0")
    update.append(_verify_build(tmp))
    install_s, unpack_s = statistics.median(installs), statistics.median(unpacks)
    start_ms, bare_ms = statistics.median(starts) * 1000, statistics.median(bares) * 1000
    return [
        Figure(
            "installer size",
            "MB",
            size,
            "the release's archive in the repository",
            published.archive_bytes / 1e6,
            "reported",
            True,
            f"{installer.name}: the signed archive (self-contained bundle, gzip -6) as it is",
        ),
        Figure(
            "install on a clean HOME",
            "s",
            install_s,
            "unpacking its payload with tar",
            unpack_s,
            "reported",
            True,
            f"median of {runs}; without starting: versions layout, trust anchor, entries",
        ),
        Figure(
            "installed agent: first start → listening",
            "ms",
            start_ms,
            "bare interpreter + import aiohttp.web",
            bare_ms,
            "< 1000 ms",
            start_ms < 1000,
            f"median of {runs}; python -S on the bundle's own dependencies",
        ),
        *update,
    ]


def _first_update(tmp: Path, folder: Path, server: RepoServer, home: Path) -> list[Figure]:
    """A minor release published (against tufup's own add_bundle and publish on a copy of
    the same repository), then the first update of an agent installed from the installer:
    the bytes it downloads, against the archive it would otherwise download."""
    from tufup.repo import Repository

    bundle = build_bundle(tmp / "installer-bundle-1.0.1", "1.0.1", self_contained=True)
    copy = tmp / "installer-release-tufup"
    shutil.copytree(folder, copy, symlinks=True)
    start = time.perf_counter()
    published = release.publish(folder, "1.0.1", bundle, {})
    ours = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.chdir(copy):
        repo = Repository.from_config()
        repo.add_bundle(new_bundle_dir=bundle, new_version="1.0.1")
        repo.publish_changes(private_key_dirs=[copy / "keystore"])
    bare = time.perf_counter() - start
    server.log.clear()
    data = home / ".local/share/eid-agent"
    result = subprocess.run(
        [str(data / "install/current/eid-agent"), "update", "apply"],
        env=_clean_env(home),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the first update failed: {result.stdout}{result.stderr}")
    targets = [s for s in server.log if s.path.startswith("/targets/") and s.status == 200]
    downloaded = sum(s.sent for s in targets)
    archive = published.archive_bytes
    share = downloaded / archive
    return [
        Figure(
            "first update after an installer install: bytes",
            "kB",
            downloaded / 1000,
            "the full archive",
            archive / 1000,
            "≤ 20 % of the archive",
            share <= 0.2,
            f"{share:.1%}: {', '.join(s.path.rsplit('/', 1)[1] for s in targets)}; "
            "the installer's archive is kept for the patch",
        ),
        Figure(
            "publish a minor release (self-contained)",
            "s",
            ours,
            "tufup's own add_bundle + publish_changes",
            bare,
            "reported",
            True,
            "reproducible archive (gzip -6) + bsdiff patch + signing; one run each",
        ),
    ]


def _verify_build(tmp: Path) -> Figure:
    """``verify-build``: rebuilding a self-contained release from its git tag and comparing
    it, against building the bundle and its archive from the working folder."""
    import agent
    import eidcore
    from installer.archive import archive_bytes
    from installer.verify import verify_build

    checkout = tmp / "verify-checkout"
    for package in (agent, eidcore):
        assert package.__file__ is not None
        shutil.copytree(
            Path(package.__file__).parent,
            checkout / package.__name__,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    git = ["git", "-C", str(checkout), "-c", "user.name=b", "-c", "user.email=b@b.example"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "1.0.0"], ["tag", "v1.0.0"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    folder = tmp / "verify-release"
    release.init(folder)
    start = time.perf_counter()
    bundle = build_bundle(tmp / "verify-bundle", "1.0.0", source=checkout)
    archive_bytes(bundle, epoch=0)
    bare = time.perf_counter() - start
    release.publish(folder, "1.0.0", bundle, {})
    verdict = verify_build(folder, "v1.0.0", checkout, tmp / "verify-work")
    if not verdict.same:
        raise RuntimeError(f"verify-build disagrees with itself: {verdict.differences[:5]}")
    return Figure(
        "verify-build: rebuild a release from its tag",
        "s",
        verdict.seconds,
        "building the bundle and archive from the working folder",
        bare,
        "reported",
        verdict.same,
        "self-contained; git archive + bundle + reproducible archive; same bytes",
    )
