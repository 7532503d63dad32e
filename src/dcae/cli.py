"""The ``dcae`` command line: compress, decompress, inspect, train, evaluate.

Exit status: 0 done, 1 a mistake the user can fix (one ``dcae: error:`` line, usage errors
included), 2 a bug in dcae (one ``dcae: internal error:`` line; ``DCAE_DEBUG=1`` adds the
traceback), 130 interrupted. Outputs are planned and checked before any work, written to a
temporary file and moved into place exclusively (:mod:`dcae.outputs`). The commands live in
:mod:`dcae.commands`; this module assembles them and applies the error policy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from . import __version__
from .commands import coding, describe, tools
from .commands.arguments import Parser
from .commands.errors import USER_ERRORS
from .commands.terminal import show_warning
from .errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR


def build_parser() -> Parser:
    """The argument parser with every subcommand."""
    parser = Parser(prog="dcae", description="Learned image compression (DCAE).")
    parser.add_argument("--version", action="version", version=f"dcae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    coding.add_parsers(sub)
    describe.add_parsers(sub)
    tools.add_parsers(sub)
    return parser


def _interrupt(_signum: int, _frame: Any) -> None:
    """SIGTERM ends a command as Ctrl-C does, so temporary files are removed on the way out."""
    raise KeyboardInterrupt


def main(argv: "Sequence[str] | None" = None) -> int:
    """Entry point of the ``dcae`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already reported
        return int(stop.code or 0)
    previous = signal.signal(signal.SIGTERM, _interrupt) if _in_main_thread() else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        print("dcae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`dcae info x | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except USER_ERRORS as error:
        print(f"dcae: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 - last line of defence: a bug, one line unless debugging
        if os.environ.get("DCAE_DEBUG") == "1":
            traceback.print_exc()
        print(
            f"dcae: internal error: {type(error).__name__}: {error} (a bug in dcae; DCAE_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        return EXIT_BUG
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
