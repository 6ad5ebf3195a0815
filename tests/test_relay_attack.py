"""The relay attack, end to end: an attacker's session starts an order and gets the person
to open its link; the person's agent completes it; the attacker's session is not logged
in, and the person's browser, coming back with the attacker's return value, is not logged
in as anyone either. A session whose own browser comes back is."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from pathlib import Path

import pytest

import rp
from rp import RETURN_PARAMETER, RelayApi, RelayLogin
from tests import door_kit
from tests.relay_kit import RETURN
from tests.relay_process_kit import RelayProcess

pytestmark = pytest.mark.slow

IP = "203.0.113.9"


def _returned_value(said: str) -> str:
    """The one-time value in the return URL the agent sent the person's browser to."""
    found = re.search(r"Go back to the website: (\S+)", said)
    assert found, said
    url = urllib.parse.urlsplit(found.group(1))
    assert f"{url.scheme}://{url.netloc}{url.path}" == RETURN
    return urllib.parse.parse_qs(url.query)[RETURN_PARAMETER][0]


def test_the_relay_attack_logs_no_one_in(
    relay: RelayProcess,
    person: Path,
    tls: tuple[Path, Path],
) -> None:
    api = RelayApi(f"https://127.0.0.1:{relay.port}", relay.certificate, ca_file=tls[0])
    login = RelayLogin(RETURN)
    now = dt.datetime.now(dt.UTC)
    server = f"https://127.0.0.1:{relay.port}"
    # the attacker's browser starts an order and sends the link to the person
    started = api.auth(IP, returnUrl=login.start("attacker-session", now))
    login.bind("attacker-session", started["orderRef"])
    done = door_kit.open_link(door_kit.link(started["autoStartToken"], server), person, tls)
    assert done.returncode == 0, done.stderr
    value = _returned_value(done.stderr)
    collected = api.collect(started["orderRef"])
    assert collected["status"] == "complete"  # the relay did its part: the person signed
    # the person's browser comes back, with a value bound to the attacker's session
    with pytest.raises(rp.UnknownNonce):
        login.returned("person-session", value, now)
    assert not login.may_log_in("attacker-session", collected)  # collect alone: no login
    assert not login.may_log_in("person-session", collected)
    # the URL leaks (a shared link, a proxy's log) and the attacker's browser opens it: the
    # value was spent when the person's browser presented it
    with pytest.raises(rp.ReusedNonce):
        login.returned("attacker-session", value, now)
    assert not login.may_log_in("attacker-session", collected)
    # the person's own order, the person's own browser: logged in
    started = api.auth(IP, returnUrl=login.start("person-session", now))
    login.bind("person-session", started["orderRef"])
    done = door_kit.open_link(door_kit.link(started["autoStartToken"], server), person, tls)
    login.returned("person-session", _returned_value(done.stderr), now)
    assert login.may_log_in("person-session", api.collect(started["orderRef"]))
    with pytest.raises(rp.ReusedNonce):  # and the value works once
        login.returned("person-session", _returned_value(done.stderr), now)
