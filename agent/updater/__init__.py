"""Self-update from signed TUF metadata and its policy. Not yet built: see the update
issue."""

__all__: list[str] = []
