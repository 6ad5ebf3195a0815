"""Pure tests of the card profile: the virtual card's APDU processing and the driver's
status-word handling (a scripted connection stands in for PC/SC only here)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.credentials.card import (
    CardProtocolError,
    CardSession,
    PinBlocked,
    PinFormat,
    PinRef,
    WrongPin,
    apdu,
)
from issuer.vcard.card import AID, CardState, VirtualCard, new_card, pin_block


def _card() -> VirtualCard:
    return VirtualCard(
        new_card("T1", {0x81: "1234", 0x82: "12345", 0x83: "12345678"}), lambda _s: None
    )


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_any_bytes_get_a_status_word_and_never_crash(data: bytes) -> None:
    card = _card()
    card.process(bytes([0x00, 0xA4, 0x04, 0x0C, len(AID)]) + AID)
    response = card.process(data)
    assert len(response) >= 2


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=4, max_size=40), max_size=20))
def test_random_sequences_never_unblock_or_raise_counters(commands: list[bytes]) -> None:
    """Whatever arrives, a counter never goes up without the right secret."""
    card = _card()
    before = {r: p.tries_left for r, p in card.state.pins.items()}
    for command in commands:
        card.process(command)
    after = {r: p.tries_left for r, p in card.state.pins.items()}
    assert all(after[r] <= before[r] for r in before)


def test_counters_are_spent_before_comparing() -> None:
    saved: list[CardState] = []
    card = VirtualCard(new_card("T", {0x81: "1234", 0x82: "12345", 0x83: "12345678"}), saved.append)
    card.process(apdu.select_application())
    card.process(apdu.verify(PinRef.IDENTIFICATION, "1234"))
    # first the try is recorded (2 left), then the success restores it (3)
    assert [s.pins[0x81].tries_left for s in saved] == [2, 3]


def test_malformed_pin_block_spends_nothing() -> None:
    card = _card()
    card.process(apdu.select_application())
    assert card.process(bytes([0, 0x20, 0, 0x81, 12]) + b"12ab" + b"\xff" * 8) == b"\x6a\x80"
    assert card.state.pins[0x81].tries_left == 3
    assert pin_block(b"1234") == b"1234" + b"\xff" * 8


class Scripted:
    """Answers from a list, recording what was sent."""

    def __init__(self, answers: list[tuple[bytes, int]]) -> None:
        self.answers, self.sent = answers, []  # type: ignore[var-annotated]

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        self.sent.append(command)
        return self.answers.pop(0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield


def test_get_response_and_wrong_le_are_followed() -> None:
    conn = Scripted([(b"ab", 0x6104), (b"cdef", 0x9000), (b"", 0x6C05), (b"12345", 0x9000)])
    session = CardSession(conn)
    assert session.send(b"\x00\xb0\x00\x00\x02") == (b"abcdef", 0x9000)
    assert conn.sent[1] == bytes([0x00, 0xC0, 0x00, 0x00, 0x04])
    assert session.send(b"\x00\xb0\x00\x00\x00") == (b"12345", 0x9000)
    assert conn.sent[3] == b"\x00\xb0\x00\x00\x05"


@pytest.mark.parametrize(
    ("sw", "error"), [(0x63C2, WrongPin), (0x63C0, PinBlocked), (0x6983, PinBlocked)]
)
def test_status_words_become_typed_errors(sw: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        apdu.check_pin(sw, PinRef.SIGNATURE, "verify")


@pytest.mark.parametrize(
    ("pin", "value"),
    [
        (PinRef.IDENTIFICATION, "123"),
        (PinRef.SIGNATURE, "1234"),
        (PinRef.PUK, "1234567"),
        (PinRef.IDENTIFICATION, "12a4"),
        (PinRef.IDENTIFICATION, "1" * 13),
    ],
)
def test_pin_format_is_checked_before_the_card(pin: PinRef, value: str) -> None:
    with pytest.raises(PinFormat):
        apdu.pin_block(pin, value)


def test_hostile_card_cannot_stream_forever() -> None:
    conn = Scripted([(b"x" * 255, 0x61FF)] * 40)
    with pytest.raises(CardProtocolError):
        CardSession(conn).send(b"\x00\xb0\x00\x00\x00")


class Hostile:
    """A card that answers anything: random data and status words, drawn as asked."""

    def __init__(self, draw: st.DataObject) -> None:
        self.draw, self.count = draw, 0

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        self.count += 1
        if self.count > 200:  # a card that never stops is the test below's subject
            return b"", 0x6A82
        return self.draw.draw(st.tuples(st.binary(max_size=260), st.integers(0, 0xFFFF)))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(["chains", "info", "status", "change", "unblock", "sign"]))
def test_a_hostile_card_gets_typed_errors_only(data: st.DataObject, operation: str) -> None:
    """Whatever a card answers, the driver returns or raises a CardError (which the agent
    turns into a catalogue message) — nothing else escapes, nothing loops."""
    from agent.credentials import KeyPurpose
    from agent.credentials.card import CardError

    session = CardSession(Hostile(data))
    calls: dict[str, Callable[[], object]] = {
        "chains": session.chains,
        "info": session.card_info,
        "status": lambda: session.pin_status(PinRef.SIGNATURE),
        "change": lambda: session.change_pin(PinRef.IDENTIFICATION, "1234", "4321"),
        "unblock": lambda: session.unblock_pin(PinRef.SIGNATURE, "12345678", "54321"),
        "sign": lambda: session.sign(KeyPurpose.SIGNATURE, b"text", "12345"),
    }
    with contextlib.suppress(CardError):
        calls[operation]()


def test_the_service_lost_before_a_pin_is_a_removal_with_nothing_spent() -> None:
    """pcscd gone before the PIN left: the order may wait for the card (pin_sent False);
    gone after the VERIFY was sent: the try may have counted, the error stays."""
    from agent.credentials import KeyPurpose
    from agent.credentials.card import CardRemoved, PcscUnavailable

    class Dying(Scripted):
        def __init__(self, answers: list[tuple[bytes, int]]) -> None:
            super().__init__(answers)

        def transmit(self, command: bytes) -> tuple[bytes, int]:
            if not self.answers:
                raise PcscUnavailable("the smart card service is not available")
            return super().transmit(command)

    with pytest.raises(CardRemoved) as early:
        CardSession(Dying([(b"", 0x9000)])).sign(KeyPurpose.SIGNATURE, b"x", "12345")
    assert early.value.pin_sent is False  # died at MSE: nothing reached the card
    with pytest.raises(PcscUnavailable):
        CardSession(Dying([(b"", 0x9000), (b"", 0x9000)])).sign(KeyPurpose.SIGNATURE, b"x", "12345")
