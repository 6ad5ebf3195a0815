"""``eid-agent``: the command line. A thin driver: it parses, calls the store, and renders
outcomes through the catalogue. Exit status 0 = done, 1 = a failure the person was told
about, 2 = the command line itself was wrong.

Heavy imports happen inside the commands so that ``--version`` and ``tokens list`` start
quickly (listing 50 credentials is benchmarked at well under 300 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from agent import __version__
from agent.cli.io import Io
from agent.cli.link import (
    add_door_options,
    add_link_options,
    door_settings,
    link_options,
    order_settings,
)
from eidcore.logline import log_to, one_line
from eidcore.messages import (
    Language,
    MessageCode,
    Severity,
    Term,
    catalogue,
    language_from_env,
)
from eidcore.messages.cli import language_in, localise, speaking

log = logging.getLogger("agent.cli")


def _common(*, on_subcommand: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand. On subcommands their defaults
    are suppressed, or argparse would overwrite a value given before the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if on_subcommand else None
    common.add_argument(
        "--data-dir",
        type=Path,
        help="where credentials are kept (default: the per-user data folder)",
        default=default,
    )
    common.add_argument(
        "--lang",
        choices=[lang.value for lang in Language],
        default=default,
        help="the language to speak (default: the locale's)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="log more (-vv for debug); secrets are never logged",
        default=argparse.SUPPRESS if on_subcommand else 0,
    )
    return common


def add_issuer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer", metavar="URL", help="the bank's issuer (default: config)")
    parser.add_argument(
        "--issuer-ca",
        metavar="PEM",
        help="trust only this certificate for the issuer (development)",
    )
    parser.add_argument(
        "--proxy",
        metavar="URL",
        help="proxy for the issuer, or 'none' (default: config, then HTTPS_PROXY/NO_PROXY)",
    )
    parser.add_argument("--config", type=Path, help="settings file (default: per-user)")


def _parser() -> argparse.ArgumentParser:
    common = _common(on_subcommand=True)
    parser = argparse.ArgumentParser(
        prog="eid-agent",
        parents=[_common(on_subcommand=False)],
        description="E-identification agent.",
    )
    parser.add_argument("--version", action="version", version=f"eid-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[common], help="start the agent")
    run.add_argument("--port", type=int, default=None, help="bridge port (default 24721)")
    run.add_argument(
        "--ui",
        choices=["console", "desktop", "auto"],
        default="auto",
        help="where to ask the person (default: auto, the desktop when there is one)",
    )
    run.add_argument("--order-ttl", type=int, default=180, metavar="SECONDS", help="order lifetime")
    run.add_argument(
        "--allow-http-localhost",
        action="store_true",
        help="development: accept http://localhost and loopback origins",
    )
    run.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN_OR_DOMAIN",
        help="only these may start orders (repeatable; enterprise setting)",
    )
    run.add_argument(
        "--block-origin",
        action="append",
        default=[],
        metavar="ORIGIN_OR_DOMAIN",
        help="these may never start orders (repeatable)",
    )
    run.add_argument(
        "--no-bridge",
        action="store_true",
        help="open no port: serve eid-agent:// links (order relays) only",
    )
    add_door_options(run)
    run.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="log here, owner-only, rotated at 1 MiB keeping 3 (default: stderr)",
    )
    add_issuer_options(run)
    # Set by the previous version when it hands over after an update; not for people.
    run.add_argument("--take-over", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--update-tick", type=float, default=30.0, help=argparse.SUPPRESS)
    run.add_argument("--health-timeout", type=float, default=30.0, help=argparse.SUPPRESS)

    update = commands.add_parser("update", parents=[common], help="updates of this agent")
    update_actions = update.add_subparsers(dest="action", required=True)
    for name, text in (
        ("check", "look for an update now"),
        ("apply", "update now, if there is one"),
    ):
        action = update_actions.add_parser(name, parents=[common], help=text)
        action.add_argument(
            "--deadline",
            type=float,
            metavar="SECONDS",
            help="give up on the repository after this long, in this process (default: 300)",
        )
    update_status = update_actions.add_parser(
        "status", parents=[common], help="versions and update state"
    )
    update_status.add_argument("--json", action="store_true", help="machine-readable output")

    install = commands.add_parser(
        "install",
        parents=[common],
        help="install (or repair) this agent for this user from an update repository",
    )
    install.add_argument(
        "--repository",
        required=True,
        metavar="URL",
        help="the update repository (its metadata/ and targets/ folders)",
    )
    install.add_argument(
        "--trust",
        required=True,
        type=Path,
        metavar="ROOT_JSON",
        help="the repository's root metadata, pinned as the trust anchor",
    )
    install.add_argument(
        "--bundle", type=Path, help="install this unpacked bundle instead of downloading one"
    )
    install.add_argument(
        "--archive",
        type=Path,
        help="the release archive the bundle came from: kept so that the first update is a "
        "patch, and checked against the repository",
    )
    install.add_argument("--installer", type=Path, help=argparse.SUPPRESS)  # the .run itself
    install.add_argument(
        "--force", action="store_true", help="install even an older version than the one present"
    )
    install.add_argument(
        "--desktop",
        action="store_true",
        help="also add the menu and autostart entries and ~/.local/bin/eid-agent",
    )
    install.add_argument(
        "--start",
        action="store_true",
        help="then (re)start the installed agent and wait until it listens",
    )
    uninstall = commands.add_parser(
        "uninstall",
        parents=[common],
        help="stop the agent and remove it; your BankIDs and settings stay unless asked",
    )
    uninstall.add_argument(
        "--delete-credentials",
        action="store_true",
        help="also delete your BankIDs on file and your settings",
    )
    uninstall.add_argument("--config", type=Path, help="the settings file (default: per-user)")
    commands.add_parser("self-test", parents=[common], help="check this installation works")

    doctor = commands.add_parser(
        "doctor", parents=[common], help="a report for support: no secrets, no personal numbers"
    )
    doctor.add_argument("--port", type=int, default=None, help="the bridge port to look at")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    add_issuer_options(doctor)

    desktop = commands.add_parser(
        "desktop", parents=[common], help="menu and autostart entries for this user"
    )
    desktop_actions = desktop.add_subparsers(dest="action", required=True)
    desktop_install = desktop_actions.add_parser(
        "install", parents=[common], help="add the entries"
    )
    add_link_options(desktop_install)
    desktop_install.add_argument(
        "--link-only",
        action="store_true",
        help="only the eid-agent:// handler (no menu or autostart)",
    )
    desktop_uninstall = desktop_actions.add_parser(
        "uninstall", parents=[common], help="remove the entries"
    )
    desktop_uninstall.add_argument(
        "--link-only",
        action="store_true",
        help="only the eid-agent:// handler; the agent keeps running",
    )

    card = commands.add_parser("card", parents=[common], help="BankID on card: PINs and PUK")
    card_actions = card.add_subparsers(dest="action", required=True)
    status = card_actions.add_parser("status", parents=[common], help="readers, card, PINs")
    status.add_argument("--reader", help="the reader's name (default: the one with a card)")
    for name, text in (
        ("change-pin", "change a PIN"),
        ("unblock-pin", "unblock a PIN with the PUK"),
    ):
        action = card_actions.add_parser(name, parents=[common], help=text)
        action.add_argument(
            "--pin",
            required=True,
            choices=["identification", "signature", "token"],
            help="which PIN: a BankID card has one for identification and one for signing; "
            "a PKCS#11 token (PIV card, USB key) has one",
        )
        action.add_argument("--reader", help="the reader's name (default: the one with a card)")
        action.add_argument(
            "--token",
            help="with --pin token: the BankID's id (eid-agent "
            "tokens list), when there is more than one",
        )
        action.add_argument("--config", type=Path, help="settings naming PKCS#11 modules")
        if name == "unblock-pin":
            action.add_argument(
                "--keep",
                action="store_true",
                help="unblock and keep the current PIN instead of setting a new one",
            )

    order = commands.add_parser(
        "order", parents=[common], help="order a BankID on file with an activation code"
    )
    add_issuer_options(order)
    order.add_argument(
        "--token",
        metavar="LABEL",
        nargs="?",
        const="",
        help="put the BankID on this PKCS#11 token (its label; alone: the only "
        "one) instead of in a file",
    )
    order.add_argument(
        "--admin-key-file",
        type=Path,
        metavar="FILE",
        help="with --token on a PIV card: its management key, 48 hex "
        "digits (default: the key cards and YubiKeys ship with)",
    )

    link = commands.add_parser(
        "open", parents=[common], help="carry out the order an eid-agent:// link names"
    )
    link.add_argument("url", help="eid-agent:///?autostarttoken=…&server=https://…")
    add_link_options(link)

    messages = commands.add_parser("messages", parents=[common], help="show the catalogue")
    messages.add_argument("code", nargs="?", type=int, help="one message code")

    tokens = commands.add_parser("tokens", parents=[common], help="manage BankIDs on file")
    actions = tokens.add_subparsers(dest="action", required=True)
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
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the parser speaks the person's language before it has read --lang itself
    language = language_in(argv, os.environ)
    with speaking(language):
        parser = _parser()
        localise(parser, language)
        args = parser.parse_args(argv)
    io = Io(stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr, language)
    _configure_logging(args.verbose, io.stderr)
    try:
        if args.command == "messages":
            return _messages(io, args.code)
        if args.command == "run":
            return _run(io, args, argv)
        if args.command == "order":
            from agent.cli.enrolment import order_command
            from agent.tokens import TokenStore
            from eidcore.paths import default_data_dir

            store = TokenStore(args.data_dir or default_data_dir())
            return order_command(args, store, io.stdin, io.stdout, io.stderr, io.language)
        if args.command == "open":
            from agent.cli.link import open_command

            return open_command(io, args)
        if args.command == "desktop":
            return _desktop(io, args)
        if args.command == "doctor":
            return _doctor(io, args)
        if args.command in ("update", "install", "self-test", "uninstall"):
            return _updates(io, args)
        if args.command == "card":
            from agent.cli.card import card_command

            return card_command(io.stdin, io.stdout, io.stderr, io.language, args)
        from agent.cli.tokens import tokens_command

        return tokens_command(io, args)
    except BrokenPipeError:
        raise  # the reader went away: nothing to tell it (eidcore/entry.py)
    except Exception as exc:
        from agent.notices import notice_for

        notice = notice_for(exc)
        if notice.code is MessageCode.INTERNAL_ERROR:
            # one line for the person's terminal; the traceback with -vv (never by default)
            log.error("unexpected failure: %s", one_line(exc))
            log.debug("unexpected failure", exc_info=True)
        else:
            log.info("%s: %s", type(exc).__name__, exc)
        io.tell(notice.code, **notice.params)
        return 1


def _run(io: Io, args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    import asyncio

    from agent.app.daemon import PortTaken, RunConfig, SelfTestFailed, UpdateSettings, serve
    from agent.app.instance import AlreadyRunning
    from agent.bridge import OriginPolicy
    from agent.bridge.security import DEFAULT_PORT
    from agent.cli.enrolment import issuer_connection
    from agent.config import load_config
    from eidcore.paths import default_config_file, default_data_dir

    if not 0 < (args.port or DEFAULT_PORT) < 65536 or args.order_ttl <= 0:
        io.stderr.write(io.term(Term.CLI_BAD_PORT_OR_TTL) + "\n")
        return 2
    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)  # a daemon says what it is doing
    if args.log_file is not None:
        from agent.cli.logfile import log_to_file

        log_to_file(args.log_file)
    settings_file = args.config or default_config_file()
    agent_config = load_config(settings_file)
    settings = agent_config.settings
    language = io.language
    if settings.language and not args.lang:  # the command line wins, then the settings
        language = Language(settings.language)
    data_dir = args.data_dir or default_data_dir()
    config = RunConfig(
        data_dir=data_dir,
        port=args.port or DEFAULT_PORT,
        language=language,
        session_language=Language(args.lang) if args.lang else language_from_env(os.environ),
        ui=args.ui,
        bridge=not args.no_bridge,
        policy=OriginPolicy.of(
            allow_http_localhost=args.allow_http_localhost,
            allow=args.allow_origin,
            block=args.block_origin,
        ),
        orders=order_settings(args, agent_config, data_dir, dt.timedelta(seconds=args.order_ttl)),
        door=door_settings(args, agent_config),
        updates=UpdateSettings(
            argv=tuple(argv if argv is not None else sys.argv[1:]),
            take_over=args.take_over,
            tick=args.update_tick,
            health_timeout=args.health_timeout,
        ),
        issuer=issuer_connection(args),
        settings_file=settings_file,
        settings=settings,
        fixed_proxy=bool(args.proxy),
    )
    try:
        return asyncio.run(serve(config, io.stdin, io.stdout))
    except SelfTestFailed:
        io.stderr.write(io.term(Term.CLI_SELF_TEST_FAILED) + "\n")
        return 3
    except AlreadyRunning as exc:
        io.stderr.write(io.term(Term.CLI_ALREADY_RUNNING, pid=exc.pid or "?") + "\n")
        return 1
    except PortTaken as exc:
        io.stderr.write(io.term(Term.CLI_PORT_TAKEN, port=exc.port) + "\n")
        return 1


def _doctor(io: Io, args: argparse.Namespace) -> int:
    from agent.bridge.security import DEFAULT_PORT
    from agent.cli.enrolment import issuer_connection
    from agent.config import load_config
    from agent.desktop.doctor import run_doctor
    from agent.tokens.pkcs11 import find_modules
    from agent.updater.install import Layout
    from eidcore.paths import default_config_file, default_data_dir

    data_dir = args.data_dir or default_data_dir()
    connection = issuer_connection(args)
    issuer = (connection.url, connection.ca_file, connection.proxy) if connection else None
    source = Layout.in_data_dir(data_dir).source()
    settings = load_config(args.config or default_config_file())
    modules = find_modules(settings.pkcs11_modules, use_p11kit=settings.p11kit)
    report, status = run_doctor(
        data_dir,
        args.port or DEFAULT_PORT,
        issuer,
        source.base_url if source else None,
        io.language,
        as_json=args.json,
        modules=modules,
    )
    io.stdout.write(report)
    return status


def _desktop(io: Io, args: argparse.Namespace) -> int:
    from agent.cli.desktopentry import install_entries, uninstall_entries
    from eidcore.paths import default_data_dir

    if args.action == "install":
        extra = ["--data-dir", str(args.data_dir.resolve())] if args.data_dir else []
        paths = install_entries(
            args.data_dir or default_data_dir(),
            extra,
            link_extra=link_options(args),
            link_only=args.link_only,
        )
    elif args.link_only:
        paths = uninstall_entries(link_only=True)
    else:
        from agent.app.instance import stop_running

        paths = uninstall_entries()
        stopped = stop_running(args.data_dir or default_data_dir())  # no listener left
        if stopped is not None:
            io.stderr.write(io.term(Term.CLI_STOPPED_AGENT, pid=stopped) + "\n")
    for path in paths:
        io.stdout.write(f"{path}\n")
    return 0


def _updates(io: Io, args: argparse.Namespace) -> int:
    from agent.cli import update as updatecli
    from eidcore.paths import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    if args.command == "self-test":
        return updatecli.self_test_command(data_dir, io.stdout, io.stderr)
    if args.command == "uninstall":
        from agent.cli.setup import uninstall_command

        return uninstall_command(
            data_dir,
            delete_credentials=args.delete_credentials,
            config=args.config,
            out=io.stdout,
            err=io.stderr,
            language=io.language,
        )
    if args.command == "install":
        status = updatecli.install_command(
            data_dir,
            repository=args.repository,
            trust=args.trust,
            bundle=args.bundle,
            archive=args.archive,
            installer=args.installer,
            force=args.force,
            out=io.stdout,
            err=io.stderr,
            language=io.language,
        )
        if status != 0 or not (args.desktop or args.start):
            return status
        from agent.cli.setup import finish_install

        return finish_install(
            data_dir,
            desktop=args.desktop,
            start=args.start,
            out=io.stdout,
            err=io.stderr,
            language=io.language,
        )
    return updatecli.update_command(
        data_dir,
        args.action,
        as_json=getattr(args, "json", False),
        out=io.stdout,
        err=io.stderr,
        language=io.language,
        deadline=getattr(args, "deadline", None),
    )


def _configure_logging(verbosity: int, stream: TextIO) -> None:
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    log_to(stream, level)


def _messages(io: Io, code: int | None) -> int:
    entries = list(catalogue())
    if code is not None:
        try:
            entries = [catalogue().entry(MessageCode(code))]
        except ValueError:
            io.stderr.write(io.term(Term.CLI_NO_MESSAGE, code=code) + "\n")
            return 2
    severities = {
        Severity.INFO: Term.SEVERITY_INFO,
        Severity.WARNING: Term.SEVERITY_WARNING,
        Severity.ERROR: Term.SEVERITY_ERROR,
    }
    for entry in entries:
        # as a person would read it: the code filled in, a PIN named, the rest of what
        # is filled in at the time shown as "…" (never a raw {placeholder})
        values: dict[str, object] = {
            name: Term.TOKEN_PIN if name == "pin" else "…" for name in entry.placeholders - {"code"}
        }
        text = catalogue().render(entry.code, io.language, **values)
        io.stdout.write(
            f"{int(entry.code)}  {io.term(severities[entry.severity])}  {text.title}\n"
            f"    {text.body}\n\n"
        )
    return 0


def entry() -> NoReturn:
    """The console script: ``main`` without a traceback on Ctrl-C or a closed pipe."""
    from eidcore import entry as _entry

    _entry.run(main)
