"""What a command raises, as one line on stderr and an exit code (`run_command`).

A user error (the site file, an option, a file or port named by either, a meter or contract
that does not exist, a store that cannot be opened) is one line on stderr and exit code 2;
any other epcmon error is one line and exit code 1; anything unexpected is one line with a
hint, exit code 1, and its traceback with `-v`.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from core.errors import ConfigError, EpcmonError, NotFound, StoreUnavailable


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(code: int, line: str) -> int:
    print(line, file=sys.stderr)
    return code


def run_command(command: Callable[[], int], *, verbose: bool) -> int:
    """Run `command` and map what it raises to one line on stderr and an exit code:

    - 2, a user error: `ConfigError` (the site file: file, entity and key; an option: the
      option), `NotFound` (a meter, contract or key the user named), `StoreUnavailable` (the
      store cannot be opened: a corrupt or locked file, a server that cannot be reached), and
      an `OSError` about a file (a path the user gave: missing, a directory, unwritable);
    - 1, any other `EpcmonError` (the meters', the data's), or an unexpected exception: one
      line with its type and a hint, and its traceback with -v;
    - 130, Ctrl-C.
    """
    try:
        return command()
    except ConfigError as exc:
        # a bad site file lists every problem, one a line; everything else is one line
        return _fail(2, f"configuration error: {exc}" if exc.file else f"error: {exc}")
    except (NotFound, StoreUnavailable) as exc:
        return _fail(2, f"error: {_one_line(str(exc))}")
    except EpcmonError as exc:
        return _fail(1, f"error: {_one_line(str(exc))}")
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except Exception as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            return _fail(2, f"error: {exc.filename}: {exc.strerror or _one_line(str(exc))}")
        if verbose:
            traceback.print_exc()
        line = f"error: {type(exc).__name__}: {_one_line(str(exc))}"
        return _fail(1, line if verbose else f"{line} (run with -v for the traceback)")
