"""The order relay: the second door, which no browser gates. A website's server starts
an order here (``/rp/v6.0/auth|sign``: BankID's RP API v6.0), the page opens an
``eid-agent://`` link, the person's agent fetches the order on its own WebSocket
(``/agent/v2/order``), asks the person and sends the signature value, from which the
relay rebuilds the XML signature and verifies it with the rp kit before the
website's ``collect`` reports it. Run by the website's organisation; SQLite by default,
PostgreSQL for several processes (``eidcore.db``).

``rules`` (pure: the order machine, the token's life), ``requests`` (validation),
``config`` (the parties), ``store`` (the orders), ``channel`` (the agent's WebSocket:
its stages, the watch on held orders, known chains), ``server`` (aiohttp)."""
