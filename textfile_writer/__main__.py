"""The `agent-exporter` command's entry point (bin/agent-exporter, and `python -m textfile_writer`).

`write` is what the timer runs every 10 seconds on every host, so it takes a fast path that
imports neither click nor PyYAML (see options.py and configfile.py). Every other command, and any
`write` invocation the fast parser does not recognise, goes through click: the writer's cli.py plus
the commands of the server's and the installer's rooms. Nothing imports this module: it is run.
"""

from __future__ import annotations

import gc
import sys

from .console import PROG, run
from .errors import Interrupted, UsageError

TYPE_CHECKING = False  # typing itself costs the write path an import of `re`
if TYPE_CHECKING:
    from collections.abc import Sequence

    import click


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["write"]:
        # One short run that exits: it makes next to no reference cycles (a few dozen), but the cyclic
        # collector would still walk its objects ~30 times at 1000 agents (3-4 ms, most of it in the
        # imports and the unit cache's 1000 dicts). Its memory goes back to the system at exit.
        gc.disable()
        from .options import parse_fast

        values = parse_fast(args[1:])
        if values is not None:
            from .writer import command

            _leave(run(lambda: command(values)))
    sys.exit(run(lambda: _click(args)))


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown (freeing every module and object one by one: 5 ms of
    a 35 ms run, measured at 16 and at 1000 agents). A run's files are complete by now (written,
    fsynced and renamed through descriptors), its lock goes with the process, and it registers no
    exit handler; only the console's buffered streams are left to flush."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said there
            code = code or 1
    os._exit(code)


def _click(args: list[str]) -> None:
    """The click command line, its usage errors made typed errors like any other (one line, exit 2)
    rather than click's own usage block."""
    import click

    from .clistyle import usage_message

    group = program()
    # click 8.2 raises this for a bare `agent-exporter`; Debian 12's click 8.1 (the package's) prints
    # the help itself and returns 0
    no_args_is_help = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        code = group.main(args=args, prog_name=PROG, standalone_mode=False)
    except no_args_is_help as exc:  # a bare `agent-exporter`: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        command = f"{PROG} {args[0]}" if args and args[0] in group.commands else PROG
        raise UsageError(usage_message(exc, command)) from None
    except click.Abort:
        raise Interrupted("interrupted") from None
    if isinstance(code, int) and code:  # click's Exit(n), e.g. from a --help callback
        sys.exit(code)


def program() -> click.Group:
    """The whole command line: the writer's commands and those of the server's and the installer's
    rooms, which the writer itself never imports."""
    from .cli import cli
    from .install.cli import install, uninstall
    from .server.cli import serve

    for command in (serve, install, uninstall):
        cli.add_command(command)
    return cli


if __name__ == "__main__":
    main()
