"""Loading a PKCS#11 module in a child process first, so that a module that crashes or
hangs when it is loaded is reported and skipped while the agent stays up (ADR 0015).

``python -m agent.credentials.pkcs11.probe PATH`` loads the module, lists its slots and prints
one JSON line; the parent reads how the child ended. A module that passed is loaded into
the agent; one that crashes later, mid-operation, would still take the agent with it —
that isolation needs the module in another process for good (p11-kit's remoting), which
costs every signature a round trip.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from eidcore.atomicfile import atomic_write_bytes

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds a module may take to load and list its slots (OpenSC: ~50 ms)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str  # the module's description, or why it is not used (for the log)
    reason: str = ""  # why not, as a word people's texts are chosen by (REASONS)


REASONS = ("missing", "crashed", "hung", "unloadable")


def probe(path: Path, *, timeout: float = TIMEOUT) -> ProbeResult:
    if not path.is_file():
        return ProbeResult(False, "no such file", "missing")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agent.credentials.pkcs11.probe", str(path)],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"did not answer within {timeout:g} s", "hung")
    except OSError as exc:
        return ProbeResult(False, f"could not be tried ({exc.strerror})", "unloadable")
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return ProbeResult(False, f"crashed when loaded ({name})", "crashed")
    try:
        answer = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ProbeResult(False, f"ended with status {done.returncode}", "crashed")
    if not isinstance(answer, dict):
        return ProbeResult(False, "gave no answer", "unloadable")
    ok = answer.get("ok") is True
    return ProbeResult(ok, str(answer.get("detail", ""))[:200], "" if ok else "unloadable")


class ProbeCache:
    """Probe results kept in a file, by the module file's path, size and modification
    time, for one-shot commands: a probe costs a Python start (~0.2 s), which ``tokens
    list`` would pay for each module every time (measured: 140 → 451 ms with two
    modules). A module replaced (an update, a fix) is probed again. The running agent
    probes every start (in the background, where it costs nobody a wait)."""

    def __init__(self, file: Path) -> None:
        self._file = file
        self._lock = threading.Lock()
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
            self._known: dict[str, dict[str, object]] = doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            self._known = {}

    @staticmethod
    def _key(path: Path) -> str | None:
        try:
            real = Path(os.path.realpath(path))
            stat = real.stat()
        except OSError:
            return None
        return f"{real}:{stat.st_size}:{stat.st_mtime_ns}"

    def probe(self, path: Path) -> ProbeResult:
        key = self._key(path)
        if key is None:
            return probe(path)  # missing: nothing to remember
        with self._lock:
            known = self._known.get(key)
        if isinstance(known, dict):
            try:
                return ProbeResult(
                    bool(known["ok"]), str(known["detail"]), str(known.get("reason", ""))
                )
            except KeyError:
                pass
        result = probe(path)
        if result.reason == "hung":
            return result  # perhaps only a slow machine: try again next time
        with self._lock:
            self._known[key] = asdict(result)
            data = json.dumps(self._known, indent=1, sort_keys=True).encode()
            try:
                atomic_write_bytes(self._file, data, mode=0o600)
            except OSError as exc:
                log.info("PKCS#11 probe results not kept: %s", exc.strerror)
        return result


def _child(path: str) -> int:
    from agent.credentials.pkcs11.errors import ModuleUnusable, TokenFault
    from agent.credentials.pkcs11.lib import Module

    try:
        module = Module(path)
        module.present()
    except (ModuleUnusable, TokenFault) as exc:
        print(json.dumps({"ok": False, "detail": str(exc)}), flush=True)
        return 1
    print(json.dumps({"ok": True, "detail": module.description}), flush=True)
    os._exit(0)  # no C_Finalize or interpreter teardown: only the load was in question


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
