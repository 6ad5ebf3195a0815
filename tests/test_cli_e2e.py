"""The installed commands, driven as a person (or a script) drives them. Real KDF."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
PASSWORD = "anna's password"
pytestmark = pytest.mark.slow


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    exe, *rest = args
    result = subprocess.run(
        [str(BIN / exe), *rest],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LANG": "C.UTF-8", **(env or {})},
    )
    if check is not None:
        assert result.returncode == check, (result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    out = root / "anna.eidtoken"
    run(
        "eid-issuer",
        "dev-credential",
        "--personal-number",
        "198112189876",
        "--name",
        "Anna Maria Andersson",
        "--ca-dir",
        str(root / "ca"),
        "--out",
        str(out),
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    return {"root": root, "file": out, "ca": root / "ca"}


def _data(world: dict[str, Path], name: str) -> Path:
    path = world["root"] / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def _import(world: dict[str, Path], data: Path) -> str:
    return run(
        "eid-agent", "credentials", "import", str(world["file"]), "--data-dir", str(data)
    ).stdout.strip()


def test_version() -> None:
    assert run("eid-agent", "--version").stdout.startswith("eid-agent 0.")


def test_list_import_check_and_the_lock(world: dict[str, Path]) -> None:
    data = _data(world, "d1")
    empty = run("eid-agent", "credentials", "list", "--data-dir", str(data), "--lang", "en")
    assert "[10010]" in empty.stderr  # "no BankID found"
    token_id = _import(world, data)
    listing = run(
        "eid-agent", "credentials", "list", "--data-dir", str(data), "--lang", "en"
    ).stdout
    assert token_id in listing and "Anna Maria Andersson" in listing
    assert "development BankID" in listing and "usable" in listing
    (entry,) = json.loads(
        run("eid-agent", "credentials", "list", "--json", "--data-dir", str(data)).stdout
    )
    assert entry["personalNumber"] == "198112189876" and entry["triesLeft"] == 5
    assert entry["issuer"] == "eid-agent Development Issuing CA"

    run(
        "eid-agent",
        "credentials",
        "check",
        token_id,
        "--data-dir",
        str(data),
        stdin=f"{PASSWORD}\n",
    )
    for left in (4, 3, 2, 1):
        wrong = run(
            "eid-agent",
            "credentials",
            "check",
            token_id,
            "--data-dir",
            str(data),
            "--lang",
            "sv",
            stdin="fel lösenord\n",
            check=1,
        )
        assert "[10016] Fel lösenord" in wrong.stderr
        assert f"{left} försök kvar" in wrong.stderr
    locked = run(
        "eid-agent",
        "credentials",
        "check",
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin="wrong again\n",
        check=1,
    )
    assert "[10033]" in locked.stderr
    again = run(
        "eid-agent",
        "credentials",
        "check",
        token_id,
        "--data-dir",
        str(data),
        stdin=f"{PASSWORD}\n",
        check=1,
    )
    assert "[10033]" in again.stderr  # locked for good, even with the right password
    listing = run(
        "eid-agent", "credentials", "list", "--data-dir", str(data), "--lang", "en"
    ).stdout
    assert "locked" in listing


def test_passwd(world: dict[str, Path]) -> None:
    data = _data(world, "d2")
    token_id = _import(world, data)
    differ = run(
        "eid-agent",
        "credentials",
        "passwd",
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin=f"{PASSWORD}\nnew password 1\nnew password 2\n",
        check=1,
    )
    assert "[10044]" in differ.stderr
    wrong = run(
        "eid-agent",
        "credentials",
        "passwd",
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin="not it at all\nnew password 1\nnew password 1\n",
        check=1,
    )
    assert "[10009]" in wrong.stderr and "locked: 4." in wrong.stderr
    short = run(
        "eid-agent",
        "credentials",
        "passwd",
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin=f"{PASSWORD}\nshort\nshort\n",
        check=1,
    )
    assert "[10043]" in short.stderr and "8 characters" in short.stderr
    run(
        "eid-agent",
        "credentials",
        "passwd",
        token_id,
        "--data-dir",
        str(data),
        stdin=f"{PASSWORD}\nnew password 1\nnew password 1\n",
    )
    run(
        "eid-agent",
        "credentials",
        "check",
        token_id,
        "--data-dir",
        str(data),
        stdin="new password 1\n",
    )


def test_export_remove_import(world: dict[str, Path]) -> None:
    data = _data(world, "d3")
    token_id = _import(world, data)
    target = world["root"] / "usb-stick"
    target.mkdir(exist_ok=True)
    written = Path(
        run(
            "eid-agent", "credentials", "export", token_id, str(target), "--data-dir", str(data)
        ).stdout.strip()
    )
    assert written.parent == target and oct(written.stat().st_mode)[-3:] == "600"
    bad = run(
        "eid-agent",
        "credentials",
        "export",
        token_id,
        "/nonexistent/x.eidtoken",
        "--data-dir",
        str(data),
        "--lang",
        "en",
        check=1,
    )
    assert "[10014]" in bad.stderr and "Traceback" not in bad.stderr
    refused = run(
        "eid-agent",
        "credentials",
        "remove",
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin="n\n",
        check=1,
    )
    assert "cannot be undone" in refused.stderr and "Nothing was removed." in refused.stderr
    # as </dev/null: no answer at all
    silent = run(
        "eid-agent",
        "credentials",
        "remove",
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin="",
        check=1,
    )
    assert silent.stderr.endswith(
        "No answer (the input ended), so nothing was removed. With --yes it is removed without "
        "asking.\n"
    ), silent.stderr
    run("eid-agent", "credentials", "remove", token_id, "--data-dir", str(data), stdin="y\n")
    assert (
        json.loads(
            run("eid-agent", "credentials", "list", "--json", "--data-dir", str(data)).stdout
        )
        == []
    )
    run("eid-agent", "credentials", "import", str(written), "--data-dir", str(data))
    dup = run(
        "eid-agent",
        "credentials",
        "import",
        str(written),
        "--data-dir",
        str(data),
        "--lang",
        "en",
        check=1,
    )
    assert "[10042]" in dup.stderr


@pytest.mark.parametrize("content", [b"", b"GIF89a", b'{"format": 1}'])
def test_import_garbage(world: dict[str, Path], content: bytes) -> None:
    data = _data(world, "d4")
    path = world["root"] / "garbage.eidtoken"
    path.write_bytes(content)
    bad = run(
        "eid-agent",
        "credentials",
        "import",
        str(path),
        "--data-dir",
        str(data),
        "--lang",
        "sv",
        check=1,
    )
    assert "[10013] Filen kunde inte öppnas" in bad.stderr


def test_damaged_store_file_is_listed_and_left_alone(world: dict[str, Path]) -> None:
    data = _data(world, "d5")
    _import(world, data)
    broken = data / "tokens" / "0123456789abcdef.eidtoken"
    broken.write_bytes(world["file"].read_bytes()[:-40])
    (entry_damaged, entry_ok) = json.loads(
        run("eid-agent", "credentials", "list", "--json", "--data-dir", str(data)).stdout
    )
    assert entry_damaged == {"file": broken.name, "state": "damaged", "messageCode": 10040}
    assert entry_ok["state"] == "usable"
    assert broken.read_bytes() == world["file"].read_bytes()[:-40]


@pytest.mark.parametrize("digits", [41, 4000, 5000])
def test_a_huge_number_in_a_file_is_damage_not_a_crash(world: dict[str, Path], digits: int) -> None:
    data = _data(world, "d5b")
    _import(world, data)
    hostile = world["root"] / "huge.eidtoken"
    text = world["file"].read_text()
    hostile.write_text(text.replace('"failedAttempts": 0', '"failedAttempts": ' + "7" * digits))
    bad = run("eid-agent", "credentials", "import", str(hostile), "--data-dir", str(data), check=1)
    assert "[10013]" in bad.stderr and "Traceback" not in bad.stderr
    planted = data / "tokens" / "fedcba9876543210.eidtoken"
    planted.write_bytes(hostile.read_bytes())
    listed = run("eid-agent", "credentials", "list", "--json", "--data-dir", str(data))
    entries = json.loads(listed.stdout)
    assert {"file": planted.name, "state": "damaged", "messageCode": 10040} in entries
    assert [e["state"] for e in entries].count("usable") == 1
    assert "Traceback" not in listed.stderr


def test_unknown_id(world: dict[str, Path]) -> None:
    data = _data(world, "d6")
    res = run(
        "eid-agent",
        "credentials",
        "passwd",
        "deadbeef",
        "--data-dir",
        str(data),
        "--lang",
        "en",
        check=1,
    )
    assert "[10047]" in res.stderr and "Password" not in res.stderr  # asked nothing
    check = run(
        "eid-agent",
        "credentials",
        "check",
        "deadbeef",
        "--data-dir",
        str(data),
        "--lang",
        "en",
        check=1,
    )
    assert "[10047]" in check.stderr and "Password" not in check.stderr


@pytest.mark.parametrize("action", ["check", "passwd"])
def test_a_locked_bankid_is_said_before_a_password_is_asked(
    world: dict[str, Path], action: str
) -> None:
    data = _data(world, f"d6-{action}")
    token_id = _import(world, data)
    for _ in range(5):
        run(
            "eid-agent",
            "credentials",
            "check",
            token_id,
            "--data-dir",
            str(data),
            "--lang",
            "en",
            stdin="wrong password\n",
            check=1,
        )
    res = run(
        "eid-agent",
        "credentials",
        action,
        token_id,
        "--data-dir",
        str(data),
        "--lang",
        "en",
        stdin=f"{PASSWORD}\n",
        check=1,
    )
    assert "[10033]" in res.stderr and "assword" not in res.stderr.split("[10033]")[0]


@pytest.mark.parametrize("pnr", ["8112189876", "19811218-9876", "811218-9876", "19811218 9876"])
def test_issuer_refuses_wrong_format_before_the_ca(world: dict[str, Path], pnr: str) -> None:
    ca_dir = world["root"] / f"ca-{abs(hash(pnr))}"
    res = run(
        "eid-issuer",
        "dev-credential",
        "--personal-number",
        pnr,
        "--name",
        "X Y",
        "--ca-dir",
        str(ca_dir),
        "--out",
        str(world["root"] / "x.eidtoken"),
        env={"LANG": "en_GB.UTF-8"},
        check=1,
    )
    assert "[10034]" in res.stderr and "12 digits" in res.stderr
    assert not ca_dir.exists()  # the CA was never touched


def test_secrets_never_reach_the_output(world: dict[str, Path]) -> None:
    data = _data(world, "d7")
    token_id = _import(world, data)
    outputs = []
    for stdin in (f"{PASSWORD}\n", "Wrong-Secret-42\n"):
        res = run(
            "eid-agent",
            "-vv",
            "credentials",
            "check",
            token_id,
            "--data-dir",
            str(data),
            stdin=stdin,
            check=None,
        )
        outputs.append(res.stdout + res.stderr)
    res = run(
        "eid-agent",
        "-vv",
        "credentials",
        "passwd",
        token_id,
        "--data-dir",
        str(data),
        stdin=f"{PASSWORD}\nBrand-New-Secret\nBrand-New-Secret\n",
    )
    outputs.append(res.stdout + res.stderr)
    joined = "\n".join(outputs)
    assert "INFO" in joined  # the log was on
    for secret in (PASSWORD, "Wrong-Secret-42", "Brand-New-Secret"):
        assert secret not in joined


def test_everyday_commands_do_not_load_the_http_client() -> None:
    """`tokens list` and its kind are benchmarked (< 300 ms): the message table they all
    load must not pull in aiohttp (~190 ms here) — it once did, through the issuer's
    errors."""
    probe = (
        "import sys; import agent.cli, agent.notices, agent.credentials; "
        "sys.exit('aiohttp' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
