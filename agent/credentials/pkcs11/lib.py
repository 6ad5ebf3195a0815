"""The one importer of python-pkcs11: one loaded PKCS#11 module, read and used as plain
values (``contents``) and the project's typed errors.

A module is initialised with ``C_Initialize(NULL)`` (python-pkcs11 passes no locking
callbacks), which promises it one caller at a time: every call here holds the module's
lock. python-pkcs11 releases the GIL inside each call, so a slow card or a PIN pad in an
executor thread never stalls the agent's loop (ADR 0015) — all but ``C_Finalize``, which
this module therefore makes itself (``_finalize``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import pkcs11
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import SignMixin

from agent.credentials.card.errors import (
    CardError,
    CardRemoved,
    PinBlocked,
    PinFormat,
    PinRef,
    PukBlocked,
    WrongCurrentPin,
    WrongPin,
    WrongPuk,
)
from agent.credentials.pkcs11.contents import (
    SO_PIN_FINAL_TRY,
    SO_PIN_LOCKED,
    TOKEN_INITIALIZED,
    CertObject,
    KeyObject,
    TokenContents,
    TokenRef,
    pin_state,
    so_pin_locked,
)
from agent.credentials.pkcs11.errors import ModuleUnusable, PinEntryCancelled, TokenFault
from agent.credentials.pkcs11.opensc import opensc_unblocks
from eidcore import xmlsig

log = logging.getLogger(__name__)

MAX_OBJECTS = 64  # per class: a token offering more is read only this far
MAX_CERT_BYTES = 16384  # a BankID certificate is under 1 kB
MAX_LABEL = 64
LEAKED_SESSIONS_LIMIT = 8  # see _login_failed
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")  # the named curve's OID, DER
# DigestInfo for SHA-256 (RFC 8017 9.2): CKM_RSA_PKCS signs it with the digest appended
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
REMOVAL_LOOKS, REMOVAL_PAUSE = 10, 0.1  # after an error: is the token still there?

_GONE = (
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.SlotIDInvalid,
    p11.DeviceError,
    p11.NoSuchToken,
)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = "".join(c for c in str(value) if c.isprintable()).strip()
    return text[:MAX_LABEL]


def _attr(obj: object, attribute: Attribute, default: object) -> object:
    try:
        return obj[attribute]  # type: ignore[index]
    except (p11.PKCS11Error, UnicodeDecodeError, KeyError, TypeError):
        return default


class Module:
    def __init__(self, path: str) -> None:
        """Raises: ModuleUnusable."""
        self.path = path
        self._lock = threading.Lock()
        self._leaked = 0
        self._slots: dict[int, pkcs11.Slot] | None = None  # as last listed
        self._always: dict[tuple[TokenRef, bytes], bool] = {}  # key → always-authenticate
        try:
            self._lib = pkcs11.lib(path)
        except (p11.PKCS11Error, OSError) as exc:
            raise ModuleUnusable(path, str(exc) or type(exc).__name__) from None
        self._finalizer = _native_finalize(path)
        self.description = _text(self._lib.library_description)

    # -- reading ---------------------------------------------------------------------------

    def present(self, *, relist: bool = True) -> list[TokenContents]:
        """The tokens in this module's slots, without their objects. ``relist``: read the
        slot list again; otherwise only the tokens listed before are asked for their
        state (C_GetTokenInfo), which the PIN's flags and a removal need.

        Why not always: OpenSC probes every card it does not know (the project's own
        profile card, say) on each C_GetSlotList — and on each C_WaitForSlotEvent, which
        cannot stand in — measured: ~100 SELECTs and 43 ms a call, which a look four times
        a second would turn into a storm on that card. The watcher relists when the
        readers changed (``watcher.py``).
        """
        with self._lock, self._mapped("list tokens", pin_sent=False):
            if self._leaked >= LEAKED_SESSIONS_LIMIT:
                self._reinitialize()
                self._leaked = 0
                self._slots = None
            if self._slots is None or relist:
                self._slots = {s.slot_id: s for s in self._lib.get_slots(token_present=True)}
            heads = []
            for slot_id, slot in list(self._slots.items()):
                try:
                    head = self._head(slot_id, slot.get_token())
                except _GONE:
                    del self._slots[slot_id]  # left between the two calls, or since
                    continue
                except p11.PKCS11Error as exc:  # SoftHSM2: a token deleted under it
                    log.debug("slot %d of %s: %s", slot_id, self.path, type(exc).__name__)
                    del self._slots[slot_id]
                    continue
                if head.flags & TOKEN_INITIALIZED:  # else an empty slot of a software token
                    heads.append(head)
            return heads

    def _head(self, slot_id: int, token: pkcs11.Token) -> TokenContents:
        serial = _text(token.serial)
        reader = _text(getattr(token.slot, "slot_description", ""))
        return TokenContents(
            TokenRef(self.path, slot_id, serial),
            _text(token.label),
            _text(token.manufacturer_id),
            _text(token.model),
            int(token.flags),
            reader=reader,
        )

    def contents(self, head: TokenContents) -> TokenContents:
        """The token's certificates and keys as it shows them before a login."""
        with self._lock, self._mapped("read objects", pin_sent=False):
            token = self._token(head.ref)
            with token.open() as session:
                certificates = tuple(self._certificates(session))
                keys = tuple(self._keys(session))
            return TokenContents(
                head.ref,
                head.label,
                head.manufacturer,
                head.model,
                int(token.flags),
                certificates,
                keys,
                head.reader,
            )

    def _certificates(self, session: pkcs11.Session) -> Iterator[CertObject]:
        found = session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
        for count, obj in enumerate(found):
            if count >= MAX_OBJECTS:
                break
            value = _attr(obj, Attribute.VALUE, b"")
            if isinstance(value, bytes) and len(value) <= MAX_CERT_BYTES:
                yield CertObject(self._id(obj), _text(_attr(obj, Attribute.LABEL, "")), value)

    def _keys(self, session: pkcs11.Session) -> Iterator[KeyObject]:
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for count, obj in enumerate(session.get_objects({Attribute.CLASS: cls})):
                if count >= MAX_OBJECTS:
                    break
                label = _text(_attr(obj, Attribute.LABEL, ""))
                yield KeyObject(self._id(obj), label, cls is ObjectClass.PRIVATE_KEY)

    @staticmethod
    def _id(obj: object) -> bytes:
        value = _attr(obj, Attribute.ID, b"")
        return value[:MAX_LABEL] if isinstance(value, bytes) else b""

    def flags(self, ref: TokenRef) -> int:
        with self._lock, self._mapped("read flags", pin_sent=False):
            return int(self._token(ref).flags)

    # -- using -----------------------------------------------------------------------------

    def sign(self, ref: TokenRef, key_id: bytes, digest: bytes, pin: str | None) -> bytes:
        """ECDSA r‖s — or, for an RSA key, PKCS#1 v1.5 with SHA-256's DigestInfo — over
        the SHA-256 ``digest`` with the private key ``key_id``, after a login with
        ``pin`` (None: the reader's PIN pad). A key marked always-authenticate (PIV 9C)
        gets the context-specific login it needs, with the same PIN, for this signature.

        Raises: PinFormat (nothing spent), WrongPin, PinBlocked, CardRemoved, TokenFault.
        """
        if pin is not None and not 1 <= len(pin) <= 64:
            raise PinFormat(PinRef.USER)
        with self._lock:
            with self._mapped("find token", pin_sent=False):
                token = self._token(ref)
            session = self._login(token, ref, pin)
            with self._mapped("sign", pin_sent=True, ref=ref), session:
                key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
                if not isinstance(key, SignMixin):
                    raise TokenFault("a key that cannot sign", "sign")
                again = None
                always = self._always.get((ref, key_id))
                if always is None:  # a key's attributes do not change: asked once
                    always = _attr(key, Attribute.ALWAYS_AUTHENTICATE, False) is True
                    self._always[(ref, key_id)] = always
                if always:
                    if pin is None:
                        raise TokenFault("always-authenticate on a PIN pad", "sign")
                    again = pin  # the context-specific login, between C_SignInit and C_Sign
                if _attr(key, Attribute.KEY_TYPE, None) == KeyType.RSA:
                    signature = key.sign(
                        SHA256_DIGEST_INFO + digest, mechanism=Mechanism.RSA_PKCS, pin=again
                    )
                    if len(signature) * 8 < xmlsig.MIN_RSA_BITS:
                        raise TokenFault(f"an RSA signature of {len(signature)} bytes", "sign")
                    return bytes(signature)
                signature = key.sign(digest, mechanism=Mechanism.ECDSA, pin=again)
        if len(signature) != 64:
            raise TokenFault(f"a signature of {len(signature)} bytes", "sign")
        return bytes(signature)

    def _login(
        self, token: pkcs11.Token, ref: TokenRef, pin: str | None, *, rw: bool = False
    ) -> pkcs11.Session:
        try:
            with self._mapped("login", pin_sent=True, ref=ref):
                return token.open(rw=rw, user_pin=pin if pin is not None else pkcs11.PROTECTED_AUTH)
        except _Refused as refused:
            raise self._user_pin_refused(refused, ref, WrongPin) from None

    def _user_pin_refused(
        self, refused: _Refused, ref: TokenRef, wrong: type[WrongPin]
    ) -> CardError:
        """What a refused user PIN means, from the module's answer and the token's flags."""
        self._login_failed()
        state = pin_state(self._flags_or_zero(ref))
        if isinstance(refused.cause, p11.PinLocked) or state.locked:
            return PinBlocked(PinRef.USER)
        if isinstance(refused.cause, p11.PinIncorrect):
            return wrong(PinRef.USER, state.tries_left)
        return PinFormat(PinRef.USER)

    # -- putting a BankID on the token -----------------------------------------------------

    def check_pin(self, ref: TokenRef, pin: str) -> None:
        """A login and nothing else: before an order spends its activation code.

        Raises: WrongPin (a try spent, as the person typed it), PinBlocked, PinFormat,
        CardRemoved.
        """
        if not 1 <= len(pin) <= 64:
            raise PinFormat(PinRef.USER)
        with self._lock:
            with self._mapped("find token", pin_sent=False):
                token = self._token(ref)
            session = self._login(token, ref, pin)
            with self._mapped("log out", pin_sent=True, ref=ref):
                session.close()

    def generate_pair(
        self, ref: TokenRef, pin: str, key_id: bytes, label: str, *, always_authenticate: bool
    ) -> bytes:
        """A P-256 key pair made on the token (the private key never leaves it), stored
        under ``key_id``. Returns the public key's uncompressed point (04 ‖ X ‖ Y).

        Raises: WrongPin, PinBlocked, PinFormat, CardRemoved, TokenFault (the token does
        not generate keys, or refuses this template).
        """
        with self._lock:
            with self._mapped("find token", pin_sent=False):
                token = self._token(ref)
            session = self._login(token, ref, pin, rw=True)
            with self._mapped("generate a key pair", pin_sent=True, ref=ref), session:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True
                )
                private = {
                    Attribute.SIGN: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                }
                if always_authenticate:
                    private[Attribute.ALWAYS_AUTHENTICATE] = True
                public_key, _ = params.generate_keypair(
                    store=True,
                    id=key_id,
                    label=label,
                    public_template={Attribute.VERIFY: True},
                    private_template=private,
                )
                point = _attr(public_key, Attribute.EC_POINT, b"")
        if not isinstance(point, bytes) or len(point) < 65:
            raise TokenFault("no public key", "generate a key pair")
        return point[-65:]  # the DER OCTET STRING's contents: 04 ‖ X ‖ Y

    def write_certificate(
        self,
        ref: TokenRef,
        pin: str,
        key_id: bytes,
        label: str,
        der: bytes,
        subject: bytes,
        issuer: bytes,
    ) -> None:
        """Store an X.509 certificate on the token beside the key ``key_id``.

        Raises: WrongPin, PinBlocked, CardRemoved, TokenFault.
        """
        with self._lock:
            with self._mapped("find token", pin_sent=False):
                token = self._token(ref)
            session = self._login(token, ref, pin, rw=True)
            with self._mapped("write a certificate", pin_sent=True, ref=ref), session:
                session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.CERTIFICATE,
                        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: False,
                        Attribute.ID: key_id,
                        Attribute.LABEL: label,
                        Attribute.SUBJECT: subject,
                        Attribute.ISSUER: issuer,
                        Attribute.VALUE: der,
                    }
                )

    def change_pin(self, ref: TokenRef, old: str, new: str) -> None:
        """C_SetPIN in a session without a login: the user PIN, proven by ``old``.

        Raises: PinFormat (nothing spent), WrongCurrentPin, PinBlocked, CardRemoved,
        TokenFault (the token does not let its PIN be changed).
        """
        for pin in (old, new):
            if not 1 <= len(pin) <= 64:
                raise PinFormat(PinRef.USER)
        with self._lock:
            with self._mapped("find token", pin_sent=False):
                token = self._token(ref)
            try:
                # Logged in first: OpenSC, set up to unblock PIV cards (``opensc.py``),
                # takes C_SetPIN in a session without a login as an unblock with the PUK.
                with self._mapped("login", pin_sent=True):
                    session = token.open(rw=True, user_pin=old)
                with self._mapped("set pin", pin_sent=True), session:
                    session.set_pin(old, new)
            except _Refused as refused:
                raise self._user_pin_refused(refused, ref, WrongCurrentPin) from None

    def unblock_pin(self, ref: TokenRef, puk: str, new: str) -> None:
        """The security officer's login with ``puk`` (the token's SO PIN), then C_InitPIN:
        a new user PIN and its tries back.

        Raises: PinFormat (nothing spent), WrongPuk, PukBlocked, CardRemoved, TokenFault.
        """
        for pin in (puk, new):
            if not 1 <= len(pin) <= 64:
                raise PinFormat(PinRef.USER)
        with self._lock:
            with self._mapped("find token", pin_sent=False):
                if self._leaked:  # an SO login is refused while any read-only session lives
                    self._reinitialize()
                    self._leaked = 0
                    self._slots = None  # the old slot objects belong to the old session
                token = self._token(ref)
            try:
                with self._mapped("login", pin_sent=True):
                    session = token.open(rw=True, so_pin=puk)
            except TokenFault as fault:
                # No security officer on this token (PIV: there is no VERIFY of the PUK).
                if not self.unblocks_unlogged(ref):
                    raise TokenFault("no unblocking on this token", "unblock") from fault
                self._unblock_unlogged(token, ref, puk, new)
                return
            except _Refused as refused:
                self._login_failed()
                flags = self._flags_or_zero(ref)
                if isinstance(refused.cause, p11.PinLocked) or flags & SO_PIN_LOCKED:
                    raise PukBlocked() from None
                if isinstance(refused.cause, p11.PinIncorrect):
                    tries = 1 if flags & SO_PIN_FINAL_TRY else None
                    raise WrongPuk(PinRef.USER, tries) from None
                raise PinFormat(PinRef.PUK) from None
            try:
                with self._mapped("set pin", pin_sent=True), session:
                    session.init_pin(new)
            except _Refused:
                raise PinFormat(PinRef.USER) from None

    def unblocks_unlogged(self, ref: TokenRef) -> bool:
        """Whether C_SetPIN without a login unblocks here: OpenSC set up so by this agent
        (``opensc.py``), or any module while the PIN is locked — a CHANGE REFERENCE DATA
        on a blocked PIN cannot spend a try, so the worst is a refusal."""
        if self.description.startswith("OpenSC") and opensc_unblocks():
            return True
        return pin_state(self._flags_or_zero(ref)).locked

    def _unblock_unlogged(self, token: pkcs11.Token, ref: TokenRef, puk: str, new: str) -> None:
        try:
            with self._mapped("set pin", pin_sent=True), token.open(rw=True) as session:
                session.set_pin(puk, new)
        except _Refused as refused:
            self._login_failed()
            if isinstance(refused.cause, p11.PinLocked):
                raise PukBlocked() from None
            if isinstance(refused.cause, p11.PinIncorrect):
                if pin_state(self._flags_or_zero(ref)).locked and so_pin_locked(
                    self._flags_or_zero(ref)
                ):
                    raise PukBlocked() from None
                raise WrongPuk(PinRef.USER, None) from None
            raise PinFormat(PinRef.PUK) from None

    def _login_failed(self) -> None:
        # python-pkcs11 opens the session before C_Login and does not close it when the
        # login fails: each wrong PIN leaves one session open in the module. After a few,
        # the next look at the slots re-initialises the module, which closes them all.
        self._leaked += 1

    def _flags_or_zero(self, ref: TokenRef) -> int:
        try:
            return int(self._token(ref).flags)
        except (p11.PKCS11Error, CardError):
            return 0

    def _token(self, ref: TokenRef, *, fresh: bool = False) -> pkcs11.Token:
        """The token in ``ref``'s slot if it is still the same one (``fresh``: as the
        module finds it now, not as last listed). Raises: CardRemoved."""
        slot = None if fresh else (self._slots or {}).get(ref.slot)
        if slot is None:
            slot = next(
                (s for s in self._lib.get_slots(token_present=True) if s.slot_id == ref.slot), None
            )
        if slot is not None:
            try:
                token = slot.get_token()
            except _GONE:
                raise CardRemoved(pin_sent=False) from None
            if _text(token.serial) == ref.serial:
                return token
        raise CardRemoved(pin_sent=False)

    def _gone(self, ref: TokenRef) -> bool:
        """Whether the token left: a card pulled while it answers leaves OpenSC with no
        status word, which it reports as a general error; pcscd takes a moment to see it."""
        for _ in range(REMOVAL_LOOKS):
            try:
                self._token(ref, fresh=True)
            except CardRemoved:
                return True
            except p11.PKCS11Error:
                return True
            time.sleep(REMOVAL_PAUSE)
        return False

    @contextlib.contextmanager
    def _mapped(
        self, during: str, *, pin_sent: bool, ref: TokenRef | None = None
    ) -> Iterator[None]:
        try:
            yield
        except CardError:
            raise
        except (p11.PinIncorrect, p11.PinLocked, p11.PinLenRange, p11.PinInvalid) as exc:
            if during not in ("login", "set pin"):
                raise TokenFault(type(exc).__name__, during) from None
            raise _Refused(exc) from None
        except _GONE:
            raise CardRemoved(pin_sent=pin_sent) from None
        except p11.FunctionCancelled:  # CKR_FUNCTION_CANCELED: Cancel on a PIN pad
            if during == "login":
                self._login_failed()  # python-pkcs11 leaves the session open
            raise PinEntryCancelled() from None
        except p11.NoSuchKey:
            raise TokenFault("no such key", during) from None
        except p11.PKCS11Error as exc:
            if ref is not None and self._gone(ref):
                raise CardRemoved(pin_sent=pin_sent) from None
            log.info("PKCS#11 module %s: %s during %s", self.path, type(exc).__name__, during)
            raise TokenFault(type(exc).__name__, during) from None

    def reload(self) -> None:
        """C_Finalize and C_Initialize: the module reads its tokens afresh — OpenSC binds a
        card once, so a PIV card that piv-tool changed is seen only after this."""
        with self._lock, self._mapped("reload", pin_sent=False):
            self._reinitialize()
            self._slots, self._leaked = None, 0
            self._always.clear()

    def close(self) -> None:
        with self._lock, contextlib.suppress(p11.PKCS11Error):
            self._finalize()

    def _reinitialize(self) -> None:
        self._finalize()
        self._lib.initialize()

    def _finalize(self) -> None:
        """C_Finalize with the interpreter lock released. python-pkcs11 holds it through
        this one call (every other call releases it), and OpenSC's C_Finalize waits on
        pcscd (SCardDisconnect), which may be waiting on the card: every other thread of
        the agent stops meanwhile, and a card served by this same process cannot answer.
        Seen in the tests as a run that never ended — gdb's stacks: C_Finalize in
        SCardDisconnect with the lock held, pcscd's reader thread asking the virtual card
        for its ATR, the virtual card's thread waiting for the lock. python-pkcs11's own
        call afterwards only marks its object finalised: the module answers at once that
        it is not initialised."""
        if self._finalizer is not None and self._lib.initialized:
            rv = self._finalizer(None)  # ctypes lets the interpreter lock go during it
            if rv:
                log.info("PKCS#11 module %s: C_Finalize returned 0x%x", self.path, rv)
        with contextlib.suppress(p11.PKCS11Error):
            self._lib.finalize()


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _FunctionList(ctypes.Structure):
    """The head of CK_FUNCTION_LIST: its version, then the functions in the standard's
    order (only the first two are read here)."""

    _fields_ = (
        ("version", _Version),
        ("C_Initialize", ctypes.c_void_p),
        ("C_Finalize", ctypes.c_void_p),
    )


_FINALIZE = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)  # ctypes drops the GIL in it


def _native_finalize(path: str) -> Callable[[None], int] | None:
    """The module's C_Finalize from its function list, in the copy python-pkcs11 loaded
    (never a second one); None where that cannot be had (python-pkcs11's is used then)."""
    try:
        native = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_NOLOAD)
        get = native.C_GetFunctionList
    except (OSError, AttributeError):
        return None
    get.argtypes = [ctypes.POINTER(ctypes.POINTER(_FunctionList))]
    get.restype = ctypes.c_ulong
    functions = ctypes.POINTER(_FunctionList)()
    if get(ctypes.byref(functions)) != 0 or not functions or not functions.contents.C_Finalize:
        return None
    finalize: Callable[[None], int] = _FINALIZE(functions.contents.C_Finalize)
    return finalize


class _Refused(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
