"""The exact tries left on a PIV card's PIN, asked of the card itself.

PKCS#11 has no count, only "low", "final try" and "locked" (and OpenSC's PIV driver never
says "low", so a PIV card looks the same with three tries as with two). A PIV card does
answer the count: VERIFY with no data returns 63Cx, x the tries left (SP 800-73-4, 3.2.1),
and spends nothing. So for a PIV token in a PC/SC reader the agent asks, in one PC/SC
transaction, before a PIN dialog and after a refused PIN — never between a login and its
signature, where the SELECT could end the card's verified state.
"""

from __future__ import annotations

import logging

from agent.credentials.card.errors import CardError
from agent.credentials.card.pcsc import PcscContext

log = logging.getLogger(__name__)

PIV_AID = bytes.fromhex("A000000308000010000100")
SELECT = bytes.fromhex("00A40400") + bytes([len(PIV_AID)]) + PIV_AID
VERIFY_STATUS = bytes.fromhex("00200080")  # no data, no Le: the PIV PIN's state


def tries_from(status: int) -> int | None:
    """The tries left in an empty VERIFY's status word; None where it does not say
    (9000: verified already, in this card's session; anything else: not a PIV answer)."""
    if status & 0xFFF0 == 0x63C0:
        return status & 0x0F
    if status == 0x6983:  # authentication method blocked
        return 0
    return None


def piv_pin_tries(reader: str) -> int | None:
    """Ask the card in ``reader``; None when it cannot be asked or does not say."""
    if not reader:
        return None
    try:
        with PcscContext() as context, context.connect(reader) as card, card.transaction():
            _, selected = card.transmit(SELECT)
            if selected != 0x9000 and selected & 0xFF00 != 0x6100:
                return None
            _, status = card.transmit(VERIFY_STATUS)
    except CardError as exc:
        log.debug("PIV PIN tries not read in %r: %s", reader, type(exc).__name__)
        return None
    return tries_from(status)
