"""The composition root: ``daemon`` (``eid-agent run``: builds the store, the order
service, the bridge, the desktop and the updater, and says which thread owns what),
``instance`` (one agent per person, and its pid file) and ``selftest`` (what a freshly
installed version must pass before it is switched to).

Only the command line imports it.
"""
