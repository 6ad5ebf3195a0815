"""The rp kit's side of the order relay: a small client for the relay's relying-party API,
and the guard against the relay attack.

**The relay attack**: whoever can make a person open an autostart link for an order the
attacker started would, if the site logged in the session that started the order as soon
as ``collect`` said ``complete``, get the attacker's browser logged in as the person.
BankID's advice, and this module's rule: a login completes only when the page's *own*
browser comes back through ``returnUrl`` carrying a one-time value bound to the session
that started the order. The agent opens the return URL in the browser of the person who
signed; an attacker's session never sees it, and the person's browser carries a value
bound to another session, which is refused.

    login = RelayLogin("https://shop.example/eid/return")
    return_url = login.start(session_id, now)          # pass as returnUrl to /rp/v6.0/auth
    login.bind(session_id, started["orderRef"])        # the order the relay started
    ...                                                # the page opens the link
    login.returned(session_id, request.query["eidReturn"], now)   # on GET /eid/return
    if login.may_log_in(session_id, relay.collect(ref)): ...      # both, or no login

A return value is spent by its first use, whoever presents it; the order it was for can
then no longer log anyone in (a leaked URL presented by the wrong browser, then by the
right one, is refused both times). ``may_log_in`` holds only for the order the session
bound last: a completed older order of the same session is not a login.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import ssl
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eidcore import returnurl, strictjson
from rp.connections import KeptConnections
from rp.errors import UnknownNonce
from rp.nonces import NonceStore

__all__ = ["RETURN_PARAMETER", "RelayApi", "RelayApiError", "RelayLogin"]

RETURN_PARAMETER = "eidReturn"
MAX_SESSIONS = 10_000


@dataclass
class _Login:
    """One session's latest order: its return value, the relay's reference for it, and
    whether this session's own browser came back with the value."""

    value: str
    order_ref: str | None = None
    returned: bool = False


class RelayLogin:
    """Which sessions came back through their return URL. In memory, bounded; a site with
    several processes keeps the same facts in its session store instead."""

    def __init__(self, return_url: str, *, nonces: NonceStore | None = None) -> None:
        try:
            returnurl.check(return_url)
        except returnurl.ReturnUrlRefused as exc:
            raise ValueError(f"the return URL must be {exc}") from None
        if urllib.parse.urlsplit(return_url).query:
            raise ValueError("the return URL has no query: the one-time value goes there")
        self._base = return_url
        self._nonces = nonces or NonceStore()
        self._logins: OrderedDict[str, _Login] = OrderedDict()

    def start(self, session: str, now: dt.datetime) -> str:
        """The ``returnUrl`` for an order this session starts (the relay must have the
        URL's path registered for the party). It replaces the session's earlier order."""
        value = self._nonces.issue(session, now)
        self._logins.pop(session, None)
        self._logins[session] = _Login(value)
        while len(self._logins) > MAX_SESSIONS:
            self._logins.popitem(last=False)
        return f"{self._base}?{urllib.parse.urlencode({RETURN_PARAMETER: value})}"

    def bind(self, session: str, order_ref: str) -> None:
        """The relay's ``orderRef`` for the order ``start`` made the return URL for."""
        login = self._logins.get(session)
        if login is not None:
            login.order_ref = order_ref

    def returned(self, session: str, value: str, now: dt.datetime) -> None:
        """The browser of ``session`` came back with ``value``, which is spent now
        whatever the answer. Raises: UnknownNonce (another session's value: the relay
        attack; or one of this session's older orders), ReusedNonce, ExpiredNonce."""
        self._nonces.consume(value, session, now)
        login = self._logins.get(session)
        if login is None or not hmac.compare_digest(login.value, value):
            raise UnknownNonce()
        login.returned = True

    def may_log_in(self, session: str, collected: Mapping[str, Any]) -> bool:
        """Only both: the relay says the session's bound order is complete, and this
        session's own browser came back with its value. ``collect`` alone never logs a
        session in."""
        login = self._logins.get(session)
        return (
            login is not None
            and login.returned
            and login.order_ref is not None
            and collected.get("orderRef") == login.order_ref
            and collected.get("status") == "complete"
        )


class RelayApiError(Exception):
    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(f"{status} {code}: {details}")
        self.status, self.code, self.details = status, code, details


class RelayApi:
    """The relay's relying-party API — BankID's v6.0 — with the site's TLS client
    certificate, blocking: call it from a thread in an async server. Each thread keeps
    its connection to the relay alive between calls (a mutual-TLS handshake per call was
    most of what a login through eid-oidc cost: ``./dev bench --only oidc``). Any BankID
    v6.0 client library does the same; this one is here so a Python site needs nothing
    else."""

    def __init__(
        self,
        base_url: str,
        certificate: tuple[Path, Path],
        *,
        ca_file: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        """``certificate``: the site's client certificate and key (PEM files), as the
        relay registered it for the party. Raises: ValueError, OSError, ssl.SSLError."""
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the relay is reached over https (with a client certificate)")
        self._url = base_url.rstrip("/") + "/rp/v6.0"
        tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        tls.load_cert_chain(str(certificate[0]), str(certificate[1]))
        self._timeout = timeout
        self._kept = KeptConnections(tls)

    def auth(self, end_user_ip: str, **fields: Any) -> dict[str, Any]:
        return self._post("/auth", {"endUserIp": end_user_ip, **fields})

    def sign(self, end_user_ip: str, user_visible_data: str, **fields: Any) -> dict[str, Any]:
        body = {"endUserIp": end_user_ip, "userVisibleData": user_visible_data, **fields}
        return self._post("/sign", body)

    def collect(self, order_ref: str) -> dict[str, Any]:
        return self._post("/collect", {"orderRef": order_ref})

    def cancel(self, order_ref: str) -> dict[str, Any]:
        return self._post("/cancel", {"orderRef": order_ref})

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Raises: RelayApiError, OSError (unreachable)."""
        status, raw = self._kept.post(
            self._url + path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
            timeout=self._timeout,
            limit=1 << 20,
        )
        if status != 200:
            try:
                error = strictjson.loads(raw[: 1 << 16])
            except ValueError:
                error = {}
            if not isinstance(error, dict):
                error = {}
            raise RelayApiError(
                status, str(error.get("errorCode", "")), str(error.get("details", ""))
            )
        try:
            answer = strictjson.loads(raw)
        except ValueError:
            raise RelayApiError(200, "invalidAnswer", "not JSON") from None
        if not isinstance(answer, dict):
            raise RelayApiError(200, "invalidAnswer", "not a JSON object")
        return answer
