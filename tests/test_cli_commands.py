"""The command line's plumbing: each command a module (``add_arguments``, ``run``), loaded
only when given; the old names ``order`` and ``tokens`` still work for one release and say
so."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.main import COMMANDS, chosen, main, parser


def test_every_command_module_has_the_two_functions() -> None:
    for name, command in COMMANDS.items():
        module = command.load()
        assert callable(module.add_arguments) and callable(module.run), name
        assert {"add_arguments", "run"} <= set(module.__all__), name  # type: ignore[attr-defined]


def test_old_names_lead_to_new_ones_and_are_not_listed() -> None:
    renamed = {n: c.renamed_to for n, c in COMMANDS.items() if c.renamed_to}
    assert renamed == {"order": "enrol", "tokens": "credentials"}
    for old, new in renamed.items():
        assert COMMANDS[old].module == COMMANDS[new].module
    shown = parser("").format_help()
    assert "enrol" in shown and "credentials" in shown
    assert "order" not in shown.split("positional arguments")[0]  # not in the usage's list
    assert " tokens " not in shown


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["credentials", "list"], "credentials"),
        (["--data-dir", "run", "credentials", "list"], "credentials"),  # a folder named run
        (["--lang", "sv", "-v", "enrol"], "enrol"),
        (["--lang=sv", "card", "status"], "card"),
        (["-vv", "--version"], None),
        ([], None),
    ],
)
def test_the_command_word_is_found_past_the_options(argv: list[str], word: str | None) -> None:
    assert chosen(argv) == word


def test_a_command_loads_only_its_module() -> None:
    """``credentials list`` must start quickly: no other command's module is imported."""
    code = (
        "import sys\n"
        "from agent.cli.main import main\n"
        "main(['credentials', 'list', '--json', '--data-dir', sys.argv[1]])\n"
        "print(sorted(m for m in sys.modules if m.startswith('agent.cli.')), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "/nonexistent/eid-agent-data"],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = ast.literal_eval(result.stderr.strip().splitlines()[-1])
    others = {c.module for n, c in COMMANDS.items() if c.module != "agent.cli.credentials"}
    assert not set(loaded) & others, loaded
    assert json.loads(result.stdout) == []


def test_old_name_says_so_and_runs_the_new_command(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["--lang", "en", "tokens", "list", "--json", "--data-dir", str(tmp_path)],
        stdout=out,
        stderr=err,
    )
    assert status == 0 and json.loads(out.getvalue()) == []
    assert '"tokens" is now "credentials"' in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["--lang", "sv", "order", "--config", str(tmp_path / "none.toml")],
        stdout=out,
        stderr=err,
    )
    said = err.getvalue().splitlines()
    assert status == 2 and said[0].startswith('eid-agent: "order" heter nu "enrol"')
    assert "utfärdare" in said[1]  # then enrol's own answer: no issuer configured


def test_the_new_names_say_nothing_more(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["credentials", "list", "--json", "--data-dir", str(tmp_path)]
    assert main(argv, stdout=out, stderr=err) == 0
    assert err.getvalue() == ""
