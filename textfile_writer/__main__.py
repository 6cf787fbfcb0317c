"""The `agent-exporter` command's entry point (the console script and `python -m textfile_writer`).

`write` is what the timer runs every 10 seconds on every host, so it takes a fast path that
imports neither click nor PyYAML (see options.py and configfile.py). Every other command, and any
`write` invocation the fast parser does not recognise, goes through click: the writer's cli.py plus
the commands of the server's and the installer's rooms. Nothing imports this module: it is run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .console import PROG, run

if TYPE_CHECKING:
    import click


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["write"]:
        from .options import parse_fast

        values = parse_fast(args[1:])
        if values is not None:
            from .writer import command

            sys.exit(run(lambda: command(values)))
    sys.exit(run(lambda: program().main(args=args, prog_name=PROG)))


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
