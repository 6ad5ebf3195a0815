"""Per-user locations. The only importer of platformdirs.

Every command takes ``--data-dir``; when it is absent the platform's per-user data folder
is used, so tests and demos never touch a person's real credentials.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import platformdirs

__all__ = [
    "APP_NAME",
    "default_config_file",
    "default_data_dir",
    "default_issuer_dir",
    "runtime_dir",
    "tokens_dir",
    "user_bin_dir",
    "xdg_applications_dir",
    "xdg_autostart_dir",
    "xdg_config_dir",
]

APP_NAME = "eid-agent"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def xdg_applications_dir() -> Path:
    """Where desktop entries go (``$XDG_DATA_HOME/applications``)."""
    return Path(platformdirs.user_data_dir()) / "applications"


def xdg_config_dir() -> Path:
    """``$XDG_CONFIG_HOME`` itself (where ``mimeapps.list`` lives)."""
    return Path(platformdirs.user_config_dir())


def xdg_autostart_dir() -> Path:
    """Where autostart entries go (``$XDG_CONFIG_HOME/autostart``)."""
    return Path(platformdirs.user_config_dir()) / "autostart"


def runtime_dir() -> Path:
    """The per-user runtime folder (``$XDG_RUNTIME_DIR/eid-agent``; a per-user folder
    under the temporary folder where a session has none): sockets that live as long as
    the agent. The fallback is made owner-only by whoever creates a socket there, which
    refuses a folder another user made first."""
    with warnings.catch_warnings():  # the fallback is expected, not news for a person
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))


def tokens_dir(data_dir: Path) -> Path:
    """Where file credentials live inside a data dir."""
    return data_dir / "tokens"


def default_issuer_dir() -> Path:
    """The issuer's own per-user folder (development CA, local database)."""
    return Path(platformdirs.user_data_dir("eid-issuer", appauthor=False))


def user_bin_dir() -> Path:
    """Where a per-user install puts its command (``~/.local/bin``, which Debian's and
    most distributions' login shells put on the PATH)."""
    return Path(os.environ.get("XDG_BIN_HOME") or Path.home() / ".local" / "bin")
