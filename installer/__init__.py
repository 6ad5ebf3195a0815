"""The release side: bundles, the update repository's tools (``eid-release``)."""

__all__: list[str] = []
