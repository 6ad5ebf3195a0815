"""``eid-agent credentials``: list the person's BankIDs (on file, on card, on PKCS#11
tokens); import, export, remove, check and change the password of BankIDs on file. A thin
driver over ``agent.credentials.CredentialStore``. ``eid-agent tokens`` is the old name ("token" now
means a PKCS#11 token only)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.io import Io, answer
from eidcore.messages import MessageCode, Term

if TYPE_CHECKING:
    from agent.credentials import CredentialInfo, CredentialStore, DamagedEntry

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    from agent.cli.options import add_issuer_options

    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="list credentials")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--config", type=Path, help="settings naming PKCS#11 modules")
    imp = actions.add_parser("import", parents=[common], help="add a credential file")
    imp.add_argument("file", type=Path)
    exp = actions.add_parser("export", parents=[common], help="write a copy to move it")
    exp.add_argument("id")
    exp.add_argument("path", type=Path)
    rem = actions.add_parser("remove", parents=[common], help="delete a credential")
    rem.add_argument("id")
    rem.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    revoke = rem.add_mutually_exclusive_group()
    revoke.add_argument(
        "--revoke", action="store_true", help="have the issuer revoke it first (needs the password)"
    )
    revoke.add_argument("--no-revoke", action="store_true", help="do not offer to revoke")
    add_issuer_options(rem)
    pwd = actions.add_parser("passwd", parents=[common], help="change the password")
    pwd.add_argument("id")
    chk = actions.add_parser("check", parents=[common], help="test the password")
    chk.add_argument("id")


def run(io: Io, args: argparse.Namespace) -> int:
    from agent.credentials import CredentialStore
    from eidcore.paths import default_data_dir

    store = CredentialStore(args.data_dir or default_data_dir())
    now = dt.datetime.now(dt.UTC)
    if args.action == "list":
        return _list(io, store, now, as_json=args.json, config=args.config)
    if args.action == "import":
        info = store.import_file(args.file)
        io.stdout.write(f"{info.id}\n")
        return 0
    if args.action == "export":
        io.stdout.write(f"{store.export(args.id, args.path)}\n")
        return 0
    if args.action == "remove":
        from agent.cli.enrolment import offer_revocation

        offer_revocation(args, store, args.id, io.stdin, io.stderr, io.language)
        return _remove(io, store, args.id, confirmed=args.yes)
    if args.action == "check":
        store.ready_for_password(args.id)  # unknown, damaged or locked: said first
        store.unlock(args.id, _secret(io, Term.PROMPT_PASSWORD))
        io.stdout.write(io.term(Term.PASSWORD_OK) + "\n")
        return 0
    if args.action == "passwd":
        from eidcore.prompt import read_new_password

        store.ready_for_password(args.id)  # unknown, damaged or locked: said first
        old = _secret(io, Term.PROMPT_CURRENT_PASSWORD)
        new = read_new_password(
            io.term(Term.PROMPT_NEW_PASSWORD),
            io.term(Term.PROMPT_REPEAT_PASSWORD),
            io.stdin,
            io.stderr,
        )
        store.change_password(args.id, old, new, now)
        io.stdout.write(io.term(Term.PASSWORD_CHANGED) + "\n")
        return 0
    raise RuntimeError(f"unhandled action {args.action}")


def _secret(io: Io, prompt: Term) -> str:
    from eidcore.prompt import read_secret

    return read_secret(io.term(prompt), io.stdin, io.stderr)


def _remove(io: Io, store: CredentialStore, token_id: str, *, confirmed: bool) -> int:
    path = store.resolve(token_id)
    if not confirmed:
        info = next((c for c in store.credentials() if path.name.startswith(c.id)), None)
        question = io.term(
            Term.CONFIRM_REMOVE, token_id=path.stem, name=info.owner.name if info else "?"
        )
        said = answer(question, io.stdin, io.stderr)
        if not said:  # nothing reported was the silence: say what did not happen
            io.stderr.write(io.term(Term.CLI_NO_ANSWER if said is None else Term.CLI_NOT_REMOVED))
            io.stderr.write("\n")
            return 1
    store.remove(path.stem)
    io.stdout.write(io.term(Term.REMOVED) + "\n")
    return 0


def _tokens_now(config: Path | None, data_dir: Path) -> list[CredentialInfo]:
    """The BankIDs on PKCS#11 tokens now, through the modules the agent would load."""
    from agent.config import load_config
    from agent.credentials.pkcs11 import PROBE_CACHE, chain_authorities, find_modules, tokens_now
    from eidcore.paths import default_config_file

    settings = load_config(config or default_config_file())
    modules = find_modules(settings.pkcs11_modules, use_p11kit=settings.p11kit)
    return tokens_now(
        modules, chain_authorities(settings.intermediates, data_dir), probes=data_dir / PROBE_CACHE
    )


def _list(
    io: Io, store: CredentialStore, now: dt.datetime, *, as_json: bool, config: Path | None
) -> int:
    from agent.credentials import CredentialInfo
    from agent.notices import KIND_TERMS, STATE_TERMS

    entries: list[CredentialInfo | DamagedEntry] = [*store.entries()]
    if _pcscd_socket_exists():  # else no cards can be listed: skip pyscard's import cost
        from agent.credentials.card import cards_now

        entries += [card.info for card in cards_now()]
    entries += _tokens_now(config, store.directory.parent)
    if as_json:
        json.dump([_entry_json(e, now) for e in entries], io.stdout, indent=2)
        io.stdout.write("\n")
        return 0
    if not entries:
        io.tell(MessageCode.NO_BANKID_FOUND)
        return 0
    columns = (
        Term.COLUMN_ID,
        Term.COLUMN_KIND,
        Term.COLUMN_PERSONAL_NUMBER,
        Term.COLUMN_NAME,
        Term.COLUMN_ISSUER,
        Term.COLUMN_VALID_UNTIL,
        Term.COLUMN_STATE,
    )
    rows = [tuple(io.term(c) for c in columns)]
    for entry in entries:
        if isinstance(entry, CredentialInfo):
            state = io.term(STATE_TERMS[entry.state(now).value])
            if entry.development:
                state += f" ({io.term(Term.DEVELOPMENT)})"
            rows.append(
                (
                    entry.id,
                    io.term(KIND_TERMS[entry.kind.value]),
                    str(entry.owner.personal_number),
                    entry.owner.name,
                    entry.issuer,
                    entry.not_after.date().isoformat(),
                    state,
                )
            )
        else:
            damaged = io.term(Term.STATE_DAMAGED)
            rows.append((entry.file_name, io.term(Term.KIND_FILE), "", "", "", "", damaged))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        io.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        io.stdout.write("\n")
    return 0


def _pcscd_socket_exists() -> bool:
    if not sys.platform.startswith("linux"):
        return True  # other platforms: ask PC/SC itself
    return os.path.exists(os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm"))


def _entry_json(entry: CredentialInfo | DamagedEntry, now: dt.datetime) -> dict[str, object]:
    from agent.credentials import CredentialInfo
    from agent.notices import notice_for

    if not isinstance(entry, CredentialInfo):
        return {
            "file": entry.file_name,
            "state": "damaged",
            "messageCode": int(notice_for(entry.problem).code),
        }
    return {
        "id": entry.id,
        "kind": entry.kind.value,
        "personalNumber": str(entry.owner.personal_number),
        "name": entry.owner.name,
        "issuer": entry.issuer,
        "notBefore": entry.not_before.isoformat(),
        "notAfter": entry.not_after.isoformat(),
        "state": entry.state(now).value,
        "triesLeft": entry.tries_left,
        "development": entry.development,
    }
