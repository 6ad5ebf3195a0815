"""Ctrl-C at every prompt and a reader that goes away: one line and the right status,
never a traceback. The installed commands, as a person runs them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.agent_process import BIN
from tests.conftest import ANNA, FAST_KDF, MakeToken

pytestmark = pytest.mark.slow


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_at_prompt(
    args: list[str], prompt: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Start the command, wait until it shows ``prompt`` on stderr, press Ctrl-C."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LANG": "C.UTF-8", **(env or {})},
        # as a terminal starts a foreground command: a suite started from a script in the
        # background (`./dev test &`, no job control) runs with SIGINT ignored, which its
        # children inherit; Ctrl-C then never reaches the command and the prompt ends at
        # the closed stdin instead (status 1, "no input"): seen, and reproduced so
        preexec_fn=_sigint_as_in_a_terminal,
    )
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + 30
    while prompt.encode() not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, f"ended before the prompt: {seen!r}"
            seen += chunk
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=30)
    return process.returncode, (seen + rest).decode()


@pytest.fixture
def data_dir(tmp_path: Path, make_token: MakeToken) -> tuple[Path, str]:
    from agent.credentials import CredentialStore

    store = CredentialStore(tmp_path / "data", kdf=FAST_KDF)
    return tmp_path / "data", store.add(make_token(ANNA)).id


@pytest.mark.parametrize(
    ("command", "prompt"),
    [
        (["credentials", "check", "{id}"], "Password"),
        (["credentials", "passwd", "{id}"], "Current password"),
        (["credentials", "remove", "{id}"], "Remove"),
        (
            ["enrol", "--issuer", "https://127.0.0.1:9", "--config", "{data}/none.toml"],
            "ersonal number",
        ),
    ],
)
@pytest.mark.parametrize("lang", ["en", "sv"])
def test_ctrl_c_at_a_prompt_is_one_line_and_status_130(
    data_dir: tuple[Path, str], command: list[str], prompt: str, lang: str
) -> None:
    folder, token_id = data_dir
    args = [
        str(BIN / "eid-agent"),
        *(c.format(id=token_id, data=folder) for c in command),
        "--data-dir",
        str(folder),
        "--lang",
        lang,
    ]
    if lang == "sv":
        prompt = {
            "Password": "Lösenord",
            "Current password": "Nuvarande lösenord",
            "Remove": "Ta bort",
            "ersonal number": "Personnummer",
        }[prompt]
    status, stderr = _interrupt_at_prompt(args, prompt)
    assert status == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.rstrip().splitlines()[-1] == ("Avbrutet." if lang == "sv" else "Cancelled.")


def test_ctrl_c_at_the_issuers_password_prompt(tmp_path: Path) -> None:
    status, stderr = _interrupt_at_prompt(
        [
            str(BIN / "eid-issuer"),
            "dev-credential",
            "--personal-number",
            "198112189876",
            "--name",
            "Anna Andersson",
            "--ca-dir",
            str(tmp_path / "ca"),
            "--out",
            str(tmp_path / "a.eidtoken"),
        ],
        "Password",
    )
    assert status == 130 and "Traceback" not in stderr, stderr


@pytest.mark.parametrize(
    "command",
    [
        ["eid-agent", "messages"],
        ["eid-agent", "messages", "--lang", "sv"],
        ["eid-agent", "credentials", "list", "--data-dir", "{data}"],
        ["eid-agent", "--help"],
        ["eid-agent", "credentials", "list", "--json", "--data-dir", "{data}"],
        ["eid-issuer", "--help"],
        ["eid-release", "--help"],
        ["eid-rp", "--help"],
    ],
)
def test_a_closed_pipe_ends_quietly(data_dir: tuple[Path, str], command: list[str]) -> None:
    folder, _ = data_dir
    exe, *rest = command
    args = [str(BIN / exe), *(c.format(data=folder) for c in rest)]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "LANG": "C.UTF-8"}
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(1)  # like `| head -c 1`: read a little, then go away
    process.stdout.close()
    stderr = process.stderr.read().decode()
    status = process.wait(timeout=30)
    assert stderr == "", stderr
    assert status in (0, 141)  # 0 when everything fitted the pipe before it closed
