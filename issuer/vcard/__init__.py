"""A virtual BankID card for development and tests, served through Debian's vpcd."""

from issuer.vcard.card import AID, ATR, CardState, VirtualCard, generate_key, new_card, write_file
from issuer.vcard.vpcd import VPCD_PORTS, CardFile, VpcdLink

__all__ = [
    "AID",
    "ATR",
    "VPCD_PORTS",
    "CardFile",
    "CardState",
    "VirtualCard",
    "VpcdLink",
    "generate_key",
    "new_card",
    "write_file",
]
