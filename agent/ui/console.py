"""The console UI: the UI port on a terminal, or on a pipe so scripts and tests can act
as the person. Empty input, end of input or Ctrl-C cancels.

Threads: one daemon thread reads stdin line by line and hands each line to the event
loop; everything else runs on the loop. Output goes to ``out`` (stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from typing import TextIO

from agent.credentials import (
    MIN_PASSWORD_LENGTH,
    CredentialInfo,
    KeyPurpose,
    PasswordTooWeak,
    check_new_password,
    pin_for,
)
from agent.credentials.card import PinRef
from agent.notices import KIND_TERMS, PIN_TERMS, Notice, format_notice, notice_for
from agent.ui.port import EnrolmentAnswer, PinAnswer, PinRequest, Request
from agent.ui.view import ATTENTION_SECONDS, CALL_TERMS, display_lines, format_text
from eidcore.messages import Language, MessageCode, Term, catalogue
from eidcore.personal_number import InvalidPersonalNumber, PersonalNumber
from eidcore.signeddata import OrderKind

_EOF = None
ACTIVATION_CODE_LENGTH = 12  # the issuer's codes: XXXX-XXXX-XXXX


def visible(text: str) -> str:
    """Text a web page supplied, made safe for a terminal: control characters and
    bidirectional overrides are shown as code points instead of acting on the display
    (a page must not be able to move the cursor or reorder what the person reads)."""
    out = []
    for ch in text.replace("\r\n", "\n"):
        if ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch) in {"Cc", "Cf"}:
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


class ConsoleUi:
    def __init__(
        self,
        stdin: TextIO,
        out: TextIO,
        language: Language,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stdin, self._out, self._language = stdin, out, language
        self._clock = clock
        self._lines: asyncio.Queue[str | None] | None = None
        self._eof = False
        self._active: dict[str, asyncio.Future[str | None]] = {}
        self._current_ref: str | None = None
        # A question was closed while the person may have been answering it (the order
        # expired, the page cancelled): the next order's question waits for a line first.
        self._closed_under_person: float | None = None  # when, on self._clock

    # -- the port ------------------------------------------------------------------------

    async def choose(self, request: Request) -> CredentialInfo | None:
        await self._fresh_attention(request.order_ref)
        self._current_ref = request.order_ref
        self._print("")
        self._print("─" * 60)
        auth = request.kind is OrderKind.AUTH
        if request.party_name is not None:  # through an order relay: its domain, then the party
            term = Term.CONSOLE_WANTS_AUTH_FOR if auth else Term.CONSOLE_WANTS_SIGN_FOR
            self._print(self._term(term, origin=request.origin, party=request.party_name))
        else:
            term = Term.CONSOLE_WANTS_AUTH if auth else Term.CONSOLE_WANTS_SIGN
            self._print(self._term(term, origin=request.origin))
        if request.text is not None:
            # The same prepared text as the desktop dialog's (agent/ui/view.py).
            blocks = format_text(request.text, request.text_format)
            if any(block.rtl for block in blocks):
                self._print(self._term(Term.RTL_NOTE))
            for line in display_lines(blocks, visible):
                self._print(f"  │ {line}")
        if request.call_initiator is not None and request.party_name is not None:
            # a phone order: who called whom, after what is signed (as the dialog says it)
            call = CALL_TERMS[request.call_initiator]
            self._print(self._term(call, party=f"«{request.party_name}»"))
        if len(request.choices) == 1:
            self._print(self._term(Term.CONSOLE_USING, credential=self._label(request.choices[0])))
            return request.choices[0]
        for number, credential in enumerate(request.choices, start=1):
            self._print(f"  {number}) {self._label(credential)}")
        while True:
            answer = await self._read(
                request.order_ref, self._term(Term.CONSOLE_CHOOSE, count=len(request.choices))
            )
            if not answer:
                self._print(self._term(Term.CONSOLE_CANCELLED))
                return None
            if answer.strip().isdigit() and 1 <= int(answer) <= len(request.choices):
                return request.choices[int(answer) - 1]

    def _pin_prompt(self, term: Term, credential: CredentialInfo, ref: PinRef) -> str:
        """A card has two PINs: always say which one is asked for, and how many tries it
        has left when some are already spent."""
        tries = credential.tries_left
        return _capitalised(
            self._term(
                term,
                pin=catalogue().term(PIN_TERMS[ref], self._language),
                name=credential.owner.name,
                tries=self._term(Term.CONSOLE_TRIES_LEFT, tries=tries)
                if tries is not None and tries < 3
                else "",
            )
        )

    async def ask_secret(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> str | None:
        if problem is not None:
            self._show(problem)
        ref = pin_for(credential.kind, _purpose(request))
        if ref is not None:
            prompt = self._pin_prompt(Term.CONSOLE_PIN_FOR, credential, ref)
        else:
            prompt = self._term(Term.CONSOLE_PASSWORD_FOR, name=credential.owner.name)
        with self._no_echo():
            answer = await self._read(request.order_ref, prompt)
        if not answer:
            self._print(self._term(Term.CONSOLE_CANCELLED))
            return None
        return answer

    async def confirm_pin_pad(
        self, request: Request, credential: CredentialInfo, problem: Notice | None
    ) -> bool:
        if problem is not None:
            self._show(problem)
        ref = pin_for(credential.kind, _purpose(request)) or PinRef.USER
        prompt = self._pin_prompt(Term.CONSOLE_PIN_PAD, credential, ref)
        if await self._read(request.order_ref, prompt) is None:
            self._print(self._term(Term.CONSOLE_CANCELLED))
            return False
        self._print(self._term(Term.CONSOLE_PIN_PAD_NOW))
        return True

    async def ask_pins(self, request: PinRequest, problem: Notice | None) -> PinAnswer | None:
        ref = f"pins-{request.card.id}"
        pin = catalogue().term(PIN_TERMS[request.pin], self._language)
        if problem is None:
            self._drop_stale_input()
            heading = Term.CONSOLE_UNBLOCK_PIN if request.unblock else Term.CONSOLE_CHANGE_PIN
            self._print(_capitalised(self._term(heading, pin=pin, name=request.card.owner.name)))
        else:
            self._show(problem)
        with self._no_echo():
            first = Term.PROMPT_PUK if request.unblock else Term.PROMPT_CURRENT_PIN
            secret = await self._read(ref, _capitalised(self._term(first, pin=pin)))
            if not secret:
                return None
            if request.unblock and request.keep:
                return PinAnswer(secret, None)
            while True:
                new = await self._read(ref, _capitalised(self._term(Term.PROMPT_NEW_PIN, pin=pin)))
                if not new:
                    return None
                again = await self._read(
                    ref, _capitalised(self._term(Term.PROMPT_REPEAT_PIN, pin=pin))
                )
                if again == new:
                    return PinAnswer(secret, new)
                self._show(Notice(MessageCode.PINS_DIFFER))

    async def ask_enrolment(self, problem: Notice | None) -> EnrolmentAnswer | None:
        ref = "enrolment"
        if problem is None:
            # no stale-input drop: the person started this, and may pipe the answers in
            self._print(self._term(Term.ORDER_PASSWORD_RULE, min_length=MIN_PASSWORD_LENGTH))
        else:
            self._show(problem)
        # Each answer is checked as it is given, so a mistyped number is not found out only
        # after the new password was typed twice.
        while True:
            number = await self._read(ref, self._term(Term.PROMPT_PERSONAL_NUMBER))
            if not number:
                return None
            try:
                PersonalNumber.parse(number.strip())
                break
            except InvalidPersonalNumber as exc:
                self._show(notice_for(exc))
        with self._no_echo():
            while True:
                code = await self._read(ref, self._term(Term.PROMPT_ACTIVATION_CODE))
                if not code:
                    return None
                if _looks_like_a_code(code):
                    break
                self._show(Notice(MessageCode.WRONG_CODE))
            while True:
                password = await self._read(ref, self._term(Term.PROMPT_NEW_PASSWORD))
                if not password:
                    return None
                try:
                    check_new_password(password)
                except PasswordTooWeak as exc:
                    self._show(notice_for(exc))
                    continue
                again = await self._read(ref, self._term(Term.PROMPT_REPEAT_PASSWORD))
                if again == password:
                    return EnrolmentAnswer(number.strip(), code.strip(), password)
                self._show(Notice(MessageCode.PASSWORDS_DIFFER))

    async def tell(self, notice: Notice) -> None:
        self._show(notice)

    async def close(self, order_ref: str) -> None:
        future = self._active.pop(order_ref, None)
        if future is not None and not future.done():
            future.set_result(None)
            self._closed_under_person = self._clock()
            self._print(self._term(Term.CONSOLE_CLOSED))
        if self._current_ref == order_ref:
            self._current_ref = None

    # -- Ctrl-C ----------------------------------------------------------------------------

    def interrupt(self) -> bool:
        """Ctrl-C while a question is open cancels that question (True); otherwise it is
        the caller's to handle (False)."""
        for future in self._active.values():
            if not future.done():
                future.set_result(None)
                return True
        return False

    # -- input -----------------------------------------------------------------------------

    async def _read(self, ref: str, prompt: str) -> str | None:
        self._out.write(prompt)
        self._out.flush()
        queue = self._queue()
        if self._eof and queue.empty():
            self._out.write("\n")
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._active[ref] = future
        getter = asyncio.ensure_future(queue.get())
        try:
            done, _ = await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The order ended elsewhere (the page cancelled, time ran out): say so, so the
            # person does not keep typing into a question that is gone.
            self._out.write("\n" + self._term(Term.CONSOLE_CLOSED) + "\n")
            self._out.flush()
            self._closed_under_person = self._clock()
            raise
        finally:
            self._active.pop(ref, None)
            if not getter.done():
                getter.cancel()
        self._out.write("\n" if not self._stdin_is_tty() else "")
        if future in done:
            return None  # closed or interrupted
        line = getter.result()
        if line is _EOF:
            self._eof = True
            return None
        return line.rstrip("\r\n")

    def _queue(self) -> asyncio.Queue[str | None]:
        if self._lines is None:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            self._lines = queue

            def pump() -> None:
                for line in self._stdin:
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                loop.call_soon_threadsafe(queue.put_nowait, _EOF)

            threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        return self._lines

    async def _fresh_attention(self, ref: str) -> None:
        """Consent must be to the question shown. A person typing a password when their
        question expired would otherwise answer the next order's question, from another
        site, that appeared under their fingers: so after a question was closed under
        them less than ATTENTION_SECONDS ago, the next one waits for a line (whatever it
        is, it answers nothing), and
        whatever was typed before a question is shown is thrown away."""
        closed, self._closed_under_person = self._closed_under_person, None
        if closed is not None and self._clock() - closed < ATTENTION_SECONDS:
            self._drop_stale_input()
            await self._read(ref, self._term(Term.CONSOLE_NEXT_REQUEST) + " ")
        self._drop_stale_input()

    def _drop_stale_input(self) -> None:
        # A line typed before this question was shown (say, an answer meant for an
        # earlier, expired request) must never become this order's password: the lines
        # read already, and on a terminal what is typed but not yet read.
        queue = self._queue()
        while not queue.empty():
            if queue.get_nowait() is _EOF:
                self._eof = True
        if self._stdin_is_tty() and sys.platform != "win32":
            import termios

            with contextlib.suppress(OSError, termios.error):
                termios.tcflush(self._stdin.fileno(), termios.TCIFLUSH)

    def _stdin_is_tty(self) -> bool:
        try:
            return self._stdin.isatty()
        except (AttributeError, ValueError):
            return False

    @contextlib.contextmanager
    def _no_echo(self) -> Iterator[None]:
        if not self._stdin_is_tty() or sys.platform == "win32":
            yield
            return
        import termios

        fd = self._stdin.fileno()
        old = termios.tcgetattr(fd)
        new = list(old)
        new[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, new)
        try:
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
            self._out.write("\n")

    # -- output ----------------------------------------------------------------------------

    def _label(self, credential: CredentialInfo) -> str:
        return (
            f"{credential.owner.name} ({credential.owner.personal_number}) — "
            f"{self._term(KIND_TERMS[credential.kind.value])}, {credential.issuer}"
        )

    def _term(self, term: Term, **values: object) -> str:
        return catalogue().term(term, self._language).format(**values)

    def _show(self, notice: Notice) -> None:
        self._out.write(format_notice(notice, self._language))
        self._out.flush()

    def _print(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()


def _looks_like_a_code(typed: str) -> bool:
    """An activation code's shape (12 letters and digits, grouped as the person likes):
    only the issuer can say whether it is right, but a short or long one is a typo."""
    plain = "".join(c for c in typed if c not in " -\t")
    return len(plain) == ACTIVATION_CODE_LENGTH and plain.isascii() and plain.isalnum()


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _purpose(request: Request) -> KeyPurpose:
    return KeyPurpose.IDENTIFICATION if request.kind is OrderKind.AUTH else KeyPurpose.SIGNATURE
