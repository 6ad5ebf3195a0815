"""The message catalogue: stable codes with a title and body in Swedish and English.

Everything a person is told comes from here, so a support call can start from a code.
The texts live in ``catalogue.toml`` (easy for translators to edit); the codes in
``codes.py`` (easy for code to name). Loading checks that the two agree.
"""

from __future__ import annotations

import enum
import functools
import string
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from eidcore.messages.codes import Action, MessageCode, Severity

__all__ = [
    "Action",
    "Catalogue",
    "Entry",
    "Language",
    "MessageCode",
    "Severity",
    "Term",
    "Text",
    "catalogue",
    "language_from_env",
]


class Language(enum.StrEnum):
    SV = "sv"
    EN = "en"


class Term(enum.StrEnum):
    """Words filled into placeholders, translated by the catalogue."""

    IDENTIFICATION_PIN = "identification_pin"
    SIGNATURE_PIN = "signature_pin"
    TOKEN_PIN = "token_pin"
    CLI_KEEP_NOT_ON_TOKENS = "cli_keep_not_on_tokens"
    PROMPT_TOKEN_PIN = "prompt_token_pin"
    ENROL_DONE_TOKEN = "enrol_done_token"
    PUK = "puk"
    STATE_USABLE = "state_usable"
    STATE_EXPIRED = "state_expired"
    STATE_NOT_YET_VALID = "state_notYetValid"
    STATE_LOCKED = "state_locked"
    STATE_DAMAGED = "state_damaged"
    DEVELOPMENT = "development"
    KIND_FILE = "kind_file"
    KIND_CARD = "kind_card"
    KIND_TOKEN = "kind_token"
    COLUMN_ID = "column_id"
    COLUMN_KIND = "column_kind"
    COLUMN_PERSONAL_NUMBER = "column_personal_number"
    COLUMN_NAME = "column_name"
    COLUMN_ISSUER = "column_issuer"
    COLUMN_VALID_UNTIL = "column_valid_until"
    COLUMN_STATE = "column_state"
    PROMPT_PASSWORD = "prompt_password"
    PROMPT_CURRENT_PASSWORD = "prompt_current_password"
    PROMPT_NEW_PASSWORD = "prompt_new_password"
    PROMPT_REPEAT_PASSWORD = "prompt_repeat_password"
    CONFIRM_REMOVE = "confirm_remove"
    REMOVED = "removed"
    PASSWORD_OK = "password_ok"
    PASSWORD_CHANGED = "password_changed"
    CONSOLE_WANTS_AUTH = "console_wants_auth"
    CONSOLE_WANTS_SIGN = "console_wants_sign"
    CONSOLE_WANTS_AUTH_FOR = "console_wants_auth_for"
    CONSOLE_RETURN_TO = "console_return_to"
    CONSOLE_WANTS_SIGN_FOR = "console_wants_sign_for"
    CONSOLE_CHOOSE = "console_choose"
    CONSOLE_USING = "console_using"
    CONSOLE_PASSWORD_FOR = "console_password_for"
    CONSOLE_CLOSED = "console_closed"
    CONSOLE_CANCELLED = "console_cancelled"
    CONSOLE_PIN_FOR = "console_pin_for"
    CONSOLE_TRIES_LEFT = "console_tries_left"
    CONSOLE_PIN_PAD = "console_pin_pad"
    CONSOLE_PIN_PAD_NOW = "console_pin_pad_now"
    PROMPT_CURRENT_PIN = "prompt_current_pin"
    CONSOLE_CHANGE_PIN = "console_change_pin"
    CONSOLE_UNBLOCK_PIN = "console_unblock_pin"
    PROMPT_NEW_PIN = "prompt_new_pin"
    PROMPT_REPEAT_PIN = "prompt_repeat_pin"
    PROMPT_PUK = "prompt_puk"
    PIN_CHANGED = "pin_changed"
    PIN_UNBLOCKED = "pin_unblocked"
    PROMPT_PERSONAL_NUMBER = "prompt_personal_number"
    PROMPT_ACTIVATION_CODE = "prompt_activation_code"
    ORDER_PASSWORD_RULE = "order_password_rule"
    ORDER_CONTACTING = "order_contacting"
    ENROL_DONE = "enrol_done"
    CONFIRM_REVOKE = "confirm_revoke"
    REVOKED = "revoked"
    DIALOG_WANTS_AUTH = "dialog_wants_auth"
    DIALOG_WANTS_SIGN = "dialog_wants_sign"
    DIALOG_WANTS_AUTH_FOR = "dialog_wants_auth_for"
    DIALOG_WANTS_SIGN_FOR = "dialog_wants_sign_for"
    CALL_YOU_CALLED = "call_you_called"
    CALL_THEY_CALLED = "call_they_called"
    WAITING_PASSWORD = "waiting_password"
    WAITING_PIN = "waiting_pin"
    WAITING_NONE = "waiting_none"
    WAITING_NO_RELAY = "waiting_no_relay"
    WAITING_CHOOSE = "waiting_choose"
    WAITING_AUTH = "waiting_auth"
    WAITING_SIGN = "waiting_sign"
    WAITING_TAKE = "waiting_take"
    WAITING_NO_RELAY_DESKTOP = "waiting_no_relay_desktop"
    TRAY_WAITING = "tray_waiting"
    DIALOG_PASSWORD_LABEL = "dialog_password_label"
    DIALOG_PIN_LABEL = "dialog_pin_label"
    DIALOG_PIN_PAD = "dialog_pin_pad"
    TRAY_ENROL_TOKEN = "tray_enrol_token"
    ORDER_TOKEN_NOTE = "order_token_note"
    ORDER_TOKEN_REPLACES = "order_token_replaces"
    DIALOG_OK = "dialog_ok"
    DIALOG_CONTINUE = "dialog_continue"
    DIALOG_CANCEL = "dialog_cancel"
    DIALOG_LATER = "dialog_later"
    DIALOG_CLOSE = "dialog_close"
    DIALOG_TITLE = "dialog_title"
    MANAGER_CHANGE_PASSWORD = "manager_change_password"
    MANAGER_CHANGE_PIN = "manager_change_pin"
    MANAGER_UNBLOCK_PIN = "manager_unblock_pin"
    TRAY_SETTINGS = "tray_settings"
    SETTINGS_GENERAL = "settings_general"
    SETTINGS_LANGUAGE = "settings_language"
    SETTINGS_LANGUAGE_AUTO = "settings_language_auto"
    SETTINGS_NETWORK = "settings_network"
    SETTINGS_PROXY_NONE = "settings_proxy_none"
    SETTINGS_PROXY_SYSTEM = "settings_proxy_system"
    SETTINGS_PROXY_MANUAL = "settings_proxy_manual"
    SETTINGS_PROXY_URL = "settings_proxy_url"
    SETTINGS_PROXY_USER = "settings_proxy_user"
    SETTINGS_PROXY_PASSWORD = "settings_proxy_password"
    SETTINGS_PROXY_PASSWORD_NOTE = "settings_proxy_password_note"
    SETTINGS_SITES = "settings_sites"
    SETTINGS_ALLOW = "settings_allow"
    SETTINGS_BLOCK = "settings_block"
    SETTINGS_UPDATES = "settings_updates"
    SETTINGS_UPDATE_INFO = "settings_update_info"
    SETTINGS_UPDATE_UNMANAGED = "settings_update_unmanaged"
    SETTINGS_ADVANCED = "settings_advanced"
    SETTINGS_ADVANCED_NOTE = "settings_advanced_note"
    SETTINGS_RAISE = "settings_raise"
    RTL_NOTE = "rtl_note"
    UPDATE_STATE_UNMANAGED = "update_state_unmanaged"
    UPDATE_STATE_NOT_CHECKED = "update_state_notChecked"
    UPDATE_STATE_PHASE_OUT = "update_state_phaseOut"
    UPDATE_STATE_BLOCKED = "update_state_blocked"
    UPDATE_STATE_OFFLINE_TOO_LONG = "update_state_offlineTooLong"
    UPDATE_STATE_CHECK_FAILED = "update_state_checkFailed"
    UPDATE_STATE_UP_TO_DATE = "update_state_upToDate"
    UPDATE_STATE_AVAILABLE = "update_state_available"
    UPDATE_STATE_RECOMMENDED = "update_state_recommended"
    UPDATE_STATE_REQUIRED = "update_state_required"
    UPDATE_STATE_UPDATING = "update_state_updating"
    UPDATE_STATE_MANUAL_UPDATE_NEEDED = "update_state_manualUpdateNeeded"
    CARD_READER = "card_reader"
    CARD_CARD = "card_card"
    CARD_SERIAL = "card_serial"
    CARD_OWNER = "card_owner"
    CARD_VALID_UNTIL = "card_valid_until"
    CARD_PIN_BLOCKED = "card_pin_blocked"
    CARD_TRIES_LEFT = "card_tries_left"
    CONSOLE_NEXT_REQUEST = "console_next_request"
    SETTINGS_PLAIN = "settings_plain"
    DIALOG_SAVE = "dialog_save"
    MANAGER_DETAILS = "manager_details"
    MANAGER_REMOVE = "manager_remove"
    MANAGER_VALID_UNTIL = "manager_valid_until"
    REMOVE_QUESTION = "remove_question"
    REMOVE_REVOKE = "remove_revoke"
    DIALOG_REMOVE = "dialog_remove"
    DETAILS_TEXT = "details_text"
    DIAGNOSTICS_COPY = "diagnostics_copy"
    DIAGNOSTICS_COPIED = "diagnostics_copied"
    MANAGER_CLOSE = "manager_close"
    DIALOG_LOOKALIKE = "dialog_lookalike"
    DIALOG_NEXT_REQUEST = "dialog_next_request"
    DIALOG_SHOW_REQUEST = "dialog_show_request"
    TRAY_STATUS = "tray_status"
    TRAY_MY_BANKIDS = "tray_my_bankids"
    TRAY_ENROL = "tray_enrol"
    TRAY_CHECK_UPDATES = "tray_check_updates"
    TRAY_DIAGNOSTICS = "tray_diagnostics"
    TRAY_ABOUT = "tray_about"
    TRAY_QUIT = "tray_quit"
    ABOUT_TEXT = "about_text"
    NO_UPDATES_HERE = "no_updates_here"
    UPDATE_PAGE = "update_page"
    UPDATE_HOW = "update_how"
    DOCTOR_VERSIONS = "doctor_versions"
    DOCTOR_DATA_FOLDER = "doctor_data_folder"
    DOCTOR_PERMISSIONS = "doctor_permissions"
    DOCTOR_CREDENTIALS = "doctor_credentials"
    DOCTOR_CARD_READERS = "doctor_card_readers"
    DOCTOR_BRIDGE = "doctor_bridge"
    DOCTOR_UPDATE_REPOSITORY = "doctor_update_repository"
    DOCTOR_ISSUER = "doctor_issuer"
    DOCTOR_CLOCK = "doctor_clock"
    DOCTOR_VERSIONS_DETAIL = "doctor_versions_detail"
    DOCTOR_WRITABLE = "doctor_writable"
    DOCTOR_NOT_WRITABLE = "doctor_not_writable"
    DOCTOR_REASON_DENIED = "doctor_reason_denied"
    DOCTOR_REASON_READ_ONLY = "doctor_reason_read_only"
    DOCTOR_REASON_FULL = "doctor_reason_full"
    DOCTOR_REASON_SYSTEM = "doctor_reason_system"
    DOCTOR_REASON_CERTIFICATE = "doctor_reason_certificate"
    DOCTOR_REASON_PROXY = "doctor_reason_proxy"
    DOCTOR_REASON_TIMEOUT = "doctor_reason_timeout"
    DOCTOR_REASON_CONNECT = "doctor_reason_connect"
    DOCTOR_REASON_PROTOCOL = "doctor_reason_protocol"
    DOCTOR_VIA_PROXY = "doctor_via_proxy"
    DOCTOR_NO_PROXY = "doctor_no_proxy"
    DOCTOR_ANOTHER_USERS = "doctor_another_users"
    DOCTOR_OPEN_TO_OTHERS = "doctor_open_to_others"
    DOCTOR_OWNER_ONLY = "doctor_owner_only"
    DOCTOR_CREDENTIALS_DETAIL = "doctor_credentials_detail"
    DOCTOR_PCSCD_SILENT = "doctor_pcscd_silent"
    DOCTOR_NO_READER = "doctor_no_reader"
    DOCTOR_READERS = "doctor_readers"
    DOCTOR_TOKENS = "doctor_tokens"
    DOCTOR_NO_MODULES = "doctor_no_modules"
    DOCTOR_MODULES = "doctor_modules"
    DOCTOR_MODULE_PROBLEM = "doctor_module_problem"
    DOCTOR_MODULE_MISSING = "doctor_module_missing"
    DOCTOR_MODULE_CRASHED = "doctor_module_crashed"
    DOCTOR_MODULE_HUNG = "doctor_module_hung"
    DOCTOR_MODULE_UNLOADABLE = "doctor_module_unloadable"
    DOCTOR_UNKNOWN = "doctor_unknown"
    DOCTOR_NOT_LISTENING = "doctor_not_listening"
    DOCTOR_PORT_TAKEN = "doctor_port_taken"
    DOCTOR_BRIDGE_OK = "doctor_bridge_ok"
    DOCTOR_BRIDGE_ELSEWHERE = "doctor_bridge_elsewhere"
    DOCTOR_UNREACHABLE = "doctor_unreachable"
    DOCTOR_ANSWERS = "doctor_answers"
    DOCTOR_SKEW = "doctor_skew"
    DOCTOR_NO_REPOSITORY = "doctor_no_repository"
    DOCTOR_NO_ISSUER = "doctor_no_issuer"
    CLI_BAD_PORT_OR_TTL = "cli_bad_port_or_ttl"
    CLI_SELF_TEST_FAILED = "cli_self_test_failed"
    CLI_ALREADY_RUNNING = "cli_already_running"
    CLI_PORT_TAKEN = "cli_port_taken"
    CLI_STOPPED_AGENT = "cli_stopped_agent"
    CLI_WOULD_NOT_STOP = "cli_would_not_stop"
    CLI_NO_MESSAGE = "cli_no_message"
    CLI_RENAMED = "cli_renamed"
    CLI_NOT_REMOVED = "cli_not_removed"
    CLI_NO_ANSWER = "cli_no_answer"
    CLI_NO_ISSUER = "cli_no_issuer"
    UPDATE_APPLIED = "update_applied"
    UPDATE_NOT_APPLIED = "update_not_applied"
    UPDATE_WAITS_FOR_ORDER = "update_waits_for_order"
    STATUS_VERSION = "status_version"
    STATUS_STATE = "status_state"
    STATUS_REPOSITORY = "status_repository"
    STATUS_INSTALLED = "status_installed"
    STATUS_LAST_CHECK = "status_last_check"
    STATUS_NEXT_CHECK = "status_next_check"
    STATUS_TARGET = "status_target"
    STATUS_FAILURES = "status_failures"
    STATUS_NONE = "status_none"
    INSTALL_DONE = "install_done"
    INSTALL_FAILED = "install_failed"
    INSTALL_NOT_SIGNED = "install_not_signed"
    INSTALL_UNCHECKED = "install_unchecked"
    SETUP_NOT_OURS = "setup_not_ours"
    SETUP_RUNNING = "setup_running"
    SETUP_ENDED_AT_ONCE = "setup_ended_at_once"
    SETUP_NOT_LISTENING = "setup_not_listening"
    SETUP_REMOVED = "setup_removed"
    SETUP_KEPT = "setup_kept"
    SETUP_NOT_ON_PATH = "setup_not_on_path"
    SEVERITY_INFO = "severity_info"
    SEVERITY_WARNING = "severity_warning"
    SEVERITY_ERROR = "severity_error"
    RELAY_LISTENING = "relay_listening"
    RELAY_BAD_CONFIG = "relay_bad_config"
    RELAY_DATABASE = "relay_database"
    RELAY_TLS_PAIR = "relay_tls_pair"
    RELAY_TLS_UNREADABLE = "relay_tls_unreadable"
    RELAY_CANNOT_LISTEN = "relay_cannot_listen"
    RELAY_CLIENT_CA = "relay_client_ca"
    RELAY_NEW_PARTY_CERT = "relay_new_party_cert"
    RELAY_BAD_PARTY_CERT = "relay_bad_party_cert"
    RELAY_OCSP_OPTIONAL = "relay_ocsp_optional"
    OIDC_TITLE = "oidc_title"
    OIDC_TITLE_SIGN = "oidc_title_sign"
    OIDC_LOGIN_LEAD = "oidc_login_lead"
    OIDC_SIGN_LEAD = "oidc_sign_lead"
    OIDC_START = "oidc_start"
    OIDC_START_SIGN = "oidc_start_sign"
    OIDC_OPEN = "oidc_open"
    OIDC_HINT = "oidc_hint"
    OIDC_START_HINT = "oidc_start_hint"
    OIDC_CANCEL = "oidc_cancel"
    OIDC_BACK = "oidc_back"
    OIDC_ERROR_TITLE = "oidc_error_title"
    OIDC_BAD_REQUEST = "oidc_bad_request"
    OIDC_OTHER_BROWSER = "oidc_other_browser"
    OIDC_UNKNOWN_LOGIN = "oidc_unknown_login"
    OIDC_LOGGED_OUT = "oidc_logged_out"
    OIDC_DONE = "oidc_done"
    OIDC_LISTENING = "oidc_listening"
    OIDC_BAD_CONFIG = "oidc_bad_config"
    OIDC_DATABASE = "oidc_database"
    OIDC_TLS_PAIR = "oidc_tls_pair"
    OIDC_TLS_UNREADABLE = "oidc_tls_unreadable"
    OIDC_CANNOT_LISTEN = "oidc_cannot_listen"
    OIDC_NEW_CLIENT = "oidc_new_client"
    OIDC_KEY_ROTATED = "oidc_key_rotated"
    OIDC_RELAY_UNUSABLE = "oidc_relay_unusable"


@dataclass(frozen=True)
class Text:
    title: str
    body: str
    # The body for a terminal, where there is no OK to click; None: the body as it is.
    console: str | None = None


@dataclass(frozen=True)
class Entry:
    code: MessageCode
    severity: Severity
    action: Action
    texts: Mapping[Language, Text]

    @property
    def placeholders(self) -> frozenset[str]:
        names: set[str] = set()
        for text in self.texts.values():
            for part in (text.title, text.body, text.console or ""):
                names.update(f for _, f, _, _ in string.Formatter().parse(part) if f)
        return frozenset(names)


class Catalogue:
    def __init__(
        self,
        entries: Mapping[MessageCode, Entry],
        terms: Mapping[Language, Mapping[Term, str]],
    ) -> None:
        self._entries = dict(entries)
        self._terms = terms

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.code))

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, code: MessageCode) -> Entry:
        return self._entries[code]

    def term(self, term: Term, language: Language) -> str:
        return self._terms[language][term]

    def render(self, code: MessageCode, language: Language, **params: object) -> Text:
        """The entry's text with its placeholders filled; ``{code}`` is always available.

        Raises:
            TypeError: a placeholder has no value, or a value has no placeholder — both are
                bugs in the caller, never something a person caused.
        """
        entry = self._entries[code]
        wanted = entry.placeholders - {"code"}
        if set(params) != wanted:
            raise TypeError(f"message {int(code)} takes {sorted(wanted)}, got {sorted(params)}")
        values = {
            name: self._terms[language][value] if isinstance(value, Term) else value
            for name, value in params.items()
        }
        values["code"] = int(code)
        text = entry.texts[language]
        return Text(
            title=_capitalise(text.title.format(**values)),
            body=_capitalise(text.body.format(**values)),
            console=_capitalise(text.console.format(**values)) if text.console else None,
        )


def _capitalise(text: str) -> str:
    # A term like "legitimerings-PIN" may open a sentence; lower-case starts look broken.
    return text[:1].upper() + text[1:]


@functools.cache
def catalogue() -> Catalogue:
    """The shipped catalogue, loaded once.

    Raises:
        RuntimeError: the shipped file disagrees with the codes (a packaging bug).
    """
    # A plain path, not importlib.resources: the file sits beside this module in every
    # form we ship, and importlib.resources costs ~9 ms of imports on every command.
    raw = tomllib.loads(Path(__file__).with_name("catalogue.toml").read_text("utf-8"))
    return _parse(raw)


def _parse(raw: Mapping[str, object]) -> Catalogue:
    entries: dict[MessageCode, Entry] = {}
    terms: dict[Language, dict[Term, str]] = {}
    for key, value in raw.items():
        if not isinstance(value, Mapping):
            raise RuntimeError(f"catalogue: {key!r} is not a table")
        if key == "terms":
            for language in Language:
                table = value[language.value]
                terms[language] = {term: str(table[term.value]) for term in Term}
            continue
        code = MessageCode(int(key))
        if value["key"] != code.name:
            raise RuntimeError(f"catalogue: {key} is {value['key']}, codes.py says {code.name}")
        entries[code] = Entry(
            code=code,
            severity=Severity(value["severity"]),
            action=Action(value["action"]),
            texts={language: _text(key, value[language.value]) for language in Language},
        )
        if len({t.console is None for t in entries[code].texts.values()}) != 1:
            raise RuntimeError(f"catalogue: {key} has a console text in one language only")
    missing = set(MessageCode) - set(entries)
    if missing:
        raise RuntimeError(f"catalogue: no text for {sorted(missing)}")
    return Catalogue(entries, terms)


def _text(key: str, table: Mapping[str, object]) -> Text:
    console = table.get("console")
    return Text(
        title=str(table["title"]),
        body=str(table["body"]),
        console=str(console) if console is not None else None,
    )


def language_from_env(environ: Mapping[str, str]) -> Language:
    """Swedish when the person's locale is Swedish, English otherwise (POSIX precedence)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return Language.SV if value.lower().startswith("sv") else Language.EN
    return Language.EN
