"""``eid-agent``'s command line: ``main`` holds the table of commands and the loop; each
command is a module with ``add_arguments`` and ``run`` (``run``, ``credentials``, ``card``,
``enrolment`` — ``enrol``: ordering a BankID from an issuer —, ``link`` — ``open`` —,
``update``, ``install``, ``setup`` — ``uninstall`` —, ``selftest``, ``doctor``,
``desktopentry`` — ``desktop`` —, ``messages``); ``options`` holds the options several
commands take; ``io`` is where a command reads and writes.

Nothing below the command line imports it; only the given command's module is imported,
so that ``--version`` and ``credentials list`` start quickly.
"""

from agent.cli.main import entry, main

__all__ = ["entry", "main"]
