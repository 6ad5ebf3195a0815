"""``eid-agent``'s command line: ``main`` parses and dispatches; one module per command
group (``tokens``, ``card``, ``enrolment`` — ordering a BankID on file —, ``update``,
``setup``, ``desktopentry``); ``io`` is where a command reads and writes.

Nothing below the command line imports it; heavy imports happen inside the commands so
that ``--version`` and ``tokens list`` start quickly.
"""

from agent.cli.main import entry, main

__all__ = ["entry", "main"]
