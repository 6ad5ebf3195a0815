"""Nonces for relying parties: random, single use, short-lived, bound to the session that
asked for them. Pure apart from the randomness, which is an input."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rp.errors import ExpiredNonce, ReusedNonce, UnknownNonce

NONCE_BYTES = 32
NONCE_LIFETIME = dt.timedelta(minutes=5)
MAX_OUTSTANDING = 10_000  # oldest are forgotten first: memory stays bounded
_USED_KEPT = 10_000


@dataclass(frozen=True)
class _Issued:
    binding: str
    expires: dt.datetime


class NonceStore:
    def __init__(
        self,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        lifetime: dt.timedelta = NONCE_LIFETIME,
    ) -> None:
        self._random = random_bytes
        self._lifetime = lifetime
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        self._used: OrderedDict[str, None] = OrderedDict()

    def issue(self, binding: str, now: dt.datetime) -> str:
        """A fresh nonce (base64url, no padding) for the session ``binding``."""
        nonce = base64.urlsafe_b64encode(self._random(NONCE_BYTES)).rstrip(b"=").decode()
        self._issued[nonce] = _Issued(binding, now + self._lifetime)
        while len(self._issued) > MAX_OUTSTANDING:
            self._issued.popitem(last=False)
        return nonce

    def consume(self, nonce: str, binding: str, now: dt.datetime) -> None:
        """Accept ``nonce`` once, for the session it was issued to. Its first use spends
        it, whoever presents it: a value refused for another session cannot be tried
        again by the session it was issued to (a leaked return URL opened by an attacker
        after the person's browser was refused logged the attacker in as the person).

        Raises:
            ReusedNonce, ExpiredNonce, UnknownNonce (also for another session's nonce).
        """
        if nonce in self._used:
            raise ReusedNonce()
        issued = self._issued.pop(nonce, None)
        if issued is None:
            raise UnknownNonce()
        self._used[nonce] = None
        while len(self._used) > _USED_KEPT:
            self._used.popitem(last=False)
        if not hmac.compare_digest(issued.binding, binding):
            raise UnknownNonce()
        if now >= issued.expires:
            raise ExpiredNonce()
