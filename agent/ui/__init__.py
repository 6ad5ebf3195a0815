"""The UI port and its console and desktop implementations. Not yet built: see the bridge
and desktop issues."""

__all__: list[str] = []
