"""The kernel that the agent, the issuer and the relying-party kit share, importing none
of them: personal numbers, what text may be shown and signed, strict JSON, the message
catalogue, rate limits, owner-only files and per-user paths, terminal prompts and the
console scripts' entry, and the signedData format. A website's back end that installs
the rp kit gets this and not the agent (tests/test_layers.py proves it)."""
