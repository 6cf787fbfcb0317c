"""The `agent-exporter` command's entry point (the console script and `python -m textfile_writer`).

`write` is what the timer runs every 10 seconds on every host, so it takes a fast path that
imports neither click nor PyYAML (see options.py and configfile.py); every other command, and any
`write` invocation the fast parser does not recognise, goes through click in cli.py. Nothing
imports this module: it is only ever run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .console import PROG, run


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["write"]:
        from .options import parse_fast

        values = parse_fast(args[1:])
        if values is not None:
            from .writer import command

            sys.exit(run(lambda: command(values)))
    from .cli import cli

    sys.exit(run(lambda: cli.main(args=args, prog_name=PROG)))


if __name__ == "__main__":
    main()
