"""The release side: bundles, the installer file, the Debian package and the update
repository's tools (``eid-release``). Of the agent it uses the updater's install layout,
policy and errors only (the contracts in pyproject.toml say so)."""

__all__: list[str] = []
