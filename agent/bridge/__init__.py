"""The localhost HTTP bridge websites call (identification and signing). Not yet built:
see the bridge issue."""

__all__: list[str] = []
