"""How a stage script ends on a known error: one line naming the file, line, field and what
was expected, and a non-zero exit, instead of a chained traceback the user must dig through.

`--debug` on any stage (or RECALL_DEBUG=1) re-raises, so the traceback is there when wanted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from recall.contract import ContractError

EXIT_CODE = 2  # argparse's code for bad input; 1 stays an unexpected crash


class ConfigError(ValueError):
    """A params file that does not match the typed config."""


class StorageUnreachable(RuntimeError):
    """A sweep's study storage (Postgres) stopped answering: the message says what to rerun."""


def known_errors() -> tuple[type[Exception], ...]:
    # Errors whose message already says what to fix: the data contract's, the params',
    # a lost sweep storage's.
    return ContractError, ConfigError, StorageUnreachable


def run_stage(main: Callable[[], object]) -> object:
    """Run a stage's (or the CLI's) main() and return its result; a known error prints one
    line on stderr and exits EXIT_CODE."""
    debug = "--debug" in sys.argv[1:] or os.environ.get("RECALL_DEBUG", "") not in ("", "0")
    sys.argv = [a for a in sys.argv if a != "--debug"]
    try:
        return main()
    except known_errors() as err:
        if debug:
            raise
        message = " ".join(str(err).split("\n"))
        print(f"{Path(sys.argv[0]).stem}: error: {message} (--debug for the traceback)",
              file=sys.stderr)
        sys.exit(EXIT_CODE)
