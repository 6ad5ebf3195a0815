"""The order relay: the second door, which no browser gates. A website's server starts
an order here (``/rp/v6.0/auth|sign``: BankID's RP API v6.0), the page opens an
``eid-agent://`` link, the person's agent fetches the order (``/agent/v1/order``), asks
the person and posts the result, which the relay verifies with the rp kit before the
website's ``collect`` reports it. Run by the website's organisation; SQLite by default,
PostgreSQL for several processes (``eidcore.db``).

``rules`` (pure: the order machine, the token's life), ``requests`` (validation),
``config`` (the parties), ``store`` (the orders), ``server`` (aiohttp)."""
