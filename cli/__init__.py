"""The ``metaledger`` command-line interface (click), one module per noun.

Every command is a plain click function that runs an async implementation with
``anyio.run``; metaledger's errors become one line on stderr and an exit code
(see :mod:`cli.errors`).
"""

from .main import cli, main

__all__ = ["cli", "main"]
