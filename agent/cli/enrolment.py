"""``eid-agent enrol``: the terminal wizard for ordering a BankID from the bank's issuer
with an activation code, on file or on a PKCS#11 token, and the offer to revoke at the
issuer when a credential is removed. A thin driver over agent/enrol; every failure reaches
the person through the catalogue (agent/cli/main.py). ``eid-agent order`` is the old name
("order" alone now means an identification or signing order, ADR 0013)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path
from typing import TextIO

from cryptography import x509

from agent.cli.io import Io, answer
from agent.cli.options import add_issuer_options, issuer_connection
from agent.config import load_config
from agent.credentials import AmbiguousId, CredentialStore, KeyPurpose
from agent.enrol import IssuerConnection, enrol_with_ui, revoke_credential
from agent.ui import ConsoleUi
from eidcore.messages import Language, Term, catalogue
from eidcore.paths import default_config_file, default_data_dir
from eidcore.personal_number import PersonalNumber
from eidcore.prompt import NoInput, read_secret

__all__ = ["add_arguments", "offer_revocation", "run"]


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    add_issuer_options(parser)
    parser.add_argument(
        "--token",
        metavar="LABEL",
        nargs="?",
        const="",
        help="put the BankID on this PKCS#11 token (its label; alone: the only "
        "one) instead of in a file",
    )
    parser.add_argument(
        "--admin-key-file",
        type=Path,
        metavar="FILE",
        help="with --token on a PIV card: its management key, 48 hex "
        "digits (default: the key cards and YubiKeys ship with)",
    )


def _term(language: Language, term: Term, **values: object) -> str:
    return catalogue().term(term, language).format(**values)


def run(io: Io, args: argparse.Namespace) -> int:
    """The wizard: the same steps as the desktop's, through the console UI on stderr."""
    store = CredentialStore(args.data_dir or default_data_dir())
    stdin, stdout, stderr, language = io.stdin, io.stdout, io.stderr, io.language
    issuer = issuer_connection(args)
    if issuer is None:
        stderr.write(_term(language, Term.CLI_NO_ISSUER) + "\n")
        return 2
    if args.token is not None:
        return _enrol_on_token(args, issuer, store, stdin, stdout, stderr, language)
    ui = ConsoleUi(stdin, stderr, language)
    info = asyncio.run(enrol_with_ui(ui, issuer, store, lambda: dt.datetime.now(dt.UTC)))
    if info is None:
        return 1
    stdout.write(_term(language, Term.ENROL_DONE, name=info.owner.name, token_id=info.id) + "\n")
    return 0


def _enrol_on_token(
    args: argparse.Namespace,
    issuer: IssuerConnection,
    store: CredentialStore,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    language: Language,
) -> int:
    """``eid-agent enrol --token``: the number, the code and the token's PIN, then keys made
    on the token (agent/enrol/token.py)."""
    from agent.credentials.card import NoCard
    from agent.credentials.pkcs11 import (
        CannotEnrolHere,
        authorities,
        find_modules,
        pivtool,
        tokens_open,
    )
    from agent.enrol import enrol_on_piv, enrol_on_token

    settings = load_config(args.config or default_config_file())
    modules = find_modules(settings.pkcs11_modules, use_p11kit=settings.p11kit)
    data_dir = store.directory.parent
    known = authorities.chain_authorities(settings.intermediates, data_dir)

    def keep(chain: list[x509.Certificate]) -> None:  # an issuing CA the token has no room for
        authorities.learn(data_dir, chain)

    with tokens_open(modules, authorities=known, conf_dir=data_dir) as tokens:
        present = [t for t in tokens.present_tokens() if not args.token or t.label == args.token]
        if len(present) != 1:
            raise NoCard() if not present else AmbiguousId(args.token or "")
        card = present[0]
        admin = pivtool.DEFAULT_ADMIN_KEY
        if card.piv:  # before anything is typed
            if not pivtool.available():
                raise CannotEnrolHere(card.label)
            if args.admin_key_file is not None:
                admin = pivtool.read_admin_key(args.admin_key_file)
        stderr.write(_term(language, Term.PROMPT_PERSONAL_NUMBER))
        stderr.flush()
        line = stdin.readline()
        if not line:
            raise NoInput
        number = PersonalNumber.parse(line.strip())
        code = read_secret(_term(language, Term.PROMPT_ACTIVATION_CODE), stdin, stderr)
        pin = read_secret(
            _term(language, Term.PROMPT_TOKEN_PIN, label=present[0].label), stdin, stderr
        )
        if card.piv:
            info = asyncio.run(
                enrol_on_piv(issuer, tokens, card, number, code, pin, admin, keep_authorities=keep)
            )
        else:
            info = asyncio.run(
                enrol_on_token(issuer, tokens, card, number, code, pin, keep_authorities=keep)
            )
    stdout.write(
        _term(
            language,
            Term.ENROL_DONE_TOKEN,
            name=info.owner.name,
            token_id=info.id,
            label=present[0].label,
        )
        + "\n"
    )
    return 0


def offer_revocation(
    args: argparse.Namespace,
    store: CredentialStore,
    token_id: str,
    stdin: TextIO,
    stderr: TextIO,
    language: Language,
) -> bool:
    """Before a credential is removed: offer to have the issuer revoke it (``--revoke``
    says yes without asking). Development credentials have nobody to tell. Returns
    whether it was revoked.

    Raises: WrongPassword, CredentialLocked, IssuerUnreachable, EnrolmentRefused."""
    issuer = issuer_connection(args)
    path = store.resolve(token_id)
    info = next((c for c in store.credentials() if path.name.startswith(c.id)), None)
    if issuer is None or args.no_revoke or info is None or info.development:
        return False
    if not args.revoke:
        if args.yes:
            return False
        if not answer(_term(language, Term.CONFIRM_REVOKE), stdin, stderr):
            return False
    password = read_secret(_term(language, Term.PROMPT_PASSWORD), stdin, stderr)
    unlocked = store.unlock(info.id, password)
    purpose = KeyPurpose.IDENTIFICATION
    certificate = x509.load_der_x509_certificate(unlocked.certificate_chain(purpose)[0])
    asyncio.run(
        revoke_credential(
            issuer, certificate, lambda data: unlocked.sign(purpose, data), dt.datetime.now(dt.UTC)
        )
    )
    stderr.write(_term(language, Term.REVOKED) + "\n")
    return True
