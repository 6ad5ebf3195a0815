"""eid-agent: an e-identification agent for BankID on file and on card.

The package's public surface is the ``eid-agent`` command; sub-packages state their own
exports. Only the version lives here, so that ``--version`` imports nothing else.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
