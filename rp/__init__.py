"""The relying-party kit (nonce issuing, response verification, demo site). Not yet
built: see the bridge issue."""

__all__: list[str] = []
