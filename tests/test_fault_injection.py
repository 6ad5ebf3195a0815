"""kill -9 at random instants (a seeded loop) during a card's PIN change (the agent or the
card itself), an enrolment's credential save and an update's download, unpack and switch:
afterwards nothing is torn, and doing it again finishes the job. (The password change is
in test_crash_safety.py.) ``EID_FAULT_ROUNDS`` sets the rounds (``./dev stress`` runs 100;
the suite a few), and each test prints where its kills landed."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.credentials import CredentialStore
from agent.credentials.store import DamagedEntry
from issuer import CertificateAuthority
from tests.agent_process import BIN
from tests.card_kit import ID_PIN, Pcscd, personalised_card, wait_no_card
from tests.conftest import PASSWORD
from tests.issuer_kit import IssuerProcess, postgres_cluster
from tests.update_kit import current_version, install, repository, run_agent_cli

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("EID_FAULT_ROUNDS", "4"))
PNR = "198112189876"


def _kill_after(argv: list[str], stdin: str, delay: float) -> int | None:
    """Run ``argv``, kill it with SIGKILL after ``delay`` s; its exit status if it
    finished first, else None."""
    child = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    assert child.stdin is not None
    child.stdin.write(stdin)
    child.stdin.close()
    try:
        return child.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()
        return None


class _CardProcess:
    """``eid-vcard insert``: the card as its own process, so it can die like a card
    pulled out (or losing power) in the middle of a write."""

    def __init__(self, file: Path) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "eid-vcard"), "insert", "--card", str(file)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        assert "inserted" in self.process.stderr.readline()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def remove(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        wait_no_card()


def _change_pin(old: str, new: str) -> subprocess.Popen[str]:
    """``eid-agent card change-pin`` started, its answers typed."""
    child = subprocess.Popen(
        [str(BIN / "eid-agent"), "card", "change-pin", "--pin", "identification", "--lang", "en"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    child.stdin.write(f"{old}\n{new}\n{new}\n")
    child.stdin.close()
    return child


def _said(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None and child.stderr is not None
    return child.stdout.read() + child.stderr.read()


def _card_ready() -> float:
    """Until ``eid-agent card status`` sees the card (pcscd takes a moment); how long."""
    began = time.monotonic()
    while True:
        status = subprocess.run(
            [str(BIN / "eid-agent"), "card", "status", "--lang", "en"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if status.returncode == 0:
            return time.monotonic() - began
        assert time.monotonic() < began + 60, status.stderr
        time.sleep(0.05)


def test_kill_during_pin_change(
    pcscd: Pcscd, tmp_path: Path, card_ca: CertificateAuthority
) -> None:
    """The agent or the card dies at a random instant of a PIN change. The card counts a
    try before it compares (as real cards do against tearing), so afterwards the PIN is
    the old one or the new one, never blocked, with at most the interrupted try spent;
    the agent that lost its card says so in the catalogue's words; the change then
    succeeds and restores the counter."""
    rng = random.Random(221126)
    file = personalised_card(tmp_path, card_ca).file
    pins = (ID_PIN, "246810")
    outcomes: dict[str, int] = {}
    whole, slowest, previous = 0.0, (0.0, ""), "the start"
    for n in range(-1, ROUNDS):  # round -1 measures how long a whole change takes
        value = file.load().pins[0x81].value
        target = pins[1] if value == pins[0] else pins[0]
        card = _CardProcess(file.path)
        try:
            slowest = max(slowest, (_card_ready(), f"after {previous}"))
            child = _change_pin(value, target)
            if n < 0:
                began = time.monotonic()
                assert child.wait(timeout=60) == 0
                whole = time.monotonic() - began
                continue
            victim = rng.choice(["agent", "card"])
            try:
                status: int | None = child.wait(timeout=rng.uniform(0.0, whole))
            except subprocess.TimeoutExpired:
                status = None
                if victim == "agent":
                    child.kill()
                    child.wait()
                else:
                    card.kill()
                    assert child.wait(timeout=60) in (0, 1)
                    said = _said(child)
                    assert "Traceback" not in said
                    if child.returncode == 1:  # the card went before it answered
                        assert "[100" in said, said
        finally:
            card.remove()
        pin = file.load().pins[0x81]
        assert pin.value in (value, target)
        assert pin.tries_left == 3 or (pin.tries_left == 2 and pin.value == value)
        landed = (
            "finished"
            if status == 0
            else f"{victim} killed: "
            + ("changed" if pin.value == target else "old PIN")
            + (", one try spent" if pin.tries_left == 2 else "")
        )
        outcomes[landed] = outcomes.get(landed, 0) + 1
        previous = landed
        if pin.value == target:
            continue
        card = _CardProcess(file.path)  # and doing it again finishes the change
        try:
            _card_ready()
            again = _change_pin(value, target)
            assert again.wait(timeout=60) == 0, _said(again)
        finally:
            card.remove()
        assert file.load().pins[0x81].value == target
        assert file.load().pins[0x81].tries_left == 3
    print(
        f"PIN-change kills over {ROUNDS} rounds: {outcomes}; the slowest card to be seen "
        f"after an insertion: {slowest[0]:.1f} s ({slowest[1]})"
    )
    assert sum(outcomes.values()) == ROUNDS


def test_kill_during_enrolment(tmp_path: Path) -> None:
    """The agent or the issuer (on PostgreSQL) dies at a random instant of an order; a
    killed issuer is started again at once, as a supervisor would. Whatever the instant,
    nothing is torn and the person's next try finishes the order with the same code."""
    rng = random.Random(20261122)
    outcomes: dict[str, int] = {}
    with postgres_cluster() as pg:
        db, ca = pg.new_database(), tmp_path / "ca"
        issuer = IssuerProcess(ca, db)
        try:
            whole = 0.0
            for n in range(-1, ROUNDS):  # round -1 measures how long a whole order takes
                data = tmp_path / f"agent{n}"
                _, code = issuer.order(PNR)
                argv = [
                    str(BIN / "eid-agent"),
                    "enrol",
                    "--data-dir",
                    str(data),
                    "--issuer",
                    issuer.url,
                    "--issuer-ca",
                    str(issuer.tls_cert),
                    "--lang",
                    "en",
                    "-v",
                    "--config",
                    str(tmp_path / "none.toml"),
                ]
                typed = f"{PNR}\n{code}\n{PASSWORD}\n{PASSWORD}\n"
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                assert child.stdin is not None
                child.stdin.write(typed)
                child.stdin.close()
                if n < 0:
                    began = time.monotonic()
                    assert child.wait(timeout=120) == 0, _said(child)
                    whole = time.monotonic() - began
                    continue
                victim, killed = rng.choice(["agent", "issuer"]), False
                try:
                    status: int | None = child.wait(timeout=rng.uniform(0.0, whole))
                except subprocess.TimeoutExpired:
                    status, killed = None, True
                    if victim == "agent":
                        child.kill()
                        child.wait()
                    else:
                        issuer.proc.kill()
                        issuer.stop()
                        issuer = IssuerProcess(ca, db, port=issuer.port)
                        status = child.wait(timeout=120)  # it may get through on a retry
                        said = _said(child)
                        assert "Traceback" not in said
                        assert status == 0 or "[100" in said, said
                store = CredentialStore(data)
                assert not any(isinstance(e, DamagedEntry) for e in store.entries())
                for info in store.credentials():
                    assert store.unlock(info.id, PASSWORD)  # complete, or not there at all
                if status == 0:
                    landed = "issuer killed, finished on a retry" if killed else "finished"
                    outcomes[landed] = outcomes.get(landed, 0) + 1
                    continue
                # the next try finishes the order, wherever the kill landed: an
                # enrolment the issuer issued to is resumed with the keys that waited
                again = subprocess.run(
                    argv, input=typed, capture_output=True, text=True, timeout=120, check=False
                )
                assert again.returncode == 0, again.stderr
                [info] = CredentialStore(data).credentials()
                assert CredentialStore(data).unlock(info.id, PASSWORD)
                assert not (data / "tokens" / "enrolment.pending").exists()
                how = (
                    "saved before the kill"
                    if "finished before" in again.stderr
                    else "resumed"
                    if "resumed after an interruption" in again.stderr
                    else "started again"
                )
                landed = f"{victim} killed, {how}"
                outcomes[landed] = outcomes.get(landed, 0) + 1
        finally:
            issuer.stop()
    print(f"enrolment kills over {ROUNDS} rounds: {outcomes}")
    assert sum(outcomes.values()) == ROUNDS


def test_kill_during_an_update(tmp_path: Path) -> None:
    rng = random.Random(1122)
    with repository(tmp_path) as repo:
        repo.publish("1.0.0")
        template = tmp_path / "template"
        install(repo, template)
        repo.publish("1.1.0")
        start = time.monotonic()
        probe = tmp_path / "probe"
        shutil.copytree(template, probe, symlinks=True)
        assert _apply(probe).returncode == 0
        whole = time.monotonic() - start
        landed = {"1.0.0": 0, "1.1.0": 0}
        for n in range(ROUNDS):
            data = tmp_path / f"round{n}"
            shutil.copytree(template, data, symlinks=True)
            program = data / "install/current/eid-agent"
            argv = [str(program), "update", "apply", "--data-dir", str(data)]
            _kill_after(argv, "", rng.uniform(0.0, whole))
            version = current_version(data)
            landed[version] += 1
            # whichever version is current starts healthy
            checked = run_agent_cli(
                "self-test", "--data-dir", str(data), program=data / "install/current/eid-agent"
            )
            assert checked.returncode == 0, checked.stderr
            # and doing it again finishes the update
            assert _apply(data).returncode == 0
            assert current_version(data) == "1.1.0"
    print(f"update kills over {ROUNDS} rounds (current afterwards): {landed}")


def _apply(data: Path) -> subprocess.CompletedProcess[str]:
    return run_agent_cli(
        "update", "apply", "--data-dir", str(data), program=data / "install/current/eid-agent"
    )
