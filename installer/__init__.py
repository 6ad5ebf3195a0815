"""Release bundles, installers and update-repository tools. Not yet built: see the update
and installer issues."""

__all__: list[str] = []
