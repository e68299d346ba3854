"""The errors a user can cause, and the one way every command line reports them.

`UserError` is the base of each package's error type (`corpora.CorpusError`,
`model.errors.ConfigError`): a problem with what the user asked for, whose message is one line
naming it. `run_cli` runs a command's `main` and turns those, and `OSError` (a full disk, an
unwritable folder), into one "error: ..." line on stderr and exit status 2; Ctrl-C is 130.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class UserError(ValueError):
    """A problem with what the user asked for; the message is one line naming it."""


class CorpusError(UserError):
    """A corpus problem a user can cause (bad name, bad file, bad download)."""


def one_line(error: BaseException) -> str:
    """The error as one line: its message's first line, or its type when it has none."""
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """`main(argv)`, with every expected failure as one line on stderr and a non-zero status."""
    try:
        return main(argv)
    except SystemExit as done:  # argparse: --help (0) or a malformed flag (2, one line printed)
        return done.code if isinstance(done.code, int) else 2
    except (UserError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
